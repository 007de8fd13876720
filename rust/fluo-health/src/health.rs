//! The health run: which checks exist, which run, and how each is built from the configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use fluo_core::config::Config;

use crate::access::{self, Resolver};
use crate::check::{self, Check};
use crate::checks::{self, pods::ComponentServices, prometheus::Expectations};
use crate::report::Report;

/// The checks of SOP-002 "Mandatory Health Checks", by the name `--check` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckName {
    Pods,
    Bff,
    Nats,
    Workers,
    Grafana,
    Prometheus,
    Logs,
    ApiAuth,
    NatsAuth,
    NatsTls,
    Rbac,
    PodEnv,
}

impl CheckName {
    pub const ALL: [CheckName; 12] = [
        CheckName::Pods,
        CheckName::Bff,
        CheckName::Nats,
        CheckName::Workers,
        CheckName::Grafana,
        CheckName::Prometheus,
        CheckName::Logs,
        CheckName::ApiAuth,
        CheckName::NatsAuth,
        CheckName::NatsTls,
        CheckName::Rbac,
        CheckName::PodEnv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Pods => "pods",
            CheckName::Bff => "bff",
            CheckName::Nats => "nats",
            CheckName::Workers => "workers",
            CheckName::Grafana => "grafana",
            CheckName::Prometheus => "prometheus",
            CheckName::Logs => "logs",
            CheckName::ApiAuth => "api-auth",
            CheckName::NatsAuth => "nats-auth",
            CheckName::NatsTls => "nats-tls",
            CheckName::Rbac => "rbac",
            CheckName::PodEnv => "pod-env",
        }
    }

    /// Checks that read the cluster itself (not just endpoints).
    pub fn needs_cluster(self) -> bool {
        matches!(
            self,
            CheckName::Pods | CheckName::Logs | CheckName::Rbac | CheckName::PodEnv
        )
    }

    /// The endpoints ([`access`] names) the check reaches; empty for the cluster checks.
    pub fn endpoints(self) -> &'static [&'static str] {
        match self {
            // The workers check submits its job through the BFF.
            CheckName::Bff | CheckName::ApiAuth | CheckName::Workers => &[access::BFF],
            CheckName::Nats => &[access::NATS_MONITOR],
            CheckName::NatsAuth | CheckName::NatsTls => &[access::NATS],
            CheckName::Grafana => &[access::GRAFANA],
            CheckName::Prometheus => &[access::PROMETHEUS],
            CheckName::Pods | CheckName::Logs | CheckName::Rbac | CheckName::PodEnv => &[],
        }
    }

    /// The checks that reach any of `endpoints`.
    pub fn reaching(endpoints: &[String]) -> BTreeSet<CheckName> {
        CheckName::ALL
            .into_iter()
            .filter(|c| {
                c.endpoints()
                    .iter()
                    .any(|e| endpoints.iter().any(|x| x == e))
            })
            .collect()
    }

    /// Checks that connect to the NATS client port (`access.urls.nats` or a port-forward).
    pub fn needs_nats_client(self) -> bool {
        matches!(self, CheckName::NatsAuth | CheckName::NatsTls)
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckName::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown check {s:?} (known: {})",
                    CheckName::ALL.map(CheckName::as_str).join(", ")
                )
            })
    }
}

/// How the run behaves beyond the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--check`: run only these. None: every check the access allows (see [`selected`]).
    pub only: Option<BTreeSet<CheckName>>,
    /// Per-check timeout.
    pub timeout: Duration,
    /// Bearer token for Grafana's search API (when anonymous access is off).
    pub grafana_token: Option<String>,
    /// The BFF API token file the workers check submits its job with; None: the cluster's
    /// smoke token Secret ([`crate::api_token::find`]).
    pub api_token_file: Option<std::path::PathBuf>,
    /// A jobs:read-only token for the wrong-scope check; None: key `read-token` of the smoke
    /// token Secret.
    pub api_read_token_file: Option<std::path::PathBuf>,
    /// The CA the NATS certificate must chain to; None: the Secret nats-tls.
    pub nats_ca_file: Option<std::path::PathBuf>,
    pub prometheus: Expectations,
}

impl Options {
    pub fn new(timeout: Duration) -> Self {
        Self {
            only: None,
            timeout,
            grafana_token: None,
            api_token_file: None,
            api_read_token_file: None,
            nats_ca_file: None,
            prometheus: Expectations {
                jobs: vec!["fluo-bff".to_owned(), "fluo-worker".to_owned()],
                metric_prefixes: vec!["fluo_bff_".to_owned()],
            },
        }
    }
}

