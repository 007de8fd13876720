//! issue 15: the whole SOP-002 rehearsal (`fluo-rehearse`, what `scripts/rehearse` runs) passes
//! every step on the process runtime (including the monitor's rollback on real 5xx and the
//! planned rollback under job load), and writes its report as JSON and Markdown. The report is
//! printed, so it is in the CI log (.config/nextest.toml shows this test's output).

/// The steps of SOP-002 the rehearsal must report, in order (docs/sop-mapping.md).
const STEPS: [&str; 12] = [
    "gate",
    "deploy-all",
    "health",
    "smoke",
    "monitor",
    "bad-release",
    "error-rate-release",
    "emergency-rollback",
    "component-rollback",
    "planned-rollback",
    "delete-all-redeploy",
    "history-verify",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_sop_rehearsal_passes_every_step_and_writes_its_report() {
    let bin = fluo_e2e::binaries();
    let out = tempfile::tempdir().expect("temp dir");
    let json = out.path().join("report.json");
    let md = out.path().join("report.md");
    let run = tokio::process::Command::new(bin.join("fluo-rehearse"))
        .arg("--repo")
        .arg(fluo_e2e::repo())
        .arg("--report-json")
        .arg(&json)
        .arg("--report-md")
        .arg(&md)
        .kill_on_drop(true)
        .output()
        .await
        .expect("fluo-rehearse runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report written"))
            .expect("the JSON report parses");
    assert_eq!(report["passed"], true);
    let steps: Vec<_> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["step"].as_str().unwrap_or_default(), s["verdict"].clone()))
        .collect();
    assert_eq!(
        steps,
        STEPS.map(|s| (s, serde_json::json!("pass"))),
        "{report:#}"
    );
    let markdown = std::fs::read_to_string(&md).expect("Markdown report written");
    assert!(
        markdown.contains("| 6 | Failure handling (automatic rollback) | `bad-release` | PASS |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("rehearsal passed: 12 of 12 steps passed"),
        "{markdown}"
    );
    // Issue 15 step 7: real 5xx, seen by the real Prometheus, rolled back by the monitor.
    let step = |name: &str| -> String {
        report["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["step"] == name))
            .map(|s| s["evidence"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let error_rate = step("error-rate-release");
    for want in [
        "\"500\"",
        "BREACH: BFF 5xx ratio",
        "rolled back automatically",
        "green again",
    ] {
        assert!(error_rate.contains(want), "{want} missing: {error_rate}");
    }
    // Planned rollback with jobs flowing: every accepted job completed, none lost or failed.
    let planned = step("planned-rollback");
    for want in [
        "before the shutdown: 50 accepted",
        "across the shutdown and redeploy: 50 accepted",
        "50 completed",
        "none lost or failed",
    ] {
        assert!(planned.contains(want), "{want} missing: {planned}");
    }
}
