//! Job load through the Ingress while something else happens (a fault, a rollback, an update),
//! and the accounting afterwards: every accepted job must end `completed`, once.
//!
//! [`Load`] submits a fixed number of SOP test jobs at a steady pace; a refused submission (a
//! 503 while NATS is gone, a connection refused while the BFF is scaled to zero) is counted by
//! its answer and retried, so the load ends with exactly `jobs` accepted jobs or says why not.
//! [`account`] then reads each job's record (written by the worker that ran it: status, result
//! naming the worker and the attempt) until every one is finished or the time is up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fluo_health::endpoint::Endpoint;
use fluo_health::jobs;
use serde_json::json;

use crate::stack::Stack;

/// How a load runs.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Jobs to get accepted.
    pub jobs: usize,
    /// Pause between two submissions (and before retrying a refused one).
    pub every: Duration,
    /// Simulated work per job (`data.duration_ms`), so jobs are in flight when a fault hits.
    pub work_ms: u64,
    /// Give up (and report the shortfall) after this long.
    pub limit: Duration,
}

/// What a finished load got: the accepted job ids, and the refusals by answer.
#[derive(Debug, Clone, Default)]
pub struct Submitted {
    pub accepted: Vec<String>,
    pub refused: BTreeMap<String, usize>,
    /// From the first refusal to the last (after the load began): how long submitting failed.
    pub refusing: Option<(Duration, Duration)>,
    pub took: Duration,
}

impl Submitted {
    pub fn refusals(&self) -> usize {
        self.refused.values().sum()
    }

    /// How long submissions were refused (first to last refusal).
    pub fn outage(&self) -> Duration {
        self.refusing
            .map_or(Duration::ZERO, |(first, last)| last - first)
    }

    /// "200 accepted in 5.1s, 12 refused (503 ...: 12)".
    pub fn summary(&self) -> String {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(why, n)| format!("{why}: {n}"))
            .collect();
        format!(
            "{} accepted in {:.1}s, {} refused and retried over {:.1}s{}",
            self.accepted.len(),
            self.took.as_secs_f64(),
            self.refusals(),
            self.outage().as_secs_f64(),
            if refused.is_empty() {
                String::new()
            } else {
                format!(" ({})", refused.join("; "))
            }
        )
    }
}

/// Longer than the BFF's worst case for one submission while NATS goes away (three NATS calls
/// of at most 3 s each), so the client gets the BFF's answer, not a timeout of its own.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A load running in the background.
pub struct Load {
    task: tokio::task::JoinHandle<Submitted>,
    accepted_so_far: Arc<std::sync::atomic::AtomicUsize>,
}

impl Load {
    pub fn start(api: Endpoint, spec: LoadSpec) -> Load {
        let accepted_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted_so_far.clone();
        let task = tokio::spawn(async move { submit_all(api, spec, &counter).await });
        Load {
            task,
            accepted_so_far,
        }
    }

