//! Container startup: image pull errors, crash loops (exit code, last log lines, previous
//! termination reason), OOMKilled against the memory limit, unschedulable pods and probe
//! failures with the probe's own message (from the kubelet's `Unhealthy` events).

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

use super::snapshot::{Snapshot, component_of, events_for, name_of};
use super::{Family, Finding};

const PULL_ERRORS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

pub fn findings(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in &snapshot.pods {
        out.extend(unschedulable(snapshot, pod));
        out.extend(probe_failures(snapshot, pod));
        for cs in crate::readiness::container_statuses(pod) {
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == cs.name));
            out.extend(image_pull(pod, cs));
            out.extend(oom_killed(pod, cs, container));
            out.extend(crash_loop(snapshot, pod, cs));
        }
    }
    out
}

fn finding(pod: &Pod, pattern: &'static str, evidence: Vec<String>, hint: String) -> Finding {
    Finding {
        family: Family::Startup,
        pattern,
        component: component_of(&pod.metadata),
        object: format!("Pod/{}", name_of(&pod.metadata)),
        evidence,
        hint,
    }
}

fn waiting_reason(cs: &ContainerStatus) -> Option<(&str, &str)> {
    let w = cs.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.as_deref().unwrap_or(""),
        w.message.as_deref().unwrap_or(""),
    ))
}

fn image_pull(pod: &Pod, cs: &ContainerStatus) -> Option<Finding> {
    let (reason, message) = waiting_reason(cs)?;
    if !PULL_ERRORS.contains(&reason) {
        return None;
    }
    let mut evidence = vec![format!(
        "container {} waiting: {reason} (image {})",
        cs.name, cs.image
    )];
    if !message.is_empty() {
        evidence.push(message.to_string());
    }
    let hint = if reason == "InvalidImageName" {
        "the image reference is malformed: fix the tag/registry in component.toml or --image"
    } else {
        "check that the image exists in the registry (name and tag), that the registry is reachable \
         and that imagePullSecrets grant access; then redeploy or roll back"
    };
    Some(finding(pod, "image-pull", evidence, hint.into()))
}

fn crash_loop(snapshot: &Snapshot, pod: &Pod, cs: &ContainerStatus) -> Option<Finding> {
    let (reason, _) = waiting_reason(cs)?;
    if reason != "CrashLoopBackOff" {
        return None;
    }
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    if last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        return None; // reported as oom-killed, with the limit
    }
    let mut evidence = vec![format!(
        "container {} in CrashLoopBackOff after {} restarts",
        cs.name, cs.restart_count
    )];
    if let Some(t) = last {
        evidence.push(format!(
            "previous container exited with code {} (reason {})",
            t.exit_code,
            t.reason.as_deref().unwrap_or("unknown")
        ));
    }
    let pod_name = name_of(&pod.metadata);
    if let Some(lines) = snapshot.logs.get(&(pod_name, cs.name.clone())) {
        evidence.extend(lines.iter().map(|l| format!("log: {l}")));
    }
    Some(finding(
        pod,
        "crash-loop",
        evidence,
        "read the last log lines above for the failing start-up step; `fluo-deploy logs <component>` \
         for more; roll back with `fluo-deploy rollback <component> --reason ...` if the last \
         deploy caused it"
            .into(),
    ))
}

fn oom_killed(pod: &Pod, cs: &ContainerStatus, container: Option<&Container>) -> Option<Finding> {
    let state = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let oom = [state, last]
        .into_iter()
        .flatten()
        .find(|t| t.reason.as_deref() == Some("OOMKilled"))?;
    let limit = container
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .map(|q| q.0.clone());
    let mut evidence = vec![format!(
        "container {} was OOMKilled (exit code {}, {} restarts)",
        cs.name, oom.exit_code, cs.restart_count
    )];
    evidence.push(match &limit {
        Some(l) => format!("memory limit {l}"),
        None => "no memory limit set: the node ran out of memory".into(),
    });
    let hint = match limit {
        Some(l) => format!(
            "the container needs more than its {l} memory limit: raise resources.limits.memory \
             (and requests) or find the leak"
        ),
        None => "set resources.requests/limits.memory so the pod is scheduled with room".into(),
    };
    Some(finding(pod, "oom-killed", evidence, hint))
}

