//! `fluo-deploy monitor` against a stand-in Prometheus API (fixed answers), direct access.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{LOCAL_ENV, World};
use crate::image_of;

/// Serves the Prometheus HTTP API's query and alerts endpoints: every query answers
/// `value`, no alerts fire. Stops with the test's runtime.
pub async fn fake_prometheus(value: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let body = if head.contains("/api/v1/alerts") {
                    r#"{"status":"success","data":{"alerts":[]}}"#.to_string()
                } else if head.contains("/api/v1/query") {
                    format!(
                        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{value}"]}}]}}}}"#
                    )
                } else {
                    r#"{"status":"success","data":{}}"#.to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

pub async fn world_watching(prometheus: &str) -> World {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &LOCAL_ENV.replace(
            r#"prometheus = "http://127.0.0.1:9""#,
            &format!(r#"prometheus = "{prometheus}""#),
        ),
    );
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn breach_rolls_the_latest_deploy_back_and_exits_1() {
    // 50% 5xx against a 10% threshold (fixture [monitoring].max_error_ratio = 0.1).
    let w = world_watching(&fake_prometheus("0.5").await).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await
        .code(0);
    w.cmd(["monitor", "--duration", "2m"])
        .run()
        .await
        .code(1)
        .stdout_has("BREACH: BFF 5xx ratio 50.0% is over the 10.0% threshold")
        .stdout_has("rolled back");
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    history.code(0);
    let entries = history.json();
    let v3 = entries
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["revision"] == 3)
        .unwrap_or_else(|| panic!("no rollback revision: {entries}"))
        .clone();
    assert_eq!(v3["action"]["type"], "rollback", "{entries}");
    assert!(
        v3["reason"]
            .as_str()
            .is_some_and(|r| r.contains("fluo-deploy monitor: BFF 5xx ratio 50.0%")),
        "{entries}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clean_watch_exits_0_and_changes_nothing() {
    let w = world_watching(&fake_prometheus("0").await).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.cmd(["monitor", "--duration", "1s"])
        .run()
        .await
        .code(0)
        .stdout_has("healthy");
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    assert_eq!(history.json().as_array().expect("array").len(), 1);
}