    /// Jobs accepted so far (to time a fault into the middle of the load).
    pub fn accepted(&self) -> usize {
        self.accepted_so_far.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `n` jobs were accepted.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while self.accepted() < n {
            if Instant::now() > deadline || self.task.is_finished() {
                return Err(format!(
                    "only {} jobs accepted within {within:?}, wanted {n}",
                    self.accepted()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub async fn finish(self) -> Result<Submitted, String> {
        self.task
            .await
            .map_err(|e| format!("the load task failed: {e}"))
    }
}

async fn submit_all(
    api: Endpoint,
    spec: LoadSpec,
    counter: &std::sync::atomic::AtomicUsize,
) -> Submitted {
    let http = fluo_health::endpoint::http_client(SUBMIT_TIMEOUT);
    let job = json!({"type": "test", "data": {"validation": true, "duration_ms": spec.work_ms}});
    let started = Instant::now();
    let mut out = Submitted::default();
    while out.accepted.len() < spec.jobs && started.elapsed() < spec.limit {
        match jobs::submit(&http, &api, &job).await {
            Ok(accepted) => {
                out.accepted.push(accepted.id);
                counter.store(out.accepted.len(), Ordering::Relaxed);
            }
            Err(why) => {
                *out.refused.entry(refusal_kind(&why)).or_default() += 1;
                let now = started.elapsed();
                let first = out.refusing.map_or(now, |(first, _)| first);
                out.refusing = Some((first, now));
            }
        }
        tokio::time::sleep(spec.every).await;
    }
    out.took = started.elapsed();
    out
}

/// A refusal named by its answer (or the cause of no answer) and the start of its body,
/// without the address and ids that make every one unique.
fn refusal_kind(why: &str) -> String {
    let kind = match why.split_once("): ") {
        Some((_, cause)) if !why.contains(" answered ") => format!("no answer: {cause}"),
        _ => why.replacen(", expected 202", "", 1),
    };
    let cut = (0..=kind.len().min(110))
        .rev()
        .find(|i| kind.is_char_boundary(*i))
        .unwrap_or(0);
    kind[..cut].to_owned()
}

/// Real traffic for a while (SOP test jobs, one per `every`), counting the answers by status;
/// stopped by [`Traffic::stop`] or when dropped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<BTreeMap<String, usize>>>,
}

impl Traffic {
    pub fn start(api: Endpoint, every: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let http = fluo_health::endpoint::http_client(Duration::from_secs(5));
            let mut answers = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                let answer = match api
                    .post_json(&http, jobs::JOBS_PATH, &jobs::test_job())
                    .await
                {
                    Ok((status, _)) => status.as_u16().to_string(),
                    Err(_) => "no answer".to_owned(),
                };
                *answers.entry(answer).or_default() += 1;
                tokio::time::sleep(every).await;
            }
            answers
        });
        Traffic {
            stop,
            task: Some(task),
        }
    }

    /// Stops and returns the answers by status ("202": 400, "500": 100).
    pub async fn stop(mut self) -> BTreeMap<String, usize> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => BTreeMap::new(),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What became of a load's jobs, from their records.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub completed: usize,
    /// Completed on a later attempt (redelivered after a worker died or NATS went away).
    pub redelivered: usize,
    /// Completed jobs per worker that ran them (the result names the worker).
    pub workers: BTreeMap<String, usize>,
    /// Jobs that ended failed, with why.
    pub failed: Vec<String>,
    /// Jobs not finished (or unreadable) when the time was up, with their last state.
    pub unfinished: Vec<String>,
    pub took: Duration,
}

impl Tally {
    /// Ok when every one of `expected` jobs completed.
    pub fn all_completed(&self, expected: usize) -> Result<String, String> {
        if self.completed == expected && self.failed.is_empty() && self.unfinished.is_empty() {
            return Ok(self.summary());
        }
        Err(format!(
            "{} of {expected} jobs completed; failed: {:?}; unfinished: {:?}",
            self.completed,
            first(&self.failed),
            first(&self.unfinished)
        ))
    }

