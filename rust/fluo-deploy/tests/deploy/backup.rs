//! JetStream backup before a deploy that changes the NATS StatefulSet, and `restore`, against
//! a real nats-server (Debian's, JetStream on, loopback) and kube-emulator.

use async_nats::jetstream::{self, consumer, stream};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;

use crate::harness::{Infra, LOCAL_ENV, World, workload};
use crate::records;
use crate::trust::payload;

/// The harness's nats component as a StatefulSet (what holds JetStream's volume).
fn nats_statefulset() -> String {
    workload("nats", "fluo/nats:2.10")
        .replacen("kind: Deployment", "kind: StatefulSet", 1)
        .replacen(
            "spec:\n  replicas: 1\n",
            "spec:\n  serviceName: nats\n  replicas: 1\n",
            1,
        )
}

fn env_with_backup(dir: &std::path::Path, nats_url: &str) -> String {
    format!(
        "{LOCAL_ENV}\n[backup]\ndir = \"{}\"\nnats_url = \"{nats_url}\"\n",
        dir.display()
    )
}

async fn nats_image(client: &kube::Client) -> String {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "fluo");
    let set = sets.get("nats").await.expect("StatefulSet nats");
    set.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

/// (subject, payload, header Fluo-Test) of every message of a stream.
async fn contents(js: &jetstream::Context, name: &str) -> Vec<(String, String, Option<String>)> {
    let mut stream = js.get_stream(name).await.expect("stream exists");
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let header = m.headers.get("Fluo-Test").map(|v| v.as_str().to_string());
            out.push((
                m.subject.to_string(),
                String::from_utf8(m.payload.to_vec()).unwrap(),
                header,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_change_is_backed_up_first_and_restore_brings_the_streams_back() {
    let stack = fluo_teststack::Stack::builder()
        .nats()
        .start()
        .await
        .expect("nats-server with JetStream (apt-get install nats-server)");
    let nats = async_nats::connect(stack.nats_url()).await.unwrap();
    let js = jetstream::new(nats);
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Fluo-Test", "h1");
    js.publish_with_headers("orders.a", headers, "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    for (subject, body) in [("orders.b", "two"), ("orders.c", "three")] {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A gap in the sequence: message 2 deleted.
    orders.delete_message(2).await.unwrap();
    orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let before = contents(&js, "ORDERS").await;
    assert_eq!(before.len(), 2);

    let backups = tempfile::tempdir().unwrap();
    let infra = Infra::standard();
    infra.write("components/nats/manifests/nats.yaml", &nats_statefulset());
    infra.write(
        "environments/local.toml",
        &env_with_backup(backups.path(), &stack.nats_url()),
    );
    let w = World::with(infra, std::time::Duration::ZERO).await;
    // First install: nothing to back up.
    w.cmd(["deploy", "nats"]).run().await.code(0);
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0);
    // A change of the StatefulSet: backed up before anything is applied.
    let run = w
        .cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await;
    run.code(0).stderr_has("JetStream backed up to");
    assert_eq!(nats_image(&w.client).await, "fluo/nats:2.11");
    let taken: Vec<_> = std::fs::read_dir(backups.path()).unwrap().collect();
    assert_eq!(taken.len(), 1);
    let dir = taken[0].as_ref().unwrap().path();
    let lines = std::fs::read_to_string(dir.join("ORDERS.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // The same StatefulSet again: no backup.
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(0);
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 1);

    // The state is lost; another stream appears meanwhile.
    js.delete_stream("ORDERS").await.unwrap();
    js.create_stream(stream::Config {
        name: "OTHER".into(),
        subjects: vec!["other.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("other.x", "keep".into())
        .await
        .unwrap()
        .await
        .unwrap();
    w.cmd(["restore"])
        .run()
        .await
        .code(2)
        .stderr_has("restore needs --reason");
    // Gated like a deploy: outside the environment's windows it is refused, nothing changed.
    let open_env = env_with_backup(backups.path(), &stack.nats_url());
    let closed = open_env.replacen(
        "[approvals]",
        "[[windows]]\ndays = [\"Mon\"]\nstart = \"00:00\"\nend = \"00:01\"\n[approvals]",
        1,
    );
    w.infra.write("environments/local.toml", &closed);
    let recorded = records(&w.client).await;
    w.cmd(["restore", "--reason", "lost ORDERS", "--yes"])
        .run()
        .await
        .code(5)
        .stderr_has("outside");
    assert!(js.get_stream("ORDERS").await.is_err(), "nothing restored");
    assert_eq!(records(&w.client).await, recorded);
    w.infra.write("environments/local.toml", &open_env);
    // Not on a terminal: it needs --yes, like delete and shutdown.
    w.cmd(["restore", "--reason", "lost ORDERS"])
        .run()
        .await
        .code(2)
        .stderr_has("--yes");
    assert!(js.get_stream("ORDERS").await.is_err(), "nothing restored");
    let run = w
        .cmd(["restore", "--reason", "lost ORDERS", "--yes"])
        .run()
        .await;
    run.code(0)
        .stdout_has("stream ORDERS: 2 message(s), 1 consumer(s)");
    // The record: who, why, which backup, outcome.
    let after = records(&w.client).await;
    let new: Vec<_> = after.iter().filter(|r| !recorded.contains(r)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let revision = new[0]
        .strip_prefix("fluo.release.nats.v")
        .expect("a nats record");
    run.stdout_has(&format!("(recorded as nats v{revision})"));
    let record = payload(&w, new[0]).await;
    let id = dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        record["action"],
        serde_json::json!({"type": "restore", "backup": id})
    );
    assert_eq!(record["reason"], "lost ORDERS");
    assert_eq!(record["outcome"], "succeeded");
    assert!(
        !record["user"].as_str().unwrap_or("").is_empty(),
        "{record}"
    );
    w.cmd(["history", "nats"])
        .run()
        .await
        .code(0)
        .stdout_has(&format!("restore from backup {id}"));
    assert_eq!(contents(&js, "ORDERS").await, before);
    let restored = js.get_stream("ORDERS").await.unwrap();
    let consumers: Vec<String> = restored.consumer_names().try_collect().await.unwrap();
    assert_eq!(consumers, ["workers"]);
    assert_eq!(
        contents(&js, "OTHER").await.len(),
        1,
        "streams not in the backup stay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_or_a_bad_backup_setting_changes_nothing() {
    let backups = tempfile::tempdir().unwrap();
    let infra = Infra::standard();
    infra.write("components/nats/manifests/nats.yaml", &nats_statefulset());
    let w = World::with(infra, std::time::Duration::ZERO).await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let recorded = records(&w.client).await;
    // NATS unreachable: the deploy that would change the StatefulSet is refused.
    let dead = fluo_core::notify::receiver::dead_url("x").await;
    let dead = dead
        .replace("http://", "nats://")
        .replace("/services/x", "");
    w.infra.write(
        "environments/local.toml",
        &env_with_backup(backups.path(), &dead),
    );
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(1)
        .stderr_has("the JetStream backup before changing StatefulSet/nats failed")
        .stderr_has("nothing was applied");
    assert_eq!(nats_image(&w.client).await, "fluo/nats:2.10");
    assert_eq!(records(&w.client).await, recorded);
    // A bad setting: exit 2 naming file, field and value.
    w.infra.write(
        "environments/local.toml",
        &env_with_backup(backups.path(), "http://127.0.0.1:4222"),
    );
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(2)
        .stderr_has("local.toml")
        .stderr_has(
            "`backup.nats_url` = \"http://127.0.0.1:4222\": must start with nats:// or tls://",
        );
    assert_eq!(nats_image(&w.client).await, "fluo/nats:2.10");
    assert_eq!(records(&w.client).await, recorded);
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0);
}

/// Messages of the job stream, as (subject, payload).
async fn jobs(js: &jetstream::Context) -> Vec<(String, String)> {
    contents(js, fluo_jobs::names::STREAM)
        .await
        .into_iter()
        .map(|(subject, payload, _)| (subject, payload))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secured_nats_is_backed_up_and_restored_as_the_backup_user_from_the_secrets() {
    let stack = fluo_teststack::Stack::builder()
        .nats()
        .secured()
        .start()
        .await
        .expect("a secured nats-server (apt-get install nats-server)");
    let secured = stack.secured().unwrap().clone();
    // The platform's streams and two queued jobs, as the BFF makes them.
    let bff = fluo_jobs::connect::options("test-bff".into(), &secured.nats_auth("bff"))
        .unwrap()
        .connect(stack.nats_url())
        .await
        .unwrap();
    let js = jetstream::new(bff);
    fluo_jobs::provision::ensure_stream(&js).await.unwrap();
    fluo_jobs::provision::ensure_bucket(&js).await.unwrap();
    let publish = |n: u32| {
        let js = js.clone();
        async move {
            js.publish("fluo.jobs.echo", format!("{{\"n\":{n}}}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    publish(1).await;
    publish(2).await;
    // Read back as the backup user (the BFF may not read the job stream's messages).
    let reader = fluo_jobs::connect::options("test-backup".into(), &secured.nats_auth("backup"))
        .unwrap()
        .connect(stack.nats_url())
        .await
        .unwrap();
    let reader = jetstream::new(reader);
    let before = jobs(&reader).await;
    assert_eq!(before.len(), 2);

    let backups = tempfile::tempdir().unwrap();
    let infra = Infra::standard();
    infra.write("components/nats/manifests/nats.yaml", &nats_statefulset());
    infra.write(
        "environments/local.toml",
        &format!(
            "{LOCAL_ENV}\n[backup]\ndir = \"{}\"\nnats_url = \"{}\"\ncredentials_from_secrets = true\n",
            backups.path().display(),
            stack.nats_url()
        ),
    );
    let w = World::with(infra, std::time::Duration::ZERO).await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    // Without the backup user's Secret the change is refused, nothing applied.
    let recorded = records(&w.client).await;
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(1)
        .stderr_has("Secret fluo/nats-credentials")
        .stderr_has("nothing was applied");
    assert_eq!(nats_image(&w.client).await, "fluo/nats:2.10");
    assert_eq!(records(&w.client).await, recorded);

    // The Secrets as the operator makes them from fluo-secrets' files.
    let file = |name: &str| std::fs::read_to_string(secured.dir.join(name)).unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(w.client.clone(), "fluo");
    for (name, data) in [
        (
            "nats-credentials",
            serde_json::json!({"backup.user": file("backup.user"), "backup.password": file("backup.password")}),
        ),
        ("nats-tls", serde_json::json!({"ca.crt": file("ca.crt")})),
    ] {
        let secret = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name}, "stringData": data}),
        )
        .unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(0)
        .stderr_has("JetStream backed up to");
    assert_eq!(nats_image(&w.client).await, "fluo/nats:2.11");
    let taken: Vec<_> = std::fs::read_dir(backups.path()).unwrap().collect();
    assert_eq!(taken.len(), 1);
    let dir = taken[0].as_ref().unwrap().path();
    let lines = std::fs::read_to_string(dir.join("FLUO_JOBS.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");

    // A job queued after the backup is gone once the backup is restored.
    publish(3).await;
    assert_eq!(jobs(&reader).await.len(), 3);
    w.cmd(["restore", "--reason", "back to before the change", "--yes"])
        .run()
        .await
        .code(0)
        .stdout_has("stream FLUO_JOBS: 2 message(s)");
    assert_eq!(jobs(&reader).await, before);
}
