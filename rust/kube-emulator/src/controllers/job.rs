//! Job controller: runs pods up to parallelism until `completions` succeed, or fails the Job
//! once more than backoffLimit pods failed.

use serde_json::{Value, json};

use super::events::{self, JOB_CONTROLLER};
use super::{
    Requeue, condition, def, now_str, owned, owner_ref, pod_from_template, set_condition,
    write_status,
};
use crate::apiserver::store::{State, meta_str};

fn finished(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

pub fn reconcile(state: &mut State, job: &Value) -> Requeue {
    if finished(job) || job["spec"]["suspend"] == true {
        return None;
    }
    let pod_def = def("", "Pod");
    let ns = meta_str(job, "namespace").to_string();
    let pods = owned(state, pod_def, job);
    let phase = |p: &Value| {
        p["status"]["phase"]
            .as_str()
            .unwrap_or("Pending")
            .to_string()
    };
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let mut active: Vec<Value> = pods
        .iter()
        .filter(|p| !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
        .cloned()
        .collect();
    let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
    let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let mut conditions: Vec<Value> = job["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = json!({"startTime": job["status"]["startTime"].as_str().map(str::to_string).unwrap_or_else(now_str),
        "succeeded": succeeded, "failed": failed, "terminating": 0, "uncountedTerminatedPods": {}});

    if failed > backoff_limit {
        for p in active.drain(..) {
            if state.remove(pod_def, &ns, meta_str(&p, "name")).is_some() {
                let message = format!("Deleted pod: {}", meta_str(&p, "name"));
                events::normal(state, JOB_CONTROLLER, job, "SuccessfulDelete", message);
            }
        }
        let message = "Job has reached the specified backoff limit".to_string();
        events::warning(state, JOB_CONTROLLER, job, "BackoffLimitExceeded", message);
        set_condition(
            &mut conditions,
            "FailureTarget",
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            false,
        );
        set_condition(
            &mut conditions,
            "Failed",
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            false,
        );
    } else if succeeded >= completions {
        events::normal(
            state,
            JOB_CONTROLLER,
            job,
            "Completed",
            "Job completed".into(),
        );
        set_condition(
            &mut conditions,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            false,
        );
        set_condition(
            &mut conditions,
            "Complete",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            false,
        );
        status["completionTime"] = json!(
            condition(&conditions, "Complete")
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_else(|| json!(now_str()))
        );
    } else {
        let wanted = parallelism.min(completions - succeeded);
        for _ in (active.len() as i64)..wanted {
            let pod = pod_from_template(
                &job["spec"]["template"],
                &ns,
                None,
                &format!("{}-", meta_str(job, "name")),
                owner_ref(job, "Job", "batch/v1"),
            );
            if let Ok(p) = super::create(state, pod_def, pod) {
                let message = format!("Created pod: {}", meta_str(&p, "name"));
                events::normal(state, JOB_CONTROLLER, job, "SuccessfulCreate", message);
                active.push(p);
            }
        }
    }
    status["active"] = json!(active.len());
    status["ready"] = json!(active.iter().filter(|p| super::pod_is_ready(p)).count());
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    for f in ["active", "succeeded", "failed"] {
        if status[f] == 0 {
            status.as_object_mut().expect("status object").remove(f);
        }
    }
    write_status(state, def("batch", "Job"), job, status);
    None
}
