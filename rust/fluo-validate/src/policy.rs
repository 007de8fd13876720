//! The security policy (SOP-002 "Pre-deployment Security Checks"): pinned images, Pod Security
//! "restricted", read-only root filesystems, resources, probes, host access, RBAC least
//! privilege, secret-looking values, inline Secrets and default-deny network policies.
//! Every violation is reported, not just the first.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::Document;
use crate::finding::Finding;
use crate::manifests::{ManifestSet, Object};
use crate::path::FieldPath;
use crate::pods::{Container, PodTemplate, get};
use crate::rules;
use crate::secrets;

/// What the environment allows (from its `[validation]` section).
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySettings {
    pub allow_inline_secrets: bool,
}

/// The annotation that declares why a Role may read Secrets.
pub const SECRETS_ACCESS_ANNOTATION: &str = "fluo.dev/secrets-access";

/// Every policy finding for the whole set.
pub fn check(set: &ManifestSet<'_>, settings: PolicySettings) -> Vec<Finding> {
    let mut out = Vec::new();
    for object in &set.objects {
        check_object(object, settings, &mut out);
    }
    default_deny(set, &mut out);
    out
}

fn check_object(object: &Object<'_>, settings: PolicySettings, out: &mut Vec<Finding>) {
    let doc = &object.doc;
    annotations(doc, &FieldPath::root().key("metadata"), out);
    if let Some(pod) = PodTemplate::of(doc) {
        annotations(doc, &pod.meta_path, out);
        pod_level(&pod, out);
        for container in pod.containers() {
            container_level(&pod, &container, out);
        }
    }
    match (doc.api_version(), doc.kind()) {
        ("v1", "ConfigMap") => configmap(doc, out),
        ("v1", "Secret") if !settings.allow_inline_secrets => inline_secret(doc, out),
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => role(doc, out),
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => binding(doc, out),
        _ => {}
    }
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

fn pod_level(pod: &PodTemplate<'_>, out: &mut Vec<Finding>) {
    let doc = pod.doc;
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(pod.spec.get(field)) {
            out.push(rules::POD_HOST_NAMESPACES.at(
                doc,
                pod.spec_path.key(field),
                format!("{field} is true: the pod shares the host's namespace"),
            ));
        }
    }
    if let Some(volumes) = pod.spec.get("volumes").and_then(Value::as_array) {
        for (i, volume) in volumes.iter().enumerate() {
            if volume.get("hostPath").is_some() {
                let name = volume.get("name").and_then(Value::as_str).unwrap_or("?");
                out.push(rules::POD_HOST_PATH.at(
                    doc,
                    pod.spec_path.key("volumes").index(i).key("hostPath"),
                    format!("volume `{name}` mounts a hostPath"),
                ));
            }
        }
    }
}

/// A securityContext field, the container's own value taking precedence over the pod's.
fn effective<'a>(pod: &'a PodTemplate<'_>, container: &'a Value, field: &str) -> Option<&'a Value> {
    container
        .pointer(&format!("/securityContext/{field}"))
        .or_else(|| pod.spec.pointer(&format!("/securityContext/{field}")))
}

