//! A container's environment as the kubelet builds it: `env` (values with `$(VAR)` expansion,
//! ConfigMap/Secret keys, `fieldRef`, `resourceFieldRef`) and `envFrom`, plus the in-cluster API
//! variables; and `$(VAR)` expansion of command and args.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::apiserver::resources::by_kind;
use crate::apiserver::store::State;

/// Why a container cannot be created (the kubelet's CreateContainerConfigError message).
pub type ConfigError = String;

/// What the environment may refer to besides the store.
pub struct PodFacts<'a> {
    pub pod: &'a Value,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub api_host: &'a str,
}

fn object(state: &State, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let def = by_kind("", kind).expect("core kinds are served");
    state.get(def, ns, name).cloned()
}

/// The string values of a ConfigMap (data) or Secret (base64-decoded data, stringData merged).
pub fn values_of(kind: &str, obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let s = v.as_str().unwrap_or("");
            let bytes = if kind == "Secret" {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_default()
            } else {
                s.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = obj["binaryData"].as_object() {
        for (k, v) in data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .unwrap_or_default();
            out.insert(k.clone(), bytes);
        }
    }
    out
}

/// A pod field by `fieldPath` (metadata.name, metadata.labels['k'], status.podIP, ...).
pub fn field(facts: &PodFacts<'_>, path: &str) -> Option<String> {
    let pod = facts.pod;
    let meta = &pod["metadata"];
    let indexed = |prefix: &str, map: &Value| -> Option<Option<String>> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map[key].as_str().map(str::to_string))
    };
    if let Some(v) = indexed("metadata.labels['", &meta["labels"]) {
        return Some(v.unwrap_or_default());
    }
    if let Some(v) = indexed("metadata.annotations['", &meta["annotations"]) {
        return Some(v.unwrap_or_default());
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let map_lines = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    Some(match path {
        "metadata.name" => text(&meta["name"]),
        "metadata.namespace" => text(&meta["namespace"]),
        "metadata.uid" => text(&meta["uid"]),
        "metadata.labels" => map_lines(&meta["labels"]),
        "metadata.annotations" => map_lines(&meta["annotations"]),
        "spec.nodeName" => text(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => text(&pod["spec"]["serviceAccountName"]),
        "status.podIP" | "status.podIPs" => facts.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        _ => return None,
    })
}

/// A container resource by `resourceFieldRef` (limits.memory, requests.cpu, ...), in the
/// divisor's units (default 1), rounded up as the kubelet does.
pub fn resource(container: &Value, resource: &str, divisor: Option<&str>) -> Option<String> {
    let (section, name) = resource.split_once('.')?;
    let raw = container["resources"][section][name]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            container["resources"][section][name]
                .as_f64()
                .map(|n| n.to_string())
        });
    let value = match raw {
        Some(r) => quantity(&r)?,
        // Unset limits default to the node's allocatable; report a large, honest node size.
        None if section == "limits" && name == "cpu" => 2.0,
        None if section == "limits" && name == "memory" => 8.0 * 1024.0 * 1024.0 * 1024.0,
        None => 0.0,
    };
    let divisor = quantity(divisor.unwrap_or("1")).filter(|d| *d > 0.0)?;
    Some(((value / divisor).ceil() as i64).to_string())
}

/// A Kubernetes quantity (`250m`, `64Mi`, `1G`, `2`) as a number.
pub fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}

/// Expands `$(VAR)` from `env`; `$$(VAR)` is a literal `$(VAR)`; unknown references stay.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
            continue;
        }
        if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
            continue;
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The container's environment, in the kubelet's order: envFrom, then env (later wins), with
/// `$(VAR)` in values expanded against what came before.
pub fn build(
    state: &State,
    facts: &PodFacts<'_>,
    container: &Value,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = facts.pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut env: Vec<(String, String)> = vec![
        ("KUBERNETES_SERVICE_HOST".into(), facts.api_host.into()),
        ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), "443".into()),
    ];
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        for (kind, key) in [("ConfigMap", "configMapRef"), ("Secret", "secretRef")] {
            let r = &from[key];
            if r.is_null() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            match object(state, kind, ns, name) {
                Some(obj) => {
                    for (k, v) in values_of(kind, &obj) {
                        set(&mut env, format!("{prefix}{k}"), lossy(v));
                    }
                }
                None if r["optional"] == true => {}
                None => return Err(format!("{} \"{name}\" not found", kind.to_lowercase())),
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let from = &e["valueFrom"];
        let value = if from.is_null() {
            expand(e["value"].as_str().unwrap_or(""), &env)
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            field(facts, path).ok_or_else(|| format!("unsupported fieldPath {path:?}"))?
        } else if !from["resourceFieldRef"].is_null() {
            let r = &from["resourceFieldRef"];
            let res = r["resource"].as_str().unwrap_or("");
            resource(container, res, r["divisor"].as_str())
                .ok_or_else(|| format!("unsupported resourceFieldRef {res:?}"))?
        } else {
            match key_ref(state, ns, from)? {
                Some(v) => v,
                None => continue,
            }
        };
        set(&mut env, name, value);
    }
    Ok(env)
}

/// A `configMapKeyRef` / `secretKeyRef` value; None when optional and missing.
fn key_ref(state: &State, ns: &str, from: &Value) -> Result<Option<String>, ConfigError> {
    for (kind, key) in [("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")] {
        let r = &from[key];
        if r.is_null() {
            continue;
        }
        let name = r["name"].as_str().unwrap_or("");
        let k = r["key"].as_str().unwrap_or("");
        let optional = r["optional"] == true;
        let Some(obj) = object(state, kind, ns, name) else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("{} \"{name}\" not found", kind.to_lowercase()))
            };
        };
        return match values_of(kind, &obj).remove(k) {
            Some(v) => Ok(Some(lossy(v))),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {k} in {kind} {ns}/{name}")),
        };
    }
    Ok(None)
}

fn lossy(v: Vec<u8>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_the_kubelet() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B".into(), "two".into()),
        ];
        assert_eq!(expand("$(A)-$(B)", &env), "1-two");
        assert_eq!(expand("$$(A) $(C) $ x$", &env), "$(A) $(C) $ x$");
    }

    #[test]
    fn fields_and_resources() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
            "spec": {"nodeName": "n"}});
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "10.244.1.2",
            host_ip: "10.244.1.1",
            api_host: "10.96.1.1",
        };
        assert_eq!(field(&facts, "metadata.name").unwrap(), "p");
        assert_eq!(field(&facts, "status.podIP").unwrap(), "10.244.1.2");
        assert_eq!(field(&facts, "metadata.labels['app']").unwrap(), "x");
        assert!(field(&facts, "spec.bogus").is_none());
        let c = json!({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}});
        assert_eq!(resource(&c, "limits.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(resource(&c, "limits.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(resource(&c, "limits.cpu", None).unwrap(), "1");
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
    }
}
