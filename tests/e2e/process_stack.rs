//! issue 14's CI test: the real `infra/` deployed by the real `fluo-deploy` onto kube-emulator's
//! process runtime (real nats-server, prometheus, fluo-bff and fluo-worker processes; the
//! documented stand-ins for Grafana and the NATS exporter), with the deploy's own post-deploy
//! checks on; then `fluo-health` passes every check and `fluo-smoke` gets a job completed by a
//! worker pod, through the emulator's Ingress with the SOP's Host header. Then the monthly
//! rollback drill (issue 18) on the same processes, verified twice by those real checks.

use fluo_rehearse::steps;

#[tokio::test(flavor = "multi_thread")]
async fn real_infra_deploys_then_health_and_smoke_pass_through_the_ingress() {
    let stack = fluo_e2e::process_stack().await;
    let fail = |what: &str, e: String| -> ! {
        panic!(
            "{what}: {e}\n--- kube-emulator log\n{}",
            stack.emulator_log()
        )
    };

    let deployed = steps::deploy_everything(&stack)
        .await
        .unwrap_or_else(|e| fail("deploy --all", e));
    // Dependency order: nats before the BFF before the workers (prometheus and grafana are
    // independent of them and may start in between).
    let at = |c: &str| {
        deployed
            .find(c)
            .unwrap_or_else(|| panic!("{c} missing: {deployed}"))
    };
    assert!(
        at("nats") < at("bff") && at("bff") < at("workers"),
        "{deployed}"
    );
    assert!(at("prometheus") < at("grafana"), "{deployed}");
    let rows = steps::status(&stack)
        .await
        .unwrap_or_else(|e| fail("status", e));
    let mut deployed: Vec<_> = rows
        .iter()
        .filter(|r| r["status"] == "deployed" && r["revision"] == 1)
        .map(|r| r["component"].as_str().unwrap_or_default())
        .collect();
    deployed.sort_unstable();
    assert_eq!(
        deployed,
        ["bff", "grafana", "nats", "prometheus", "workers"],
        "{rows:?}"
    );

    let health = steps::health_passes(&stack)
        .await
        .unwrap_or_else(|e| fail("fluo-health", e));
    assert_eq!(health, "fluo-health: 12 of 12 checks passed");

    let smoke = steps::smoke_passes(&stack)
        .await
        .unwrap_or_else(|e| fail("fluo-smoke", e));
    // The job's result names the worker pod that ran it (the real fluo-worker process).
    assert!(smoke.contains("\"worker\":\"fluo-worker-"), "{smoke}");
    assert!(
        smoke.contains("bad-payload-refused: malformed JSON -> 400"),
        "{smoke}"
    );

    // The drill release and its rollback are each verified by the deploy's real post-deploy
    // checks (fluo-health, then fluo-smoke through the Ingress).
    let drill = stack.run("fluo-deploy", &["drill"]).await;
    if let Err(e) = drill.expect(0) {
        fail("drill", e);
    }
    assert_eq!(
        drill.stderr.matches("post-deploy checks passed").count(),
        2,
        "{drill}"
    );
    assert!(drill.stdout.contains("passed: rolled back in"), "{drill}");
}
