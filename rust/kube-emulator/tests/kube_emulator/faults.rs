//! Fault injection: error and throttle shares, latency, early-closed watches.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchParams};
use kube_emulator::{Faults, Options};

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
