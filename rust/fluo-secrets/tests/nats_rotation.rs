//! Rotating the NATS credentials under a steady load of job submissions, with the real
//! nats-server, BFF and worker, as docs/security.md's rotation does it on a cluster:
//! `fluo-secrets nats-rotate` adds the new users and nats-server reloads (`nats-server
//! --signal reload`); the services roll (a new BFF and worker start with the new credential
//! from the files, the load moves to the new BFF, the old ones stop gracefully, as a rolling
//! update behind a Service does); `nats-rotate --finish` removes the old users and nats-server
//! reloads again. No request may fail, every job must complete, the old credential must be
//! refused afterwards.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::ConnectErrorKind;
use fluo_jobs::connect::{self, NatsAuth};
use fluo_secrets::rotation;
use fluo_teststack::{Component, JobsClient, Service, Stack, eventually, service_binary};
use serde_json::json;
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `nats-server --signal reload=<pid>`: what an operator (or a config reloader) runs.
fn reload_nats(stack: &Stack) {
    let pid = stack.pid(Component::Nats).expect("nats-server runs");
    let nats = fluo_teststack::system_binary("nats-server", "NATS_SERVER_BIN").unwrap();
    let status = std::process::Command::new(nats)
        .arg("--signal")
        .arg(format!("reload={pid}"))
        .status()
        .unwrap();
    assert!(status.success(), "nats-server --signal reload: {status}");
}

/// A second BFF or worker process, as a new pod of the rolling restart.
async fn start(service: Service, env: Vec<(String, String)>, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(service_binary(service).await.unwrap())
        .envs(env)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn connects(stack: &Stack, auth: &NatsAuth) -> Result<(), async_nats::ConnectError> {
    let client = connect::options("rotation-test".into(), auth)?
        .connect(stack.nats_url())
        .await?;
    client
        .flush()
        .await
        .map_err(|e| async_nats::ConnectError::with_source(ConnectErrorKind::Io, e))
}

#[tokio::test]
async fn a_nats_credential_rotation_under_steady_load_fails_no_request() {
    let mut stack = Stack::builder()
        .nats()
        .bff()
        .worker()
        .secured()
        .start()
        .await
        .expect("a secured stack (apt-get install nats-server)");
    let secured = stack.secured().unwrap().clone();
    let token = secured.token("tests");
    // The old credentials, kept to show that they are refused at the end.
    let old = tempfile::tempdir().unwrap();
    for service in ["bff", "worker"] {
        for ext in ["user", "password"] {
            let name = format!("{service}.{ext}");
            std::fs::copy(secured.dir.join(&name), old.path().join(&name)).unwrap();
        }
    }
    let mut old_auth = secured.nats_auth("bff");
    old_auth.user = Some(("bff".into(), old.path().join("bff.password")));
    old_auth.user_file = Some(old.path().join("bff.user"));

    let target = Arc::new(Mutex::new(stack.bff_url()));
    let stop = Arc::new(AtomicBool::new(false));
    // Requests answered so far: the old BFF stops only once one sent after the switch is done.
    let answered = Arc::new(AtomicUsize::new(0));
    let load = {
        let (target, stop, token) = (target.clone(), stop.clone(), token.clone());
        let answered = answered.clone();
        tokio::spawn(async move {
            let (mut ids, mut failed) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let url = target.lock().unwrap().clone();
                let client = JobsClient::new(url).with_token(&token);
                match client.submit("echo", json!({"n": ids.len()})).await {
                    Ok(r) if r.status == 202 => ids.push(r.body["id"].as_str().unwrap().to_owned()),
                    other => failed.push(format!("{other:?}")),
                }
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ids, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. The new users beside the old ones; nats-server accepts both after the reload.
    let changes = rotation::begin(&secured.dir).unwrap();
    assert_eq!(changes[0].new, "bff-2");
    reload_nats(&stack);
    let new_auth = secured.nats_auth("bff");
    assert_eq!(new_auth.user.as_ref().unwrap().0, "bff-2");
    eventually(
        "the new user to be accepted",
        Duration::from_secs(10),
        || async { connects(&stack, &new_auth).await.map(Some) },
    )
    .await
    .unwrap();
    connects(&stack, &old_auth)
        .await
        .expect("the old user is still accepted during the rollover");

    // 2. The services roll: new processes read the new credential; the load moves to the new
    // BFF once it is ready; the old BFF drains and the old worker hands its jobs back.
    let dir = tempfile::tempdir().unwrap();
    let bff_port = free_port();
    let mut bff_env = vec![
        (
            "FLUO_BFF_LISTEN".to_owned(),
            format!("127.0.0.1:{bff_port}"),
        ),
        ("NATS_URL".to_owned(), stack.nats_url()),
    ];
    bff_env.extend(secured.bff_env());
    let mut worker_env = vec![
        (
            "FLUO_WORKER_LISTEN".to_owned(),
            format!("127.0.0.1:{}", free_port()),
        ),
        ("NATS_URL".to_owned(), stack.nats_url()),
        ("FLUO_WORKER_ID".to_owned(), "worker-rolled".to_owned()),
    ];
    worker_env.extend(secured.service_env("worker"));
    let _bff = start(Service::Bff, bff_env, &dir.path().join("bff.log")).await;
    let _worker = start(Service::Worker, worker_env, &dir.path().join("worker.log")).await;
    let new_url = format!("http://127.0.0.1:{bff_port}");
    let new_bff = JobsClient::new(new_url.clone());
    eventually(
        "the new BFF to be ready",
        Duration::from_secs(30),
        || async {
            let ready = new_bff.get("/ready").await.map(|r| r.status);
            Ok::<_, String>((ready.as_ref().ok() == Some(&200)).then_some(()))
        },
    )
    .await
    .unwrap();
    *target.lock().unwrap() = new_url.clone();
    // As a load balancer drains: a request that read the old address just before the switch
    // may still be connecting to it; stopping the old BFF then would reset that connection.
    let before = answered.load(Ordering::Relaxed);
    eventually(
        "a request sent after the switch to be answered",
        Duration::from_secs(10),
        || async {
            Ok::<_, String>((answered.load(Ordering::Relaxed) >= before + 2).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(stack.stop_bff().await.unwrap(), Some(0));
    assert_eq!(stack.stop_worker().await.unwrap(), Some(0));

    // 3. The old users go; after the reload the old credential is refused.
    rotation::finish(&secured.dir).unwrap();
    reload_nats(&stack);
    eventually(
        "the old user to be refused",
        Duration::from_secs(10),
        || async {
            Ok::<_, String>(match connects(&stack, &old_auth).await {
                Err(e) if e.kind() == ConnectErrorKind::AuthorizationViolation => Some(()),
                _ => None,
            })
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (ids, failed) = load.await.unwrap();
    assert!(ids.len() > 50, "only {} jobs in the load", ids.len());
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );

    let logs = std::fs::read_to_string(dir.path().join("bff.log")).unwrap();
    assert!(logs.contains("user bff-2, TLS verified"), "{logs}");
    let reader = JobsClient::new(new_url).with_token(&token);
    for id in &ids {
        reader
            .wait_for_status(id, "completed", Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("job {id} of {}: {e}", ids.len()));
    }
}
