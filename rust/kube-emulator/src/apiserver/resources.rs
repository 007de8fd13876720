//! The resource types the emulator serves: names, scope, verbs and the typed model behind each.

use k8s_openapi::api::{apps, batch, coordination, core, networking, policy, rbac};
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes a JSON object into the resource's Go-equivalent Rust type to catch type errors.
pub type TypeCheck = fn(&Value) -> Result<(), String>;
/// Registers the resource's schema (and its dependencies) in a generator, returning its name.
pub type SchemaOf = fn(&mut SchemaGenerator) -> String;

/// One served resource, as discovery describes it.
#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Subresources beyond the object itself (`status`, `log`, `portforward`, ...).
    pub subresources: &'static [&'static str],
    /// Member of the `all` category (`kubectl get all`).
    pub in_all: bool,
    /// Whether the type carries `metadata.generation` bumped on spec changes.
    pub has_generation: bool,
    pub type_check: TypeCheck,
    pub schema_of: SchemaOf,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` style name used in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// Type errors only: required fields are the validation's business (422, not 400).
fn check<K: DeserializeOwned>(v: &Value) -> Result<(), String> {
    match serde_json::from_value::<K>(v.clone()) {
        Err(e) if !e.to_string().starts_with("missing field") => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn schema<K: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<K>();
    K::schema_name().into_owned()
}

macro_rules! res {
    ($ty:ty, $group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr,
     [$($short:expr),*], $namespaced:expr, [$($sub:expr),*], $all:expr, $generation:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $namespaced,
            subresources: &[$($sub),*],
            in_all: $all,
            has_generation: $generation,
            type_check: check::<$ty>,
            schema_of: schema::<$ty>,
        }
    };
}

/// Every resource the emulator serves.
pub static RESOURCES: &[ResourceDef] = &[
    res!(
        core::v1::Namespace,
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false,
        ["status"],
        false,
        false
    ),
    res!(
        core::v1::ConfigMap,
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true,
        [],
        false,
        false
    ),
    res!(
        core::v1::Secret,
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        [],
        true,
        [],
        false,
        false
    ),
    res!(
        core::v1::Service,
        "",
        "v1",
        "Service",
        "services",
        "service",
        ["svc"],
        true,
        ["status"],
        true,
        false
    ),
    res!(
        core::v1::ServiceAccount,
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true,
        [],
        false,
        false
    ),
    res!(
        core::v1::Pod,
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        ["po"],
        true,
        ["status", "log", "portforward", "exec"],
        true,
        false
    ),
    res!(
        core::v1::Endpoints,
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        ["ep"],
        true,
        [],
        false,
        false
    ),
    res!(
        core::v1::Event,
        "",
        "v1",
        "Event",
        "events",
        "event",
        ["ev"],
        true,
        [],
        false,
        false
    ),
    res!(
        core::v1::PersistentVolumeClaim,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true,
        ["status"],
        false,
        false
    ),
    res!(
        apps::v1::Deployment,
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true,
        ["status", "scale"],
        true,
        true
    ),
    res!(
        apps::v1::StatefulSet,
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ["sts"],
        true,
        ["status"],
        true,
        true
    ),
    res!(
        apps::v1::DaemonSet,
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true,
        ["status"],
        true,
        true
    ),
    res!(
        apps::v1::ReplicaSet,
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true,
        ["status"],
        true,
        true
    ),
    res!(
        apps::v1::ControllerRevision,
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        [],
        true,
        [],
        false,
        false
    ),
    res!(
        batch::v1::Job,
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        [],
        true,
        ["status"],
        true,
        true
    ),
    res!(
        networking::v1::Ingress,
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        ["ing"],
        true,
        ["status"],
        false,
        true
    ),
    res!(
        networking::v1::NetworkPolicy,
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        ["netpol"],
        true,
        [],
        false,
        true
    ),
    res!(
        rbac::v1::Role,
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        [],
        true,
        [],
        false,
        false
    ),
    res!(
        rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        [],
        true,
        [],
        false,
        false
    ),
    res!(
        rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        [],
        false,
        [],
        false,
        false
    ),
    res!(
        rbac::v1::ClusterRoleBinding,
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        [],
        false,
        [],
        false,
        false
    ),
    res!(
        coordination::v1::Lease,
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        [],
        true,
        [],
        false,
        false
    ),
    res!(
        policy::v1::PodDisruptionBudget,
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        ["pdb"],
        true,
        ["status"],
        false,
        true
    ),
];

/// The API groups in discovery order, each with its single served version.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    let (group, version) = (group.to_string(), version.to_string());
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_scope_and_group() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        assert!(d.namespaced);
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.qualified(), "deployments.apps");
        assert!(!by_plural("", "v1", "namespaces").unwrap().namespaced);
        assert!(by_kind("rbac.authorization.k8s.io", "ClusterRole").is_some());
        assert!(by_plural("apps", "v1", "pods").is_none());
    }

    #[test]
    fn type_check_rejects_wrong_types() {
        let d = by_kind("apps", "Deployment").unwrap();
        let bad = serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},
            "spec":{"replicas":"three","selector":{},"template":{}}});
        assert!((d.type_check)(&bad).unwrap_err().contains("invalid type"));
    }
}