    pub fn summary(&self) -> String {
        let workers: Vec<String> = self
            .workers
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        format!(
            "{} completed ({} on a redelivery) within {:.1}s, by {}",
            self.completed,
            self.redelivered,
            self.took.as_secs_f64(),
            workers.join(", ")
        )
    }
}

fn first(list: &[String]) -> &[String] {
    &list[..list.len().min(3)]
}

/// Reads every job's record until all are finished or `within` has passed.
pub async fn account(api: &Endpoint, ids: &[String], within: Duration) -> Tally {
    let http = fluo_health::endpoint::http_client(Duration::from_secs(5));
    let started = Instant::now();
    let mut pending: Vec<&String> = ids.iter().collect();
    let mut tally = Tally::default();
    let mut last: BTreeMap<&String, String> = BTreeMap::new();
    while !pending.is_empty() && started.elapsed() < within {
        let mut still = Vec::new();
        for id in pending {
            match jobs::fetch(&http, api, id).await {
                Ok(record) if record.status == "completed" => count(&mut tally, &record),
                Ok(record) if record.status == "failed" => tally
                    .failed
                    .push(format!("{id}: {:?}", record.error.unwrap_or_default())),
                Ok(record) => {
                    last.insert(id, record.status);
                    still.push(id);
                }
                Err(e) => {
                    last.insert(id, e);
                    still.push(id);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tally.unfinished = pending
        .into_iter()
        .map(|id| format!("{id}: {}", last.get(id).cloned().unwrap_or_default()))
        .collect();
    tally.took = started.elapsed();
    tally
}

fn count(tally: &mut Tally, record: &jobs::JobRecord) {
    tally.completed += 1;
    let result = record.result.clone().unwrap_or_default();
    if result["attempt"].as_u64().is_some_and(|a| a > 1) {
        tally.redelivered += 1;
    }
    let worker = result["worker"].as_str().unwrap_or("?").to_owned();
    *tally.workers.entry(worker).or_default() += 1;
}

/// What the workers logged per job (`"message":"job handled"`, its `outcome` per delivery, in
/// order), from the logs of the worker pods that exist now, including the run before a
/// container's last restart (`kubectl logs --previous`): the workers' own record of what they
/// ran.
pub async fn worker_outcomes(stack: &Stack) -> Result<BTreeMap<String, Vec<String>>, String> {
    let pods = stack
        .run(
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "fluo",
                "-l",
                "app.kubernetes.io/name=fluo-worker",
                "-o",
                "name",
            ],
        )
        .await;
    let mut outcomes = BTreeMap::new();
    for pod in pods.expect(0)?.stdout.split_whitespace() {
        let current = stack.run("kubectl", &["logs", "-n", "fluo", pod]).await;
        collect_outcomes(&current.expect(0)?.stdout, &mut outcomes);
        // No earlier run is not an error (exit 1 "previous terminated container not found").
        let previous = stack
            .run("kubectl", &["logs", "-n", "fluo", pod, "--previous"])
            .await;
        if previous.code == Some(0) {
            collect_outcomes(&previous.stdout, &mut outcomes);
        }
    }
    Ok(outcomes)
}

fn collect_outcomes(log: &str, into: &mut BTreeMap<String, Vec<String>>) {
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if entry["message"] == "job handled" {
            let job = entry["job"].as_str().unwrap_or_default().to_owned();
            let outcome = entry["outcome"].as_str().unwrap_or_default().to_owned();
            into.entry(job).or_default().push(outcome);
        }
    }
}

/// Ok when no job of `ids` was completed twice and each was completed once: a `completed` line,
/// or (when NATS lost the reply to the completing write, so that worker logged `retry`) a
/// redelivery that found the record already completed (`duplicate`) and did not run it again.
pub fn exactly_once(
    ids: &[String],
    outcomes: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    let none = Vec::new();
    let mut wrong = Vec::new();
    let mut reply_lost = 0;
    for id in ids {
        let seen = outcomes.get(id).unwrap_or(&none);
        let completed = seen.iter().filter(|o| *o == "completed").count();
        match completed {
            1 => {}
            0 if seen.iter().any(|o| o == "duplicate") => reply_lost += 1,
            _ => wrong.push(format!("{id}: [{}]", seen.join(", "))),
        }
    }
    if wrong.is_empty() {
        Ok(format!(
            "the workers' logs show each of the {} jobs completed exactly once ({reply_lost} of them logged as a redelivery that found the job already completed)",
            ids.len()
        ))
    } else {
        Err(format!(
            "{} of {} jobs not completed exactly once in the workers' logs (job: outcomes): {}",
            wrong.len(),
            ids.len(),
            first(&wrong).join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_grouped_by_answer_not_by_body() {
        assert_eq!(
            refusal_kind(
                "POST /api/jobs answered 503 Service Unavailable, expected 202: {\"error\":\"x\"}"
            ),
            "POST /api/jobs answered 503 Service Unavailable: {\"error\":\"x\"}"
        );
        assert_eq!(
            refusal_kind(
                "POST http://127.0.0.1:1/api/jobs (ingress Host h): Connection refused (os error 111)"
            ),
            "no answer: Connection refused (os error 111)"
        );
    }

    #[test]
    fn a_job_is_done_once_by_its_completed_line_or_a_redelivery_finding_it_done() {
        let log = r#"{"message":"job handled","job":"a","outcome":"completed"}
{"message":"job handled","job":"b","outcome":"retry"}
not json
{"message":"job handled","job":"a","outcome":"completed"}
{"message":"job handled","job":"b","outcome":"duplicate"}
{"message":"job handled","job":"c","outcome":"completed"}
{"message":"job handled","job":"d","outcome":"retry"}"#;
        let mut outcomes = BTreeMap::new();
        collect_outcomes(log, &mut outcomes);
        assert_eq!(outcomes["b"], ["retry", "duplicate"]);
        let ok = exactly_once(&["b".to_owned(), "c".to_owned()], &outcomes).unwrap();
        assert!(ok.contains("(1 of them"), "{ok}");
        let ids = ["a", "d", "e"].map(str::to_owned);
        let err = exactly_once(&ids, &outcomes).unwrap_err();
        assert!(err.starts_with("3 of 3"), "{err}");
        assert!(
            err.contains("a: [completed, completed]; d: [retry]; e: []"),
            "{err}"
        );
    }

    #[test]
    fn a_tally_passes_only_when_every_job_completed() {
        let mut tally = Tally {
            completed: 2,
            ..Tally::default()
        };
        assert!(tally.all_completed(2).is_ok());
        assert!(tally.all_completed(3).is_err());
        tally.unfinished.push("j: queued".into());
        assert!(tally.all_completed(2).unwrap_err().contains("j: queued"));
    }
}
