//! Output modes: progress with elapsed time on stderr, result on stdout; quiet and JSON for CI.

use crate::harness::World;

#[tokio::test(flavor = "multi_thread")]
async fn progress_has_elapsed_time_quiet_prints_none_and_json_is_machine_readable() {
    let w = World::start().await;
    // Text: one progress line per component and resource, each with the elapsed time.
    let run = w.cmd(["deploy", "nats"]).run().await;
    run.code(0).stdout_has("deployed v1");
    for needle in [
        "nats: deploying revision 1",
        "nats: applied Deployment/nats",
        "nats: Deployment/nats ready",
        "nats: revision 1 ready in ",
    ] {
        let line = run.stderr.lines().nth(run.line_of(needle)).expect("line");
        let elapsed = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("s] "))
            .map(|(t, _)| t.trim());
        assert!(
            elapsed.is_some_and(|t| t.parse::<f64>().is_ok()),
            "no elapsed time on {line:?}"
        );
    }
    // Quiet: the result only.
    let quiet = w
        .cmd(["-q", "deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await;
    quiet.code(0).stdout_has("deployed v2");
    assert!(
        !quiet.stderr.lines().any(|l| l.starts_with('[')),
        "quiet mode printed progress:\n{}",
        quiet.stderr
    );
    // JSON: the result on stdout, progress as JSON lines on stderr.
    let json = w.cmd(["-o", "json", "deploy", "bff"]).run().await;
    json.code(0);
    let result = json.json();
    assert_eq!(
        result["components"]["bff"]["result"], "deployed",
        "{result}"
    );
    assert_eq!(result["components"]["bff"]["revision"], 1, "{result}");
    assert!(result["deploy_id"].is_string(), "{result}");
    let events: Vec<serde_json::Value> = json
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("progress line {l:?} is not JSON: {e}"))
        })
        .collect();
    assert!(
        events.iter().any(|e| e["component"] == "bff"
            && e["level"] == "ok"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("revision 1 ready"))),
        "{}",
        json.stderr
    );
    assert!(
        events.iter().all(|e| e["elapsed_s"].is_number()),
        "{}",
        json.stderr
    );
}
