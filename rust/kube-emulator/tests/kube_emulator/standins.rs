//! The documented stand-ins of the process runtime's infra image map: the Grafana stand-in's
//! datasource health really queries the configured Prometheus, so a failure shows.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::support::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: String) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?.to_string();
    let (host, path) = rest.split_once('/').unwrap_or((&rest, ""));
    let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
    s.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

#[tokio::test]
async fn the_grafana_stand_in_queries_its_prometheus_for_real() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("standins/grafana.py");
    let prom = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prom_port = prom.local_addr().unwrap().port();
    let dead_port = free_port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = prom.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let body = r#"{"status":"success","data":{"resultType":"scalar","result":[0,"1"]}}"#;
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("datasources")).unwrap();
    std::fs::write(
        dir.path().join("datasources/ds.yaml"),
        format!(
            "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    uid: prometheus\n    type: prometheus\n    url: http://127.0.0.1:{prom_port}\n  - name: Gone\n    uid: gone\n    type: prometheus\n    url: http://127.0.0.1:{dead_port}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _grafana = Killed(
        Command::new(&script)
            .env("GF_PATHS_PROVISIONING", dir.path())
            .env("GF_SERVER_HTTP_PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("running {} needs /usr/bin/python3 with yaml (apt-get install python3-yaml): {e}", script.display())),
    );
    let base = format!("http://127.0.0.1:{port}");
    let (code, body) = eventually("the stand-in answers /api/health", || {
        get(format!("{base}/api/health"))
    })
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""database": "ok""#) && body.contains("stand-in"),
        "{body}"
    );
    let (code, body) = get(format!("{base}/api/datasources/uid/prometheus/health"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(format!("{base}/api/datasources/uid/gone/health"))
        .await
        .unwrap();
    assert_eq!(code, 400, "a dead Prometheus must show: {body}");
    assert!(body.contains("ERROR"), "{body}");
    let (code, body) = get(format!(
        "{base}/api/datasources/proxy/uid/prometheus/api/v1/query?query=1"
    ))
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("success"), "{body}");
}

#[tokio::test]
async fn the_nats_exporter_stand_in_scrapes_a_real_nats_server() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("standins/nats-exporter.py");
    let (client, monitor, metrics) = (free_port(), free_port(), free_port());
    let store = tempfile::tempdir().unwrap();
    let nats = Killed(
        Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &client.to_string(),
                "-m",
                &monitor.to_string(),
                "-js",
                "-sd",
            ])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs nats-server (apt-get install nats-server): {e}")
            }),
    );
    let _exporter = Killed(
        Command::new(&script)
            .args([
                format!("-port={metrics}"),
                "-varz".into(),
                "-healthz".into(),
                "-jsz=all".into(),
            ])
            .arg(format!("http://127.0.0.1:{monitor}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{metrics}/metrics");
    let body = eventually("a scrape with NATS healthy", || async {
        let (_, body) = get(url.clone()).await?;
        let healthy = body
            .lines()
            .any(|l| l.starts_with("gnatsd_healthz_status{") && l.ends_with(" 0"));
        (healthy && body.contains("nats_exporter_scrape_ok 1")).then_some(body)
    })
    .await;
    assert!(body.contains("gnatsd_varz_connections{"), "{body}");
    drop(nats);
    // NATS gone: the stand-in says so instead of repeating old numbers.
    let body = eventually("a scrape with NATS down", || async {
        let (_, body) = get(url.clone()).await?;
        body.contains("nats_exporter_scrape_ok 0").then_some(body)
    })
    .await;
    assert!(
        body.contains("gnatsd_healthz_status{server_id=\"\"} 1"),
        "{body}"
    );
    assert!(!body.contains("gnatsd_varz_connections"), "{body}");
}
