//! A real Prometheus (Debian's `prometheus`) scraping a stand-in exporter the test controls, one
//! target per BFF pod of the emulator (namespace fluo, label app=bff): the stand keeps a
//! file-discovery list of the pods' `<pod IP>:8080` addresses, and relabelling sends each
//! target's scrape to the exporter (`/metrics?pod=<IP>`) while its `instance` stays the pod's
//! address, so Prometheus' own `up` and scrape counts are per pod as if it scraped the pod. Pods
//! whose image is listed as faulty answer half of their requests with 500; the others answer
//! all with 200.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Requests each pod "served" between two scrapes.
const PER_SCRAPE: u64 = 100;

/// Counters per pod IP: (requests, 5xx).
type Counters = BTreeMap<String, (u64, u64)>;

pub struct Stand {
    pub prometheus_url: String,
    /// Images whose pods answer half of their requests with 500.
    pub faulty: Arc<Mutex<BTreeSet<String>>>,
    _prometheus: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Stand {
    pub async fn start(client: kube::Client) -> Stand {
        let faulty = Arc::new(Mutex::new(BTreeSet::new()));
        let exporter = exporter(client.clone(), faulty.clone()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]").expect("write targets.json");
        tokio::spawn(discover(client, targets.clone()));
        let config = format!(
            r#"global:
  scrape_interval: 250ms
  evaluation_interval: 250ms
scrape_configs:
  - job_name: fluo-bff
    scrape_timeout: 200ms
    file_sd_configs:
      - files: ['{targets}']
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.+):8080'
        target_label: __param_pod
      - source_labels: [__address__]
        target_label: instance
      - target_label: __address__
        replacement: '{exporter}'
"#,
            targets = targets.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        let port = free_port();
        let prometheus = tokio::process::Command::new(prometheus_binary())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let stand = Stand {
            prometheus_url: format!("http://127.0.0.1:{port}"),
            faulty,
            _prometheus: prometheus,
            _dir: dir,
        };
        stand.wait_ready().await;
        stand
    }

    /// Ready to scrape and answer queries (there are no pods to scrape yet).
    async fn wait_ready(&self) {
        let url = format!("{}/-/ready", self.prometheus_url);
        for _ in 0..300 {
            if let Ok(r) = reqwest_get(&url).await
                && r.starts_with("HTTP/1.1 200")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus at {} not ready within 30s", self.prometheus_url);
    }

    pub fn fault(&self, image: &str) {
        self.faulty.lock().unwrap().insert(image.to_string());
    }
}

/// Debian's prometheus (`PROMETHEUS_BIN` overrides); a missing binary fails with how to get it.
fn prometheus_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS_BIN") {
        return PathBuf::from(p);
    }
    ["/usr/bin/prometheus", "/usr/sbin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("prometheus not found: install Debian's package (`scripts/setup tests` or `apt-get install prometheus`) or set PROMETHEUS_BIN")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A bare HTTP/1.1 GET; returns the raw response.
async fn reqwest_get(url: &str) -> std::io::Result<String> {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Keeps `targets` (Prometheus file discovery) listing the running BFF pods as `<IP>:8080`,
/// rewriting it (atomically) when the set changes. Bounded: ten minutes of 100 ms polls.
async fn discover(client: kube::Client, targets: PathBuf) {
    let api: Api<Pod> = Api::namespaced(client, "fluo");
    let mut listed = BTreeSet::new();
    for _ in 0..6000 {
        if let Ok(pods) = api.list(&ListParams::default().labels("app=bff")).await {
            let now: BTreeSet<String> = pods
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| Some(format!("{}:8080", p.status.as_ref()?.pod_ip.as_ref()?)))
                .collect();
            if now != listed {
                let json = serde_json::json!([{ "targets": now }]).to_string();
                let tmp = targets.with_extension("tmp");
                std::fs::write(&tmp, json).expect("write targets");
                std::fs::rename(&tmp, &targets).expect("replace targets.json");
                listed = now;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves `/metrics?pod=<IP>` for the BFF pod with that IP, while the emulator runs it.
async fn exporter(client: kube::Client, faulty: Arc<Mutex<BTreeSet<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let counters = Arc::new(Mutex::new(Counters::new()));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (client, faulty, counters) = (client.clone(), faulty.clone(), counters.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let pod = request
                    .split_once("pod=")
                    .and_then(|(_, rest)| rest.split([' ', '&']).next())
                    .unwrap_or_default()
                    .to_string();
                let body = scrape(&client, &faulty, &counters, &pod).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// One scrape of the pod with IP `pod`: it served `PER_SCRAPE` more requests since the last one.
async fn scrape(
    client: &kube::Client,
    faulty: &Mutex<BTreeSet<String>>,
    counters: &Mutex<Counters>,
    pod_ip: &str,
) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "fluo");
    let Ok(pods) = api.list(&ListParams::default().labels("app=bff")).await else {
        return String::new();
    };
    let faulty = faulty.lock().unwrap().clone();
    let mut counters = counters.lock().unwrap();
    let mut out = String::from(
        "# TYPE fluo_bff_http_requests_total counter\n# TYPE fluo_bff_http_request_duration_seconds histogram\n",
    );
    for pod in &pods.items {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() || ip != pod_ip {
            continue;
        }
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first()?.image.clone())
            .unwrap_or_default();
        let bad = faulty.contains(&image);
        let (total, errors) = counters.entry(ip.clone()).or_default();
        *total += PER_SCRAPE;
        if bad {
            *errors += PER_SCRAPE / 2;
        }
        let labels = "route=\"/api/jobs\",method=\"POST\"";
        out.push_str(&format!(
            "fluo_bff_http_requests_total{{{labels},status=\"200\"}} {}\n",
            *total - *errors
        ));
        out.push_str(&format!(
            "fluo_bff_http_requests_total{{{labels},status=\"500\"}} {errors}\n"
        ));
        // Latency: healthy pods answer within 50 ms, faulty ones take 2 s.
        let (fast, slow) = if bad { (0, *total) } else { (*total, 0) };
        for (le, count) in [("0.05", fast), ("2.5", fast + slow), ("+Inf", fast + slow)] {
            out.push_str(&format!(
                "fluo_bff_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
            ));
        }
    }
    out
}
