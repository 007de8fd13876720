//! The checks around a deploy that live in other crates. `Checks` implements fluo-core's
//! `ops::Hooks`: the pre-deployment gate (fluo-validate, in-process) and the post-deploy
//! checks (fluo-health, then fluo-smoke).
//!
//! Seam: fluo-validate, fluo-health and fluo-smoke depend on fluo-core, so they are plugged in
//! here, in the wiring crate, not in fluo-core and not in a binary (docs/adr/0004).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fluo_core::config::{AccessMode, Config};
use fluo_core::exit::Exit;
use fluo_core::ops::Hooks;
use fluo_core::render::Rendered;
use fluo_health::access;
use fluo_validate::environment::GitState;
use fluo_validate::{Checklist, Cluster, Gate, GateOptions, Skip, Step};
use futures::future::BoxFuture;

pub struct Checks {
    /// `--skip` steps (each with the run's --reason).
    pub skipped: Vec<String>,
    pub reason: Option<String>,
    /// The deploy's cluster: the gate's online steps (server-side dry run, status) use it.
    pub client: kube::Client,
    pub context: String,
    /// The app namespace of this run (the environment's, or -n).
    pub namespace: String,
}

impl Checks {
    /// The checks of a run on `ctx` with `--skip` steps `skipped` (each with `reason`).
    pub fn of(ctx: &fluo_core::ops::Ctx, skipped: Vec<String>, reason: Option<String>) -> Checks {
        Checks {
            skipped,
            reason,
            client: ctx.cluster.client.clone(),
            context: ctx.cluster.context.clone(),
            namespace: ctx.namespace.clone(),
        }
    }
}

impl Hooks for Checks {
    fn gate<'a>(
        &'a self,
        config: &'a Config,
        _components: &'a [String],
        cluster: &'a Rendered,
        rendered: &'a BTreeMap<String, Rendered>,
    ) -> BoxFuture<'a, Result<(), (Exit, String)>> {
        Box::pin(self.run_gate(config, cluster, rendered))
    }

    fn post_checks_usable(&self, config: &Config, _components: &[String]) -> Result<(), String> {
        self.resolver(config).unresolvable()
    }

    fn analysis_usable(&self, config: &Config) -> Result<(), String> {
        self.resolver(config).unresolvable_of(&[access::PROMETHEUS])
    }

    fn post_checks<'a>(
        &'a self,
        config: &'a Config,
        namespace: &'a str,
        _components: &'a [String],
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        Some(Box::pin(self.run_post_checks(config, namespace)))
    }

    fn preview_checks<'a>(
        &'a self,
        config: &'a Config,
        namespace: &'a str,
        component: &'a str,
        previews: &'a [(String, String)],
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        Some(Box::pin(
            self.run_preview_checks(config, namespace, component, previews),
        ))
    }

    fn metrics<'a>(
        &'a self,
        config: &'a Config,
    ) -> Option<Box<dyn fluo_core::ops::progressive::analysis::Metrics + 'a>> {
        Some(Box::new(crate::analysis::Prometheus::new(
            config,
            &self.client,
            &self.namespace,
        )))
    }

    fn backup<'a>(
        &'a self,
        config: &'a Config,
        namespace: &'a str,
    ) -> Option<BoxFuture<'a, Result<String, String>>> {
        let backup = config.environment.backup.as_ref()?;
        Some(Box::pin(async move {
            let conn = crate::jetstream::connect(backup, &self.client, namespace).await?;
            let environment = &config.environment.environment.name;
            let path = crate::jetstream::backup::take(&conn, &backup.dir, environment).await?;
            Ok(path.display().to_string())
        }))
    }
}

/// How long each post-deploy health check and smoke test may take.
const POST_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

