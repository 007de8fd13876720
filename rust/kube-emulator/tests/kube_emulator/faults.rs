//! Fault injection: error and throttle shares, write errors, connection resets, latency,
//! early-closed watches.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchParams};
use kube_emulator::{Faults, Options};
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn every_request_fails_at_full_error_rate_and_recovers() {
    let emu = emulator().await;
    let list = "/api/v1/namespaces/default/configmaps";
    emu.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    let r = raw(&emu, "GET", list, "", "", "").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["reason"], "InternalError");
    // Discovery is never faulted, so clients can still start.
    assert_eq!(raw(&emu, "GET", "/version", "", "", "").await.status, 200);
    emu.set_faults(Faults {
        throttle_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    // Over plain TCP: kube's client transparently retries 429s.
    let response = http10_get(emu.addr(), list).await;
    assert!(
        response.starts_with("HTTP/1.0 429") || response.starts_with("HTTP/1.1 429"),
        "{response}"
    );
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1"),
        "{response}"
    );
    emu.set_faults(Faults::default()).unwrap();
    assert_eq!(
        raw(&emu, "GET", list, "", "", "").await.status,
        200,
        "healthy again"
    );
    assert!(
        emu.set_faults(Faults {
            error_rate: 2.0,
            ..Default::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn partial_error_rate_fails_some_requests() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        error_rate: 0.5,
        ..Default::default()
    })
    .unwrap();
    let mut failures = 0;
    for _ in 0..200 {
        if raw(
            &emu,
            "GET",
            "/api/v1/namespaces/default/configmaps",
            "",
            "",
            "",
        )
        .await
        .status
            == 500
        {
            failures += 1;
        }
    }
    // 200 draws at p=0.5: outside 40..160 has probability far below 1e-15.
    assert!(
        (40..160).contains(&failures),
        "{failures} failures out of 200"
    );
}

#[tokio::test]
async fn latency_is_added() {
    let emu = emulator_with(Options {
        faults: Faults {
            latency: Duration::from_millis(300),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let start = Instant::now();
    assert_eq!(
        raw(
            &emu,
            "GET",
            "/api/v1/namespaces/default/configmaps",
            "",
            "",
            ""
        )
        .await
        .status,
        200
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn watches_are_closed_early() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        watch_close_after: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client().await);
    // Without the fault this watch would stay open for 10 minutes.
    let mut stream = api
        .watch(&WatchParams::default().timeout(600), "0")
        .await
        .unwrap()
        .boxed();
    within(WAIT, "the injected watch close", async {
        while let Some(ev) = stream.next().await {
            ev.expect("events decode");
        }
    })
    .await;
}

#[tokio::test]
async fn writes_answered_503_or_500_change_nothing() {
    let emu = emulator().await;
    let client = emu.client().await;
    create_configmap(&client, "before", json!({})).await;
    let list = "/api/v1/namespaces/default/configmaps";
    let item = "/api/v1/namespaces/default/configmaps/before";
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"new"},"data":{"key":"other"}}"#;
    let put = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"before"},"data":{"key":"other"}}"#;
    emu.set_faults(Faults {
        write_unavailable_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    let rv = emu.store().lock().current_rv();
    for (method, path, content_type, body) in [
        ("POST", list, "application/json", body),
        ("PUT", item, "application/json", put),
        (
            "PATCH",
            item,
            "application/merge-patch+json",
            r#"{"data":{"key":"x"}}"#,
        ),
        ("DELETE", item, "", ""),
        ("DELETE", list, "", ""),
    ] {
        // Over plain TCP: kube's client transparently retries 503s.
        let (status, answer) = http10(emu.addr(), method, path, content_type, body).await;
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert!(
            answer.contains(r#""reason":"ServiceUnavailable""#),
            "{method} {path}: {answer}"
        );
    }
    // Reads are not write faults.
    assert_eq!(raw(&emu, "GET", item, "", "", "").await.status, 200);
    emu.set_faults(Faults {
        write_error_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    let (status, answer) = http10(emu.addr(), "POST", list, "application/json", body).await;
    assert_eq!(status, 500, "{answer}");
    assert!(answer.contains(r#""reason":"InternalError""#), "{answer}");
    emu.set_faults(Faults::default()).unwrap();
    assert_eq!(emu.store().lock().current_rv(), rv, "no write happened");
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let names: Vec<_> = cms
        .list(&Default::default())
        .await
        .expect("list configmaps")
        .items
        .into_iter()
        .map(|c| (c.metadata.name.unwrap(), c.data.unwrap()["key"].clone()))
        .collect();
    assert_eq!(names, [("before".to_string(), "value".to_string())]);
}

#[tokio::test]
async fn a_share_of_writes_fails_and_only_the_rest_is_stored() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        write_error_rate: 0.3,
        write_unavailable_rate: 0.3,
        ..Default::default()
    })
    .unwrap();
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..100 {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","labels":{{"batch":"x"}}}}}}"#
        );
        let (status, _) = http10(
            emu.addr(),
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            &body,
        )
        .await;
        *codes.entry(status).or_default() += 1;
    }
    emu.set_faults(Faults::default()).unwrap();
    // 100 draws at p=0.3 (mean 30, sd 4.6) and p=0.4: these bounds are beyond 4 sd.
    for (code, range) in [(500, 10..55), (503, 10..55), (201, 15..65)] {
        let n = codes.get(&code).copied().unwrap_or(0);
        assert!(range.contains(&n), "{n} answers {code}: {codes:?}");
    }
    assert_eq!(codes.values().sum::<usize>(), 100, "{codes:?}");
    let cms: Api<ConfigMap> = Api::default_namespaced(emu.client().await);
    let stored = cms
        .list(&kube::api::ListParams::default().labels("batch=x"))
        .await
        .expect("list configmaps")
        .items
        .len();
    assert_eq!(stored, codes[&201], "exactly the created ones exist");
}

#[tokio::test]
async fn reset_connections_get_no_response_and_change_nothing() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        reset_rate: 1.0,
        ..Default::default()
    })
    .unwrap();
    let post = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nContent-Length: 25\r\n\r\n{\"metadata\":{\"name\":\"a\"}}";
    for request in [
        "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n\r\n",
        post,
    ] {
        let answer = tcp_exchange(emu.addr(), request).await;
        assert!(
            answer.as_ref().is_ok_and(Vec::is_empty)
                || answer
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{request:?} got {answer:?}"
        );
    }
    // kube-rs sees a transport error, not an HTTP status.
    let cms: Api<ConfigMap> = Api::default_namespaced(emu.client().await);
    let err = cms.list(&Default::default()).await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "expected a connection error, got {err:?}"
    );
    // Discovery is never faulted.
    let version = tcp_exchange(emu.addr(), "GET /version HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("version answered");
    assert!(version.starts_with(b"HTTP/1.0 200"), "{version:?}");
    emu.set_faults(Faults::default()).unwrap();
    let list = cms.list(&Default::default()).await.expect("healthy again");
    assert!(list.items.is_empty(), "the reset POST created nothing");
}

#[tokio::test]
async fn a_share_of_connections_is_reset() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        reset_rate: 0.5,
        ..Default::default()
    })
    .unwrap();
    let mut resets = 0;
    for _ in 0..100 {
        let answer = tcp_exchange(
            emu.addr(),
            "GET /api/v1/namespaces/default/configmaps HTTP/1.0\r\nHost: x\r\n\r\n",
        )
        .await;
        match answer {
            Ok(bytes) if bytes.starts_with(b"HTTP/1.0 200") => {}
            Ok(bytes) if bytes.is_empty() => resets += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => resets += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // 100 draws at p=0.5 (sd 5): outside 20..80 is beyond 6 sd.
    assert!((20..80).contains(&resets), "{resets} resets out of 100");
}

#[tokio::test]
async fn a_share_of_watches_closes_right_after_the_initial_events() {
    let emu = emulator().await;
    create_configmap(&emu.client().await, "seen", json!({})).await;
    emu.set_faults(Faults {
        watch_close_rate: 1.0,
        watch_close_within: Duration::ZERO,
        ..Default::default()
    })
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client().await);
    let stream = api
        .watch(&WatchParams::default().timeout(600), "0")
        .await
        .unwrap()
        .boxed();
    let events: Vec<_> = within(WAIT, "the injected early watch close", stream.collect()).await;
    let names: Vec<String> = events
        .into_iter()
        .map(|ev| match ev.expect("events decode") {
            kube::api::WatchEvent::Added(cm) => cm.metadata.name.unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["seen"]);
}

/// One HTTP/1.0 request on a fresh connection: (status, whole answer).
async fn http10(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tcp_exchange(addr, &request).await.expect("an answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// Sends raw bytes on a fresh connection and reads until the server closes it.
async fn tcp_exchange(addr: std::net::SocketAddr, request: &str) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    within(
        WAIT,
        "the server's answer or close",
        s.read_to_end(&mut out),
    )
    .await?;
    Ok(out)
}

async fn http10_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    within(WAIT, "the HTTP response", s.read_to_string(&mut out))
        .await
        .unwrap();
    out
}
