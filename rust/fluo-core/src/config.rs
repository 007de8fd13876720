//! The deployment configuration: components (`infra/components/<c>/component.toml` and their
//! manifests), the cluster-wide manifests and one environment (`infra/environments/<env>.toml`).
//!
//! `Config::load` reads and checks everything before anything is applied; every error names the
//! file and the key or value at fault. Unknown keys are errors (a typo must not be ignored).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::{self, Document};
use crate::plan::{self, Graph};
use crate::read_error::ReadError;

pub mod backup;
mod change;
pub mod strategy;
pub use backup::Backup;
pub use change::{
    Drill, EscalationStep, EventKind, EventSelector, Notice, Notifications, PayloadFormat, Receiver,
};
pub use strategy::{Order, Strategy};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: `{key}` = {value}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{path}: no components found (expected infra/components/<name>/component.toml)")]
    NoComponents { path: PathBuf },
    #[error("unknown environment `{name}`: {path} does not exist (known: {known})")]
    UnknownEnvironment {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error(transparent)]
    Manifest(#[from] manifest::Error),
    #[error(transparent)]
    Plan(#[from] plan::Error),
}

/// The five SOP-002 components as read from `component.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComponentFile {
    pub component: ComponentMeta,
    pub rollout: Rollout,
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    #[serde(default)]
    pub health: Vec<HealthSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComponentMeta {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Position in SOP-002's listed order (used by `--sequential` and to break ties).
    pub sop_order: u32,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    #[serde(deserialize_with = "parse::duration")]
    pub timeout: Duration,
}

/// An image a component runs. Containers whose image repository ends with `name` (or equals
/// `default_ref`'s repository) get the ref chosen by the build, the environment or `--image`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub name: String,
    pub nix_package: String,
    pub default_ref: String,
}

/// An HTTP health endpoint checked after the rollout.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    pub name: String,
    pub service: String,
    pub port: u16,
    pub path: String,
}

/// A component with its directory and parsed manifests.
#[derive(Debug, Clone)]
pub struct Component {
    pub dir: PathBuf,
    pub spec: ComponentFile,
    pub manifests: Vec<Document>,
}

impl Component {
    pub fn name(&self) -> &str {
        &self.spec.component.name
    }
}

/// `infra/environments/<env>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub environment: EnvironmentMeta,
    #[serde(default)]
    pub images: ImagePolicy,
    /// Replicas per component name (components not listed keep their manifests' value).
    #[serde(default)]
    pub replicas: BTreeMap<String, i32>,
    pub access: Access,
    #[serde(default)]
    pub strategy: Strategy,
    /// Allowed deployment windows; empty means any time.
    #[serde(default)]
    pub windows: Vec<Window>,
    #[serde(default)]
    pub approvals: Approvals,
    pub validation: ValidationRules,
    #[serde(default)]
    pub notifications: Notifications,
    pub monitoring: Monitoring,
    /// Release-record signatures: trusted public keys and whether unsigned records are accepted.
    #[serde(default)]
    pub signing: Signing,
    /// How many release records to keep per component.
    #[serde(default)]
    pub retention: Retention,
    /// Planned deploys must be announced this long before (none when absent).
    #[serde(default)]
    pub notice: Option<Notice>,
    /// The incident escalation ladder, in order (none when empty).
    #[serde(default)]
    pub escalation: Vec<EscalationStep>,
    /// The rollback drill's period and gate (`fluo-deploy drill`).
    #[serde(default)]
    pub drill: Drill,
    /// The JetStream backup before NATS changes, and `restore` (none when absent).
    #[serde(default)]
    pub backup: Option<Backup>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentMeta {
    pub name: String,
    /// The kube context the deploy must target.
    pub context: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImagePolicy {
    /// Registry prefix for FLUO-built images; empty means images are loaded into the node.
    #[serde(default)]
    pub registry: String,
    #[serde(default)]
    pub pull_policy: Option<PullPolicy>,
    /// Registry/repository prefixes every applied image must come from (e.g.
    /// `registry.fluo.example/fluo`); empty allows any.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
    /// Every applied image must carry a digest (`@sha256:...`).
    #[serde(default)]
    pub require_digest: bool,
    /// Every image must get its ref from the build or `--image`: component.toml's `default_ref`
    /// is a development name (`:dev`), never deployed here.
    #[serde(default)]
    pub require_built: bool,
    /// `[images.resolve]`: tags resolved to digests at deploy time (the registry module).
    #[serde(default)]
    pub resolve: trust::Resolve,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub mode: AccessMode,
    #[serde(default)]
    pub ingress_url: Option<String>,
    #[serde(default)]
    pub ingress_host: Option<String>,
    /// Direct URLs by endpoint name (`bff`, `nats-monitor`, `prometheus`, `grafana`, `worker`;
    /// `nats`, the client port, as `nats://` or `tls://`).
    #[serde(default)]
    pub urls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    Ingress,
    PortForward,
    Direct,
}

/// A weekly window (UTC) in which deploys are allowed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Vec<chrono::Weekday>,
    #[serde(deserialize_with = "parse::time_of_day")]
    pub start: chrono::NaiveTime,
    #[serde(deserialize_with = "parse::time_of_day")]
    pub end: chrono::NaiveTime,
}

