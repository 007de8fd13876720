//! What the apiserver does to an object before storing it: defaulting (as the types' defaulters
//! do), validation (422 Invalid with field causes) and the ServiceAccount admission check.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::apiserver::resources::{ResourceDef, by_kind};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::ApiError;
use crate::apiserver::store::State;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.into(), v);
    }
}

fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split_once(':').map(|(_, t)| t)
}

pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    for field in ["containers", "initContainers"] {
        for c in spec[field].as_array_mut().into_iter().flatten() {
            let image = c["image"].as_str().unwrap_or("").to_string();
            let pull = match image_tag(&image) {
                None | Some("latest") => "Always",
                _ => "IfNotPresent",
            };
            set_default(c, "imagePullPolicy", json!(pull));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

fn default_template(spec: &mut Value) {
    if spec.get("template").is_some() && spec["template"].get("spec").is_some() {
        default_pod_spec(&mut spec["template"]["spec"]);
    }
}

/// Applies the defaulting every write goes through.
pub fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    match (def.group, def.kind) {
        ("apps", "Deployment") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                set_default(&mut spec["strategy"], "rollingUpdate", json!({}));
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxSurge",
                    json!("25%"),
                );
                set_default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
            }
            default_template(spec);
        }
        ("apps", "ReplicaSet") => {
            set_default(&mut obj["spec"], "replicas", json!(1));
            default_template(&mut obj["spec"]);
        }
        ("apps", "StatefulSet") => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            default_template(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = &mut obj["spec"];
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default_template(spec);
        }
        ("batch", "Job") => {
            let spec = &mut obj["spec"];
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "completions", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            default_template(spec);
        }
        ("", "Pod") => {
            default_pod_spec(&mut obj["spec"]);
            set_default(&mut obj["spec"], "serviceAccountName", json!("default"));
            set_default(&mut obj["spec"], "enableServiceLinks", json!(true));
            set_default(&mut obj["spec"], "priority", json!(0));
        }
        ("", "Service") => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
        }
        ("", "Secret") => {
            set_default(obj, "type", json!("Opaque"));
            if let Some(Value::Object(string_data)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                let data = obj
                    .as_object_mut()
                    .expect("secret is an object")
                    .entry("data")
                    .or_insert_with(|| json!({}));
                for (k, v) in string_data {
                    let encoded =
                        base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""));
                    data[k] = json!(encoded);
                }
            }
        }
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            set_default(&mut obj["metadata"], "labels", json!({}));
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            set_default(obj, "spec", json!({"finalizers": ["kubernetes"]}));
        }
        ("", "PersistentVolumeClaim") => {
            set_default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            set_default(&mut obj["spec"], "storageClassName", json!("standard"));
        }
        _ => {}
    }
}