/// The checks to run and the ones left out with why. Without `--check`, cluster checks (pods,
/// logs, rbac, pod-env) run only when a cluster is configured, and the NATS client checks only
/// when the client port can be reached; that is reported, never silent.
pub fn selected(
    options: &Options,
    has_cluster: bool,
    has_nats_client: bool,
) -> (Vec<CheckName>, BTreeMap<CheckName, String>) {
    match &options.only {
        Some(only) => (only.iter().copied().collect(), BTreeMap::new()),
        None => {
            let why_not = |c: CheckName| {
                if c.needs_cluster() && !has_cluster {
                    Some("no cluster access (access.mode direct, no kubeconfig)")
                } else if c.needs_nats_client() && !has_nats_client {
                    Some("no way to the NATS client port (direct access without access.urls.nats)")
                } else {
                    None
                }
            };
            let run = CheckName::ALL.into_iter().filter(|c| why_not(*c).is_none());
            let left = CheckName::ALL
                .into_iter()
                .filter_map(|c| why_not(c).map(|why| (c, why.to_owned())));
            (run.collect(), left.collect())
        }
    }
}

/// All the checks the environment allows, each under `timeout`: what `fluo-deploy` runs after a
/// rollout (`cluster` is the deploy's client and namespace; None in direct access mode).
pub async fn run_for(
    config: &Config,
    cluster: Option<access::Cluster>,
    timeout: Duration,
    api_token_file: Option<&std::path::Path>,
) -> Report {
    let resolver = Arc::new(Resolver::from_config(config, cluster));
    let mut options = Options::new(timeout);
    options.api_token_file = api_token_file.map(std::path::Path::to_path_buf);
    run(config, resolver, &options).await
}

/// Run the selected checks concurrently and report.
pub async fn run(config: &Config, resolver: Arc<Resolver>, options: &Options) -> Report {
    let (names, not_run) = selected(
        options,
        resolver.cluster().is_some(),
        resolver.has_nats_client(),
    );
    let http = crate::endpoint::http_client(options.timeout);
    let checks: Vec<Check> = names
        .iter()
        .map(|name| build(*name, config, &resolver, &http, options))
        .collect();
    let outcomes = check::run_all(checks).await;
    let mut report = Report::new("health", &config.environment.environment.name, outcomes);
    report.not_run = not_run
        .into_iter()
        .map(|(name, why)| (name.as_str().to_owned(), why))
        .collect();
    report
}

fn build(
    name: CheckName,
    config: &Config,
    resolver: &Arc<Resolver>,
    http: &reqwest::Client,
    options: &Options,
) -> Check {
    let resolver = Arc::clone(resolver);
    let http = http.clone();
    let timeout = options.timeout;
    match name {
        CheckName::Bff => {
            let paths: Vec<String> = config
                .component("bff")
                .map(|c| c.spec.health.iter().map(|h| h.path.clone()).collect())
                .unwrap_or_else(|| vec!["/health".to_owned()]);
            Check::new(name.as_str(), timeout, async move {
                let ep = endpoint(&resolver, access::BFF).await?;
                checks::bff::probe(&http, &ep, &paths).await
            })
        }
        CheckName::Nats => Check::new(name.as_str(), timeout, async move {
            let ep = endpoint(&resolver, access::NATS_MONITOR).await?;
            checks::nats::probe(&http, &ep).await
        }),
        CheckName::Workers => {
            let token_file = options.api_token_file.clone();
            Check::new(name.as_str(), timeout, async move {
                // The jobs API needs a token (jobs:submit, jobs:read) on a secured BFF.
                let token =
                    crate::api_token::find(token_file.as_deref(), resolver.cluster()).await?;
                let ep = endpoint(&resolver, access::BFF).await?.with_token(token);
                checks::worker::probe(&http, &ep, timeout).await
            })
        }
        CheckName::Grafana => {
            let token = options.grafana_token.clone();
            Check::new(name.as_str(), timeout, async move {
                let ep = endpoint(&resolver, access::GRAFANA).await?;
                checks::grafana::probe(&http, &ep, token.as_deref()).await
            })
        }
        CheckName::Prometheus => {
            let expect = options.prometheus.clone();
            Check::new(name.as_str(), timeout, async move {
                let ep = endpoint(&resolver, access::PROMETHEUS).await?;
                // The last answer, not "timed out", when the targets never show up in time.
                let patience = timeout.saturating_sub(Duration::from_secs(2));
                checks::prometheus::probe_patiently(
                    &http,
                    &ep,
                    &expect,
                    resolver.cluster(),
                    patience,
                )
                .await
            })
        }
        CheckName::Pods => {
            let components = component_services(config);
            Check::new(name.as_str(), timeout, async move {
                let cluster = resolver.cluster().ok_or_else(no_cluster)?;
                checks::pods::probe(cluster, &components).await
            })
        }
        CheckName::Logs => Check::new(name.as_str(), timeout, async move {
            let cluster = resolver.cluster().ok_or_else(no_cluster)?;
            checks::logs::probe(cluster).await
        }),
        CheckName::ApiAuth => {
            let (full, read_only) = (
                options.api_token_file.clone(),
                options.api_read_token_file.clone(),
            );
            Check::new(name.as_str(), timeout, async move {
                let tokens = checks::api_auth::Tokens {
                    full: crate::api_token::find(full.as_deref(), resolver.cluster()).await?,
                    read_only: crate::api_token::find_read_only(
                        read_only.as_deref(),
                        resolver.cluster(),
                    )
                    .await?,
                };
                let ep = endpoint(&resolver, access::BFF).await?;
                checks::api_auth::probe(&http, &ep, tokens).await
            })
        }
        CheckName::NatsAuth | CheckName::NatsTls => {
            let ca_file = options.nats_ca_file.clone();
            Check::new(name.as_str(), timeout, async move {
                use checks::nats_security as nats;
                let ca = nats::expected_ca(ca_file.as_deref(), resolver.cluster()).await?;
                let target = resolver.nats_client().await?;
                match (name, ca) {
                    (CheckName::NatsAuth, ca) => nats::anonymous_probe(&target, ca.as_ref()).await,
                    (_, Some(ca)) => nats::tls_probe(&target, &ca).await,
                    (_, None) => Err("no CA to verify the NATS certificate against: give \
                                      --nats-ca-file or create the Secret nats-tls (key ca.crt)"
                        .to_owned()),
                }
            })
        }
        CheckName::Rbac => {
            let manifests = config.cluster_manifests.clone();
            Check::new(name.as_str(), timeout, async move {
                let cluster = resolver.cluster().ok_or_else(no_cluster)?;
                let app = cluster.namespace.as_str();
                let namespaces: Vec<_> = [app, fluo_core::SYSTEM_NAMESPACE]
                    .into_iter()
                    .map(|ns| {
                        let objects = manifests.iter().map(|d| &d.object);
                        (ns.to_owned(), checks::rbac::documented(objects, ns, app))
                    })
                    .collect();
                checks::rbac::probe(cluster, &namespaces).await
            })
        }
        CheckName::PodEnv => Check::new(name.as_str(), timeout, async move {
            let cluster = resolver.cluster().ok_or_else(no_cluster)?;
            checks::pod_env::probe(cluster).await
        }),
    }
}

