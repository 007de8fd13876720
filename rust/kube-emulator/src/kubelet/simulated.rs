//! The scheduler and kubelet for the emulator's single node: pods are bound, get an IP and reach
//! the outcome their spec asks for (see README: image conventions and annotations).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apiserver::store::{State, meta_str};
use crate::controllers::events::{self, KUBELET, Record, SCHEDULER, Type};
use crate::controllers::{PodRuntime, Requeue, def, now_str};

pub use crate::controllers::NODE_NAME;
const HOST_IP: &str = "172.18.0.2";

/// Annotation: how long until the pod's containers start and become ready (e.g. `2s`, `500ms`).
pub const ANN_READY_AFTER: &str = "kube-emulator.fluo.dev/ready-after";
/// Annotation: `"true"` keeps the pod Running but never Ready.
pub const ANN_NEVER_READY: &str = "kube-emulator.fluo.dev/never-ready";
/// Annotation: for pods of Jobs (restartPolicy Never/OnFailure), how long containers run before exiting 0.
pub const ANN_RUN_FOR: &str = "kube-emulator.fluo.dev/run-for";
/// Annotation: interval between crash-loop restarts (default 1s).
pub const ANN_CRASH_PERIOD: &str = "kube-emulator.fluo.dev/crash-period";
/// Annotation: extra log lines (newline separated) for every container.
pub const ANN_LOG: &str = "kube-emulator.fluo.dev/log";
/// Annotation prefix: extra log lines for one container (`kube-emulator.fluo.dev/log.<container>`).
pub const ANN_LOG_CONTAINER_PREFIX: &str = "kube-emulator.fluo.dev/log.";
/// Annotation: port-forward targets (`8222=127.0.0.1:40000,...` or one `host:port` for all ports).
pub const ANN_PORT_FORWARD: &str = "kube-emulator.fluo.dev/port-forward";

/// An annotation's duration in the syntax of every fluo flag and file (`250ms`, `2s`, `1m`;
/// `fluo_cli::duration`); None when it is not one.
pub fn parse_duration(s: &str) -> Option<Duration> {
    fluo_cli::duration::parse(s).ok()
}

pub fn is_crashloop_image(image: &str) -> bool {
    image_tag(image) == Some("crashloop")
}

fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split('@')
        .next()
        .unwrap_or(last)
        .split_once(':')
        .map(|(_, t)| t)
}

fn is_missing_image(image: &str) -> bool {
    image
        .split(':')
        .next()
        .unwrap_or(image)
        .contains("does-not-exist")
}

fn is_invalid_image(image: &str) -> bool {
    let repo = image.split(['@']).next().unwrap_or(image);
    let repo = repo
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or(repo, |(r, _)| r);
    repo.is_empty()
        || repo
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        || image.ends_with(':')
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod["metadata"]["annotations"][key].as_str()
}

/// Why a container cannot be configured: a referenced ConfigMap/Secret (or key) is missing.
fn config_error(state: &State, pod: &Value, c: &Value) -> Option<String> {
    let ns = meta_str(pod, "namespace");
    let lookup = |kind: &str, name: &str| state.get(def("", kind), ns, name).cloned();
    for e in c["env"].as_array().into_iter().flatten() {
        for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
            let r = &e["valueFrom"][field];
            if r.is_null() || r["optional"] == true {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            let key = r["key"].as_str().unwrap_or("");
            match lookup(kind, name) {
                None => return Some(format!("{} \"{name}\" not found", kind.to_lowercase())),
                Some(obj) => {
                    let has =
                        obj["data"].get(key).is_some() || obj["binaryData"].get(key).is_some();
                    if !has {
                        return Some(format!("couldn't find key {key} in {kind} {ns}/{name}"));
                    }
                }
            }
        }
    }
    for e in c["envFrom"].as_array().into_iter().flatten() {
        for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
            let r = &e[field];
            if r.is_null() || r["optional"] == true {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            if lookup(kind, name).is_none() {
                return Some(format!("{} \"{name}\" not found", kind.to_lowercase()));
            }
        }
    }
    None
}