impl Window {
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::Datelike;
        self.days.contains(&at.weekday()) && (self.start..self.end).contains(&at.time())
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    #[serde(default)]
    pub required: bool,
    /// Regex a `--change-ticket` must match (checked at load time).
    #[serde(default)]
    pub change_ticket_pattern: Option<String>,
    /// The approver must be someone other than the deployer (user and signing key id).
    #[serde(default)]
    pub distinct_approver: bool,
    /// Who may approve (`--approved-by`); empty means anyone.
    #[serde(default)]
    pub approvers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValidationRules {
    pub require_clean_git: bool,
    pub allow_skip: bool,
    pub allow_inline_secrets: bool,
    pub require_image_scan: bool,
    /// Whether `FLUO_COMMIT` may stand in for git (recorded as an override); else the commit
    /// comes from git alone.
    #[serde(default)]
    pub allow_commit_override: bool,
    /// Whether `delete --purge-history` may remove release records.
    #[serde(default)]
    pub allow_purge_history: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    #[serde(deserialize_with = "parse::duration")]
    pub duration: Duration,
    #[serde(deserialize_with = "parse::duration")]
    pub interval: Duration,
    pub max_error_ratio: f64,
    pub max_restarts: u32,
    pub max_backlog: u64,
}

/// Everything a command needs, loaded and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub infra_dir: PathBuf,
    /// In SOP-002 order.
    pub components: Vec<Component>,
    /// `infra/k8s/manifests`: cluster-wide objects applied before any component.
    pub cluster_manifests: Vec<Document>,
    pub environment: Environment,
    pub environment_file: PathBuf,
    pub graph: Graph,
}

impl Config {
    /// Loads the components, their manifests, the cluster manifests and environment `env`.
    pub fn load(infra_dir: &Path, env: &str) -> Result<Self> {
        let components = load_components(infra_dir)?;
        let graph = Graph::new(components.iter().map(|c| {
            (
                c.spec.component.name.clone(),
                c.spec.component.sop_order,
                c.spec.component.depends_on.clone(),
            )
        }))?;
        let cluster_manifests = manifest::load_dir(&infra_dir.join("k8s").join("manifests"))?;
        let environment_file = environment_path(infra_dir, env)?;
        let environment = load_environment(&environment_file, &components)?;
        Ok(Self {
            infra_dir: infra_dir.to_path_buf(),
            components,
            cluster_manifests,
            environment,
            environment_file,
            graph,
        })
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name() == name)
    }

    pub fn component_names(&self) -> Vec<&str> {
        self.components.iter().map(Component::name).collect()
    }
}

/// The infra/ directory when none is given: the nearest `infra/` holding `environments/` in
/// `start` or one of its parents (so every command works from anywhere in a checkout, with or
/// without git), else `./infra` (whose absence the config loader then reports).
pub fn find_infra_dir(start: &Path) -> PathBuf {
    start
        .ancestors()
        .map(|d| d.join("infra"))
        .find(|d| d.join("environments").is_dir())
        .unwrap_or_else(|| PathBuf::from("infra"))
}

