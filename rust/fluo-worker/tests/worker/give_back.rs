use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use fluo_jobs::{names, provision};
use fluo_teststack::Stack;
use futures::StreamExt;
use serde_json::json;

use super::support::JOB_TIMEOUT;

/// More give-backs than the delivery limit of earlier releases (6).
const GIVE_BACKS: u64 = 8;

/// A job handed back again and again by stopping workers (a planned shutdown bounces it between
/// the replicas that are going away) is still run once a worker is back. A consumer made by an
/// earlier release, with its delivery limit, is updated when a worker opens it.
#[tokio::test]
async fn a_job_given_back_more_often_than_the_old_delivery_limit_still_runs() {
    let mut stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();
    stack.stop_worker().await.unwrap();
    let client = async_nats::connect(stack.nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let stream = js.get_stream(names::STREAM).await.unwrap();
    // The consumer as an earlier release made it.
    stream.delete_consumer(names::CONSUMER).await.unwrap();
    let old = consumer::pull::Config {
        max_deliver: 6,
        ..provision::consumer_config(Duration::from_secs(30))
    };
    stream.create_consumer(old).await.unwrap();

    let mut consumer = provision::ensure_consumer(&js, Duration::from_secs(30))
        .await
        .unwrap();
    let limit = consumer.info().await.unwrap().config.max_deliver;
    assert_eq!(limit, names::CONSUMER_MAX_DELIVER, "the old limit was kept");

    let id = api.submit_ok("echo", json!({"x": 1})).await.unwrap();
    for give_back in 1..=GIVE_BACKS {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .unwrap();
        let message = batch
            .next()
            .await
            .unwrap_or_else(|| panic!("delivery {give_back} of the job never came"))
            .unwrap();
        assert_eq!(message.info().unwrap().delivered, give_back as i64);
        message.ack_with(AckKind::Nak(None)).await.unwrap();
    }
    stack.start_worker().await.unwrap();
    let job = api
        .wait_for_status(&id, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["attempts"], 1, "give-backs are not attempts: {job}");
}
