//! `meta.k8s.io/v1` Table responses for `kubectl get`, with the printer columns of the real
//! apiserver for the common kinds and NAME/AGE for the rest.

use serde_json::{Value, json};

use crate::apiserver::resources::ResourceDef;

pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|m| m.contains("as=Table") && m.contains("v=v1") && !m.contains("v=v1beta1"))
}

/// Age like apimachinery's `duration.HumanDuration`: 5s, 3m20s, 2d3h, ...
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return two_units(m, "m", s % 60, "s");
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        return two_units(h, "h", m % 60, "m");
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        return two_units(d, "d", h % 24, "h");
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

/// `{n}{unit}` and then `{rest}{rest_unit}` unless the rest is zero: 3m20s, 2h, 2d3h.
fn two_units(n: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

fn age(obj: &Value) -> String {
    since(&obj["metadata"]["creationTimestamp"])
}

/// How long ago an RFC 3339 timestamp was, as the printers show it.
fn since(timestamp: &Value) -> String {
    timestamp
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// The printers' Event row: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, plus the wide columns.
fn event_row(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let involved = &obj["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let source = match (
        obj["source"]["component"].as_str(),
        obj["source"]["host"].as_str(),
    ) {
        (Some(c), Some(h)) if !h.is_empty() => format!("{c}, {h}"),
        (Some(c), _) => c.to_string(),
        _ => obj["reportingComponent"].as_str().unwrap_or("").to_string(),
    };
    (
        vec![
            col("Last Seen", "string", 0, ""),
            col("Type", "string", 0, ""),
            col("Reason", "string", 0, ""),
            col("Object", "string", 0, ""),
            col("Subobject", "string", 1, ""),
            col("Source", "string", 1, ""),
            col("Message", "string", 0, ""),
            col("First Seen", "string", 1, ""),
            col("Count", "integer", 1, ""),
            col("Name", "string", 1, ""),
        ],
        vec![
            json!(since(&obj["lastTimestamp"])),
            obj["type"].clone(),
            obj["reason"].clone(),
            json!(target),
            json!(involved["fieldPath"].as_str().unwrap_or("")),
            json!(source),
            json!(obj["message"].as_str().unwrap_or("").trim()),
            json!(since(&obj["firstTimestamp"])),
            json!(obj["count"].as_i64().unwrap_or(1)),
            obj["metadata"]["name"].clone(),
        ],
    )
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" },
        "description": description, "priority": priority})
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

/// The wide CONTAINERS and IMAGES columns of workloads with a pod template.
fn template_columns() -> [Value; 2] {
    [
        col(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        ),
    ]
}

fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    parts.join(",")
}

/// The pod STATUS column, computed like kubectl's printer: reason, then waiting/terminated reasons.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = cs["state"]["waiting"]["reason"].as_str() {
            reason = r.to_string();
        } else if let Some(r) = cs["state"]["terminated"]["reason"].as_str() {
            reason = r.to_string();
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    reason
}

