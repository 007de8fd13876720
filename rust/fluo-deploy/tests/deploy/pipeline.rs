//! Deploy order, fail-fast with automatic rollback, manual rollbacks.

use crate::harness::{World, workload};
use crate::{DEFAULT_IMAGES, assert_images, image_of, records};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_all_follows_dependencies_and_records_everything() {
    let w = World::start().await;
    let run = w.cmd(["deploy", "--all", "--reason", "first"]).run().await;
    run.code(0);
    // nats before bff before workers: a dependent starts only after its dependency is ready.
    assert!(run.line_of("nats: revision 1 ready") < run.line_of("bff: deploying revision 1"));
    assert!(run.line_of("bff: revision 1 ready") < run.line_of("workers: deploying revision 1"));
    // Independent components overlap: prometheus starts before nats is ready.
    assert!(
        run.line_of("prometheus: deploying revision 1") < run.line_of("nats: revision 1 ready")
    );
    assert_eq!(
        records(&w.client).await,
        [
            "fluo.release.bff.v1",
            "fluo.release.nats.v1",
            "fluo.release.prometheus.v1",
            "fluo.release.workers.v1"
        ]
    );
    let history = w.cmd(["history", "-o", "json"]).run().await;
    history.code(0);
    let entries = history.json();
    let entries = entries.as_array().expect("array");
    assert_eq!(entries.len(), 4);
    for e in entries {
        assert_eq!(e["status"], "deployed");
        assert_eq!(e["outcome"], "succeeded");
        assert_eq!(e["commit"], "0123456789abcdef");
        assert_eq!(e["dirty"], true);
        assert_eq!(e["user"], "tester");
        assert_eq!(e["reason"], "first");
        assert_eq!(
            e["deploy_id"], entries[0]["deploy_id"],
            "one deploy id per run"
        );
    }
    // Labels and replicas from the environment reached the cluster.
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(w.client.clone(), "fluo");
    let bff = api.get("bff").await.unwrap();
    let labels = bff.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "fluo");
    assert_eq!(labels["app.kubernetes.io/part-of"], "fluo");
    assert_eq!(labels["fluo.dev/component"], "bff");
    assert_eq!(bff.spec.replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn sequential_deploy_follows_sop_order_one_at_a_time() {
    let w = World::start().await;
    let run = w.cmd(["deploy", "--all", "--sequential"]).run().await;
    run.code(0);
    // SOP-002 order of the fixture: nats (1), prometheus (2), bff (4), workers (5); each starts
    // only after the one before is ready, even prometheus, which depends on nothing.
    let order = ["nats", "prometheus", "bff", "workers"];
    for pair in order.windows(2) {
        assert!(
            run.line_of(&format!("{}: revision 1 ready", pair[0]))
                < run.line_of(&format!("{}: deploying revision 1", pair[1])),
            "{} must be ready before {} starts:\n{}",
            pair[0],
            pair[1],
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crashloop_fails_fast_rolls_back_and_spares_dependents() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(w.client.clone(), "fluo");
    let workers_generation = deployments
        .get("workers")
        .await
        .unwrap()
        .metadata
        .generation;
    let run = w
        .cmd([
            "deploy",
            "bff",
            "workers",
            "--image",
            "fluo-bff=fluo/fluo-bff:crashloop",
            "--timeout",
            "120s",
        ])
        .run()
        .await;
    // Fail fast: the cause is the pod's CrashLoopBackOff, not the 120 s timeout.
    run.code(1)
        .stderr_has("CrashLoopBackOff")
        .stderr_has("rolled back to v1")
        .stderr_has("workers: skipped: dependency bff did not deploy");
    assert!(!run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("workers: applied"),
        "workers were touched:\n{}",
        run.stderr
    );
    assert_eq!(
        deployments
            .get("workers")
            .await
            .unwrap()
            .metadata
            .generation,
        workers_generation,
        "the workers Deployment was not changed"
    );
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );
    assert!(
        records(&w.client)
            .await
            .contains(&"fluo.release.workers.v1".to_string())
    );
    assert!(
        !records(&w.client)
            .await
            .contains(&"fluo.release.workers.v2".to_string())
    );
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let entries = history.json();
    let statuses: Vec<(u64, &str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["revision"].as_u64().unwrap(),
                e["status"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (1, "superseded", "succeeded"),
            (2, "rolled-back", "failed"),
            (3, "deployed", "succeeded")
        ]
    );
    assert!(
        entries[1]["message"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_first_install_is_removed() {
    let w = World::start().await;
    w.cmd(["deploy", "nats", "--image", "nats=fluo/does-not-exist:1"])
        .run()
        .await
        .code(1)
        .stderr_has("ErrImagePull");
    assert_eq!(
        image_of(&w.client, "nats").await,
        None,
        "the failed first install was removed"
    );
    let history = w.cmd(["history", "nats", "-o", "json"]).run().await;
    assert_eq!(history.json()[0]["status"], "rolled-back");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_refused_by_admission_fail_fast_with_the_api_servers_reason() {
    let w = World::start().await;
    // The gate would catch the missing ServiceAccount; an operator skipping it in an emergency
    // must still get the cause at once, not a progress-deadline timeout.
    let manifest = workload("nats", "fluo/nats:2.10").replace(
        "    spec:\n      securityContext:",
        "    spec:\n      serviceAccountName: nats-missing\n      securityContext:",
    );
    w.infra
        .write("components/nats/manifests/nats.yaml", &manifest);
    let run = w
        .cmd([
            "deploy",
            "nats",
            "--skip",
            "manifests",
            "--reason",
            "emergency: validation skipped",
            "--timeout",
            "120s",
        ])
        .run()
        .await;
    run.code(1)
        .stderr_has("cannot create pods (FailedCreate)")
        .stderr_has("serviceaccount \"nats-missing\" not found");
    assert!(!run.stderr.contains("timed out"), "{}", run.stderr);
    assert_eq!(
        image_of(&w.client, "nats").await,
        None,
        "the failed first install was removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_previous_restores_every_previous_image_and_needs_a_reason() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.cmd([
        "deploy",
        "--all",
        "--image",
        "nats=fluo/nats:2.11",
        "--image",
        "fluo-bff=fluo/fluo-bff:v2",
        "--image",
        "fluo-worker=fluo/fluo-worker:v2",
        "--image",
        "prometheus=fluo/prometheus:3.0",
    ])
    .run()
    .await
    .code(0);
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:v2")
    );
    w.cmd(["rollback-to-previous"])
        .run()
        .await
        .code(2)
        .stderr_has("--reason");
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:v2"),
        "refusal changed nothing"
    );
    w.cmd(["rollback-to-previous", "--reason", "bad release"])
        .run()
        .await
        .code(0);
    assert_images(&w.client, &DEFAULT_IMAGES).await;
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let last = history.json().as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["reason"], "bad release");
    assert_eq!(last["action"]["type"], "rollback");
    assert_eq!(last["action"]["to"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_one_component_to_a_revision() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(0);
    w.cmd(["rollback", "nats", "--to", "1"])
        .run()
        .await
        .code(2)
        .stderr_has("--reason");
    assert_eq!(
        records(&w.client).await.len(),
        2,
        "a refused rollback writes no record"
    );
    assert_eq!(
        image_of(&w.client, "nats").await.as_deref(),
        Some("fluo/nats:2.11"),
        "a refused rollback changes nothing"
    );
    w.cmd(["rollback", "nats", "--to", "9", "--reason", "x"])
        .run()
        .await
        .code(2)
        .stderr_has("no revision 9");
    w.cmd(["rollback", "nats", "--to", "1", "--reason", "planned"])
        .run()
        .await
        .code(0);
    assert_eq!(
        image_of(&w.client, "nats").await.as_deref(),
        Some("fluo/nats:2.10")
    );
}

/// The real infra/ tree: cluster objects first, then the five components along the graph.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_all_of_the_real_infra_tree() {
    let w = World::start().await;
    // grafana reads its admin credentials from a Secret an operator creates (never in git).
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(w.client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "fluo"}})).unwrap();
    namespaces.create(&Default::default(), &ns).await.unwrap();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(w.client.clone(), "fluo");
    let admin = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "grafana-admin"},
        "stringData": {"admin-user": "admin", "admin-password": "s3cret"}
    }))
    .unwrap();
    secrets.create(&Default::default(), &admin).await.unwrap();
    for object in fluo_teststack::security_secrets("fluo") {
        let secret = serde_json::from_value(object).unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    let mut cmd = w.cmd([
        "--context",
        "kube-emulator",
        "deploy",
        "--all",
        // The real checklist runs the test suite and the Nix builds; `status` refuses the
        // emulator's context (local targets docker-desktop). manifests and policy still run
        // against the real tree.
        "--skip",
        "tests",
        "--skip",
        "flake-check",
        "--skip",
        "build",
        "--skip",
        "status",
        // Nothing serves the components' endpoints here (emulated pods).
        "--no-post-checks",
        "--reason",
        "real tree",
    ]);
    let infra_arg = cmd.args.iter().position(|a| a == "--infra").unwrap() + 1;
    cmd.args[infra_arg] = crate::harness::repo_infra().display().to_string();
    let run = cmd.run().await;
    run.code(0);
    assert!(
        run.line_of("cluster: applying cluster-wide objects")
            < run.line_of("nats: deploying revision 1")
    );
    assert!(run.line_of("nats: revision 1 ready") < run.line_of("bff: deploying revision 1"));
    assert!(run.line_of("bff: revision 1 ready") < run.line_of("workers: deploying revision 1"));
    assert!(
        run.line_of("prometheus: revision 1 ready") < run.line_of("grafana: deploying revision 1")
    );
    // prometheus and nats are independent: both start before either is ready.
    let first_ready = run
        .line_of("nats: revision 1 ready")
        .min(run.line_of("prometheus: revision 1 ready"));
    assert!(run.line_of("nats: deploying revision 1") < first_ready);
    assert!(run.line_of("prometheus: deploying revision 1") < first_ready);
    assert_eq!(records(&w.client).await.len(), 5);
    assert!(!run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"));
    // Every record is complete: what was applied (gzip JSON), with what, by whom, why, how it
    // went, and the chain.
    let release_secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(w.client.clone(), "fluo-system");
    let mut deploy_ids = std::collections::BTreeSet::new();
    for c in ["nats", "prometheus", "grafana", "bff", "workers"] {
        let secret = release_secrets
            .get(&format!("fluo.release.{c}.v1"))
            .await
            .unwrap_or_else(|e| panic!("record of {c}: {e}"));
        assert_eq!(secret.type_.as_deref(), Some("fluo.dev/release.v1"));
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["fluo.dev/component"], c);
        assert_eq!(labels["fluo.dev/revision"], "1");
        assert_eq!(labels["fluo.dev/status"], "deployed");
        let digest = &secret.metadata.annotations.clone().unwrap_or_default()["fluo.dev/digest"];
        assert_eq!(digest.len(), 64, "sha-256 hex digest of {c}");
        let record = decode_record(&secret);
        assert_eq!(record["component"], c);
        assert_eq!(record["revision"], 1);
        assert_eq!(record["action"]["type"], "deploy");
        assert_eq!(record["environment"], "local");
        assert_eq!(record["namespace"], "fluo");
        assert_eq!(record["commit"], "0123456789abcdef");
        assert_eq!(record["dirty"], true);
        assert_eq!(record["user"], "tester");
        assert_eq!(record["reason"], "real tree");
        assert_eq!(record["outcome"], "succeeded");
        assert_eq!(record["message"], serde_json::Value::Null);
        assert!(record["duration_ms"].as_u64().is_some_and(|d| d > 0), "{c}");
        assert!(
            record["started_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{c}"
        );
        assert_eq!(
            record["prev_digest"],
            serde_json::Value::Null,
            "first record of {c}"
        );
        assert_eq!(
            record["skipped_checks"],
            serde_json::json!([
                "tests: real tree",
                "flake-check: real tree",
                "build: real tree",
                "status: real tree"
            ])
        );
        let images = record["images"].as_object().expect("images");
        assert!(!images.is_empty(), "{c} records its images");
        let manifests = record["manifests"].as_array().expect("manifests");
        assert!(
            manifests
                .iter()
                .any(|m| matches!(m["kind"].as_str(), Some("Deployment" | "StatefulSet"))),
            "{c} records its workload"
        );
        for m in manifests {
            assert_eq!(m["metadata"]["labels"]["fluo.dev/component"], c, "{m}");
        }
        // The recorded manifests never carry secret values (grafana's admin password is external).
        assert!(!record.to_string().contains("s3cret"), "{c}");
        deploy_ids.insert(record["deploy_id"].as_str().expect("deploy id").to_string());
    }
    assert_eq!(deploy_ids.len(), 1, "one deploy id per run: {deploy_ids:?}");
    let mut verify = w.cmd(["--context", "kube-emulator", "history", "--verify"]);
    verify.args[infra_arg] = crate::harness::repo_infra().display().to_string();
    verify.run().await.code(0).stdout_has("history verified");
}

/// The gzip JSON payload of a release record.
fn decode_record(secret: &k8s_openapi::api::core::v1::Secret) -> serde_json::Value {
    let bytes = secret.data.as_ref().expect("data")["release"].0.clone();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
        .expect("payload is gzip");
    serde_json::from_slice(&json).expect("payload is JSON")
}

/// SOP-002 emergency rollback after a deploy that also installed components for the first
/// time: those have no previous release, are left in place (never deleted by an emergency
/// rollback) and say so in the output and in their history; everything else rolls back, exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_previous_reports_first_installs_left_in_place() {
    let w = World::start().await;
    w.cmd(["deploy", "nats", "prometheus"]).run().await.code(0);
    w.cmd([
        "deploy",
        "--all",
        "--image",
        "nats=fluo/nats:2.11",
        "--image",
        "prometheus=fluo/prometheus:3.0",
    ])
    .run()
    .await
    .code(0);
    let run = w
        .cmd(["rollback-to-previous", "--reason", "error rate after 1.5"])
        .run()
        .await;
    run.code(0)
        .stderr_has("bff: no previous release — left at revision 1")
        .stderr_has("workers: no previous release — left at revision 1");
    let row = |c: &str| -> Vec<String> {
        let line = run
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(c))
            .unwrap_or_else(|| panic!("no row for {c}:\n{}", run.stdout));
        line.split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(
        row("nats")[1],
        "rolled back to v1 (as v3)",
        "{}",
        run.stdout
    );
    assert_eq!(row("prometheus")[1], "rolled back to v1 (as v3)");
    for c in ["bff", "workers"] {
        let cells = row(c);
        assert_eq!(
            cells[1], "no previous release — left at v1",
            "{}",
            run.stdout
        );
        assert!(
            cells[2].starts_with("first installed by deploy ")
                && cells[2].ends_with(&format!("to remove it: fluo-deploy delete {c}")),
            "{}",
            run.stdout
        );
    }
    assert_eq!(
        run.stdout.matches("no previous release").count(),
        2,
        "{}",
        run.stdout
    );
    assert_images(&w.client, &DEFAULT_IMAGES).await;
    // History: bff stays at its deployed v1, noted as left in place by this rollback.
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let entries = history.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    assert_eq!(entries[0]["status"], "deployed");
    let note = entries[0]["left_in_place"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("left at v1 by rollback ")
            && note.ends_with("no previous release (reason: error rate after 1.5)"),
        "{entries}"
    );
    w.cmd(["history", "workers"])
        .run()
        .await
        .code(0)
        .stdout_has("[left at v1 by rollback ");
    let nats = w.cmd(["history", "nats", "-o", "json"]).run().await.json();
    assert_eq!(nats[0]["left_in_place"], serde_json::Value::Null);
    // The note lives outside the hashed payload: the chain still verifies.
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(0)
        .stdout_has("history verified");
    // Run again (the latest deploy is still the same): same outcome, machine-readable.
    let again = w
        .cmd(["-o", "json", "rollback-to-previous", "--reason", "again"])
        .run()
        .await;
    again.code(0);
    let result = again.json();
    let bff = &result["components"]["bff"];
    assert_eq!(bff["result"], "no-previous", "{result}");
    assert_eq!(bff["revision"], 1, "{result}");
    assert_eq!(
        result["components"]["nats"]["result"], "deployed",
        "{result}"
    );
    assert_eq!(result["components"]["nats"]["restores"], 1, "{result}");
}

