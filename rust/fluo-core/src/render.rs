//! Turning a component's manifests into the objects to apply: fluo labels (also on pod
//! templates, so pods are selectable per component), image refs per logical image name,
//! replicas and pull policy from the environment, and the kind order of an install.
//!
//! Pure: no cluster access. Namespaces are filled in at apply time, where discovery says
//! whether a kind is namespaced.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::{Component, Environment, ImageSpec, PullPolicy};
use crate::manifest::Document;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const COMPONENT_LABEL: &str = "fluo.dev/component";
/// The pseudo component of `infra/k8s/manifests` (cluster-wide objects applied first).
pub const CLUSTER_COMPONENT: &str = "cluster";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--image {name}={reference}: no selected component declares an image named `{name}` (declared: {known})"
    )]
    UnknownImage {
        name: String,
        reference: String,
        known: String,
    },
    #[error("--image {value:?}: expected NAME=REF, e.g. fluo-bff=registry.example/fluo-bff:1.2")]
    BadImageFlag { value: String },
    #[error(
        "environment `{environment}` deploys only built images (images.require_built = true), but no ref was given for {missing}: component.toml's development names are never deployed there; deploy with `nix run .#deploy-{environment}` (it passes --image for every image) or pass --image NAME=REF"
    )]
    Unbuilt {
        environment: String,
        /// `image (component)` for each image without a ref.
        missing: String,
    },
    #[error("{component}: {object}: {source}")]
    Image {
        component: String,
        object: String,
        source: crate::image_ref::Error,
    },
    #[error("{location}: {object}: `{field}` must be {expected}")]
    Shape {
        location: String,
        object: String,
        field: String,
        expected: String,
    },
}

/// The label selector of everything fluo manages for one component.
pub fn component_selector(component: &str) -> String {
    format!("{MANAGED_BY_LABEL}=fluo,{COMPONENT_LABEL}={component}")
}

