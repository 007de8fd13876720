//! Container image references: parsed by the grammar of the distribution project
//! (`github.com/distribution/reference`) and checked against an environment's image rules
//! (registry allow-list, digest requirement: `config::ImagePolicy::check`) before anything is
//! applied.
//!
//! Pure: no registry is contacted here. A digest is known when the reference carries one or
//! when the registry module resolved it (ops pin).

use std::sync::LazyLock;

use regex::Regex;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("image reference {reference:?} is invalid: {reason}")]
    Syntax { reference: String, reason: String },
    #[error(
        "image {reference:?} is not from an allowed registry of environment `{environment}` (images.allowed_registries: {allowed})"
    )]
    RegistryNotAllowed {
        reference: String,
        environment: String,
        allowed: String,
    },
    #[error(
        "image {reference:?} has no digest; environment `{environment}` requires one (images.require_digest = true): use NAME@sha256:<64 hex>"
    )]
    DigestRequired {
        reference: String,
        environment: String,
    },
}

/// A parsed reference: `[domain/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), when the first component names one.
    pub domain: Option<String>,
    /// Repository path below the domain.
    pub path: String,
    pub tag: Option<String>,
    /// `algorithm:hex`.
    pub digest: Option<String>,
}

static PATH_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("regex"));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$",
    )
    .expect("regex")
});
/// The grammar's `[\w][\w.-]{0,127}` with ASCII `\w` (the grammar's): a Unicode `\w` would let
/// non-ASCII tags through, and its bounded repetition made compiling this regex the gate's
/// largest cost (docs/performance/trust.md). The length is checked apart.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$").expect("regex"));
const TAG_MAX: usize = 128;
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
        .expect("regex")
});

/// The longest repository name the grammar allows.
const NAME_MAX: usize = 255;

impl ImageRef {
    pub fn parse(reference: &str) -> Result<ImageRef> {
        let bad = |reason: &str| Error::Syntax {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                if !DIGEST.is_match(digest) {
                    return Err(bad(&format!(
                        "digest {digest:?} must be ALGORITHM:HEX (e.g. sha256: and 64 hex digits)"
                    )));
                }
                if let Some(hex) = digest.strip_prefix("sha256:")
                    && hex.len() != 64
                {
                    return Err(bad("a sha256 digest has exactly 64 hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && (tag.len() > TAG_MAX || !TAG.is_match(tag))
        {
            return Err(bad(&format!(
                "tag {tag:?} must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
            )));
        }
        if name.len() > NAME_MAX {
            return Err(bad(&format!(
                "the name is longer than {NAME_MAX} characters"
            )));
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain
            && !DOMAIN.is_match(domain)
        {
            return Err(bad(&format!("registry {domain:?} is not a host[:port]")));
        }
        if path.is_empty() {
            return Err(bad("no repository name"));
        }
        for component in path.split('/') {
            if !PATH_COMPONENT.is_match(component) {
                let reason = if component.chars().any(|c| c.is_ascii_uppercase()) {
                    format!("repository {path:?} must be lowercase")
                } else {
                    format!(
                        "repository component {component:?} must be lowercase letters and digits separated by `.`, `_`, `__` or `-`"
                    )
                };
                return Err(bad(&reason));
            }
        }
        Ok(ImageRef {
            domain: domain.map(String::from),
            path: path.to_string(),
            tag: tag.map(String::from),
            digest,
        })
    }

    /// `domain/path`, or `path` without a domain.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }
}

/// The first component is a registry when it has a `.` or `:` or is `localhost` (the rule of
/// the docker CLI); a single component is never one.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Every container image (init and regular) of rendered objects, with `Kind/name`.
pub fn images_of<'a>(
    objects: impl IntoIterator<Item = &'a serde_json::Value>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(pod_spec) = pod_spec_pointer(kind).and_then(|p| object.pointer(p)) else {
            continue;
        };
        let owner = format!(
            "{kind}/{}",
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        for key in ["initContainers", "containers"] {
            for container in pod_spec[key].as_array().into_iter().flatten() {
                let image = container["image"].as_str().unwrap_or_default();
                out.push((owner.clone(), image.to_string()));
            }
        }
    }
    out
}

/// Replaces every container image of `object` for which `pin` has a reference.
pub fn replace_images(object: &mut serde_json::Value, pin: impl Fn(&str) -> Option<String>) {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let Some(pod_spec) = pod_spec_pointer(&kind).and_then(|p| object.pointer_mut(p)) else {
        return;
    };
    for key in ["initContainers", "containers"] {
        let containers = pod_spec.get_mut(key).and_then(|c| c.as_array_mut());
        for container in containers.into_iter().flatten() {
            let pinned = container["image"].as_str().and_then(&pin);
            if let Some(pinned) = pinned {
                container["image"] = serde_json::Value::String(pinned);
            }
        }
    }
}

/// Where a workload kind keeps its pod spec.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_common_shapes() {
        let r = ImageRef::parse("registry.fluo.example:5000/fluo/fluo-bff:1.2").unwrap();
        assert_eq!(r.domain.as_deref(), Some("registry.fluo.example:5000"));
        assert_eq!(r.path, "fluo/fluo-bff");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let r = ImageRef::parse(&format!("fluo/nats:2.10@{DIGEST}")).unwrap();
        assert_eq!(r.domain, None);
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.domain.as_deref(), Some("localhost"));
        assert_eq!(r.tag, None);
        assert!(ImageRef::parse("a__b/c-d/e.f:v1_2-3").is_ok());
        let longest = format!("fluo/bff:{}", "a".repeat(128));
        assert_eq!(ImageRef::parse(&longest).unwrap().tag.unwrap().len(), 128);
    }

