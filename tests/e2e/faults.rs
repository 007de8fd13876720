//! issue 15's fault scenarios on the real stack, sharing one process-runtime stack whose API
//! server throttles (429) and drops watches throughout (the emulator's faults), so every deploy
//! here runs under API faults. 200 jobs go through the Ingress during each scenario, and each
//! is accounted for from what the workers wrote: its record (completed, by which worker, on
//! which attempt) and the workers' own log lines (completed exactly once):
//! - a worker process SIGKILLed mid-job: the container restarts (exit 137), the jobs it held are
//!   redelivered and completed once;
//! - the NATS pod deleted while jobs flow: submissions during the outage get a clear 503 (or,
//!   when the restart is shorter than the BFF's NATS timeout, wait and are accepted), the BFF
//!   reconnects by itself, nothing accepted is lost;
//! - a rolling update of the workers under load, deployed through the faulty API server.

use std::time::{Duration, Instant};

use fluo_rehearse::failure::Edited;
use fluo_rehearse::load::{self, Load, LoadSpec, Submitted, account};
use fluo_rehearse::{Stack, steps};
use serde_json::Value;

const JOBS: usize = 200;

/// The emulator's API faults for the whole test.
const API_FAULTS: [&str; 6] = [
    "--throttle-rate",
    "0.05",
    "--watch-close-rate",
    "0.5",
    "--watch-close-within",
    "3s",
];

fn spec() -> LoadSpec {
    LoadSpec {
        jobs: JOBS,
        every: Duration::from_millis(15),
        work_ms: 300,
        limit: Duration::from_secs(120),
    }
}