/// The fluo labels of one component.
pub fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), "fluo".to_string()),
        (PART_OF_LABEL.to_string(), "fluo".to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

/// `--image name=ref` overrides, parsed and checked for shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOverrides(BTreeMap<String, String>);

impl ImageOverrides {
    pub fn parse<S: AsRef<str>>(flags: &[S]) -> Result<Self> {
        let mut map = BTreeMap::new();
        for flag in flags {
            let flag = flag.as_ref();
            match flag.split_once('=') {
                Some((name, reference)) if !name.is_empty() && !reference.is_empty() => {
                    map.insert(name.to_string(), reference.to_string());
                }
                _ => {
                    return Err(Error::BadImageFlag {
                        value: flag.to_string(),
                    });
                }
            }
        }
        Ok(Self(map))
    }

    /// Every override must name an image of one of `components`.
    pub fn check_against(&self, components: &[&Component]) -> Result<()> {
        let declared: Vec<&str> = components
            .iter()
            .flat_map(|c| c.spec.images.iter().map(|i| i.name.as_str()))
            .collect();
        for (name, reference) in &self.0 {
            if !declared.contains(&name.as_str()) {
                return Err(Error::UnknownImage {
                    name: name.clone(),
                    reference: reference.clone(),
                    known: declared.join(", "),
                });
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// With `images.require_built`, every image of `components` needs an override (the build's
    /// ref): `default_ref` is only a development name.
    pub fn check_built(&self, components: &[&Component], env: &Environment) -> Result<()> {
        if !env.images.require_built {
            return Ok(());
        }
        let missing: Vec<String> = components
            .iter()
            .flat_map(|c| {
                c.spec
                    .images
                    .iter()
                    .filter(|i| self.get(&i.name).is_none())
                    .map(|i| format!("{} ({})", i.name, c.name()))
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Unbuilt {
            environment: env.environment.name.clone(),
            missing: missing.join(", "),
        })
    }
}

/// A component ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub component: String,
    /// Logical image name -> the ref put into the manifests.
    pub images: BTreeMap<String, String>,
    /// The objects in apply order with the file and line they came from: what is applied and
    /// what the gate checks, one copy, so it checks exactly what is applied.
    pub documents: Vec<Document>,
    /// References deployed by tag because their registry could not be reached, each with
    /// why (`ops::pin`; recorded in the release).
    pub unresolved_digests: Vec<String>,
}

impl Rendered {
    /// The objects to apply, in apply order.
    pub fn objects(&self) -> impl ExactSizeIterator<Item = &Value> + Clone {
        self.documents.iter().map(|d| &d.object)
    }

    /// A copy of the objects (what a release records).
    pub fn to_objects(&self) -> Vec<Value> {
        self.objects().cloned().collect()
    }
}

/// The ref for one logical image: `--image` override, else `default_ref` under the
/// environment's registry prefix (if any).
pub fn image_ref(spec: &ImageSpec, registry: &str, overrides: &ImageOverrides) -> String {
    if let Some(r) = overrides.get(&spec.name) {
        return r.to_string();
    }
    if registry.is_empty() {
        return spec.default_ref.clone();
    }
    let last = spec
        .default_ref
        .rsplit('/')
        .next()
        .unwrap_or(&spec.default_ref);
    format!("{}/{last}", registry.trim_end_matches('/'))
}

/// Renders one component for `env`.
pub fn render(
    component: &Component,
    env: &Environment,
    overrides: &ImageOverrides,
) -> Result<Rendered> {
    let name = component.name();
    let images: BTreeMap<String, String> = component
        .spec
        .images
        .iter()
        .map(|spec| {
            (
                spec.name.clone(),
                image_ref(spec, &env.images.registry, overrides),
            )
        })
        .collect();
    let settings = Settings {
        component: name,
        images: &component.spec.images,
        refs: &images,
        replicas: env.replicas.get(name).copied(),
        pull_policy: env.images.pull_policy,
    };
    let documents = render_documents(&component.manifests, &settings)?;
    // Every image that will run, overrides and registry applied, before anything is applied.
    for (object, image) in crate::image_ref::images_of(documents.iter().map(|d| &d.object)) {
        env.images
            .check(&image, &env.environment.name)
            .map_err(|source| Error::Image {
                component: name.to_string(),
                object,
                source,
            })?;
    }
    Ok(Rendered {
        component: name.to_string(),
        images,
        documents,
        unresolved_digests: vec![],
    })
}

/// Renders the cluster-wide manifests (labels and order only).
pub fn render_cluster(documents: &[Document]) -> Result<Rendered> {
    let settings = Settings {
        component: CLUSTER_COMPONENT,
        images: &[],
        refs: &BTreeMap::new(),
        replicas: None,
        pull_policy: None,
    };
    let documents = render_documents(documents, &settings)?;
    Ok(Rendered {
        component: CLUSTER_COMPONENT.to_string(),
        images: BTreeMap::new(),
        documents,
        unresolved_digests: vec![],
    })
}

struct Settings<'a> {
    component: &'a str,
    images: &'a [ImageSpec],
    refs: &'a BTreeMap<String, String>,
    replicas: Option<i32>,
    pull_policy: Option<PullPolicy>,
}

/// Rendered documents (source location kept) in install order.
fn render_documents(documents: &[Document], settings: &Settings) -> Result<Vec<Document>> {
    let mut rendered = documents
        .iter()
        .map(|doc| {
            Ok(Document {
                object: render_object(doc, settings)?,
                file: doc.file.clone(),
                line: doc.line,
                text: doc.text.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    rendered.sort_by_key(|d| kind_rank(d.kind()));
    Ok(rendered)
}

fn render_object(doc: &Document, settings: &Settings) -> Result<Value> {
    let mut object = doc.object.clone();
    let shape = |field: &str, expected: &str| Error::Shape {
        location: doc.location(),
        object: doc.display_name(),
        field: field.to_string(),
        expected: expected.to_string(),
    };
    add_labels(&mut object["metadata"], settings.component)
        .ok_or_else(|| shape("metadata.labels", "a mapping"))?;
    let kind = doc.kind().to_string();
    if matches!(kind.as_str(), "Deployment" | "StatefulSet")
        && let Some(replicas) = settings.replicas
    {
        object["spec"]["replicas"] = json!(replicas);
    }
    if let Some(template) = pod_template_mut(&mut object, &kind) {
        add_labels(&mut template["metadata"], settings.component)
            .ok_or_else(|| shape("spec.template.metadata.labels", "a mapping"))?;
        set_images(&mut template["spec"], settings)
            .ok_or_else(|| shape("spec.template.spec.containers", "a list of containers"))?;
    } else if kind == "Pod" {
        set_images(&mut object["spec"], settings)
            .ok_or_else(|| shape("spec.containers", "a list of containers"))?;
    }
    Ok(object)
}

/// Adds the fluo labels to a metadata mapping (creating it if absent); None if not a mapping.
fn add_labels(metadata: &mut Value, component: &str) -> Option<()> {
    if metadata.is_null() {
        *metadata = json!({});
    }
    let meta = metadata.as_object_mut()?;
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if labels.is_null() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut()?;
    for (k, v) in self::labels(component) {
        labels.insert(k, Value::String(v));
    }
    Some(())
}

/// The pod template of a workload kind, created empty if the manifest omitted it.
fn pod_template_mut<'a>(object: &'a mut Value, kind: &str) -> Option<&'a mut Value> {
    let template = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &mut object["spec"]["template"]
        }
        "CronJob" => &mut object["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    Some(template)
}

/// Sets image refs (and pull policy) on containers that run one of the component's images.
fn set_images(pod_spec: &mut Value, settings: &Settings) -> Option<()> {
    for key in ["initContainers", "containers"] {
        let containers = match &mut pod_spec[key] {
            Value::Null => continue,
            Value::Array(list) => list,
            _ => return None,
        };
        for container in containers {
            let current = container["image"].as_str().unwrap_or_default().to_string();
            let Some(spec) = settings.images.iter().find(|s| runs_image(&current, s)) else {
                continue;
            };
            container["image"] = json!(settings.refs[&spec.name]);
            if let Some(policy) = settings.pull_policy {
                container["imagePullPolicy"] = json!(format!("{policy:?}"));
            }
        }
    }
    Some(())
}

/// A container runs logical image `spec` if its repository's last path segment is the image
/// name or its repository equals the default ref's repository.
fn runs_image(image: &str, spec: &ImageSpec) -> bool {
    let repo = repository(image);
    repo.rsplit('/').next() == Some(spec.name.as_str()) || repo == repository(&spec.default_ref)
}

/// An image reference without tag or digest (a `:` after the last `/` starts the tag).
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

/// Install order: namespaces, CRDs, policies, service accounts and RBAC, config and secrets,
/// storage, services, workloads, autoscalers and ingress; unknown kinds (custom resources) last.
pub fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "CustomResourceDefinition",
        "PriorityClass",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodDisruptionBudget",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Secret",
        "ConfigMap",
        "StorageClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Service",
        "DaemonSet",
        "Pod",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "IngressClass",
        "Ingress",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn component(manifests: &str) -> Component {
        let spec: crate::config::ComponentFile = toml::from_str(
            r#"
[component]
name = "bff"
sop_order = 4
depends_on = ["nats"]
[rollout]
timeout = "3m"
[[images]]
name = "fluo-bff"
nix_package = "image-fluo-bff"
default_ref = "fluo/fluo-bff:dev"
"#,
        )
        .unwrap();
        Component {
            dir: "infra/components/bff".into(),
            spec,
            manifests: crate::manifest::parse_str(Path::new("bff.yaml"), manifests).unwrap(),
        }
    }

    fn environment(extra: &str) -> Environment {
        toml::from_str(&format!(
            r#"
[environment]
name = "local"
context = "kube-emulator"
namespace = "fluo"
{extra}
[access]
mode = "direct"
urls = {{ bff = "http://127.0.0.1:1" }}
[validation]
require_clean_git = false
allow_skip = true
allow_inline_secrets = true
require_image_scan = false
[monitoring]
duration = "1m"
interval = "10s"
max_error_ratio = 0.1
max_restarts = 1
max_backlog = 10
"#
        ))
        .unwrap()
    }

    const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fluo-bff
  labels: {app.kubernetes.io/name: fluo-bff}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: fluo-bff}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: fluo-bff}
    spec:
      initContainers:
      - name: wait
        image: busybox:1.36
      containers:
      - name: bff
        image: fluo/fluo-bff:dev
      - name: sidecar
        image: fluo-bff
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fluo-bff-config}
data: {a: b}
---
apiVersion: v1
kind: Service
metadata: {name: fluo-bff}
spec: {ports: [{port: 8080}]}
"#;

    #[test]
    fn objects_come_in_kind_order_with_fluo_labels_everywhere() {
        let r = render(
            &component(MANIFESTS),
            &environment(""),
            &ImageOverrides::default(),
        )
        .unwrap();
        let kinds: Vec<&str> = r.objects().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ConfigMap", "Service", "Deployment"]);
        for o in r.objects() {
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels[MANAGED_BY_LABEL], "fluo");
            assert_eq!(labels[PART_OF_LABEL], "fluo");
            assert_eq!(labels[COMPONENT_LABEL], "bff");
        }
        let template_labels = &r.documents[2].object["spec"]["template"]["metadata"]["labels"];
        assert_eq!(template_labels[COMPONENT_LABEL], "bff");
        assert_eq!(template_labels["app.kubernetes.io/name"], "fluo-bff");
    }

    #[test]
    fn images_follow_registry_then_override_and_leave_other_containers_alone() {
        let env = environment(
            "[images]\nregistry = \"registry.example/fluo\"\npull_policy = \"Always\"\n[replicas]\nbff = 3\n",
        );
        let r = render(&component(MANIFESTS), &env, &ImageOverrides::default()).unwrap();
        let deploy = &r.documents[2].object;
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.example/fluo/fluo-bff:dev"
        );
        assert_eq!(
            pod["containers"][1]["image"],
            "registry.example/fluo/fluo-bff:dev"
        );
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["initContainers"][0]["image"], "busybox:1.36");
        assert!(pod["initContainers"][0].get("imagePullPolicy").is_none());
        assert_eq!(deploy["spec"]["replicas"], 3);
        assert_eq!(r.images["fluo-bff"], "registry.example/fluo/fluo-bff:dev");

        let overrides = ImageOverrides::parse(&["fluo-bff=fluo/fluo-bff:crashloop"]).unwrap();
        let r = render(&component(MANIFESTS), &env, &overrides).unwrap();
        assert_eq!(
            r.documents[2].object["spec"]["template"]["spec"]["containers"][0]["image"],
            "fluo/fluo-bff:crashloop"
        );
    }

    #[test]
    fn bad_and_unknown_image_flags_are_errors_naming_the_value() {
        let err = ImageOverrides::parse(&["fluo-bff"]).unwrap_err();
        assert!(err.to_string().contains("\"fluo-bff\""), "{err}");
        let c = component(MANIFESTS);
        let err = ImageOverrides::parse(&["nats=x:1"])
            .unwrap()
            .check_against(&[&c])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--image nats=x:1: no selected component declares an image named `nats` (declared: fluo-bff)"
        );
    }

    #[test]
    fn non_list_containers_is_an_error_with_location() {
        let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: {name: x}\n";
        let err = render(
            &component(bad),
            &environment(""),
            &ImageOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bff.yaml:1: Deployment/x: `spec.template.spec.containers` must be a list of containers"
        );
    }

    #[test]
    fn repository_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(repository("fluo/fluo-bff:dev"), "fluo/fluo-bff");
        assert_eq!(
            repository("localhost:5000/fluo-bff"),
            "localhost:5000/fluo-bff"
        );
        assert_eq!(
            repository("localhost:5000/fluo-bff:1@sha256:ab"),
            "localhost:5000/fluo-bff"
        );
    }
}