    #[test]
    fn refuses_what_the_grammar_refuses_with_the_reason() {
        let err = ImageRef::parse("Fluo/BFF:Upper").unwrap_err().to_string();
        assert!(err.contains("must be lowercase"), "{err}");
        for (bad, why) in [
            ("", "empty"),
            ("fluo/bff:", "tag"),
            ("fluo/bff:-x", "tag"),
            ("fluo/bff:é1", "tag"),
            (&format!("fluo/bff:{}", "a".repeat(129)), "tag"),
            ("fluo//bff", "repository component"),
            ("fluo/bff@sha256:abc", "digest"),
            (&format!("fluo/bff@sha256:{}", "a".repeat(63)), "64 hex"),
            ("exa_mple.com/x", "registry"),
            ("bad host.com/x", "registry"),
        ] {
            let err = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = format!("r/{}", "a".repeat(300));
        assert!(ImageRef::parse(&long).is_err());
    }

    #[test]
    fn shipped_environments_allow_their_own_images_and_production_refuses_others() {
        use crate::render::{self, ImageOverrides};
        let infra = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
        for env in ["local", "rehearsal", "staging", "production"] {
            let config = crate::config::Config::load(&infra, env).unwrap();
            for c in &config.components {
                render::render(c, &config.environment, &ImageOverrides::default())
                    .unwrap_or_else(|e| panic!("{env}: {e}"));
            }
        }
        let config = crate::config::Config::load(&infra, "production").unwrap();
        let bff = config.component("bff").unwrap();
        for flag in [
            "fluo-bff=evil/fluo-bff:latest",
            "fluo-bff=Fluo/BFF:Upper",
            "fluo-bff=registry.fluo.example/fluoevil/fluo-bff:1",
        ] {
            let overrides = ImageOverrides::parse(&[flag]).unwrap();
            let err = render::render(bff, &config.environment, &overrides).unwrap_err();
            assert!(matches!(err, render::Error::Image { .. }), "{flag}: {err}");
        }
    }

    #[test]
    fn staging_and_production_deploy_only_built_images() {
        use crate::ops::deploy::{Request, prepare};
        use crate::render::ImageOverrides;
        let infra = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
        for env in ["staging", "production"] {
            let config = crate::config::Config::load(&infra, env).unwrap();
            let nats = config.component("nats").unwrap();
            let request = Request {
                components: vec!["nats".into()],
                images: vec!["nats=registry.fluo.example/fluo/nats:2.10.22".into()],
                ..Request::default()
            };
            // The exporter sidecar has no ref from the build: refused before anything else.
            let err = prepare(&config, &request)
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains("images.require_built"), "{env}: {err}");
            assert!(err.contains("nats-exporter (nats)"), "{env}: {err}");
            assert!(!err.contains("nats (nats),"), "{env}: {err}");
            let all = ImageOverrides::parse(&[
                "nats=registry.fluo.example/fluo/nats:2.10.22",
                "nats-exporter=registry.fluo.example/fluo/prometheus-nats-exporter:0.16.0",
            ])
            .unwrap();
            all.check_built(&[nats], &config.environment).unwrap();
        }
        // Development environments deploy the development names.
        for env in ["local", "rehearsal"] {
            let config = crate::config::Config::load(&infra, env).unwrap();
            let selected: Vec<_> = config.components.iter().collect();
            ImageOverrides::default()
                .check_built(&selected, &config.environment)
                .unwrap();
        }
    }

    #[test]
    fn images_of_lists_every_container() {
        let objects = vec![
            serde_json::json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {
                "initContainers": [{"image": "a:1"}], "containers": [{"image": "b:2"}]}}}}),
            serde_json::json!({"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "c:3"}]}}}}}}),
            serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        ];
        assert_eq!(
            images_of(&objects),
            [
                ("Deployment/d".to_string(), "a:1".to_string()),
                ("Deployment/d".to_string(), "b:2".to_string()),
                ("CronJob/c".to_string(), "c:3".to_string()),
            ]
        );
    }
}