fn container_level(pod: &PodTemplate<'_>, c: &Container<'_>, out: &mut Vec<Finding>) {
    let doc = pod.doc;
    let sc = c.path.key("securityContext");
    let name = c.name;
    image_pinned(doc, c, out);

    if !is_true(effective(pod, c.value, "runAsNonRoot")) {
        out.push(rules::POD_RUN_AS_NON_ROOT.at(
            doc,
            sc.key("runAsNonRoot"),
            format!("container `{name}`: runAsNonRoot is not true (on the container or the pod)"),
        ));
    }
    if effective(pod, c.value, "runAsUser").and_then(Value::as_i64) == Some(0) {
        out.push(rules::POD_RUN_AS_NON_ROOT.at(
            doc,
            sc.key("runAsUser"),
            format!("container `{name}`: runAsUser is 0 (root)"),
        ));
    }
    if c.value.pointer("/securityContext/allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
        out.push(rules::POD_PRIVILEGE_ESCALATION.at(
            doc,
            sc.key("allowPrivilegeEscalation"),
            format!("container `{name}`: allowPrivilegeEscalation is not false"),
        ));
    }
    capabilities(doc, c, &sc, out);
    let seccomp = effective(pod, c.value, "seccompProfile")
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str);
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        out.push(rules::POD_SECCOMP.at(
            doc,
            sc.key("seccompProfile"),
            format!(
                "container `{name}`: seccompProfile.type is {} (neither on the container nor the pod is RuntimeDefault or Localhost)",
                seccomp.unwrap_or("unset")
            ),
        ));
    }
    if !is_true(c.value.pointer("/securityContext/readOnlyRootFilesystem")) {
        out.push(rules::POD_READ_ONLY_ROOT_FS.at(
            doc,
            sc.key("readOnlyRootFilesystem"),
            format!("container `{name}`: readOnlyRootFilesystem is not true"),
        ));
    }
    if is_true(c.value.pointer("/securityContext/privileged")) {
        out.push(rules::POD_PRIVILEGED.at(
            doc,
            sc.key("privileged"),
            format!("container `{name}` is privileged"),
        ));
    }
    let missing: Vec<&str> = [
        "requests/cpu",
        "requests/memory",
        "limits/cpu",
        "limits/memory",
    ]
    .into_iter()
    .filter(|p| c.value.pointer(&format!("/resources/{p}")).is_none())
    .collect();
    if !missing.is_empty() {
        out.push(rules::POD_RESOURCES.at(
            doc,
            c.path.key("resources"),
            format!(
                "container `{name}` has no resources {}",
                missing.join(", ").replace('/', ".")
            ),
        ));
    }
    if !c.init && !pod.runs_to_completion {
        for probe in ["livenessProbe", "readinessProbe"] {
            if c.value.get(probe).is_none() {
                out.push(rules::POD_PROBES.at(
                    doc,
                    c.path.key(probe),
                    format!("container `{name}` has no {probe}"),
                ));
            }
        }
    }
    if let Some(env) = c.value.get("env").and_then(Value::as_array) {
        for (i, var) in env.iter().enumerate() {
            let (Some(key), Some(value)) = (
                var.get("name").and_then(Value::as_str),
                var.get("value").and_then(Value::as_str),
            ) else {
                continue;
            };
            if let Some(why) = secrets::inspect(Some(key), value) {
                out.push(rules::SECRET_IN_ENV.at(
                    doc,
                    c.path.key("env").index(i).key("value"),
                    format!("container `{name}` env {key}: {why} (value redacted)"),
                ));
            }
        }
    }
}