fn columns_and_cells(def: &ResourceDef, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(obj["metadata"]["name"]);
    let age = json!(age(obj));
    let name_col = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match (def.group, def.kind) {
        ("apps", "Deployment") => {
            let (c, i) = containers_and_images(&obj["spec"]["template"]["spec"]);
            let [containers_col, images_col] = template_columns();
            let s = &obj["status"];
            (
                vec![
                    name_col,
                    col("Ready", "string", 0, "Number of the pod with ready state"),
                    col(
                        "Up-to-date",
                        "string",
                        0,
                        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    ),
                    col(
                        "Available",
                        "string",
                        0,
                        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    ),
                    age_col,
                    containers_col,
                    images_col,
                    col("Selector", "string", 1, "Label selector for pods."),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(&s["readyReplicas"]),
                        int(&obj["spec"]["replicas"])
                    )),
                    json!(int(&s["updatedReplicas"])),
                    json!(int(&s["availableReplicas"])),
                    age,
                    json!(c),
                    json!(i),
                    json!(selector_string(&obj["spec"]["selector"])),
                ],
            )
        }
        ("apps", "StatefulSet") => {
            let (c, i) = containers_and_images(&obj["spec"]["template"]["spec"]);
            let [containers_col, images_col] = template_columns();
            (
                vec![
                    name_col,
                    col("Ready", "string", 0, "Number of the pod with ready state"),
                    age_col,
                    containers_col,
                    images_col,
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(&obj["status"]["readyReplicas"]),
                        int(&obj["spec"]["replicas"])
                    )),
                    age,
                    json!(c),
                    json!(i),
                ],
            )
        }
        ("apps", "ReplicaSet") => (
            vec![
                name_col,
                col("Desired", "integer", 0, "Number of desired pods."),
                col("Current", "integer", 0, "Number of actual pods."),
                col("Ready", "integer", 0, "Number of ready pods."),
                age_col,
            ],
            vec![
                name,
                json!(int(&obj["spec"]["replicas"])),
                json!(int(&obj["status"]["replicas"])),
                json!(int(&obj["status"]["readyReplicas"])),
                age,
            ],
        ),
        ("apps", "DaemonSet") => {
            let s = &obj["status"];
            (
                vec![
                    name_col,
                    col("Desired", "integer", 0, ""),
                    col("Current", "integer", 0, ""),
                    col("Ready", "integer", 0, ""),
                    col("Up-to-date", "integer", 0, ""),
                    col("Available", "integer", 0, ""),
                    col("Node Selector", "string", 0, ""),
                    age_col,
                ],
                vec![
                    name,
                    json!(int(&s["desiredNumberScheduled"])),
                    json!(int(&s["currentNumberScheduled"])),
                    json!(int(&s["numberReady"])),
                    json!(int(&s["updatedNumberScheduled"])),
                    json!(int(&s["numberAvailable"])),
                    json!("<none>"),
                    age,
                ],
            )
        }
        ("", "Pod") => {
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            (
                vec![
                    name_col,
                    col(
                        "Ready",
                        "string",
                        0,
                        "The aggregate readiness state of this pod for accepting traffic.",
                    ),
                    col(
                        "Status",
                        "string",
                        0,
                        "The aggregate status of the containers in this pod.",
                    ),
                    col(
                        "Restarts",
                        "string",
                        0,
                        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                    ),
                    age_col,
                    col("IP", "string", 1, "IP address allocated to the pod."),
                    col(
                        "Node",
                        "string",
                        1,
                        "Name of the Node this pod is assigned to.",
                    ),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(obj)),
                    json!(restarts.to_string()),
                    age,
                    json!(obj["status"]["podIP"].as_str().unwrap_or("<none>")),
                    json!(obj["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                ],
            )
        }
        ("", "Service") => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let external = obj["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .unwrap_or("<none>");
            (
                vec![
                    name_col,
                    col("Type", "string", 0, ""),
                    col("Cluster-IP", "string", 0, ""),
                    col("External-IP", "string", 0, ""),
                    col("Port(s)", "string", 0, ""),
                    age_col,
                ],
                vec![
                    name,
                    obj["spec"]["type"].clone(),
                    json!(obj["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                    json!(external),
                    json!(ports.join(",")),
                    age,
                ],
            )
        }
        ("batch", "Job") => {
            let s = &obj["status"];
            let conds = s["conditions"].as_array().cloned().unwrap_or_default();
            let status = if conds
                .iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
            {
                "Complete"
            } else if conds
                .iter()
                .any(|c| c["type"] == "Failed" && c["status"] == "True")
            {
                "Failed"
            } else {
                "Running"
            };
            (
                vec![
                    name_col,
                    col("Status", "string", 0, ""),
                    col("Completions", "string", 0, ""),
                    age_col,
                ],
                vec![
                    name,
                    json!(status),
                    json!(format!(
                        "{}/{}",
                        int(&s["succeeded"]),
                        int(&obj["spec"]["completions"])
                    )),
                    age,
                ],
            )
        }
        ("", "Namespace") => (
            vec![name_col, col("Status", "string", 0, ""), age_col],
            vec![name, obj["status"]["phase"].clone(), age],
        ),
        ("", "PersistentVolumeClaim") => (
            vec![
                name_col,
                col("Status", "string", 0, ""),
                col("Volume", "string", 0, ""),
                col("Capacity", "string", 0, ""),
                age_col,
            ],
            vec![
                name,
                obj["status"]["phase"].clone(),
                obj["spec"]["volumeName"].clone(),
                json!(obj["status"]["capacity"]["storage"].as_str().unwrap_or("")),
                age,
            ],
        ),
        ("", "ConfigMap") => (
            vec![name_col, col("Data", "integer", 0, ""), age_col],
            vec![
                name,
                json!(
                    obj["data"].as_object().map_or(0, |m| m.len())
                        + obj["binaryData"].as_object().map_or(0, |m| m.len())
                ),
                age,
            ],
        ),
        ("", "Secret") => (
            vec![
                name_col,
                col("Type", "string", 0, ""),
                col("Data", "integer", 0, ""),
                age_col,
            ],
            vec![
                name,
                obj["type"].clone(),
                json!(obj["data"].as_object().map_or(0, |m| m.len())),
                age,
            ],
        ),
        ("", "Event") => event_row(obj),
        _ => (vec![name_col, age_col], vec![name, age]),
    }
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// Renders objects as a Table; `include_object` is the request's includeObject (None, Metadata, Object).
pub fn render(
    def: &ResourceDef,
    objects: &[Value],
    include_object: &str,
    resource_version: &str,
    continue_token: Option<&Value>,
) -> Value {
    let mut columns = None;
    let mut rows = Vec::new();
    for o in objects {
        let (cols, cells) = columns_and_cells(def, o);
        columns.get_or_insert(cols);
        let object = match include_object {
            "None" => Value::Null,
            "Object" => {
                let mut full = o.clone();
                full["apiVersion"] = json!(def.api_version());
                full["kind"] = json!(def.kind);
                full
            }
            _ => partial(o),
        };
        rows.push(json!({"cells": cells, "object": object}));
    }
    let columns = columns.unwrap_or_else(|| {
        columns_and_cells(def, &json!({"metadata": {}, "spec": {}, "status": {}})).0
    });
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        meta["continue"] = c.clone();
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;

    #[test]
    fn deployment_columns() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = json!({"metadata":{"name":"web","creationTimestamp":"2020-01-01T00:00:00Z"},
            "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"a","image":"i:1"}]}}},
            "status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}});
        let t = render(d, &[obj], "Metadata", "5", None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            &names[..5],
            &["Name", "Ready", "Up-to-date", "Available", "Age"]
        );
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn ages_and_pod_status() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5), "5h");
        let pod = json!({"status":{"phase":"Running","containerStatuses":[{"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&pod), "CrashLoopBackOff");
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
    }
}