/// Volumes whose ConfigMap/Secret/claim is missing keep the pod in ContainerCreating.
fn volumes_ready(state: &State, pod: &Value) -> bool {
    let ns = meta_str(pod, "namespace");
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|v| {
            let check = |kind: &str, name: &Value, optional: &Value| {
                optional == true
                    || state
                        .get(def("", kind), ns, name.as_str().unwrap_or(""))
                        .is_some()
            };
            if !v["configMap"].is_null() {
                check(
                    "ConfigMap",
                    &v["configMap"]["name"],
                    &v["configMap"]["optional"],
                )
            } else if !v["secret"].is_null() {
                check(
                    "Secret",
                    &v["secret"]["secretName"],
                    &v["secret"]["optional"],
                )
            } else if !v["persistentVolumeClaim"].is_null() {
                check(
                    "PersistentVolumeClaim",
                    &v["persistentVolumeClaim"]["claimName"],
                    &Value::Null,
                )
            } else {
                true
            }
        })
}

/// Per-pod memory the kubelet keeps: when it first saw the pod.
pub struct Kubelet {
    ready_after: Duration,
    first_seen: HashMap<String, Instant>,
}

enum Outcome {
    Waiting(&'static str, String),
    Running { ready: bool },
    CrashLoop { restarts: i64, started: bool },
    Exited { code: i64 },
}

impl Kubelet {
    pub fn new(ready_after: Duration) -> Self {
        Self {
            ready_after,
            first_seen: HashMap::new(),
        }
    }

    /// Binds the pod and writes the status its spec leads to by now; returns when that status
    /// changes next on its own (a ready delay ends, a crash-looping container restarts, ...).
    fn reconcile_pod(&mut self, state: &mut State, pod: &Value, now: Instant) -> Requeue {
        let seen = *self
            .first_seen
            .entry(meta_str(pod, "uid").to_string())
            .or_insert(now);
        let elapsed = now.saturating_duration_since(seen);
        let mut next = pod.clone();
        let scheduling = next["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
        if scheduling {
            next["spec"]["nodeName"] = json!(NODE_NAME);
        }
        let (status, changes_in) = self.status_for(state, &next, elapsed);
        next["status"] = status;
        if next != *pod {
            let stored = state.replace(def("", "Pod"), next);
            if scheduling {
                let message = format!(
                    "Successfully assigned {}/{} to {NODE_NAME}",
                    meta_str(&stored, "namespace"),
                    meta_str(&stored, "name")
                );
                events::normal(state, SCHEDULER, &stored, "Scheduled", message);
            }
            self.record_container_events(state, &stored, &pod["status"]);
        }
        changes_in
    }

    /// The kubelet's container events for what changed between `old` status and the stored pod's:
    /// Pulling/Pulled/Created/Started once per container start, BackOff on each crash-loop
    /// restart, Failed (and the image back-off) when a container gets stuck waiting.
    fn record_container_events(&self, state: &mut State, pod: &Value, old: &Value) {
        let container_status = |status: &Value, name: &str| {
            status["containerStatuses"]
                .as_array()
                .and_then(|cs| cs.iter().find(|s| s["name"] == name))
                .cloned()
                .unwrap_or_default()
        };
        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in &containers {
            let name = c["name"].as_str().unwrap_or("");
            let image = c["image"].as_str().unwrap_or("");
            let before = container_status(old, name);
            let after = container_status(&pod["status"], name);
            let mut emit = |kind: Type, reason: &str, message: String| {
                let field_path = Some(format!("spec.containers{{{name}}}"));
                let record = Record {
                    source: KUBELET,
                    object: pod,
                    field_path,
                    kind,
                    reason,
                    message,
                };
                events::record(state, record);
            };
            let (starts_before, starts_after) = (starts(&before), starts(&after));
            if starts_after > starts_before {
                if starts_before == 0 {
                    emit(Type::Normal, "Pulling", format!("Pulling image {image:?}"));
                    let took = go_duration(self.ready_after(pod));
                    emit(
                        Type::Normal,
                        "Pulled",
                        format!(
                            "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: 0 bytes."
                        ),
                    );
                } else {
                    emit(
                        Type::Normal,
                        "Pulled",
                        format!("Container image {image:?} already present on machine"),
                    );
                }
                emit(Type::Normal, "Created", format!("Created container {name}"));
                emit(Type::Normal, "Started", format!("Started container {name}"));
            }
            let waiting = &after["state"]["waiting"];
            let reason = waiting["reason"].as_str().unwrap_or("");
            let message = waiting["message"].as_str().unwrap_or("").to_string();
            if reason == "CrashLoopBackOff" {
                if starts_after > starts_before {
                    emit(
                        Type::Warning,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {name} in pod {}_{}({})",
                            meta_str(pod, "name"),
                            meta_str(pod, "namespace"),
                            meta_str(pod, "uid")
                        ),
                    );
                }
                continue;
            }
            if waiting == &before["state"]["waiting"] {
                continue;
            }
            match reason {
                "ErrImagePull" => {
                    emit(Type::Normal, "Pulling", format!("Pulling image {image:?}"));
                    emit(
                        Type::Warning,
                        "Failed",
                        format!("Failed to pull image {image:?}: {message}"),
                    );
                    emit(Type::Warning, "Failed", "Error: ErrImagePull".into());
                }
                "ImagePullBackOff" => {
                    emit(Type::Normal, "BackOff", message);
                    emit(Type::Warning, "Failed", "Error: ImagePullBackOff".into());
                }
                "CreateContainerConfigError" => {
                    emit(Type::Warning, "Failed", format!("Error: {message}"));
                }
                "InvalidImageName" => {
                    emit(Type::Warning, "InspectFailed", message);
                    emit(Type::Warning, "Failed", "Error: InvalidImageName".into());
                }
                _ => {}
            }
        }
    }