/// [`find_infra_dir`] from the current directory.
pub fn default_infra_dir() -> PathBuf {
    find_infra_dir(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
}

/// All `infra/components/*/component.toml`, in SOP order.
pub fn load_components(infra_dir: &Path) -> Result<Vec<Component>> {
    let root = infra_dir.join("components");
    let entries = std::fs::read_dir(&root).map_err(ReadError::of(&root))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("component.toml").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::NoComponents { path: root });
    }
    let mut components = dirs
        .iter()
        .map(|dir| load_component(dir))
        .collect::<Result<Vec<_>>>()?;
    check_unique_sop_order(&components)?;
    components.sort_by_key(|c| c.spec.component.sop_order);
    Ok(components)
}

/// One component directory: its `component.toml` and `manifests/`.
pub fn load_component(dir: &Path) -> Result<Component> {
    let path = dir.join("component.toml");
    let spec: ComponentFile = read_toml(&path)?;
    check_component(&path, dir, &spec)?;
    let manifests = manifest::load_dir(&dir.join("manifests"))?;
    Ok(Component {
        dir: dir.to_path_buf(),
        spec,
        manifests,
    })
}

fn check_component(path: &Path, dir: &Path, spec: &ComponentFile) -> Result<()> {
    let invalid = |key: &str, value: &dyn std::fmt::Debug, reason: &str| Error::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
    };
    let name = &spec.component.name;
    if !is_dns_label(name) {
        return Err(invalid("component.name", name, "must be a DNS-1123 label"));
    }
    let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name != dir_name {
        return Err(invalid(
            "component.name",
            name,
            &format!("must equal its directory name `{dir_name}`"),
        ));
    }
    if spec.component.depends_on.contains(name) {
        return Err(invalid(
            "component.depends_on",
            name,
            "a component cannot depend on itself",
        ));
    }
    if spec.rollout.timeout.is_zero() {
        return Err(invalid(
            "rollout.timeout",
            &"0s",
            "must be greater than zero",
        ));
    }
    let mut seen = BTreeSet::new();
    for image in &spec.images {
        if !seen.insert(&image.name) {
            return Err(invalid("images.name", &image.name, "duplicate image name"));
        }
        if image.default_ref.is_empty() || image.default_ref.ends_with(':') {
            return Err(invalid(
                "images.default_ref",
                &image.default_ref,
                "must be an image reference",
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for check in &spec.health {
        if !seen.insert(&check.name) {
            return Err(invalid(
                "health.name",
                &check.name,
                "duplicate health check name",
            ));
        }
        if check.port == 0 {
            return Err(invalid("health.port", &check.port, "must be 1-65535"));
        }
        if !check.path.starts_with('/') {
            return Err(invalid("health.path", &check.path, "must start with `/`"));
        }
    }
    Ok(())
}

fn check_unique_sop_order(components: &[Component]) -> Result<()> {
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for c in components {
        let order = c.spec.component.sop_order;
        if let Some(other) = seen.insert(order, c.name()) {
            return Err(Error::Invalid {
                path: c.dir.join("component.toml"),
                key: "component.sop_order".into(),
                value: order.to_string(),
                reason: format!("already used by component `{other}`"),
            });
        }
    }
    Ok(())
}

fn environment_path(infra_dir: &Path, env: &str) -> Result<PathBuf> {
    let dir = infra_dir.join("environments");
    let path = dir.join(format!("{env}.toml"));
    if is_dns_label(env) && path.is_file() {
        return Ok(path);
    }
    let mut known: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.path()
                        .file_stem()
                        .filter(|_| e.path().extension().is_some_and(|x| x == "toml"))
                        .map(|s| s.to_string_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    Err(Error::UnknownEnvironment {
        name: env.to_string(),
        path,
        known: known.join(", "),
    })
}

/// Reads and checks one environment file against the known components.
pub fn load_environment(path: &Path, components: &[Component]) -> Result<Environment> {
    let env: Environment = read_toml(path)?;
    check_environment(path, &env, components)?;
    Ok(env)
}

fn check_environment(path: &Path, env: &Environment, components: &[Component]) -> Result<()> {
    let invalid = |key: &str, value: &dyn std::fmt::Debug, reason: &str| Error::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
    };
    let meta = &env.environment;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if meta.name != stem {
        return Err(invalid(
            "environment.name",
            &meta.name,
            &format!("must equal the file name `{stem}`"),
        ));
    }
    if !is_dns_label(&meta.namespace) {
        return Err(invalid(
            "environment.namespace",
            &meta.namespace,
            "must be a DNS-1123 label",
        ));
    }
    if meta.namespace == crate::SYSTEM_NAMESPACE {
        return Err(invalid(
            "environment.namespace",
            &meta.namespace,
            "is reserved for release records and the deploy lock",
        ));
    }
    if meta.context.is_empty() {
        return Err(invalid(
            "environment.context",
            &meta.context,
            "must name a kube context",
        ));
    }
    let names: BTreeSet<&str> = components.iter().map(Component::name).collect();
    for (component, replicas) in &env.replicas {
        // Without components (emergency loading), names cannot be checked.
        if !names.is_empty() && !names.contains(component.as_str()) {
            return Err(invalid(
                &format!("replicas.{component}"),
                replicas,
                &format!(
                    "unknown component (known: {})",
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if *replicas < 0 {
            return Err(invalid(
                &format!("replicas.{component}"),
                replicas,
                "must be 0 or more",
            ));
        }
    }
    match env.access.mode {
        AccessMode::Ingress if env.access.ingress_url.is_none() => {
            return Err(invalid(
                "access.ingress_url",
                &"(missing)",
                "required when access.mode = \"ingress\"",
            ));
        }
        AccessMode::Direct if env.access.urls.is_empty() => {
            return Err(invalid(
                "access.urls",
                &"(missing)",
                "required when access.mode = \"direct\"",
            ));
        }
        _ => {}
    }
    for (name, url) in env
        .access
        .urls
        .iter()
        .map(|(k, v)| (format!("access.urls.{k}"), v))
        .chain(
            env.access
                .ingress_url
                .iter()
                .map(|v| ("access.ingress_url".to_string(), v)),
        )
    {
        // The NATS client port (security checks) speaks NATS, not HTTP.
        if name == "access.urls.nats" {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                return Err(invalid(&name, url, "must be a nats:// or tls:// URL"));
            }
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(&name, url, "must be an http:// or https:// URL"));
        }
    }
    for window in &env.windows {
        if window.days.is_empty() {
            return Err(invalid(
                "windows.days",
                &window.days,
                "must list at least one day",
            ));
        }
        if window.start >= window.end {
            return Err(invalid(
                "windows.end",
                &window.end.format("%H:%M").to_string(),
                &format!("must be after start {}", window.start.format("%H:%M")),
            ));
        }
    }
    if let Some(pattern) = &env.approvals.change_ticket_pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        return Err(invalid(
            "approvals.change_ticket_pattern",
            pattern,
            &format!("not a valid regex: {e}"),
        ));
    }
    check_trust_fields(env).map_err(|(key, value, reason)| invalid(&key, &value, &reason))?;
    let m = &env.monitoring;
    if !(0.0..=1.0).contains(&m.max_error_ratio) {
        return Err(invalid(
            "monitoring.max_error_ratio",
            &m.max_error_ratio,
            "must be between 0 and 1",
        ));
    }
    if m.interval.is_zero() || m.interval > m.duration {
        return Err(invalid(
            "monitoring.interval",
            &humantime::format_duration(m.interval).to_string(),
            "must be greater than zero and at most monitoring.duration",
        ));
    }
    strategy::check(path, &env.strategy.components, components)?;
    change::check(
        path,
        &env.notifications,
        env.notice.as_ref(),
        &env.escalation,
    )?;
    if env.drill.period.is_zero() {
        return Err(invalid("drill.period", &"0s", "must be greater than zero"));
    }
    if let Some(b) = &env.backup {
        backup::check(b).map_err(|(key, value, reason)| Error::Invalid {
            path: path.to_path_buf(),
            key,
            value,
            reason,
        })?;
    }
    Ok(())
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(ReadError::of(path))?;
    toml::from_str(&text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// RFC 1123 label: what Kubernetes requires of namespace and most object names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

mod emergency;
mod parse;
fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests;
mod trust;

pub use emergency::{EmergencyConfig, load_for_emergency};
use trust::check_trust_fields;
pub use trust::{
    PublicKeyError, Resolve, Retention, Signing, is_key_id, parse_public_key, public_key_text,
};
