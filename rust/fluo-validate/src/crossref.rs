//! Cross-references between objects of one deploy: Service selectors and ports, probe ports,
//! ConfigMap/Secret/ServiceAccount references, Ingress backends, selectors of NetworkPolicies and
//! PodDisruptionBudgets, RBAC roleRefs and StatefulSet service names. References resolve within
//! the namespace the object lands in.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::finding::Finding;
use crate::manifests::{ManifestSet, Object};
use crate::path::FieldPath;
use crate::pods::{PodTemplate, map_selector_matches, selector_matches};
use crate::rules;

/// Workload annotation listing Secrets that exist in the cluster but not in the manifests.
pub const EXTERNAL_SECRETS_ANNOTATION: &str = "fluo.dev/external-secrets";
/// Workload annotation listing ConfigMaps that exist in the cluster but not in the manifests.
pub const EXTERNAL_CONFIGMAPS_ANNOTATION: &str = "fluo.dev/external-configmaps";

/// ClusterRoles every cluster has, which bindings may refer to without defining them.
const BUILTIN_CLUSTER_ROLES: &[&str] = &["cluster-admin", "admin", "edit", "view"];

/// Names listed in a comma-separated annotation of the object.
pub fn declared_external(object: &Object<'_>, annotation: &str) -> Vec<String> {
    object.doc.object["metadata"]["annotations"][annotation]
        .as_str()
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The set, with what references are resolved against indexed once: scanning the whole set
/// for every reference made the check quadratic (a fifth of the CPU of a 2,000-object deploy).
struct Refs<'s> {
    set: &'s ManifestSet<'s>,
    /// (kind, namespace, name) of every namespaced object.
    names: HashSet<(&'s str, &'s str, &'s str)>,
    /// The pod templates of each namespace, in set order.
    pods: HashMap<&'s str, Vec<PodTemplate<'s>>>,
}

impl<'s> Refs<'s> {
    fn new(set: &'s ManifestSet<'s>) -> Self {
        let mut names = HashSet::new();
        let mut pods: HashMap<&str, Vec<PodTemplate<'_>>> = HashMap::new();
        for object in &set.objects {
            let Some(namespace) = object.namespace.as_deref() else {
                continue;
            };
            names.insert((object.doc.kind(), namespace, object.doc.name()));
            if let Some(pod) = PodTemplate::of(&object.doc) {
                pods.entry(namespace).or_default().push(pod);
            }
        }
        Refs { set, names, pods }
    }

    /// Whether an object of `kind` (any apiVersion) named `name` is in `namespace`.
    fn has(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.names.contains(&(kind, namespace, name))
    }

    /// Every pod template in `namespace`.
    fn pods_in(&self, namespace: &str) -> &[PodTemplate<'s>] {
        self.pods.get(namespace).map_or(&[], Vec::as_slice)
    }
}

/// Every cross-reference finding of the set.
pub fn check(set: &ManifestSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let set = &Refs::new(set);
    for object in &set.set.objects {
        let Some(namespace) = object.namespace.as_deref() else {
            if object.doc.kind() == "ClusterRoleBinding" {
                role_ref(set, object, None, &mut out);
            }
            continue;
        };
        if let Some(pod) = PodTemplate::of(&object.doc) {
            pod_references(set, object, &pod, namespace, &mut out);
        }
        match (object.doc.api_version(), object.doc.kind()) {
            ("v1", "Service") => service(set, object, namespace, &mut out),
            ("networking.k8s.io/v1", "Ingress") => ingress(set, object, namespace, &mut out),
            ("networking.k8s.io/v1", "NetworkPolicy") => selects_pods(
                set,
                object,
                namespace,
                "spec.podSelector",
                &rules::REF_NETWORK_POLICY_SELECTOR,
                &mut out,
            ),
            ("policy/v1", "PodDisruptionBudget") => selects_pods(
                set,
                object,
                namespace,
                "spec.selector",
                &rules::REF_PDB_SELECTOR,
                &mut out,
            ),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                role_ref(set, object, Some(namespace), &mut out)
            }
            ("apps/v1", "StatefulSet") => {
                if let Some(service) = object.doc.object["spec"]["serviceName"].as_str()
                    && !service.is_empty()
                    && !set.has("Service", namespace, service)
                {
                    out.push(rules::REF_STATEFULSET_SERVICE.at(
                        &object.doc,
                        FieldPath::parse("spec.serviceName"),
                        format!(
                            "Service {service} is not in the manifests of namespace {namespace}"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Where a pod spec refers to a ConfigMap or Secret by name: (path, kind, name, optional).
fn config_references(pod: &PodTemplate<'_>) -> Vec<(FieldPath, &'static str, String, bool)> {
    let mut refs = Vec::new();
    let name_of = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let optional = |v: &Value| v.get("optional").and_then(Value::as_bool) == Some(true);
    if let Some(volumes) = pod.spec.get("volumes").and_then(Value::as_array) {
        for (i, volume) in volumes.iter().enumerate() {
            let path = pod.spec_path.key("volumes").index(i);
            if let Some(cm) = volume.get("configMap")
                && let Some(name) = name_of(cm, "name")
            {
                refs.push((path.join("configMap.name"), "ConfigMap", name, optional(cm)));
            }
            if let Some(secret) = volume.get("secret")
                && let Some(name) = name_of(secret, "secretName")
            {
                refs.push((
                    path.join("secret.secretName"),
                    "Secret",
                    name,
                    optional(secret),
                ));
            }
            let sources = volume
                .pointer("/projected/sources")
                .and_then(Value::as_array);
            for (j, source) in sources.into_iter().flatten().enumerate() {
                let source_path = path.join("projected.sources").index(j);
                for (field, kind) in [("configMap", "ConfigMap"), ("secret", "Secret")] {
                    if let Some(r) = source.get(field)
                        && let Some(name) = name_of(r, "name")
                    {
                        refs.push((source_path.key(field).key("name"), kind, name, optional(r)));
                    }
                }
            }
        }
    }
    for container in pod.containers() {
        let env = container.value.get("env").and_then(Value::as_array);
        for (i, var) in env.into_iter().flatten().enumerate() {
            let path = container.path.key("env").index(i).key("valueFrom");
            for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
                if let Some(r) = var.get("valueFrom").and_then(|v| v.get(field))
                    && let Some(name) = name_of(r, "name")
                {
                    refs.push((path.key(field).key("name"), kind, name, optional(r)));
                }
            }
        }
        let env_from = container.value.get("envFrom").and_then(Value::as_array);
        for (i, source) in env_from.into_iter().flatten().enumerate() {
            let path = container.path.key("envFrom").index(i);
            for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                if let Some(r) = source.get(field)
                    && let Some(name) = name_of(r, "name")
                {
                    refs.push((path.key(field).key("name"), kind, name, optional(r)));
                }
            }
        }
    }
    if let Some(pull) = pod.spec.get("imagePullSecrets").and_then(Value::as_array) {
        for (i, secret) in pull.iter().enumerate() {
            if let Some(name) = name_of(secret, "name") {
                let path = pod.spec_path.key("imagePullSecrets").index(i).key("name");
                refs.push((path, "Secret", name, false));
            }
        }
    }
    refs
}

/// Secrets a workload declares external and does not find in the manifests: the online check
/// verifies they exist in the cluster.
pub fn external_secrets(set: &ManifestSet<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = &Refs::new(set);
    for object in &set.set.objects {
        let (Some(namespace), Some(pod)) = (&object.namespace, PodTemplate::of(&object.doc)) else {
            continue;
        };
        let declared = declared_external(object, EXTERNAL_SECRETS_ANNOTATION);
        for (_, kind, name, _) in config_references(&pod) {
            if kind == "Secret"
                && declared.contains(&name)
                && !set.has("Secret", namespace, &name)
                && !out.contains(&(namespace.clone(), name.clone()))
            {
                out.push((namespace.clone(), name));
            }
        }
    }
    out
}

fn pod_references(
    set: &Refs<'_>,
    object: &Object<'_>,
    pod: &PodTemplate<'_>,
    namespace: &str,
    out: &mut Vec<Finding>,
) {
    let doc = &object.doc;
    let external_secrets = declared_external(object, EXTERNAL_SECRETS_ANNOTATION);
    let external_configmaps = declared_external(object, EXTERNAL_CONFIGMAPS_ANNOTATION);
    for (path, kind, name, optional) in config_references(pod) {
        let (rule, external, annotation) = if kind == "Secret" {
            (
                &rules::REF_SECRET,
                &external_secrets,
                EXTERNAL_SECRETS_ANNOTATION,
            )
        } else {
            (
                &rules::REF_CONFIGMAP,
                &external_configmaps,
                EXTERNAL_CONFIGMAPS_ANNOTATION,
            )
        };
        if !optional && !external.contains(&name) && !set.has(kind, namespace, &name) {
            out.push(rule.at(
                doc,
                path,
                format!(
                    "{kind} {name} is not in the manifests of namespace {namespace} and not declared in {annotation}"
                ),
            ));
        }
    }
    if let Some(account) = pod.spec.get("serviceAccountName").and_then(Value::as_str)
        && account != "default"
        && !set.has("ServiceAccount", namespace, account)
    {
        out.push(rules::REF_SERVICE_ACCOUNT.at(
            doc,
            pod.spec_path.key("serviceAccountName"),
            format!("ServiceAccount {account} is not in the manifests of namespace {namespace}"),
        ));
    }
    for container in pod.containers() {
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            for handler in ["httpGet", "tcpSocket", "grpc"] {
                let Some(port) = container
                    .value
                    .get(probe)
                    .and_then(|p| p.get(handler))
                    .and_then(|h| h.get("port"))
                else {
                    continue;
                };
                if !container_declares(container.value, port) {
                    out.push(rules::REF_PROBE_PORT.at(
                        doc,
                        container.path.key(probe).key(handler).key("port"),
                        format!(
                            "container `{}` {probe} uses port {} which the container does not declare",
                            container.name,
                            port_display(port)
                        ),
                    ));
                }
            }
        }
    }
}

fn port_display(port: &Value) -> String {
    match port {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the container declares `port` (a number or a port name).
fn container_declares(container: &Value, port: &Value) -> bool {
    let ports = container.get("ports").and_then(Value::as_array);
    ports.into_iter().flatten().any(|p| match port {
        Value::String(name) => p.get("name").and_then(Value::as_str) == Some(name),
        Value::Number(n) => p.get("containerPort").and_then(Value::as_i64) == n.as_i64(),
        _ => false,
    })
}

fn service(set: &Refs<'_>, object: &Object<'_>, namespace: &str, out: &mut Vec<Finding>) {
    let doc = &object.doc;
    let Some(selector) = doc.object["spec"]["selector"]
        .as_object()
        .filter(|s| !s.is_empty())
    else {
        // Services without a selector (ExternalName, manual Endpoints) select nothing by design.
        return;
    };
    let pods: Vec<&PodTemplate<'_>> = set
        .pods_in(namespace)
        .iter()
        .filter(|p| map_selector_matches(selector, p.labels))
        .collect();
    if pods.is_empty() {
        out.push(rules::REF_SERVICE_SELECTOR.at(
            doc,
            FieldPath::parse("spec.selector"),
            format!(
                "selector {} matches no pod template in namespace {namespace}",
                selector_display(selector)
            ),
        ));
        return;
    }
    let ports = doc.object["spec"]["ports"].as_array();
    for (i, port) in ports.into_iter().flatten().enumerate() {
        let target = port.get("targetPort").or_else(|| port.get("port"));
        let Some(target) = target else { continue };
        let declared = pods.iter().all(|p| {
            p.containers()
                .iter()
                .any(|c| !c.init && container_declares(c.value, target))
        });
        if !declared {
            let field = if port.get("targetPort").is_some() {
                "targetPort"
            } else {
                "port"
            };
            out.push(rules::REF_SERVICE_PORT.at(
                doc,
                FieldPath::parse("spec.ports").index(i).key(field),
                format!(
                    "target port {} is not declared by the containers of every selected pod",
                    port_display(target)
                ),
            ));
        }
    }
}

fn selector_display(selector: &Map<String, Value>) -> String {
    let pairs: Vec<String> = selector
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.join(",")
}

fn selects_pods(
    set: &Refs<'_>,
    object: &Object<'_>,
    namespace: &str,
    field: &str,
    rule: &rules::Rule,
    out: &mut Vec<Finding>,
) {
    let path = FieldPath::parse(field);
    let Some(selector) = crate::pods::get(&object.doc.object, &path) else {
        return;
    };
    let is_empty = selector.as_object().is_none_or(|s| {
        s.values().all(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    });
    if is_empty {
        return;
    }
    if !set
        .pods_in(namespace)
        .iter()
        .any(|p| selector_matches(selector, p.labels))
    {
        out.push(rule.at(
            &object.doc,
            path,
            format!("selector matches no pod template in namespace {namespace}"),
        ));
    }
}

fn role_ref(set: &Refs<'_>, object: &Object<'_>, namespace: Option<&str>, out: &mut Vec<Finding>) {
    let role_ref = &object.doc.object["roleRef"];
    let (Some(kind), Some(name)) = (role_ref["kind"].as_str(), role_ref["name"].as_str()) else {
        return;
    };
    let exists = match (kind, namespace) {
        ("ClusterRole", _) => {
            BUILTIN_CLUSTER_ROLES.contains(&name)
                || set
                    .set
                    .objects
                    .iter()
                    .any(|o| o.doc.kind() == "ClusterRole" && o.doc.name() == name)
        }
        ("Role", Some(namespace)) => set.has("Role", namespace, name),
        _ => false,
    };
    if !exists {
        out.push(rules::REF_ROLE.at(
            &object.doc,
            FieldPath::parse("roleRef.name"),
            format!("{kind} {name} is not in the manifests"),
        ));
    }
}

fn ingress(set: &Refs<'_>, object: &Object<'_>, namespace: &str, out: &mut Vec<Finding>) {
    let doc = &object.doc;
    let mut backends: Vec<(FieldPath, &Value)> = Vec::new();
    if let Some(b) = doc.object.pointer("/spec/defaultBackend/service") {
        backends.push((FieldPath::parse("spec.defaultBackend.service"), b));
    }
    let rules_list = doc.object.pointer("/spec/rules").and_then(Value::as_array);
    for (i, rule) in rules_list.into_iter().flatten().enumerate() {
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        for (j, p) in paths.into_iter().flatten().enumerate() {
            if let Some(b) = p.pointer("/backend/service") {
                let path = FieldPath::parse("spec.rules")
                    .index(i)
                    .join("http.paths")
                    .index(j)
                    .join("backend.service");
                backends.push((path, b));
            }
        }
    }
    for (path, backend) in backends {
        let Some(name) = backend.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(service) = set
            .set
            .in_namespace("Service", namespace)
            .find(|s| s.doc.name() == name)
        else {
            out.push(rules::REF_INGRESS_BACKEND.at(
                doc,
                path.key("name"),
                format!("backend Service {name} is not in the manifests of namespace {namespace}"),
            ));
            continue;
        };
        let Some(port) = backend.get("port") else {
            continue;
        };
        let service_ports = service.doc.object["spec"]["ports"].as_array();
        let exposes = service_ports.into_iter().flatten().any(|p| {
            match (port.get("name").and_then(Value::as_str), port.get("number")) {
                (Some(n), _) => p.get("name").and_then(Value::as_str) == Some(n),
                (None, Some(number)) => p.get("port") == Some(number),
                (None, None) => false,
            }
        });
        if !exposes {
            out.push(rules::REF_INGRESS_BACKEND.at(
                doc,
                path.key("port"),
                format!("backend Service {name} exposes no such port"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::docs;

    /// A Deployment in namespace `a` with a ConfigMap and a Service: the ConfigMap named `cfg`
    /// and a Service selecting `app: web` are each in namespace `ns`.
    fn set(cfg_ns: &str, service_ns: &str) -> ManifestSet<'static> {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: a}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        envFrom: [{{configMapRef: {{name: cfg}}}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {cfg_ns}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {service_ns}}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
        );
        ManifestSet::new("fluo", vec![("web".to_string(), docs(&yaml))])
    }

    fn rules(set: &ManifestSet<'_>) -> Vec<&'static str> {
        check(set)
            .into_iter()
            .map(|f| f.rule)
            .filter(|r| *r != rules::REF_SERVICE_PORT.id)
            .collect()
    }

    #[test]
    fn references_resolve_only_within_the_namespace_of_the_object() {
        assert_eq!(rules(&set("a", "a")), Vec::<&str>::new());
        assert_eq!(rules(&set("b", "a")), [rules::REF_CONFIGMAP.id]);
        assert_eq!(rules(&set("a", "b")), [rules::REF_SERVICE_SELECTOR.id]);
    }
}