/// Jobs without `manualSelector` select their pods by controller uid, as the Job strategy sets.
pub fn default_job_selector(job: &mut Value, uid: &Value) {
    if job["spec"]["manualSelector"] == true || !job["spec"]["selector"].is_null() {
        return;
    }
    let name = job["metadata"]["name"].clone();
    job["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("controller-uid", uid),
        ("batch.kubernetes.io/job-name", &name),
        ("job-name", &name),
    ] {
        labels[k] = v.clone();
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

type Causes = Vec<(String, String)>;

fn validate_containers(spec: &Value, path: &str, causes: &mut Causes) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push((format!("{path}.containers"), "Required value".into()));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push((
                format!("{path}.containers[{i}].name"),
                "Required value".into(),
            ));
        } else if !is_dns_label(name) {
            causes.push((
                format!("{path}.containers[{i}].name"),
                format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
            ));
        } else if seen.contains(&name) {
            causes.push((
                format!("{path}.containers[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        seen.push(name);
        if c["image"].as_str().unwrap_or("").is_empty() {
            causes.push((
                format!("{path}.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

fn validate_workload(spec: &Value, causes: &mut Causes) {
    let sel = &spec["selector"];
    if sel.is_null() || (sel["matchLabels"].is_null() && sel["matchExpressions"].is_null()) {
        causes.push(("spec.selector".into(), "Required value".into()));
    } else {
        let labels = &spec["template"]["metadata"]["labels"];
        if !LabelSelector::from_object(sel).matches(labels) {
            causes.push((
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    labels
                ),
            ));
        }
    }
    validate_containers(&spec["template"]["spec"], "spec.template.spec", causes);
    for (k, f) in [("replicas", "spec.replicas")] {
        if spec[k].as_i64().is_some_and(|r| r < 0) {
            causes.push((
                f.into(),
                "Invalid value: must be greater than or equal to 0".into(),
            ));
        }
    }
}

/// Validates an object about to be stored; `old` is the stored version on updates.
/// The ServiceAccount admission plugin: a pod naming a ServiceAccount that does not exist is
/// refused (the ReplicaSet controller then reports FailedCreate / ReplicaFailure). The
/// namespace's `default` account is exempt here because the emulator creates it asynchronously
/// (a real cluster has the same race right after a namespace is created).
pub fn check_service_account(
    state: &State,
    def: &ResourceDef,
    pod: &Value,
) -> Result<(), ApiError> {
    if (def.group, def.kind) != ("", "Pod") {
        return Ok(());
    }
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let sa_def = by_kind("", "ServiceAccount").expect("service accounts are served");
    if account == "default" || state.get(sa_def, ns, account).is_some() {
        return Ok(());
    }
    let name = pod["metadata"]["generateName"]
        .as_str()
        .filter(|g| !g.is_empty())
        .or_else(|| pod["metadata"]["name"].as_str())
        .unwrap_or("");
    Err(ApiError::forbidden(
        def,
        name,
        &format!(
            "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
        ),
    ))
}

pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut causes: Causes = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let label_names = matches!(def.kind, "Namespace" | "Service");
    if name.is_empty() {
        causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if (label_names && !is_dns_label(name)) || (!label_names && !is_dns_subdomain(name)) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                if label_names { "label" } else { "subdomain" }),
        ));
    }
    for (k, v) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        let value = v.as_str().unwrap_or("");
        if !is_label_value(value) {
            causes.push((
                "metadata.labels".into(),
                format!("Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.' (label {k})"),
            ));
        }
    }
    match (def.group, def.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            validate_workload(&obj["spec"], &mut causes);
            if let Some(old) = old
                && old["spec"]["selector"] != obj["spec"]["selector"]
            {
                causes.push((
                    "spec.selector".into(),
                    format!(
                        "Invalid value: {}: field is immutable",
                        obj["spec"]["selector"]
                    ),
                ));
            }
        }
        ("batch", "Job") => {
            validate_containers(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut causes,
            );
            let rp = obj["spec"]["template"]["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("");
            if !matches!(rp, "Never" | "OnFailure") {
                causes.push((
                    "spec.template.spec.restartPolicy".into(),
                    format!(
                        "Unsupported value: {rp:?}: supported values: \"OnFailure\", \"Never\""
                    ),
                ));
            }
            if let Some(old) = old
                && old["spec"]["template"] != obj["spec"]["template"]
            {
                causes.push((
                    "spec.template".into(),
                    "Invalid value: field is immutable".into(),
                ));
            }
        }
        ("", "Pod") => validate_containers(&obj["spec"], "spec", &mut causes),
        ("", "Service") => {
            let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
            let headless = obj["spec"]["clusterIP"] == "None";
            if ty != "ExternalName"
                && !headless
                && obj["spec"]["ports"].as_array().is_none_or(|p| p.is_empty())
            {
                causes.push(("spec.ports".into(), "Required value".into()));
            }
            for (i, p) in obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !p["port"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    causes.push((
                        format!("spec.ports[{i}].port"),
                        "Invalid value: must be between 1 and 65535, inclusive".into(),
                    ));
                }
            }
            if let Some(old) = old
                && old["spec"]["clusterIP"].is_string()
                && obj["spec"]["clusterIP"].is_string()
                && old["spec"]["clusterIP"] != obj["spec"]["clusterIP"]
            {
                causes.push((
                    "spec.clusterIPs[0]".into(),
                    "Invalid value: field is immutable".into(),
                ));
            }
        }
        ("", "ConfigMap" | "Secret") => {
            for field in ["data", "binaryData"] {
                for k in obj[field].as_object().map(Map::keys).into_iter().flatten() {
                    if k.is_empty()
                        || !k
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    {
                        causes.push((format!("{field}[{k}]"), format!("Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'")));
                    }
                }
            }
            if def.kind == "Secret" {
                for (k, v) in obj["data"].as_object().into_iter().flatten() {
                    if base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap_or(""))
                        .is_err()
                    {
                        causes.push((
                            format!("data[{k}]"),
                            "Invalid value: illegal base64 data".into(),
                        ));
                    }
                }
                if let Some(old) = old
                    && old["type"] != obj["type"]
                {
                    causes.push(("type".into(), "Invalid value: field is immutable".into()));
                }
            }
        }
        ("coordination.k8s.io", "Lease")
            if obj["spec"]["leaseDurationSeconds"]
                .as_i64()
                .is_some_and(|d| d <= 0) =>
        {
            causes.push((
                "spec.leaseDurationSeconds".into(),
                "Invalid value: must be greater than 0".into(),
            ));
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def, name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn pods_naming_a_missing_service_account_are_forbidden() {
        let store = crate::apiserver::store::Store::new(16);
        let mut state = store.lock();
        let pod_def = by_kind("", "Pod").unwrap();
        let pod = |account: &str| {
            yaml(&format!(
                "metadata: {{generateName: web-5d4f-, namespace: fluo}}\nspec: {{serviceAccountName: {account}}}"
            ))
        };
        let err = check_service_account(&state, pod_def, &pod("web")).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"web-5d4f-\" is forbidden: error looking up service account fluo/web: serviceaccount \"web\" not found"
        );
        assert!(check_service_account(&state, pod_def, &pod("default")).is_ok());
        let sa_def = by_kind("", "ServiceAccount").unwrap();
        state.insert(sa_def, yaml("metadata: {name: web, namespace: fluo}"));
        assert!(check_service_account(&state, pod_def, &pod("web")).is_ok());
        let deployment = by_kind("apps", "Deployment").unwrap();
        assert!(check_service_account(&state, deployment, &pod("missing")).is_ok());
    }

    #[test]
    fn deployment_defaults() {
        let d = by_kind("apps", "Deployment").unwrap();
        let mut obj = yaml(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: app, image: 'nginx:1.27', ports: [{containerPort: 80}]}\n",
        );
        apply_defaults(d, &mut obj);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(obj["spec"]["progressDeadlineSeconds"], 600);
        let c = &obj["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert!(validate(d, &obj, None).is_ok());
    }

    #[test]
    fn selector_must_match_template() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = yaml(
            "metadata: {name: web}\nspec:\n  selector: {matchLabels: {app: other}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app}]}\n",
        );
        let err = validate(d, &obj, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].image: Required value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn names_and_secret_string_data() {
        let s = by_kind("", "Secret").unwrap();
        let mut obj = yaml("metadata: {name: Bad_Name}\nstringData: {password: hunter2}\n");
        apply_defaults(s, &mut obj);
        assert_eq!(obj["data"]["password"], "aHVudGVyMg==");
        assert!(obj.get("stringData").is_none());
        assert!(
            validate(s, &obj, None)
                .unwrap_err()
                .message
                .contains("metadata.name: Invalid value")
        );
    }
}