    fn ready_after(&self, pod: &Value) -> Duration {
        annotation(pod, ANN_READY_AFTER)
            .and_then(parse_duration)
            .unwrap_or(self.ready_after)
    }

    /// Drops memory of pods that no longer exist (in case a deletion was not observed).
    fn retain_live_pods(&mut self, state: &State) {
        let live: HashSet<&str> = state
            .list(def("", "Pod"), None)
            .map(|p| meta_str(p, "uid"))
            .collect();
        self.first_seen.retain(|uid, _| live.contains(uid.as_str()));
    }

    /// What a container is doing `elapsed` after the pod was first seen, and how long until
    /// that changes by itself (None: only a change elsewhere can change it).
    fn outcome(
        &self,
        state: &State,
        pod: &Value,
        c: &Value,
        elapsed: Duration,
    ) -> (Outcome, Option<Duration>) {
        let image = c["image"].as_str().unwrap_or("");
        let ready_after = self.ready_after(pod);
        if is_invalid_image(image) {
            let message = format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            );
            return (Outcome::Waiting("InvalidImageName", message), None);
        }
        if let Some(msg) = config_error(state, pod, c) {
            return (Outcome::Waiting("CreateContainerConfigError", msg), None);
        }
        if elapsed < ready_after {
            let creating = Outcome::Waiting("ContainerCreating", String::new());
            return (creating, Some(ready_after - elapsed));
        }
        if !volumes_ready(state, pod) {
            return (Outcome::Waiting("ContainerCreating", String::new()), None);
        }
        if is_missing_image(image) {
            let backoff_at = ready_after + Duration::from_secs(1);
            return if elapsed < backoff_at {
                let message = format!("failed to pull and unpack image \"{image}\": not found");
                (
                    Outcome::Waiting("ErrImagePull", message),
                    Some(backoff_at - elapsed),
                )
            } else {
                let message = format!("Back-off pulling image \"{image}\"");
                (Outcome::Waiting("ImagePullBackOff", message), None)
            };
        }
        let run_time = elapsed - ready_after;
        let restart_policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
        if is_crashloop_image(image) {
            if restart_policy == "Never" {
                return (Outcome::Exited { code: 1 }, None);
            }
            let period = annotation(pod, ANN_CRASH_PERIOD)
                .and_then(parse_duration)
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(1));
            let restarts = (run_time.as_secs_f64() / period.as_secs_f64()) as i64;
            let next_restart = period.mul_f64((restarts + 1) as f64);
            let crash = Outcome::CrashLoop {
                restarts,
                started: restarts == 0,
            };
            return (crash, Some(next_restart.saturating_sub(run_time)));
        }
        let running = Outcome::Running {
            ready: annotation(pod, ANN_NEVER_READY) != Some("true"),
        };
        if restart_policy != "Always" {
            let run_for = annotation(pod, ANN_RUN_FOR)
                .and_then(parse_duration)
                .unwrap_or_default();
            if run_time >= run_for {
                return (Outcome::Exited { code: 0 }, None);
            }
            return (running, Some(run_for - run_time));
        }
        (running, None)
    }

    fn status_for(
        &self,
        state: &mut State,
        pod: &Value,
        elapsed: Duration,
    ) -> (Value, Option<Duration>) {
        let old = &pod["status"];
        let now = now_str();
        let start_time = old["startTime"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| now.clone());
        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut statuses = Vec::new();
        let mut next_change: Option<Duration> = None;
        let (mut all_ready, mut any_running, mut all_exited, mut any_failed) =
            (true, false, true, false);
        for c in &containers {
            let name = c["name"].as_str().unwrap_or("");
            let image = c["image"].as_str().unwrap_or("");
            let old_cs = old["containerStatuses"]
                .as_array()
                .and_then(|cs| cs.iter().find(|s| s["name"] == name))
                .cloned()
                .unwrap_or_default();
            let started_at = old_cs["state"]["running"]["startedAt"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| now.clone());
            let mut cs = json!({"name": name, "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0});
            let (outcome, changes_in) = self.outcome(state, pod, c, elapsed);
            next_change = match (next_change, changes_in) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match outcome {
                Outcome::Waiting(reason, message) => {
                    let mut w = json!({"reason": reason});
                    if !message.is_empty() {
                        w["message"] = json!(message);
                    }
                    cs["state"] = json!({"waiting": w});
                    all_ready = false;
                    all_exited = false;
                }
                Outcome::Running { ready } => {
                    cs["state"] = json!({"running": {"startedAt": started_at}});
                    cs["ready"] = json!(ready);
                    cs["started"] = json!(true);
                    cs["imageID"] = json!(format!("docker.io/library/{image}@sha256:emulated"));
                    cs["containerID"] = json!(format!(
                        "containerd://{}",
                        meta_str(pod, "uid").replace('-', "")
                    ));
                    all_ready &= ready;
                    any_running = true;
                    all_exited = false;
                }
                Outcome::CrashLoop { restarts, started } => {
                    let terminated = json!({"exitCode": 1, "reason": "Error", "startedAt": start_time, "finishedAt": start_time});
                    cs["restartCount"] = json!(restarts);
                    cs["containerID"] = json!(format!(
                        "containerd://{}{restarts}",
                        meta_str(pod, "uid").replace('-', "")
                    ));
                    if started {
                        cs["state"] = json!({"terminated": terminated});
                    } else {
                        cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                            "message": format!("back-off 10s restarting failed container={name} pod={}_{}({})",
                                meta_str(pod, "name"), meta_str(pod, "namespace"), meta_str(pod, "uid"))}});
                        cs["lastState"] = json!({"terminated": terminated});
                    }
                    all_ready = false;
                    any_running = true;
                    all_exited = false;
                }
                Outcome::Exited { code } => {
                    cs["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                        "startedAt": start_time, "finishedAt": now}});
                    if let Some(prev) = old_cs["state"]["terminated"].as_object() {
                        cs["state"]["terminated"] = json!(prev);
                    }
                    all_ready = false;
                    any_failed |= code != 0;
                }
            }
            statuses.push(cs);
        }
        let phase = if all_exited && !containers.is_empty() {
            if any_failed { "Failed" } else { "Succeeded" }
        } else if any_running {
            "Running"
        } else {
            "Pending"
        };
        let pod_ip = old["podIP"]
            .as_str()
            .map(str::to_string)
            .or_else(|| (phase != "Pending").then(|| state.allocate_pod_ip()));
        let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
        let ready_status = if all_ready && phase == "Running" {
            "True"
        } else {
            "False"
        };
        let reason = if ready_status == "True" {
            ""
        } else if phase == "Succeeded" || phase == "Failed" {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let set = |conds: &mut Vec<Value>, t: &str, s: &str, reason: &str| {
            let pos = conds.iter().position(|c| c["type"] == t);
            if let Some(i) = pos
                && conds[i]["status"] == s
            {
                return;
            }
            let mut c = json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": now_str()});
            if !reason.is_empty() {
                c["reason"] = json!(reason);
            }
            match pos {
                Some(i) => conds[i] = c,
                None => conds.push(c),
            }
        };
        let started = phase != "Pending"
            || statuses
                .iter()
                .any(|s| s["state"]["waiting"]["reason"] != "ContainerCreating");
        set(
            &mut conditions,
            "PodReadyToStartContainers",
            if started { "True" } else { "False" },
            "",
        );
        set(&mut conditions, "Initialized", "True", "");
        set(&mut conditions, "Ready", ready_status, reason);
        set(&mut conditions, "ContainersReady", ready_status, reason);
        set(&mut conditions, "PodScheduled", "True", "");
        let mut status = json!({"phase": phase, "conditions": conditions, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
            "startTime": start_time, "containerStatuses": statuses, "qosClass": "BestEffort"});
        if let Some(ip) = pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        (status, next_change)
    }
}

