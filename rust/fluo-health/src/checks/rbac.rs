//! `rbac`: the identity the checks run as (the deployer's) holds no more than the documented
//! verbs. A SelfSubjectRulesReview lists what it may do in the deploy namespace and in
//! fluo-system; every granted (API group, resource, verb, resource names) must be covered by a
//! rule of a `fluo-deployer*` role that `infra/k8s/manifests` binds in that namespace (a
//! RoleBinding there, or a ClusterRoleBinding), else the check fails naming each extra grant.

use k8s_openapi::api::authorization::v1::{
    ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::Value;

use crate::access::Cluster;
use crate::check::ProbeResult;

/// Name prefix of the documented deployer roles.
pub const DEPLOYER_ROLE_PREFIX: &str = "fluo-deployer";

/// One documented rule (a Role's or ClusterRole's `rules[]` entry with resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    pub role: String,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub names: Vec<String>,
    pub verbs: Vec<String>,
}

/// The resource rules of the deployer roles that `objects` (the cluster manifests) bind in
/// `namespace`; a RoleBinding without a namespace lands in `app_namespace`.
pub fn documented<'a>(
    objects: impl IntoIterator<Item = &'a Value> + Clone,
    namespace: &str,
    app_namespace: &str,
) -> Vec<Documented> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let bound: Vec<&str> = objects
        .clone()
        .into_iter()
        .filter(|o| match o["kind"].as_str() {
            Some("ClusterRoleBinding") => true,
            Some("RoleBinding") => {
                o["metadata"]["namespace"].as_str().unwrap_or(app_namespace) == namespace
            }
            _ => false,
        })
        .filter_map(|b| b["roleRef"]["name"].as_str())
        .filter(|name| name.starts_with(DEPLOYER_ROLE_PREFIX))
        .collect();
    objects
        .into_iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| bound.contains(&n))
        })
        .flat_map(|role| {
            let name = role["metadata"]["name"].as_str().unwrap_or_default();
            role["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["resources"].is_array())
                .map(move |r| Documented {
                    role: name.to_owned(),
                    groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    names: strings(&r["resourceNames"]),
                    verbs: strings(&r["verbs"]),
                })
        })
        .collect()
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item || x == "*")
}

/// Whether `documented` allows `verb` on `group/resource` for all of `names` (empty: any name).
fn covered(
    documented: &[Documented],
    group: &str,
    resource: &str,
    verb: &str,
    names: &[String],
) -> bool {
    documented.iter().any(|d| {
        has(&d.groups, group)
            && has(&d.resources, resource)
            && has(&d.verbs, verb)
            && (d.names.is_empty()
                || (!names.is_empty() && names.iter().all(|n| d.names.contains(n))))
    })
}

/// The granted rules not covered by the documented ones, each as "verb group/resource [names]".
pub fn extra_grants(granted: &[ResourceRule], documented: &[Documented]) -> Vec<String> {
    let mut extra = Vec::new();
    for rule in granted {
        let names = rule.resource_names.clone().unwrap_or_default();
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for group in &groups {
            for resource in &resources {
                for verb in &rule.verbs {
                    if covered(documented, group, resource, verb, &names) {
                        continue;
                    }
                    let group = if group.is_empty() {
                        "core"
                    } else {
                        group.as_str()
                    };
                    let scope = if names.is_empty() {
                        "any name".to_owned()
                    } else {
                        names.join(",")
                    };
                    extra.push(format!("{verb} {group}/{resource} ({scope})"));
                }
            }
        }
    }
    extra.dedup();
    extra
}

/// Asks the cluster what the checks' identity may do in each namespace, judged against that
/// namespace's documented rules.
pub async fn probe(cluster: &Cluster, namespaces: &[(String, Vec<Documented>)]) -> ProbeResult {
    if let Some((namespace, _)) = namespaces.iter().find(|(_, d)| d.is_empty()) {
        return Err(format!(
            "infra/k8s/manifests binds no {DEPLOYER_ROLE_PREFIX}* role in {namespace} to compare with"
        ));
    }
    let api: Api<SelfSubjectRulesReview> = Api::all(cluster.client.clone());
    let mut summary = Vec::new();
    let mut problems = Vec::new();
    for (namespace, documented) in namespaces {
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec {
                namespace: Some(namespace.clone()),
            },
            ..Default::default()
        };
        let answered = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("SelfSubjectRulesReview in {namespace}: {e}"))?;
        let status = answered.status.unwrap_or_default();
        let extra = extra_grants(&status.resource_rules, documented);
        if !extra.is_empty() {
            problems.push(format!(
                "in {namespace}, {} grant(s) beyond the documented deployer roles: {}",
                extra.len(),
                extra.join(", ")
            ));
        }
        let incomplete = if status.incomplete {
            ", incomplete"
        } else {
            ""
        };
        summary.push(format!(
            "{namespace}: {} rule(s){incomplete}",
            status.resource_rules.len()
        ));
    }
    if problems.is_empty() {
        Ok(format!(
            "SelfSubjectRulesReview within the documented {DEPLOYER_ROLE_PREFIX}* roles ({})",
            summary.join("; ")
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> ResourceRule {
        let list = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
        ResourceRule {
            api_groups: list(groups),
            resources: list(resources),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            resource_names: if names.is_empty() { None } else { list(names) },
        }
    }

    fn documented_roles() -> Vec<Documented> {
        let binding = json!({"kind": "RoleBinding", "metadata": {"name": "b"},
                             "roleRef": {"kind": "ClusterRole", "name": "fluo-deployer"}});
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "fluo-deployer"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["nats-tls"], "verbs": ["get"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}
        ]});
        let other = json!({"kind": "ClusterRole", "metadata": {"name": "admin"}, "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
        ]});
        documented([&binding, &role, &other], "fluo", "fluo")
    }

    #[test]
    fn only_the_deployer_roles_bound_in_the_namespace_are_documented() {
        let d = documented_roles();
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|r| r.role == "fluo-deployer"));
        let binding = json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "fluo-system"},
                             "roleRef": {"kind": "ClusterRole", "name": "fluo-deployer"}});
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "fluo-deployer"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]});
        assert!(documented([&binding, &role], "fluo", "fluo").is_empty());
        assert_eq!(
            documented([&binding, &role], "fluo-system", "fluo").len(),
            1
        );
    }

    #[test]
    fn grants_within_the_documented_rules_pass() {
        let granted = [
            rule(&["apps"], &["deployments"], &["get"], &[]),
            rule(&[""], &["secrets"], &["get"], &["nats-tls"]),
        ];
        assert_eq!(
            extra_grants(&granted, &documented_roles()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn extra_verbs_any_name_on_a_named_resource_and_wildcards_are_named() {
        let granted = [
            rule(&["apps"], &["deployments"], &["get", "delete"], &[]),
            rule(&[""], &["secrets"], &["get"], &[]),
            rule(&["*"], &["*"], &["*"], &[]),
        ];
        assert_eq!(
            extra_grants(&granted, &documented_roles()),
            [
                "delete apps/deployments (any name)",
                "get core/secrets (any name)",
                "* */* (any name)"
            ]
        );
    }
}
