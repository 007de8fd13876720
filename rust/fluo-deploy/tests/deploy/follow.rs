//! `logs --follow`: new lines arrive while the command runs, secrets in them are redacted, and
//! SIGINT or SIGTERM ends it cleanly (exit 0).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::harness::World;

/// kube-emulator streams these annotation lines to followers as they are added (README).
const LOG_ANNOTATION: &str = "kube-emulator.fluo.dev/log";

/// Reads stdout lines until one contains `needle`; every line read is appended to `seen`.
async fn line_containing(
    lines: &mut Lines<BufReader<ChildStdout>>,
    needle: &str,
    seen: &mut String,
) -> String {
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return line;
            }
        }
        panic!("stdout ended before a line containing {needle:?}:\n{seen}");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no line containing {needle:?} within 60s:\n{seen}"))
}

fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("`kill` runs (apt-get install procps)");
    assert!(status.success(), "kill {signal} {pid} failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_streams_new_lines_redacted_and_stops_cleanly_on_sigint_and_sigterm() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), "fluo");
    let pod = pods
        .list(&ListParams::default().labels("fluo.dev/component=nats"))
        .await
        .expect("list pods")
        .items
        .remove(0)
        .metadata
        .name
        .expect("pod name");
    let prefix = format!("nats/{pod}/main: ");
    // Lines only ever get appended to the annotation (the emulator streams what is new).
    let mut annotation = String::new();
    for (flag, signal) in [("-INT", "SIGINT"), ("-TERM", "SIGTERM")] {
        let mut child = w
            .cmd(["logs", "nats", "--follow"])
            .command()
            .spawn()
            .expect("spawn fluo-deploy logs --follow");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = String::new();
        // The container's start line: the stream is open before the new lines are written.
        line_containing(&mut lines, "kube-emulator: container main", &mut seen).await;
        for batch in [
            format!("connecting to nats://fluo:hunter2-{signal}@nats:4222\n{signal} first"),
            format!("DB_PASSWORD=s3cr3t-{signal}\n{signal} second"),
        ] {
            if !annotation.is_empty() {
                annotation.push('\n');
            }
            annotation.push_str(&batch);
            pods.patch(
                &pod,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "metadata": {"annotations": {LOG_ANNOTATION: annotation}}
                })),
            )
            .await
            .expect("patch the pod's log annotation");
            // Each batch ends with a line without secrets, so it arrives as written.
            let last = batch.lines().last().expect("batch has lines");
            assert_eq!(
                line_containing(&mut lines, last, &mut seen).await,
                format!("{prefix}{last}")
            );
            assert!(
                child.try_wait().expect("poll child").is_none(),
                "logs --follow ended by itself:\n{seen}"
            );
        }
        send_signal(child.id().expect("child pid"), flag);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("logs --follow did not stop within 30s of {signal}"))
            .expect("wait for fluo-deploy");
        let mut rest = String::new();
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            rest.push_str(&line);
            rest.push('\n');
        }
        seen.push_str(&rest);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .await
            .expect("read stderr");
        assert_eq!(
            status.code(),
            Some(0),
            "{signal} must end logs --follow with exit 0\n--- stderr\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("{signal} received: stopped following logs")),
            "{stderr}"
        );
        // Secrets are redacted, the rest of the line is kept.
        assert!(
            seen.contains(&format!(
                "{prefix}connecting to nats://fluo:[REDACTED]@nats:4222"
            )),
            "{seen}"
        );
        assert!(
            seen.contains(&format!("{prefix}DB_PASSWORD=[REDACTED]")),
            "{seen}"
        );
        assert!(
            !seen.contains("hunter2") && !seen.contains("s3cr3t"),
            "a secret reached the output:\n{seen}"
        );
    }
    // Without --follow the same lines are redacted too.
    let run = w.cmd(["logs", "nats"]).run().await;
    run.code(0)
        .stdout_has(&format!("{prefix}SIGTERM second"))
        .stdout_has(&format!("{prefix}DB_PASSWORD=[REDACTED]"));
    assert!(
        !run.stdout.contains("hunter2") && !run.stdout.contains("s3cr3t"),
        "{}",
        run.stdout
    );
}