impl PodRuntime for Kubelet {
    fn reconcile(&mut self, state: &mut State, pod: &Value, now: Instant) -> Requeue {
        self.reconcile_pod(state, pod, now)
    }

    fn pod_deleted(&mut self, state: &mut State, pod: &Value) {
        self.first_seen.remove(meta_str(pod, "uid"));
        record_pod_deleted(state, pod);
    }

    fn retain_live(&mut self, state: &State) {
        self.retain_live_pods(state);
    }
}

/// How many times a container has been started, as its status tells: once it ran (running,
/// exited, or backing off after a crash), the initial start plus its restarts.
fn starts(status: &Value) -> i64 {
    let state = &status["state"];
    let ran = state["running"].is_object()
        || state["terminated"].is_object()
        || state["waiting"]["reason"] == "CrashLoopBackOff";
    if ran {
        status["restartCount"].as_i64().unwrap_or(0) + 1
    } else {
        0
    }
}

/// A duration the way Go prints it (`50ms`, `1.5s`), as the kubelet's pull message does.
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// The kubelet's container events when a running pod is deleted: `Killing` per live container.
pub fn record_pod_deleted(state: &mut State, pod: &Value) {
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if !cs["state"]["running"].is_object() {
            continue;
        }
        let name = cs["name"].as_str().unwrap_or("");
        let record = Record {
            source: KUBELET,
            object: pod,
            field_path: Some(format!("spec.containers{{{name}}}")),
            kind: Type::Normal,
            reason: "Killing",
            message: format!("Stopping container {name}"),
        };
        events::record(state, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_image_conventions() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), None, "a unit is required");
        assert_eq!(parse_duration("abc"), None);
        assert!(is_crashloop_image("registry.local:5000/app:crashloop"));
        assert!(!is_crashloop_image("registry.local:5000/crashloop:1"));
        assert!(is_missing_image("ghcr.io/acme/does-not-exist:1.0"));
        assert!(is_invalid_image("Bad/Image:1"));
        assert!(!is_invalid_image("registry.local:5000/app:1.2"));
    }
}
