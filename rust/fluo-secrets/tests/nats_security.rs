//! The NATS users and TLS that `fluo-secrets` makes, against the real nats-server (Debian
//! package `nats-server`): anonymous and wrong credentials are refused, a server certificate
//! from another CA is refused, and each service is held to its subjects.

use std::time::Duration;

use async_nats::{ConnectErrorKind, Event, ServerError};
use fluo_jobs::connect::{self, NatsAuth};
use fluo_jobs::{names, provision};
use fluo_teststack::Stack;
use tokio::sync::mpsc;

async fn secured_nats() -> Stack {
    Stack::builder()
        .nats()
        .secured()
        .start()
        .await
        .expect("a secured nats-server (apt-get install nats-server)")
}

/// Connects once (no retry) with `auth`, collecting the server's error events.
async fn connect_as(
    stack: &Stack,
    auth: &NatsAuth,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = connect::options("nats-security-test".into(), auth)?
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(message)) = event {
                    let _ = tx.send(message);
                }
            }
        })
        .connect(stack.nats_url())
        .await?;
    Ok((client, rx))
}

/// The next server error within a few seconds (a permissions violation arrives asynchronously).
async fn next_violation(errors: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), errors.recv())
        .await
        .expect("a permissions violation from the server within 5 s")
        .expect("event channel open")
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused() {
    let stack = secured_nats().await;
    let secured = stack.secured().unwrap();
    let anonymous = NatsAuth {
        ca_file: secured.nats_auth("bff").ca_file,
        ..Default::default()
    };
    let err = connect_as(&stack, &anonymous).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let mut auth = secured.nats_auth("bff");
    auth.user = Some(("bff".into(), wrong));
    let err = connect_as(&stack, &auth).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );

    let (client, _) = connect_as(&stack, &secured.nats_auth("bff")).await.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn the_server_certificate_must_chain_to_the_configured_ca() {
    let stack = secured_nats().await;
    let secured = stack.secured().unwrap();
    let other = tempfile::tempdir().unwrap();
    let bundle = fluo_secrets::tls::generate("another-ca", &["127.0.0.1".into()]).unwrap();
    fluo_secrets::tls::write(other.path(), &bundle).unwrap();
    let mut auth = secured.nats_auth("worker");
    auth.ca_file = Some(other.path().join("ca.crt"));
    let err = connect_as(&stack, &auth).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );

    // Without a CA the client falls back to the system roots, which do not know our CA either.
    auth.ca_file = None;
    let err = connect_as(&stack, &auth).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let (client, _) = connect_as(&stack, &secured.nats_auth("worker"))
        .await
        .unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn each_service_is_held_to_its_subjects() {
    let stack = secured_nats().await;
    let secured = stack.secured().unwrap();
    let (bff, mut bff_errors) = connect_as(&stack, &secured.nats_auth("bff")).await.unwrap();
    let (worker, mut worker_errors) = connect_as(&stack, &secured.nats_auth("worker"))
        .await
        .unwrap();
    let (monitor, mut monitor_errors) = connect_as(&stack, &secured.nats_auth("monitor"))
        .await
        .unwrap();

    // The BFF provisions and queues a job; the worker opens the consumer and acks it.
    let bff_js = async_nats::jetstream::new(bff.clone());
    provision::ensure_stream(&bff_js).await.unwrap();
    provision::ensure_bucket(&bff_js).await.unwrap();
    bff_js
        .publish("fluo.jobs.echo", "{}".into())
        .await
        .unwrap()
        .await
        .expect("the BFF may queue jobs");
    let worker_js = async_nats::jetstream::new(worker.clone());
    let consumer = provision::ensure_consumer(&worker_js, Duration::from_secs(5))
        .await
        .expect("the worker may open its consumer");
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    use futures::StreamExt;
    let message = batch.next().await.expect("one job").unwrap();
    message.double_ack().await.expect("the worker may ack");

    // The worker cannot queue jobs: the server refuses the publish.
    worker.publish("fluo.jobs.echo", "{}".into()).await.unwrap();
    worker.flush().await.unwrap();
    let violation = next_violation(&mut worker_errors).await;
    assert!(
        violation.contains("Permissions Violation for Publish to \"fluo.jobs.echo\""),
        "{violation}"
    );
    // Nor delete the stream.
    let _ = worker
        .publish(
            format!("$JS.API.STREAM.DELETE.{}", names::STREAM),
            "".into(),
        )
        .await;
    worker.flush().await.unwrap();
    assert!(
        next_violation(&mut worker_errors)
            .await
            .contains("STREAM.DELETE")
    );

    // The BFF cannot read the worker's replies or the job subjects.
    let _sub = bff.subscribe("_INBOX_worker.>").await.unwrap();
    bff.flush().await.unwrap();
    assert!(
        next_violation(&mut bff_errors)
            .await
            .contains("Permissions Violation for Subscription to \"_INBOX_worker.>\"")
    );
    let _sub = bff.subscribe("fluo.jobs.>").await.unwrap();
    bff.flush().await.unwrap();
    assert!(
        next_violation(&mut bff_errors)
            .await
            .contains("fluo.jobs.>")
    );

    // The monitor reads stream information and changes nothing.
    let monitor_js = async_nats::jetstream::new(monitor.clone());
    let mut stream = monitor_js.get_stream(names::STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    monitor
        .publish("fluo.jobs.echo", "{}".into())
        .await
        .unwrap();
    monitor.flush().await.unwrap();
    assert!(
        next_violation(&mut monitor_errors)
            .await
            .contains("fluo.jobs.echo")
    );
    // The refused publishes never reached the stream.
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
}