async fn kubectl_json(stack: &Stack, args: &[&str]) -> Value {
    let run = stack.run("kubectl", args).await;
    run.expect(0)
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The first worker pod: name, the host pid of its container, its restart count.
async fn a_worker(stack: &Stack) -> (String, u32, u64) {
    let pods = worker_pods(stack).await;
    let pod = &pods[0];
    let status = &pod["status"]["containerStatuses"][0];
    let pid = status["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("kube-emulator-process://"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no process id in {status}"));
    (
        pod["metadata"]["name"].as_str().unwrap().to_owned(),
        pid,
        status["restartCount"].as_u64().unwrap_or(0),
    )
}

/// `pid` and every process below it (the container's process may sit under its launcher).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(tree[i]) && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    tree
}

/// Polls `check` (bounded) until it returns Some.
async fn within<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// All 200 accepted jobs completed (records) and exactly once (the workers' logs, where the
/// pods still exist).
async fn accounted(stack: &Stack, name: &str, submitted: &Submitted, logs: bool) -> String {
    assert_eq!(
        submitted.accepted.len(),
        JOBS,
        "{name}: {}",
        submitted.summary()
    );
    let tally = account(&stack.api(), &submitted.accepted, Duration::from_secs(90)).await;
    let completed = tally
        .all_completed(JOBS)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let once = if logs {
        let outcomes = load::worker_outcomes(stack)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        load::exactly_once(&submitted.accepted, &outcomes).unwrap_or_else(|e| panic!("{name}: {e}"))
    } else {
        "records only (the old pods and their logs are gone)".into()
    };
    let line = format!("{name}: jobs {}; {completed}; {once}", submitted.summary());
    println!("{line}");
    line
}

async fn worker_sigkill(stack: &Stack) -> String {
    let (pod, pid, restarts) = a_worker(stack).await;
    let load = Load::start(stack.api(), spec());
    load.wait_for(60, Duration::from_secs(30)).await.unwrap();
    let killed = process_tree(pid);
    let status = std::process::Command::new("kill")
        .arg("-KILL")
        .args(killed.iter().map(u32::to_string))
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -KILL {killed:?}");
    let last = within(30, "the killed worker's container to restart", || async {
        let pod = kubectl_json(stack, &["get", "pod", &pod, "-n", "fluo", "-o", "json"]).await;
        let status = pod["status"]["containerStatuses"][0].clone();
        (status["restartCount"].as_u64() > Some(restarts) && status["ready"] == true)
            .then_some(status["lastState"]["terminated"].clone())
    })
    .await;
    assert_eq!(last["exitCode"], 137, "{last}");
    let submitted = load.finish().await.unwrap();
    let line = accounted(stack, "worker SIGKILL", &submitted, true).await;
    format!("{line}; {pod} killed (exit 137) and restarted")
}

async fn nats_deleted(stack: &Stack) -> String {
    let nats_pod = || async {
        kubectl_json(stack, &["get", "pod", "nats-0", "-n", "fluo", "-o", "json"]).await["metadata"]
            ["uid"]
            .clone()
    };
    let old_uid = nats_pod().await;
    let load = Load::start(stack.api(), spec());
    load.wait_for(40, Duration::from_secs(30)).await.unwrap();
    let deleted = Instant::now();
    stack
        .run(
            "kubectl",
            &["delete", "pod", "nats-0", "-n", "fluo", "--wait=false"],
        )
        .await
        .expect(0)
        .unwrap_or_else(|e| panic!("{e}"));
    let submitted = load.finish().await.unwrap();
    let until_done = deleted.elapsed();
    // Every refusal is a 503: the BFF's own with its JSON error while it is up without NATS
    // ("NATS ... is not connected", "could not record job ..."), the Ingress's while the BFF is
    // not ready (its readiness follows the NATS connection). A restart shorter than the BFF's
    // NATS timeout (3 s) can be ridden through: the one submission in flight waits for the
    // reconnect and is accepted, and none is refused.
    let refused_503 = submitted
        .refused
        .iter()
        .filter(|(why, _)| why.contains(" 503 "))
        .map(|(_, n)| n)
        .sum::<usize>();
    assert!(
        refused_503 == submitted.refusals()
            && (refused_503 == 0
                || submitted
                    .refused
                    .keys()
                    .any(|why| why.contains(r#"{"error":"#))),
        "submissions during the NATS outage must be accepted or get a clear 503: {}",
        submitted.summary()
    );
    let new_uid = nats_pod().await;
    assert!(
        new_uid.is_string() && new_uid != old_uid,
        "nats-0 was not re-created: uid {old_uid} before, {new_uid} after"
    );
    // Recovery is bounded: NATS back (StatefulSet, same volume), the BFF reconnected and ready.
    assert!(
        submitted.outage() < Duration::from_secs(60) && until_done < Duration::from_secs(90),
        "recovery took too long: {}",
        submitted.summary()
    );
    accounted(stack, "NATS pod deleted", &submitted, true).await
}

async fn worker_pods(stack: &Stack) -> Vec<Value> {
    let pods = kubectl_json(
        stack,
        &[
            "get",
            "pods",
            "-n",
            "fluo",
            "-l",
            "app.kubernetes.io/name=fluo-worker",
            "-o",
            "json",
        ],
    )
    .await;
    // Pods on their way out (deletionTimestamp set) are not the workload's any more.
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn rolling_update(stack: &Stack) -> String {
    let old = names(&worker_pods(stack).await);
    // Paced to outlast the rollout (~15 s), so old and new pods both take jobs.
    let load = Load::start(
        stack.api(),
        LoadSpec {
            every: Duration::from_millis(100),
            ..spec()
        },
    );
    load.wait_for(20, Duration::from_secs(30)).await.unwrap();
    let mut args = vec![
        "deploy",
        "workers",
        "--image",
        "fluo-worker=fluo/fluo-worker:rolled",
    ];
    args.extend(steps::DEPLOY_SKIPS);
    let deployed = stack.run("fluo-deploy", &args).await;
    deployed.expect(0).unwrap_or_else(|e| panic!("{e}"));
    let during = load.accepted();
    let submitted = load.finish().await.unwrap();
    let tally = account(&stack.api(), &submitted.accepted, Duration::from_secs(90)).await;
    let line = accounted(stack, "rolling update of the workers", &submitted, false).await;
    let new = worker_pods(stack).await;
    for pod in &new {
        assert_eq!(
            pod["spec"]["containers"][0]["image"], "fluo/fluo-worker:rolled",
            "{pod}"
        );
    }
    let new = names(&new);
    let by = |pods: &[String]| -> usize { pods.iter().filter_map(|p| tally.workers.get(p)).sum() };
    assert!(
        by(&old) > 0 && by(&new) > 0,
        "old pods {old:?} and new pods {new:?} must both have completed jobs: {}",
        tally.summary()
    );
    format!(
        "{line}; deploy workers took {:.1}s with {during} of {JOBS} jobs accepted by its end; old pods completed {}, new pods {}",
        deployed.took.as_secs_f64(),
        by(&old),
        by(&new)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_scenarios_complete_every_job_exactly_once() {
    let stack = fluo_e2e::process_stack_with(&API_FAULTS).await;
    // Redelivery of a SIGKILLed worker's jobs after 5 s instead of the default 30 s.
    let _ack_wait = Edited::with_env(
        stack
            .infra()
            .join("components/workers/manifests/deployment.yaml"),
        "FLUO_WORKER_ACK_WAIT_SECS",
        "5",
    )
    .unwrap();
    let started = Instant::now();
    let deployed = steps::deploy_everything(&stack).await.unwrap_or_else(|e| {
        panic!(
            "deploy --all under API faults: {e}\n{}",
            stack.emulator_log()
        )
    });
    println!("deploy --all under API faults: {deployed}");
    let lines = [
        worker_sigkill(&stack).await,
        nats_deleted(&stack).await,
        rolling_update(&stack).await,
    ];
    stack
        .run("fluo-deploy", &["history", "--verify"])
        .await
        .expect(0)
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "fault scenarios in {:.1}s:\n{}",
        started.elapsed().as_secs_f64(),
        lines.join("\n")
    );
}
