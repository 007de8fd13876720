use fluo_teststack::{BFF_JOB, Stack, WORKER_JOB};

use super::support::JOB_TIMEOUT;

async fn value(stack: &Stack, expr: &str) -> Result<Option<f64>, fluo_teststack::Error> {
    Ok(stack.query_prometheus(expr).await?.first().map(|s| s.value))
}

#[tokio::test]
async fn prometheus_scrapes_bff_and_worker_and_sees_the_job_counter_rise() {
    let stack = Stack::start().await.unwrap();
    let api = stack.jobs_client();

    for job in [BFF_JOB, WORKER_JOB] {
        let up = format!("up{{job=\"{job}\"}}");
        stack
            .eventually(&format!("{up} == 1"), || async {
                Ok::<_, fluo_teststack::Error>(
                    (value(&stack, &up).await? == Some(1.0)).then_some(()),
                )
            })
            .await
            .unwrap();
    }

    let submitted = "sum(fluo_bff_jobs_submitted_total{type=\"test\"})";
    api.run_test_job(JOB_TIMEOUT).await.unwrap();
    let baseline = stack
        .eventually("Prometheus to scrape the first job", || async {
            Ok::<_, fluo_teststack::Error>(value(&stack, submitted).await?.filter(|v| *v >= 1.0))
        })
        .await
        .unwrap();

    for _ in 0..5 {
        api.run_test_job(JOB_TIMEOUT).await.unwrap();
    }
    stack
        .eventually("the job counter to rise by 5", || async {
            Ok::<_, fluo_teststack::Error>(
                value(&stack, submitted)
                    .await?
                    .filter(|v| *v >= baseline + 5.0),
            )
        })
        .await
        .unwrap();
    let processed = "sum(fluo_worker_jobs_processed_total{outcome=\"completed\"})";
    stack
        .eventually("the worker's completed counter to reach 6", || async {
            Ok::<_, fluo_teststack::Error>(value(&stack, processed).await?.filter(|v| *v >= 6.0))
        })
        .await
        .unwrap();
}