/// When the latest deploy only installed components for the first time there is nothing to go
/// back to: refused (exit 2) with the way to remove them, and nothing changed.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_previous_of_first_installs_only_changes_nothing() {
    let w = World::start().await;
    w.cmd(["deploy", "nats", "bff"]).run().await.code(0);
    let before = records(&w.client).await;
    w.cmd(["rollback-to-previous", "--reason", "undo"])
        .run()
        .await
        .code(2)
        .stderr_has("nothing to roll back (nothing changed)")
        .stderr_has("bff (left at v1), nats (left at v1)")
        .stderr_has("fluo-deploy delete");
    assert_eq!(records(&w.client).await, before);
    let history = w.cmd(["history", "-o", "json"]).run().await.json();
    for e in history.as_array().expect("array") {
        assert_eq!(e["status"], "deployed", "{e}");
        assert_eq!(e["left_in_place"], serde_json::Value::Null, "{e}");
    }
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );
}

/// A first install that failed was removed by the automatic rollback: rollback-to-previous
/// reports it as not installed and rolls the rest back.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_previous_reports_a_removed_first_install_as_not_installed() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    w.cmd([
        "deploy",
        "nats",
        "bff",
        "--image",
        "nats=fluo/nats:2.11",
        "--image",
        "fluo-bff=fluo/does-not-exist:1",
    ])
    .run()
    .await
    .code(1);
    assert_eq!(image_of(&w.client, "bff").await, None);
    let run = w
        .cmd(["rollback-to-previous", "--reason", "undo 2.11"])
        .run()
        .await;
    run.code(0)
        .stdout_has("no previous release — not installed")
        .stderr_has("bff: no previous release — not installed");
    assert_eq!(
        image_of(&w.client, "nats").await.as_deref(),
        Some("fluo/nats:2.10")
    );
    assert_eq!(
        image_of(&w.client, "bff").await,
        None,
        "nothing was installed"
    );
    let bff = w.cmd(["history", "bff", "-o", "json"]).run().await.json();
    assert_eq!(bff[0]["status"], "rolled-back", "{bff}");
    assert_eq!(
        bff.as_array().map(Vec::len),
        Some(1),
        "no record added: {bff}"
    );
}
