//! What the emergency commands (rollback, rollback-to-previous, history, status, logs) read of
//! the checkout: only the environment file and the `component.toml` files, never manifests.
//! They run from the release records and the cluster, so a checkout with a bad manifest, a
//! dependency cycle or no infra/ at all must not stop them; what could not be read becomes a
//! warning.

use std::path::Path;

use super::{Component, Config, Environment, Error, Result, environment_path, load_environment};
use crate::plan::Graph;
use crate::read_error::ReadError;

/// A config for an emergency command and what had to be left out.
pub struct EmergencyConfig {
    pub config: Config,
    /// Why part of the checkout was not used (None: everything needed was readable).
    pub warning: Option<String>,
    /// The component graph did not come from the checkout: rebuild it from the records
    /// ([`Config::components_from_records`]).
    pub graph_from_records: bool,
    /// The environment file was read (so its trusted keys are known).
    pub environment_read: bool,
}

/// Reads the environment file and the component files. Without a readable environment file
/// the kube context must come from `context` (`--context`); the namespace is `namespace` or
/// `fluo`, and signatures cannot be checked against trusted keys.
pub fn load_for_emergency(
    infra_dir: &Path,
    env: &str,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<EmergencyConfig> {
    let mut problems = Vec::new();
    let (components, graph) = match component_files(infra_dir) {
        Ok(found) => found,
        Err(e) => {
            problems.push(format!("components: {e}"));
            (Vec::new(), None)
        }
    };
    let loaded = environment_path(infra_dir, env)
        // Replicas of components the broken checkout does not show are no reason to stop.
        .and_then(|path| load_environment(&path, &[]).map(|e| (e, path)));
    let environment_read = loaded.is_ok();
    let (environment, environment_file) = match loaded {
        Ok(found) => found,
        Err(e) => {
            let Some(context) = context else {
                return Err(Error::Invalid {
                    path: infra_dir.join("environments").join(format!("{env}.toml")),
                    key: "environment".into(),
                    value: env.to_string(),
                    reason: format!(
                        "cannot be read ({e}); pass --context (and -n) to run this command from the release records alone"
                    ),
                });
            };
            problems.push(format!(
                "environment `{env}`: {e}; using --context {context}, namespace {}, and no trusted keys (signatures are not checked)",
                namespace.unwrap_or("fluo")
            ));
            let path = infra_dir.join("environments").join(format!("{env}.toml"));
            (
                Environment::bare(env, context, namespace.unwrap_or("fluo")),
                path,
            )
        }
    };
    let graph_from_records = graph.is_none();
    let warning = (!problems.is_empty()).then(|| {
        format!(
            "the checkout is broken or missing, working from the release records and the cluster: {}",
            problems.join("; ")
        )
    });
    Ok(EmergencyConfig {
        config: Config {
            infra_dir: infra_dir.to_path_buf(),
            components,
            cluster_manifests: Vec::new(),
            environment,
            environment_file,
            graph: graph.unwrap_or_else(|| Graph::new([]).expect("an empty graph is acyclic")),
        },
        warning,
        graph_from_records,
        environment_read,
    })
}

impl Config {
    /// Components known from the release records when the checkout could not say: no
    /// dependencies are known, so they go one at a time in name order.
    pub fn components_from_records<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort();
        names.dedup();
        self.graph = Graph::new(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i as u32, Vec::new())),
        )
        .expect("a graph without dependencies is acyclic");
        self.environment.strategy.order = super::Order::Sequential;
    }
}

/// The component files (no manifests) and their graph.
fn component_files(infra_dir: &Path) -> Result<(Vec<Component>, Option<Graph>)> {
    let root = infra_dir.join("components");
    let entries = std::fs::read_dir(&root).map_err(ReadError::of(&root))?;
    let mut dirs: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("component.toml").is_file())
        .collect();
    dirs.sort();
    let mut components = Vec::new();
    for dir in dirs {
        let mut component = load_component_file(&dir)?;
        component.manifests.clear();
        components.push(component);
    }
    components.sort_by_key(|c| c.spec.component.sop_order);
    let graph = Graph::new(components.iter().map(|c| {
        (
            c.name().to_string(),
            c.spec.component.sop_order,
            c.spec.component.depends_on.clone(),
        )
    }))?;
    Ok((components, Some(graph)))
}

/// One `component.toml` without its manifests.
fn load_component_file(dir: &Path) -> Result<Component> {
    let path = dir.join("component.toml");
    let spec = super::read_toml(&path)?;
    super::check_component(&path, dir, &spec)?;
    Ok(Component {
        dir: dir.to_path_buf(),
        spec,
        manifests: Vec::new(),
    })
}

impl Environment {
    /// An environment known only by name, context and namespace: port-forward access, no
    /// windows or approvals, the strict validation rules (clean git, no skips, no inline
    /// secrets, image scans) and no post-deploy checks.
    pub fn bare(name: &str, context: &str, namespace: &str) -> Environment {
        let text = format!(
            r#"
[environment]
name = {name:?}
context = {context:?}
namespace = {namespace:?}
[access]
mode = "port-forward"
[strategy]
order = "sequential"
post_deploy_checks = false
[validation]
require_clean_git = true
allow_skip = false
allow_inline_secrets = false
require_image_scan = true
[monitoring]
duration = "1m"
interval = "10s"
max_error_ratio = 0.0
max_restarts = 0
max_backlog = 0
"#
        );
        toml::from_str(&text).expect("the bare environment parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const NATS: &str = "[component]\nname = \"nats\"\nsop_order = 1\n[rollout]\ntimeout = \"1m\"\n";
    const BFF: &str = "[component]\nname = \"bff\"\nsop_order = 2\ndepends_on = [\"nats\"]\n[rollout]\ntimeout = \"1m\"\n";

    #[test]
    fn a_broken_manifest_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let infra = dir.path();
        write(infra, "components/nats/component.toml", NATS);
        write(infra, "components/bff/component.toml", BFF);
        write(infra, "components/bff/manifests/bad.yaml", "kind: [oops\n");
        let env = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/environments/local.toml"),
        )
        .unwrap();
        write(infra, "environments/local.toml", &env);
        assert!(Config::load(infra, "local").is_err(), "the full load fails");
        let loaded = load_for_emergency(infra, "local", None, None).unwrap();
        assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
        assert!(!loaded.graph_from_records);
        assert_eq!(loaded.config.graph.sequential_order(), ["nats", "bff"]);
        assert_eq!(loaded.config.environment.environment.name, "local");
    }

    #[test]
    fn a_cycle_or_no_infra_falls_back_to_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let infra = dir.path();
        write(
            infra,
            "components/nats/component.toml",
            &NATS.replace("sop_order = 1", "sop_order = 1\ndepends_on = [\"bff\"]"),
        );
        write(infra, "components/bff/component.toml", BFF);
        let err = load_for_emergency(infra, "local", None, None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("--context"), "{err}");
        let mut loaded =
            load_for_emergency(infra, "local", Some("kube-emulator"), Some("apps")).unwrap();
        let warning = loaded.warning.clone().unwrap();
        assert!(
            warning.contains("cycle") && warning.contains("kube-emulator"),
            "{warning}"
        );
        assert!(loaded.graph_from_records);
        assert_eq!(loaded.config.environment.environment.namespace, "apps");
        loaded
            .config
            .components_from_records(["workers", "bff", "bff"]);
        assert_eq!(loaded.config.graph.sequential_order(), ["bff", "workers"]);
        let missing = load_for_emergency(&infra.join("nope"), "local", Some("c"), None).unwrap();
        assert!(missing.warning.unwrap().contains("components"));
    }
}
