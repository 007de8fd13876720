//! The pre-deployment gate (fluo-validate, in-process) runs before anything is applied.

use crate::harness::World;
use crate::{app_objects, records};

#[tokio::test(flavor = "multi_thread")]
async fn failing_gate_step_exits_1_naming_it_and_applies_nothing() {
    let w = World::start().await;
    w.infra.write(
        "checklist.toml",
        r#"
[steps.tests]
command = ["true"]
[steps.flake-check]
command = ["false"]
[steps.build]
command = ["true"]
"#,
    );
    w.cmd(["deploy", "--all", "--reason", "gated"])
        .run()
        .await
        .code(1)
        .stderr_has("gate step `flake-check` failed");
    assert_eq!(records(&w.client).await, Vec::<String>::new());
    assert_eq!(app_objects(&w.client).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn skipped_gate_step_is_recorded_in_the_release_record() {
    let w = World::start().await;
    w.infra.write(
        "checklist.toml",
        r#"
[steps.tests]
command = ["false"]
[steps.flake-check]
command = ["true"]
[steps.build]
command = ["true"]
"#,
    );
    w.cmd([
        "deploy",
        "nats",
        "--skip",
        "tests",
        "--reason",
        "suite ran in CI",
    ])
    .run()
    .await
    .code(0);
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(w.client.clone(), "fluo-system");
    let v1 = secrets.get("fluo.release.nats.v1").await.unwrap();
    let bytes = v1.data.unwrap()["release"].0.clone();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        record["skipped_checks"],
        serde_json::json!(["tests: suite ran in CI"]),
        "release record: {record}"
    );
    // An unknown step is a usage error and changes nothing.
    w.cmd(["deploy", "bff", "--skip", "lint", "--reason", "x"])
        .run()
        .await
        .code(2)
        .stderr_has("lint");
    assert_eq!(records(&w.client).await, ["fluo.release.nats.v1"]);
}

/// The gate gives the BFF's rendered env to the real `fluo-bff --check-config=values`: a value
/// the service would refuse at start stops the deploy naming file, field and value.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_config_the_bff_refuses_fails_the_gate_and_applies_nothing() {
    let bff = fluo_teststack::service_binary(fluo_teststack::Service::Bff)
        .await
        .expect("fluo-bff binary (cargo build -p fluo-bff)");
    let bin_dir = bff.parent().unwrap().to_str().unwrap().to_string();
    let w = World::start().await;
    let manifest = crate::harness::workload("bff", "fluo/fluo-bff:dev").replace(
        "env: [{name: FLUO_BFF_AUTH_TOKENS_FILE, value: /var/run/fluo/tokens.toml}]",
        "env: [{name: FLUO_BFF_AUTH_TOKENS_FILE, value: /var/run/fluo/tokens.toml}, {name: FLUO_BFF_FAULT_5XX_RATIO, value: \"7\"}]",
    );
    assert!(manifest.contains("FLUO_BFF_FAULT_5XX_RATIO"));
    w.infra
        .write("components/bff/manifests/bff.yaml", &manifest);
    w.cmd(["deploy", "--all", "--reason", "bad ratio"])
        .env("FLUO_SERVICE_BIN_DIR", &bin_dir)
        .run()
        .await
        .code(1)
        .stderr_has("service.config")
        .stderr_has("bff.yaml")
        .stderr_has("spec.template.spec.containers[0].env")
        .stderr_has("--fault-5xx-ratio (FLUO_BFF_FAULT_5XX_RATIO) \"7\" must be a number");
    assert_eq!(records(&w.client).await, Vec::<String>::new());
    assert_eq!(app_objects(&w.client).await, Vec::<String>::new());
    // The same tree with a value the BFF accepts passes the gate.
    w.infra.write(
        "components/bff/manifests/bff.yaml",
        &manifest.replace("value: \"7\"", "value: \"0.5\""),
    );
    w.cmd(["deploy", "bff", "--reason", "good ratio"])
        .env("FLUO_SERVICE_BIN_DIR", &bin_dir)
        .run()
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_side_dry_run_covers_the_components_being_deployed() {
    let w = World::start().await;
    // Valid for the schema (data is a string map), rejected by the API server (key syntax).
    w.infra.write(
        "components/bff/manifests/zz-bad-key.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-key\ndata:\n  \"no spaces allowed\": x\n",
    );
    // nats leaves bff alone, so bff's objects are not dry-run.
    w.cmd(["deploy", "nats", "--reason", "nats only"])
        .run()
        .await
        .code(0);
    w.cmd(["deploy", "bff", "--reason", "bff"])
        .run()
        .await
        .code(1)
        .stderr_has("server-side dry run of ConfigMap/bad-key rejected");
    assert_eq!(records(&w.client).await, ["fluo.release.nats.v1"]);
}
