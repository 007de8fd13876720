//! `authorization.k8s.io/v1` SelfSubjectRulesReview: what the requesting user may do in a
//! namespace, computed from the stored RBAC objects like the apiserver's RBAC authorizer's
//! `RulesFor` (RoleBindings in the namespace plus ClusterRoleBindings, matched by user, group
//! or service account, resolved to their Role's or ClusterRole's rules).
//!
//! The emulator does not authenticate: a request without `Impersonate-User` is the emulator's
//! admin, answered as kube-apiserver answers `system:masters` (everything). With
//! `Impersonate-User` / `Impersonate-Group` (kubeconfig `as` / `as-groups`, `kubectl --as`) the
//! rules are that identity's. RBAC is reported here, not enforced on other requests.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::apiserver::resources::by_kind;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::{State, meta_str};

/// Every authenticated user is in this group (as on a real apiserver).
const AUTHENTICATED: &str = "system:authenticated";

/// Who asks: the impersonated user and groups, or None for the emulator's admin.
pub fn identity(headers: &HeaderMap) -> Option<(String, Vec<String>)> {
    let user = headers.get("impersonate-user")?.to_str().ok()?.to_owned();
    let mut groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    groups.push(AUTHENTICATED.to_owned());
    Some((user, groups))
}

/// The review object answered for `request` (a SelfSubjectRulesReview with `spec.namespace`).
pub fn review(state: &State, headers: &HeaderMap, request: &Value) -> Result<Value> {
    let namespace = request["spec"]["namespace"].as_str().unwrap_or_default();
    if namespace.is_empty() {
        return Err(ApiError::bad_request(
            "SelfSubjectRulesReview: spec.namespace: Required value: no namespace on request",
        ));
    }
    let resource_rules = match identity(headers) {
        None => vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
        Some((user, groups)) => rules_for(state, &user, &groups, namespace),
    };
    let non_resource_rules = if resource_rules.is_empty() {
        Vec::new()
    } else {
        vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})]
    };
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"namespace": namespace},
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        },
    }))
}

/// The resource rules of every role bound to the user (or one of its groups) in `namespace`.
fn rules_for(state: &State, user: &str, groups: &[String], namespace: &str) -> Vec<Value> {
    let (Some(rb), Some(crb), Some(role), Some(cluster_role)) = (
        by_kind("rbac.authorization.k8s.io", "RoleBinding"),
        by_kind("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        by_kind("rbac.authorization.k8s.io", "Role"),
        by_kind("rbac.authorization.k8s.io", "ClusterRole"),
    ) else {
        return Vec::new();
    };
    let bindings = state
        .list(crb, None)
        .chain(state.list(rb, Some(namespace)))
        .filter(|b| binds(b, user, groups));
    let mut rules = Vec::new();
    for binding in bindings {
        let role_ref = &binding["roleRef"];
        let name = role_ref["name"].as_str().unwrap_or_default();
        let found = match role_ref["kind"].as_str() {
            Some("ClusterRole") => state.get(cluster_role, "", name),
            Some("Role") => state.get(role, meta_str(binding, "namespace"), name),
            _ => None,
        };
        if let Some(rs) = found.and_then(|r| r["rules"].as_array()) {
            rules.extend(rs.iter().filter(|r| r["resources"].is_array()).cloned());
        }
    }
    rules
}

/// Whether one of the binding's subjects is the user, one of its groups, or (for
/// `system:serviceaccount:<ns>:<name>`) that service account.
fn binds(binding: &Value, user: &str, groups: &[String]) -> bool {
    let subjects = binding["subjects"].as_array().into_iter().flatten();
    subjects.into_iter().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str() {
            Some("User") => name == user,
            Some("Group") => groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s["namespace"]
                    .as_str()
                    .unwrap_or_else(|| meta_str(binding, "namespace"));
                user == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::Store;
    use http::HeaderValue;

    fn store_with_rbac() -> std::sync::Arc<Store> {
        let store = Store::new(16);
        {
            let mut state = store.lock();
            let def = |kind| by_kind("rbac.authorization.k8s.io", kind).unwrap();
            state.insert(
                def("ClusterRole"),
                json!({"metadata": {"name": "deployer"}, "rules": [
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
                    {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}
                ]}),
            );
            state.insert(
                def("Role"),
                json!({"metadata": {"name": "reader", "namespace": "fluo"}, "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
                ]}),
            );
            state.insert(
                def("RoleBinding"),
                json!({"metadata": {"name": "deployer", "namespace": "fluo"},
                       "roleRef": {"kind": "ClusterRole", "name": "deployer"},
                       "subjects": [{"kind": "Group", "name": "fluo:deployers"}]}),
            );
            state.insert(
                def("RoleBinding"),
                json!({"metadata": {"name": "reader", "namespace": "fluo"},
                       "roleRef": {"kind": "Role", "name": "reader"},
                       "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
            );
        }
        store
    }

    fn as_user(user: &str, groups: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("impersonate-user", HeaderValue::from_str(user).unwrap());
        for g in groups {
            headers.append("impersonate-group", HeaderValue::from_str(g).unwrap());
        }
        headers
    }

    fn rules(headers: &HeaderMap, namespace: &str) -> Value {
        let store = store_with_rbac();
        let state = store.lock();
        let request = json!({"spec": {"namespace": namespace}});
        review(&state, headers, &request).unwrap()["status"]["resourceRules"].clone()
    }

    #[test]
    fn a_group_member_gets_its_bound_roles_rules_in_that_namespace_only() {
        let headers = as_user("alice", &["fluo:deployers"]);
        assert_eq!(
            rules(&headers, "fluo"),
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}])
        );
        assert_eq!(rules(&headers, "other"), json!([]));
        assert_eq!(rules(&as_user("bob", &[]), "fluo"), json!([]));
    }

    #[test]
    fn service_accounts_match_by_their_user_name_and_the_admin_gets_everything() {
        assert_eq!(
            rules(&as_user("system:serviceaccount:fluo:ci", &[]), "fluo"),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
        );
        assert_eq!(
            rules(&HeaderMap::new(), "fluo"),
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}])
        );
    }

    #[test]
    fn a_review_without_a_namespace_is_refused_naming_the_field() {
        let store = store_with_rbac();
        let err = review(&store.lock(), &HeaderMap::new(), &json!({"spec": {}})).unwrap_err();
        assert!(format!("{err:?}").contains("spec.namespace"), "{err:?}");
    }
}