fn unschedulable(snapshot: &Snapshot, pod: &Pod) -> Option<Finding> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let mut evidence = vec![format!(
        "PodScheduled=False reason {}: {}",
        condition.reason.as_deref().unwrap_or("unknown"),
        condition.message.as_deref().unwrap_or("")
    )];
    let name = name_of(&pod.metadata);
    for e in events_for(snapshot, "Pod", &name) {
        if e.reason.as_deref() == Some("FailedScheduling") {
            evidence.push(format!(
                "event FailedScheduling: {}",
                e.message.as_deref().unwrap_or("")
            ));
        }
    }
    let text = evidence.join(" ");
    let hint = if text.contains("quota") {
        "the namespace's ResourceQuota is exhausted: raise the quota or lower requests/replicas"
    } else if text.contains("Insufficient") {
        "no node has the requested CPU/memory free: lower resources.requests, reduce replicas or add capacity"
    } else {
        "no node fits the pod (taints, node selectors, affinity or volumes): see the message"
    };
    Some(finding(pod, "unschedulable", evidence, hint.into()))
}

fn probe_failures(snapshot: &Snapshot, pod: &Pod) -> Option<Finding> {
    let name = name_of(&pod.metadata);
    let messages: Vec<String> = events_for(snapshot, "Pod", &name)
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Unhealthy"))
        .map(|e| {
            format!(
                "event Unhealthy (x{}): {}",
                e.count.unwrap_or(1),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if messages.is_empty() || ready {
        return None;
    }
    Some(finding(
        pod,
        "probe-failure",
        messages,
        "the probe's message says what it got: check the probe's path/port against what the app \
         serves, and its initialDelaySeconds/timeoutSeconds against the app's start-up time"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "bff-1", "labels": {"fluo.dev/component": "bff"}},
            "spec": {"containers": [{"name": "main", "image": "fluo/fluo-bff:dev",
                "resources": {"limits": {"memory": "256Mi"}}}]},
            "status": status
        }))
        .unwrap()
    }

    fn snapshot(pod: Pod, events: serde_json::Value) -> Snapshot {
        Snapshot {
            pods: vec![pod],
            events: serde_json::from_value(events).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn oom_kill_is_named_with_the_memory_limit_not_as_a_crash_loop() {
        let p = pod(
            json!({"containerStatuses": [{"name": "main", "image": "fluo/fluo-bff:dev",
            "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        );
        let f = findings(&snapshot(p, json!([])));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].pattern, "oom-killed");
        assert!(
            f[0].evidence.iter().any(|e| e == "memory limit 256Mi"),
            "{f:?}"
        );
        assert!(f[0].hint.contains("256Mi"));
    }

    #[test]
    fn unschedulable_pod_names_the_scheduler_message_and_the_quota() {
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
        );
        let f = findings(&snapshot(p, json!([])));
        assert_eq!(f[0].pattern, "unschedulable");
        assert!(f[0].evidence[0].contains("Insufficient memory"));
        assert!(f[0].hint.contains("requests"));
        let quota = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "exceeded quota: compute"}]}),
        );
        assert!(
            findings(&snapshot(quota, json!([])))[0]
                .hint
                .contains("ResourceQuota")
        );
    }

    #[test]
    fn probe_failure_carries_the_probe_message_until_the_pod_is_ready() {
        let events = json!([{"metadata": {"name": "e1"}, "reason": "Unhealthy", "count": 4,
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "involvedObject": {"kind": "Pod", "name": "bff-1"}}]);
        let not_ready = pod(json!({"conditions": [{"type": "Ready", "status": "False"}]}));
        let f = findings(&snapshot(not_ready, events.clone()));
        assert_eq!(f[0].pattern, "probe-failure");
        assert!(f[0].evidence[0].contains("statuscode: 503"));
        assert!(f[0].evidence[0].contains("x4"));
        let ready = pod(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert!(findings(&snapshot(ready, events)).is_empty());
    }
}