fn capabilities(doc: &Document, c: &Container<'_>, sc: &FieldPath, out: &mut Vec<Finding>) {
    let caps = c.value.pointer("/securityContext/capabilities");
    let list = |field: &str| -> Vec<&str> {
        caps.and_then(|v| v.get(field))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let name = c.name;
    if !list("drop").contains(&"ALL") {
        out.push(rules::POD_CAPABILITIES.at(
            doc,
            sc.join("capabilities.drop"),
            format!("container `{name}` does not drop ALL capabilities"),
        ));
    }
    let added: Vec<&str> = list("add")
        .into_iter()
        .filter(|cap| *cap != "NET_BIND_SERVICE")
        .collect();
    if !added.is_empty() {
        out.push(rules::POD_CAPABILITIES.at(
            doc,
            sc.join("capabilities.add"),
            format!("container `{name}` adds capabilities {}", added.join(", ")),
        ));
    }
}

/// `name:tag` or `name@digest`, with a tag other than `latest`. A registry port
/// (`host:5000/app`) is not a tag.
pub fn image_is_pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.split_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

fn image_pinned(doc: &Document, c: &Container<'_>, out: &mut Vec<Finding>) {
    let name = c.name;
    match c.value.get("image").and_then(Value::as_str) {
        Some(image) if image_is_pinned(image) => {}
        Some(image) => out.push(rules::IMAGE_PINNED.at(
            doc,
            c.path.key("image"),
            format!("container `{name}` image `{image}` has no tag/digest or uses `latest`"),
        )),
        None => out.push(rules::IMAGE_PINNED.at(
            doc,
            c.path.key("image"),
            format!("container `{name}` has no image"),
        )),
    }
}

fn annotations(doc: &Document, meta: &FieldPath, out: &mut Vec<Finding>) {
    let path = meta.key("annotations");
    let Some(map) = get(&doc.object, &path).and_then(Value::as_object) else {
        return;
    };
    for (key, value) in map {
        if let Some(why) = value.as_str().and_then(|v| secrets::inspect(Some(key), v)) {
            out.push(rules::SECRET_IN_ANNOTATION.at(
                doc,
                path.key(key),
                format!("annotation {key}: {why} (value redacted)"),
            ));
        }
    }
}

fn configmap(doc: &Document, out: &mut Vec<Finding>) {
    let Some(data) = doc.object.get("data").and_then(Value::as_object) else {
        return;
    };
    for (key, value) in data {
        if let Some(why) = value.as_str().and_then(|v| secrets::inspect(Some(key), v)) {
            out.push(rules::SECRET_IN_CONFIGMAP.at(
                doc,
                FieldPath::root().key("data").key(key),
                format!("data key {key}: {why} (value redacted)"),
            ));
        }
    }
}

fn inline_secret(doc: &Document, out: &mut Vec<Finding>) {
    for field in ["data", "stringData"] {
        let non_empty = doc
            .object
            .get(field)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        if non_empty {
            out.push(rules::SECRET_INLINE.at(
                doc,
                FieldPath::root().key(field),
                format!(
                    "Secret carries inline {field}; this environment refuses secrets in manifests"
                ),
            ));
        }
    }
}

fn strings<'a>(rule: &'a Value, field: &str) -> Vec<&'a str> {
    rule.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn role(doc: &Document, out: &mut Vec<Finding>) {
    let declared = doc.object["metadata"]["annotations"][SECRETS_ACCESS_ANNOTATION]
        .as_str()
        .is_some_and(|reason| !reason.trim().is_empty());
    let Some(rules_list) = doc.object.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, rule) in rules_list.iter().enumerate() {
        let path = FieldPath::root().key("rules").index(i);
        for field in ["verbs", "resources", "apiGroups"] {
            if strings(rule, field).contains(&"*") {
                out.push(rules::RBAC_WILDCARD.at(
                    doc,
                    path.key(field),
                    format!("rule {i} grants `*` in {field}"),
                ));
            }
        }
        let groups = strings(rule, "apiGroups");
        let core_group = groups.is_empty() || groups.contains(&"") || groups.contains(&"*");
        if core_group && strings(rule, "resources").contains(&"secrets") && !declared {
            out.push(rules::RBAC_SECRETS_ACCESS.at(
                doc,
                path.key("resources"),
                format!(
                    "rule {i} grants access to secrets without the {SECRETS_ACCESS_ANNOTATION} annotation"
                ),
            ));
        }
    }
}

fn binding(doc: &Document, out: &mut Vec<Finding>) {
    let role_ref = &doc.object["roleRef"];
    if role_ref["kind"] == "ClusterRole" && role_ref["name"] == "cluster-admin" {
        out.push(rules::RBAC_CLUSTER_ADMIN.at(
            doc,
            FieldPath::parse("roleRef.name"),
            "binds the cluster-admin ClusterRole",
        ));
    }
}

/// A default-deny policy selects every pod and allows no ingress.
fn is_default_deny(policy: &Value) -> bool {
    let selects_all = policy
        .pointer("/spec/podSelector")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            s.values().all(|v| match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Null => true,
                _ => false,
            })
        });
    let types: Vec<&str> = policy
        .pointer("/spec/policyTypes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Without policyTypes, Ingress is implied.
    let denies_ingress = types.is_empty() || types.contains(&"Ingress");
    let no_ingress_rules = policy
        .pointer("/spec/ingress")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    selects_all && denies_ingress && no_ingress_rules
}

fn default_deny(set: &ManifestSet<'_>, out: &mut Vec<Finding>) {
    let mut namespaces: BTreeSet<&str> = set
        .objects
        .iter()
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    namespaces.extend(
        set.objects
            .iter()
            .filter(|o| o.is("v1", "Namespace"))
            .map(|o| o.doc.name()),
    );
    for namespace in namespaces {
        let covered = set
            .in_namespace("NetworkPolicy", namespace)
            .any(|o| is_default_deny(&o.doc.object));
        if !covered {
            // Point at the Namespace object, else at some policy of the namespace.
            let declared_by = set
                .objects
                .iter()
                .find(|o| o.is("v1", "Namespace") && o.doc.name() == namespace)
                .or_else(|| set.in_namespace("NetworkPolicy", namespace).next());
            let message = format!("namespace {namespace} has no default-deny NetworkPolicy");
            out.push(match declared_by {
                Some(o) => {
                    rules::NETWORK_POLICY_DEFAULT_DENY.at(&o.doc, FieldPath::root(), message)
                }
                None => rules::NETWORK_POLICY_DEFAULT_DENY.general(message),
            });
        }
    }
}