async fn endpoint(resolver: &Resolver, name: &str) -> Result<crate::endpoint::Endpoint, String> {
    resolver.endpoint(name).await.map_err(|e| e.to_string())
}

fn no_cluster() -> String {
    "needs a Kubernetes client: give --kubeconfig or set KUBECONFIG".to_owned()
}

/// Each component with the Services named by its `[[health]]` entries.
fn component_services(config: &Config) -> Vec<ComponentServices> {
    config
        .components
        .iter()
        .filter(|c| !c.spec.health.is_empty())
        .map(|c| ComponentServices {
            component: c.name().to_owned(),
            services: c.spec.health.iter().map(|h| h.service.clone()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_parse_and_unknown_names_list_the_known() {
        assert_eq!("nats".parse::<CheckName>(), Ok(CheckName::Nats));
        assert_eq!(
            "natz".parse::<CheckName>(),
            Err("unknown check \"natz\" (known: pods, bff, nats, workers, grafana, prometheus, logs, api-auth, nats-auth, nats-tls, rbac, pod-env)".into())
        );
    }

    #[test]
    fn the_checks_reaching_the_bff_are_those_through_its_api() {
        assert_eq!(
            CheckName::reaching(&["bff".to_string()]),
            BTreeSet::from([CheckName::Bff, CheckName::Workers, CheckName::ApiAuth])
        );
        assert!(CheckName::reaching(&["worker".to_string()]).is_empty());
    }

    #[test]
    fn without_a_cluster_cluster_checks_are_reported_as_not_run() {
        let options = Options::new(Duration::from_secs(5));
        let (run, left) = selected(&options, false, false);
        assert_eq!(
            run,
            [
                CheckName::Bff,
                CheckName::Nats,
                CheckName::Workers,
                CheckName::Grafana,
                CheckName::Prometheus,
                CheckName::ApiAuth,
            ]
        );
        assert_eq!(
            left.keys().copied().collect::<Vec<_>>(),
            [
                CheckName::Pods,
                CheckName::Logs,
                CheckName::NatsAuth,
                CheckName::NatsTls,
                CheckName::Rbac,
                CheckName::PodEnv
            ]
        );
        assert!(left[&CheckName::NatsTls].contains("access.urls.nats"));
        assert_eq!(selected(&options, true, true).0, CheckName::ALL);
    }

    #[test]
    fn explicit_selection_runs_exactly_that() {
        let mut options = Options::new(Duration::from_secs(5));
        options.only = Some([CheckName::Logs, CheckName::Bff].into());
        let (run, left) = selected(&options, false, false);
        assert_eq!(run, [CheckName::Bff, CheckName::Logs]);
        assert!(left.is_empty());
    }
}
