//! Discovery documents: /version, /api, /apis, per-group-version resource lists, and the
//! aggregated discovery v2 format (`apidiscovery.k8s.io/v2`) when the Accept header asks for it.

use serde_json::{Value, json};

use crate::apiserver::resources::{RESOURCES, ResourceDef, groups, in_group_version};

/// Media type of aggregated discovery v2 responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header prefers aggregated discovery (kubectl and client-go ask first).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        ["as=APIGroupDiscoveryList", "v=v2", "g=apidiscovery.k8s.io"]
            .iter()
            .all(|p| params.contains(p))
    })
}

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-emulator",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_doc(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "log" => vec!["get"],
        "portforward" | "exec" => vec!["create", "get"],
        _ => vec!["get", "patch", "update"],
    }
}

fn sub_kind(def: &ResourceDef, sub: &str) -> (&'static str, &'static str, String) {
    match sub {
        "log" | "portforward" | "exec" => (
            "",
            "v1",
            match sub {
                "log" => "Pod".into(),
                "exec" => "PodExecOptions".into(),
                _ => "PodPortForwardOptions".into(),
            },
        ),
        "scale" => ("autoscaling", "v1", "Scale".into()),
        _ => (def.group, def.version, def.kind.to_string()),
    }
}

/// APIResourceList for one group/version, or None if it is not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = in_group_version(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        let mut r = json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
            "kind": d.kind, "verbs": d.verbs(), "storageVersionHash": storage_hash(d)});
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if d.in_all {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        for sub in d.subresources {
            let (g, v, k) = sub_kind(d, sub);
            let mut s = json!({"name": format!("{}/{sub}", d.plural), "singularName": "", "namespaced": d.namespaced,
                "kind": k, "verbs": sub_verbs(sub)});
            if !g.is_empty() || *sub == "scale" {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn storage_hash(d: &ResourceDef) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (d.group, d.kind).hash(&mut h);
    let b = h.finish().to_le_bytes();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)[..11].to_string()
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|d| d.group == group)
        .map(|d| {
            let mut r = json!({"resource": d.plural,
                "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": d.singular, "verbs": d.verbs()});
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if d.in_all {
                r["categories"] = json!(["all"]);
            }
            let subs: Vec<Value> = d
                .subresources
                .iter()
                .map(|s| {
                    let (g, v, k) = sub_kind(d, s);
                    json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(s)})
                })
                .collect();
            if !subs.is_empty() {
                r["subresources"] = json!(subs);
            }
            r
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null},
        "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}

/// Aggregated discovery for /api (core) or /apis (all named groups).
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        groups().into_iter().map(aggregated_group).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_carry_scope_short_names_and_subresources() {
        let apps = resource_list("apps", "v1").unwrap();
        let res = apps["resources"].as_array().unwrap();
        let deploy = res.iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["singularName"], "deployment");
        assert_eq!(deploy["namespaced"], true);
        assert!(res.iter().any(|r| r["name"] == "deployments/status"));
        let core = resource_list("", "v1").unwrap();
        let ns = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "namespaces")
            .unwrap();
        assert_eq!(ns["namespaced"], false);
        assert!(resource_list("apps", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_shape() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
        let all = aggregated(false);
        let apps = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let d = &apps["versions"][0]["resources"][0];
        assert_eq!(d["scope"], "Namespaced");
        assert_eq!(aggregated(true)["items"][0]["metadata"]["name"], "");
    }
}
