//! The gate: runs the checklist steps in order (tests, flake-check, build, manifests, policy,
//! status), timed, with command output streamed to a log file; the first failing step stops it.
//! fluo-deploy calls it in-process before applying anything and applies nothing unless the
//! report passed.

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet};

use fluo_core::config::Config;
use fluo_core::manifest::Document;
use fluo_core::render::{self, ImageOverrides, Rendered};
use tokio::io::AsyncWriteExt;

use crate::checklist::{self, Checklist, CommandOutcome, Step};
use crate::environment::{self, GitState};
use crate::finding::Finding;
use crate::manifests::{CLUSTER_COMPONENT, ManifestSet};
use crate::pods::PodTemplate;
use crate::policy::{self, PolicySettings};
use crate::report::{Report, Skip, StepResult, StepStatus};
use crate::{crossref, online, scan, schema, service_config};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--only`/`--skip` where the environment's `[validation].allow_skip` is false.
    #[error(
        "refused by policy: environment {environment} runs every validation step ([validation].allow_skip = false), so {what} is not allowed"
    )]
    Refused { environment: String, what: String },
    #[error("--skip {0} needs a non-empty --reason (it is recorded in the release record)")]
    SkipWithoutReason(Step),
    #[error("--only selects no step")]
    NothingSelected,
    #[error("cannot write the validation log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// The shared exit status: refused by policy, else usage or I/O error (nothing changed).
    pub fn exit(&self) -> fluo_core::exit::Exit {
        match self {
            Error::Refused { .. } => fluo_core::exit::Exit::Policy,
            _ => fluo_core::exit::Exit::Usage,
        }
    }
}

/// How the gate reaches the target cluster.
#[derive(Clone)]
pub enum Cluster {
    /// `--offline`: no server-side dry run, no external Secret check, no reachability check.
    Offline,
    Online(kube::Client),
    /// A client could not be built (no kubeconfig, unknown context); the reason becomes a
    /// `cluster.reachable` finding of the first online step.
    Unavailable(String),
}

pub struct GateOptions<'a> {
    /// Run only these steps (`--only`); `None` runs all.
    pub only: Option<Vec<Step>>,
    /// Steps skipped on purpose, with reasons (`--skip STEP --reason R`).
    pub skip: Vec<Skip>,
    pub cluster: Cluster,
    /// The kube context the deploy targets (`--context`, else the kubeconfig's current one).
    pub context: Option<String>,
    pub checklist: Checklist,
    /// Where step output is streamed.
    pub log_path: PathBuf,
    pub git: GitState,
    /// PATH-style list searched for trivy/grype.
    pub scanner_path: OsString,
    /// Directories searched for fluo-bff/fluo-worker (`service.config`).
    pub service_bin_path: Vec<PathBuf>,
    /// The objects as a deploy renders them (see [`rendered_set`]); `None` checks the
    /// manifests as written (the standalone `fluo-validate`).
    pub rendered: Option<ManifestSet<'a>>,
    /// The components the deploy applies: the server-side dry run covers only their objects
    /// (and the cluster-wide ones). `None`: every component (the standalone `fluo-validate`).
    pub applied: Option<BTreeSet<String>>,
}

impl GateOptions<'_> {
    /// All steps, offline, no context; the scanner is looked up on `PATH`.
    pub fn new(checklist: Checklist, log_path: PathBuf, git: GitState) -> Self {
        Self {
            only: None,
            skip: Vec::new(),
            cluster: Cluster::Offline,
            context: None,
            checklist,
            log_path,
            git,
            scanner_path: std::env::var_os("PATH").unwrap_or_default(),
            service_bin_path: crate::service_config::search_path(),
            rendered: None,
            applied: None,
        }
    }
}

/// The objects of a deploy: the cluster-wide manifests, then every component in SOP order
/// (borrowed from `config`).
pub fn manifest_set(config: &Config) -> ManifestSet<'_> {
    let mut components = vec![(
        CLUSTER_COMPONENT.to_string(),
        borrowed(&config.cluster_manifests),
    )];
    components.extend(
        config
            .components
            .iter()
            .map(|c| (c.name().to_string(), borrowed(&c.manifests))),
    );
    ManifestSet::of(&config.environment.environment.namespace, components)
}

fn borrowed(documents: &[Document]) -> Vec<Cow<'_, Document>> {
    documents.iter().map(Cow::Borrowed).collect()
}

/// The objects a deploy applies, as rendered (image overrides, registry, replicas, pull
/// policy, labels): the cluster-wide objects and the selected components exactly as this deploy
/// renders them, the other components as the environment renders them (so cross-references to
/// them still resolve).
pub fn rendered_set<'a>(
    config: &'a Config,
    cluster: &'a Rendered,
    selected: &'a BTreeMap<String, Rendered>,
) -> Result<ManifestSet<'a>, render::Error> {
    let namespace = &config.environment.environment.namespace;
    rendered_set_in(config, namespace, cluster, selected)
}

/// [`rendered_set`] for the app namespace `namespace` (a deploy's `-n`), without a copy of
/// the config to change its namespace (a copy held every loaded manifest a second time).
/// The deploy's rendered documents are borrowed, not copied (at 200 components a copy was
/// 12 MB of the deploy's peak).
pub fn rendered_set_in<'a>(
    config: &'a Config,
    namespace: &str,
    cluster: &'a Rendered,
    selected: &'a BTreeMap<String, Rendered>,
) -> Result<ManifestSet<'a>, render::Error> {
    let mut components = vec![(CLUSTER_COMPONENT.to_string(), borrowed(&cluster.documents))];
    for component in &config.components {
        let name = component.name();
        let documents = match selected.get(name) {
            Some(r) => borrowed(&r.documents),
            None => render::render(component, &config.environment, &ImageOverrides::default())?
                .documents
                .into_iter()
                .map(Cow::Owned)
                .collect(),
        };
        components.push((name.to_string(), documents));
    }
    Ok(ManifestSet::of(namespace, components))
}

pub struct Gate<'a> {
    config: &'a Config,
    options: GateOptions<'a>,
    set: ManifestSet<'a>,
}

impl<'a> Gate<'a> {
    /// Checks the step selection against the environment's policy before anything runs.
    pub fn new(config: &'a Config, mut options: GateOptions<'a>) -> Result<Self> {
        let environment = &config.environment.environment.name;
        let restricted = !config.environment.validation.allow_skip;
        if restricted && options.only.is_some() {
            return Err(Error::Refused {
                environment: environment.clone(),
                what: "--only".to_string(),
            });
        }
        if let Some(skip) = options.skip.first()
            && restricted
        {
            return Err(Error::Refused {
                environment: environment.clone(),
                what: format!("--skip {}", skip.step),
            });
        }
        if let Some(skip) = options.skip.iter().find(|s| s.reason.trim().is_empty()) {
            return Err(Error::SkipWithoutReason(skip.step));
        }
        if options.only.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::NothingSelected);
        }
        Ok(Self {
            config,
            set: options
                .rendered
                .take()
                .unwrap_or_else(|| manifest_set(config)),
            options,
        })
    }

    /// Runs the selected steps in order; stops at the first failure.
    pub async fn run(self) -> Result<Report> {
        let log_path = self.options.log_path.clone();
        let log_error = |source| Error::Log {
            path: log_path.clone(),
            source,
        };
        if let Some(dir) = log_path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(log_error)?;
        }
        let mut log = tokio::fs::File::create(&log_path)
            .await
            .map_err(log_error)?;
        let mut steps = Vec::new();
        let mut failed_step = None;
        for step in Step::ALL {
            if failed_step.is_some() {
                steps.push(StepResult::new(step, StepStatus::NotRun));
                continue;
            }
            if self
                .options
                .only
                .as_ref()
                .is_some_and(|only| !only.contains(&step))
            {
                steps.push(StepResult::new(step, StepStatus::NotSelected));
                continue;
            }
            if self.options.skip.iter().any(|s| s.step == step) {
                steps.push(StepResult::new(step, StepStatus::Skipped));
                continue;
            }
            write_log(&mut log, &format!("==> {step}\n"))
                .await
                .map_err(log_error)?;
            let started = Instant::now();
            let mut result = self.run_step(step, &mut log).await.map_err(log_error)?;
            result.duration = started.elapsed();
            for finding in &result.findings {
                write_log(&mut log, &format!("{finding}\n"))
                    .await
                    .map_err(log_error)?;
            }
            let verdict = match &result.error {
                Some(error) => format!("<== {step} FAILED: {error}\n"),
                None if !result.findings.is_empty() => {
                    format!("<== {step} FAILED: {} finding(s)\n", result.findings.len())
                }
                None => format!("<== {step} passed\n"),
            };
            write_log(&mut log, &verdict).await.map_err(log_error)?;
            if result.error.is_some() || !result.findings.is_empty() {
                result.status = StepStatus::Failed;
                failed_step = Some(step);
            }
            steps.push(result);
        }
        log.flush().await.map_err(log_error)?;
        Ok(Report {
            environment: self.config.environment.environment.name.clone(),
            passed: failed_step.is_none(),
            failed_step,
            steps,
            skipped: self.options.skip.clone(),
            log: log_path,
        })
    }

    async fn run_step(&self, step: Step, log: &mut tokio::fs::File) -> std::io::Result<StepResult> {
        let mut result = StepResult::new(step, StepStatus::Passed);
        match step {
            Step::Tests | Step::FlakeCheck | Step::Build => {
                let checklist = &self.options.checklist;
                let spec = &checklist.commands[&step];
                let outcome = checklist::run_command(step, spec, &checklist.workdir, log).await?;
                if let CommandOutcome::Failed(message) = outcome {
                    result.error = Some(message);
                }
            }
            Step::Manifests => {
                result.findings = self.offline_manifest_findings();
                if result.findings.is_empty() {
                    let (findings, notes) =
                        service_config::check(&self.set, &self.options.service_bin_path).await;
                    result.findings = findings;
                    result.notes.extend(notes);
                }
                if result.findings.is_empty() {
                    self.online_manifest_checks(&mut result).await;
                }
            }
            Step::Policy => {
                let settings = PolicySettings {
                    allow_inline_secrets: self.config.environment.validation.allow_inline_secrets,
                };
                result.findings = policy::check(&self.set, settings);
                if crate::security::required_in(&self.config.environment.environment.name) {
                    result.findings.extend(crate::security::check(&self.set));
                }
                let outcome = scan::scan(
                    &self.images(),
                    self.config.environment.validation.require_image_scan,
                    &self.options.scanner_path,
                    log,
                )
                .await?;
                result.findings.extend(outcome.findings);
                result.notes.extend(outcome.notes);
            }
            Step::Status => {
                let env = &self.config.environment;
                result.findings = environment::check(
                    &env.environment.name,
                    &env.environment.context,
                    env.validation.require_clean_git,
                    &self.options.git,
                    self.options.context.as_deref(),
                );
                match &self.options.cluster {
                    Cluster::Offline => result
                        .notes
                        .push("offline: cluster reachability not checked".to_string()),
                    Cluster::Unavailable(why) => result.findings.push(
                        crate::rules::CLUSTER_REACHABLE
                            .general(format!("no cluster client: {why}")),
                    ),
                    Cluster::Online(client) => match online::reachable(client).await {
                        Ok(version) => result
                            .notes
                            .push(format!("cluster answers (server {version})")),
                        Err(finding) => result.findings.push(finding),
                    },
                }
            }
        }
        Ok(result)
    }

    /// Schema and cross-reference findings (no cluster needed).
    pub fn offline_manifest_findings(&self) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self
            .set
            .objects
            .iter()
            .flat_map(|o| schema::check(&o.doc))
            .collect();
        findings.extend(crossref::check(&self.set));
        findings
    }

    async fn online_manifest_checks(&self, result: &mut StepResult) {
        match &self.options.cluster {
            Cluster::Offline => result
                .notes
                .push("offline: server-side dry run and external Secret check skipped".to_string()),
            Cluster::Unavailable(why) => result
                .findings
                .push(crate::rules::CLUSTER_REACHABLE.general(format!("no cluster client: {why}"))),
            Cluster::Online(client) => {
                if let Err(finding) = online::reachable(client).await {
                    result.findings.push(finding);
                    return;
                }
                let (findings, notes) =
                    online::dry_run(client, &self.set, self.options.applied.as_ref()).await;
                result.findings.extend(findings);
                result.notes.extend(notes);
                result
                    .findings
                    .extend(online::external_secrets(client, &self.set).await);
            }
        }
    }

    /// Every container image of the deploy.
    fn images(&self) -> Vec<String> {
        self.set
            .objects
            .iter()
            .filter_map(|o| PodTemplate::of(&o.doc))
            .flat_map(|pod| {
                pod.containers()
                    .into_iter()
                    .filter_map(|c| {
                        c.value
                            .get("image")
                            .and_then(|i| i.as_str())
                            .map(String::from)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn write_log(log: &mut tokio::fs::File, text: &str) -> std::io::Result<()> {
    log.write_all(text.as_bytes()).await
}
