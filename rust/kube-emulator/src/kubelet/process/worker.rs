//! One pod's worker: its network, files and container supervisors; it turns the containers'
//! reports into the pod's status (phase, conditions, podIP, containerStatuses) and cleans up
//! when the pod is stopped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::PodContext;
use super::container::{Report, Supervisor};
use crate::controllers::{def, now_str};

/// Runs the pod until `stop` carries a grace period and every container has ended.
pub async fn run(ctx: Arc<PodContext>, stop: watch::Receiver<Option<Duration>>) {
    let containers = ctx.pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let (tx, mut rx) = mpsc::channel::<Report>(64);
    let mut statuses: Vec<Value> = (0..containers)
        .map(|i| {
            let c = &ctx.pod["spec"]["containers"][i];
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
                "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}})
        })
        .collect();
    let start_time = now_str();
    write_status(&ctx, &statuses, &start_time);
    let mut tasks = Vec::new();
    for i in 0..containers {
        let sup = Supervisor::new(ctx.clone(), i, tx.clone(), stop.clone());
        tasks.push(tokio::spawn(sup.run()));
    }
    drop(tx);
    let volume_sync = tokio::spawn(super::volume_sync::run(ctx.clone(), stop.clone()));
    while let Some((i, status)) = rx.recv().await {
        if stop.borrow().is_some() {
            continue;
        }
        statuses[i] = status;
        // Apply every queued report before writing, so a burst costs one write.
        while let Ok((i, status)) = rx.try_recv() {
            statuses[i] = status;
        }
        write_status(&ctx, &statuses, &start_time);
    }
    volume_sync.abort();
    for t in tasks {
        let _ = t.await;
    }
}

/// Writes the pod's status if the pod (same uid) still exists.
fn write_status(ctx: &PodContext, statuses: &[Value], start_time: &str) {
    let pods = def("", "Pod");
    let mut state = ctx.store.lock();
    let Some(current) = state.get(pods, &ctx.namespace, &ctx.name).cloned() else {
        return;
    };
    if current["metadata"]["uid"] != ctx.uid.as_str() {
        return;
    }
    let status = pod_status(
        &current["status"],
        statuses,
        &ctx.network.ip.to_string(),
        &ctx.host_ip,
        start_time,
        current["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always"),
    );
    if current["status"] != status {
        let mut next = current;
        next["status"] = status;
        state.replace(pods, next);
    }
}

/// The pod status the kubelet derives from its containers' statuses.
pub fn pod_status(
    old: &Value,
    statuses: &[Value],
    pod_ip: &str,
    host_ip: &str,
    start_time: &str,
    restart_policy: &str,
) -> Value {
    let state_of = |s: &Value, k: &str| s["state"][k].is_object();
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true);
    let any_running = statuses.iter().any(|s| state_of(s, "running"));
    let all_terminated = !statuses.is_empty() && statuses.iter().all(|s| state_of(s, "terminated"));
    let ever_ran = statuses.iter().any(|s| {
        state_of(s, "running")
            || state_of(s, "terminated")
            || s["lastState"]["terminated"].is_object()
    });
    let phase = if all_terminated && restart_policy != "Always" {
        if statuses
            .iter()
            .all(|s| s["state"]["terminated"]["exitCode"] == 0)
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if any_running || ever_ran {
        "Running"
    } else {
        "Pending"
    };
    let ready = all_ready && phase == "Running";
    let reason = if ready {
        ""
    } else if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut set = |t: &str, ok: bool, reason: &str| {
        let s = if ok { "True" } else { "False" };
        let pos = conditions.iter().position(|c| c["type"] == t);
        if let Some(i) = pos
            && conditions[i]["status"] == s
        {
            return;
        }
        let mut c =
            json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": now_str()});
        if !reason.is_empty() {
            c["reason"] = json!(reason);
        }
        match pos {
            Some(i) => conditions[i] = c,
            None => conditions.push(c),
        }
    };
    set("PodReadyToStartContainers", true, "");
    set("Initialized", true, "");
    set("Ready", ready, reason);
    set("ContainersReady", ready, reason);
    set("PodScheduled", true, "");
    json!({"phase": phase, "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": start_time,
        "containerStatuses": statuses, "qosClass": "BestEffort"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(state: Value, ready: bool) -> Value {
        json!({"name": "c", "state": state, "ready": ready, "lastState": {}})
    }

    #[test]
    fn phase_and_readiness_follow_the_containers() {
        let waiting = cs(json!({"waiting": {"reason": "ContainerCreating"}}), false);
        let running = cs(json!({"running": {}}), true);
        let not_ready = cs(json!({"running": {}}), false);
        let failed = cs(json!({"terminated": {"exitCode": 1}}), false);
        let ok = cs(json!({"terminated": {"exitCode": 0}}), false);
        let phase = |s: &[Value], p: &str| pod_status(&json!({}), s, "ip", "h", "t", p);
        assert_eq!(
            phase(std::slice::from_ref(&waiting), "Always")["phase"],
            "Pending"
        );
        let ready = |s: &Value| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["status"]
                .clone()
        };
        let s = phase(&[running.clone(), not_ready], "Always");
        assert_eq!(s["phase"], "Running");
        assert_eq!(ready(&s), "False");
        assert_eq!(
            ready(&phase(std::slice::from_ref(&running), "Always")),
            "True"
        );
        assert_eq!(phase(&[ok.clone(), failed], "Never")["phase"], "Failed");
        assert_eq!(phase(&[ok], "OnFailure")["phase"], "Succeeded");
    }
}
