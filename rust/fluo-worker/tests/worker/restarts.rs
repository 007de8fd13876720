use std::collections::HashSet;

use fluo_teststack::{NatsProbe, Stack};
use serde_json::json;

use super::support::{JOB_TIMEOUT, completions};

const JOBS: usize = 200;

/// 200 jobs while the worker is killed, restarted and stopped gracefully along the way: all 200
/// complete, each exactly once.
#[tokio::test]
async fn two_hundred_jobs_across_worker_restarts_all_complete_exactly_once() {
    let mut stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();
    let probe = NatsProbe::connect(&stack.nats_url()).await.unwrap();

    let mut ids = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        match n {
            50 => stack.kill_worker().await.unwrap(),
            60 => stack.start_worker().await.unwrap(),
            120 => assert_eq!(stack.stop_worker().await.unwrap(), Some(0)),
            130 => stack.start_worker().await.unwrap(),
            170 => stack.kill_worker().await.unwrap(),
            175 => stack.start_worker().await.unwrap(),
            _ => {}
        }
        // A little work per job so some are in flight when the worker dies.
        let data = json!({"validation": true, "duration_ms": 20, "n": n});
        ids.push(api.submit_ok("test", data).await.unwrap());
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        JOBS,
        "ids are unique"
    );

    for id in &ids {
        let job = api
            .wait_for_status(id, "completed", JOB_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(job["result"]["validated"], true);
        assert_eq!(
            completions(&probe, id).await,
            1,
            "job {id} completed more than once"
        );
    }
    stack
        .eventually("the job stream to be empty", || async {
            Ok::<_, fluo_teststack::Error>((probe.job_stream().await?.messages == 0).then_some(()))
        })
        .await
        .unwrap();
    let stream = probe.job_stream().await.unwrap();
    assert_eq!(
        stream.last_sequence, JOBS as u64,
        "exactly one message per job"
    );
}