impl Checks {
    /// Every checklist step of fluo-validate, minus the `--skip` ones (which the validate
    /// library refuses where the environment disallows skipping).
    async fn run_gate(
        &self,
        config: &Config,
        cluster: &Rendered,
        rendered: &BTreeMap<String, Rendered>,
    ) -> Result<(), (Exit, String)> {
        let usage = |message: String| (Exit::Usage, message);
        let skip = self
            .skipped
            .iter()
            .map(|name| {
                let step: Step = name
                    .parse()
                    .map_err(|e| usage(format!("--skip {name}: {e}")))?;
                Ok(Skip {
                    step,
                    reason: self.reason.clone().unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let checklist = Checklist::load(&config.infra_dir)
            .map_err(|e| usage(format!("loading the checklist: {e}")))?;
        let git = GitState::detect(&checklist.workdir);
        let mut options = GateOptions::new(
            checklist,
            log_path(&config.environment.environment.name),
            git,
        );
        options.skip = skip;
        options.cluster = Cluster::Online(self.client.clone());
        options.context = Some(self.context.clone());
        // The gate checks the objects as rendered for this deploy (the bytes that are applied)
        // in this run's namespace; given the set, the gate reads no namespace from the config.
        options.rendered = Some(
            fluo_validate::gate::rendered_set_in(config, &self.namespace, cluster, rendered)
                .map_err(|e| usage(e.to_string()))?,
        );
        // The dry run covers what this deploy applies, not the components it leaves alone.
        options.applied = Some(rendered.keys().cloned().collect());
        let gate = Gate::new(config, options).map_err(|e| (e.exit(), e.to_string()))?;
        let report = gate
            .run()
            .await
            .map_err(|e| usage(format!("running the gate: {e}")))?;
        if report.passed {
            return Ok(());
        }
        let step = report
            .failed_step
            .map_or_else(|| "unknown".to_string(), |s| s.to_string());
        Err((
            Exit::Failed,
            format!(
                "gate step `{step}` failed (log: {})\n{}",
                report.log.display(),
                report.to_text()
            ),
        ))
    }
}

impl Checks {
    /// The cluster the checks port-forward through; none in direct access mode, where they
    /// reach URLs only (fluo-health's contract).
    fn access_cluster(&self, config: &Config, namespace: &str) -> Option<access::Cluster> {
        (config.environment.access.mode != AccessMode::Direct).then(|| access::Cluster {
            client: self.client.clone(),
            namespace: namespace.to_string(),
        })
    }

    /// How the checks would reach each endpoint in this run's namespace (nothing connected).
    fn resolver(&self, config: &Config) -> access::Resolver {
        access::Resolver::from_config(config, self.access_cluster(config, &self.namespace))
    }

    /// fluo-health's checks, then fluo-smoke's tests, for the environment as configured
    /// (endpoints reached the way its [access] says). Err names every failed check.
    async fn run_post_checks(&self, config: &Config, namespace: &str) -> Result<(), String> {
        let cluster = self.access_cluster(config, namespace);
        // The operator's token file when given, else the cluster's smoke token Secret.
        let token_file =
            std::env::var_os(fluo_health::api_token::TOKEN_FILE_ENV).map(std::path::PathBuf::from);
        let health = fluo_health::health::run_for(
            config,
            cluster.clone(),
            POST_CHECK_TIMEOUT,
            token_file.as_deref(),
        )
        .await;
        let smoke =
            fluo_smoke::run_for(config, cluster, POST_CHECK_TIMEOUT, token_file.as_deref()).await;
        verdict(&[health, smoke]).map(|_| ())
    }

    /// The health checks and smoke tests that reach `component`'s Services, each reached
    /// through its preview (`previews`: service, preview), whatever `[access]` says.
    async fn run_preview_checks(
        &self,
        config: &Config,
        namespace: &str,
        component: &str,
        previews: &[(String, String)],
    ) -> Result<String, String> {
        use fluo_health::health;
        let cluster = access::Cluster {
            client: self.client.clone(),
            namespace: namespace.to_string(),
        };
        let mut resolver = access::Resolver::from_config(config, Some(cluster.clone()));
        let previewed = resolver.through_previews(previews);
        let resolver = std::sync::Arc::new(resolver);
        let mut options = health::Options::new(POST_CHECK_TIMEOUT);
        let only = health::CheckName::reaching(&previewed);
        if only.is_empty() {
            let names: Vec<&str> = previews.iter().map(|(s, _)| s.as_str()).collect();
            return Ok(format!(
                "no check reaches a Service of {component} ({}: no checked endpoint's [[health]] entry names it)",
                names.join(", ")
            ));
        }
        let token_file =
            std::env::var_os(fluo_health::api_token::TOKEN_FILE_ENV).map(std::path::PathBuf::from);
        options.api_token_file.clone_from(&token_file);
        options.only = Some(only);
        let mut reports = vec![health::run(config, resolver.clone(), &options).await];
        if previewed.iter().any(|e| e == access::BFF) {
            let environment = &config.environment.environment.name;
            let token = fluo_health::api_token::find(token_file.as_deref(), Some(&cluster)).await?;
            reports.push(fluo_smoke::run(&resolver, environment, POST_CHECK_TIMEOUT, token).await);
        }
        verdict(&reports)
    }
}

/// Ok (the checks that passed) when every report passed; else Err naming each failed check.
fn verdict(reports: &[fluo_health::report::Report]) -> Result<String, String> {
    let failed: Vec<String> = reports
        .iter()
        .filter(|report| !report.passed)
        .flat_map(|report| {
            report
                .checks
                .iter()
                .filter(|c| c.verdict != fluo_health::check::Verdict::Pass)
                .map(move |c| format!("{} {}: {}", report.kind, c.name, c.evidence))
        })
        .collect();
    if reports.iter().all(|r| r.passed) {
        let passed: Vec<String> = reports
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .map(move |c| format!("{} {}", r.kind, c.name))
            })
            .collect();
        Ok(passed.join(", "))
    } else if failed.is_empty() {
        Err("health or smoke report did not pass".to_string())
    } else {
        Err(failed.join("; "))
    }
}

/// Where the gate streams the checklist commands' output.
fn log_path(env: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::env::temp_dir()
        .join("fluo-deploy")
        .join(format!("gate-{env}-{stamp}-{}.log", std::process::id()))
}
