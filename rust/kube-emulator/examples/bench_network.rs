//! Benchmark: the cluster network's added latency on loopback (no root needed).
//!
//!     cargo run --release -p kube-emulator --example bench_network -- [N]
//!
//! N (default 2000) sequential TCP round trips (connect, 1-byte request, 1-byte answer, close)
//! straight to an echo backend and through a Service VIP; N HTTP requests straight and through
//! the Ingress listener; N DNS A queries over UDP; and the time from creating a Service to its
//! VIP accepting connections. Prints median and p99 per case.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_emulator::network::{IngressListen, Network, NetworkConfig};
use kube_emulator::{Emulator, Options};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "{name:<34} median {:>7.1} us   p99 {:>7.1} us   (n={})",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

async fn echo_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&b).await;
                }
            });
        }
    });
    Ok(addr)
}

async fn http_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn round_trip(addr: SocketAddr) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(b"x").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(start.elapsed())
}

async fn http_get(client: &plain_http::Client, url: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    client.get(url).await?;
    Ok(start.elapsed())
}

/// A minimal HTTP/1.1 GET on a fresh connection (what curl does per request).
mod plain_http {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    pub struct Client;

    impl Client {
        pub async fn get(&self, url: &str) -> anyhow::Result<()> {
            let uri: http::Uri = url.parse()?;
            let authority = uri.authority().expect("absolute url").to_string();
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = http::Request::get(uri.path())
                .header("host", "bench.localhost")
                .body(Empty::<Bytes>::new())?;
            let resp = send.send_request(req).await?;
            anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
            resp.into_body().collect().await?;
            Ok(())
        }
    }
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

async fn create(emu: &Emulator, path: &str, obj: serde_json::Value) -> anyhow::Result<()> {
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .body(obj.to_string().into_bytes())?;
    emu.client().await.request_text(req).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(2000), |s| s.parse())?;
    let emu = Emulator::start(Options::default()).await?;
    let dir = tempfile::tempdir()?;
    let mut config = NetworkConfig::loopback(127, 97, 0, dir.path().to_path_buf());
    config.ingress = IngressListen::At(SocketAddr::from(([127, 0, 0, 1], 0)));
    let net = Network::start(emu.store().clone(), emu.addr(), config).await?;

    let echo = echo_backend().await?;
    let web = http_backend().await?;
    let svc = |name: &str, ip: &str, port: u16| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": port}]}})
    };
    let eps = |name: &str, at: SocketAddr| {
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": at.ip().to_string()}], "ports": [{"port": at.port()}]}]})
    };
    let services = "/api/v1/namespaces/default/services";
    let endpoints = "/api/v1/namespaces/default/endpoints";
    create(&emu, endpoints, eps("echo", echo)).await?;
    let created = Instant::now();
    create(&emu, services, svc("echo", "127.97.0.20", 7000)).await?;
    let vip = SocketAddr::from(([127, 97, 0, 20], 7000));
    let deadline = Instant::now() + Duration::from_secs(10);
    while round_trip(vip).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the VIP never answered");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "Service created -> VIP answering: {:.1} ms",
        created.elapsed().as_secs_f64() * 1e3
    );

    create(&emu, services, svc("web", "127.97.0.21", 80)).await?;
    create(&emu, endpoints, eps("web", web)).await?;
    create(&emu, "/apis/networking.k8s.io/v1/namespaces/default/ingresses", json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bench"},
        "spec": {"rules": [{"host": "bench.localhost", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})).await?;
    net.wait_for_view(|v| v.ingress.route("bench.localhost", "/").is_some())
        .await;

    let mut direct = Vec::with_capacity(n);
    let mut via_vip = Vec::with_capacity(n);
    for _ in 0..n {
        direct.push(round_trip(echo).await?);
        via_vip.push(round_trip(vip).await?);
    }
    summary("TCP round trip, direct", direct);
    summary("TCP round trip, via Service VIP", via_vip);

    let client = plain_http::Client;
    let ingress = net.ingress_addr().context("ingress listener")?;
    let (mut direct, mut via_ingress) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        direct.push(http_get(&client, &format!("http://{web}/")).await?);
        via_ingress.push(http_get(&client, &format!("http://{ingress}/")).await?);
    }
    summary("HTTP GET, direct", direct);
    summary("HTTP GET, via Ingress", via_ingress);

    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let dns = net.dns_addr();
    let mut answers = Vec::with_capacity(n);
    let mut buf = [0u8; 512];
    for i in 0..n {
        let start = Instant::now();
        sock.send_to(&dns_query(i as u16, "echo.default.svc.cluster.local"), dns)
            .await?;
        let (len, _) = sock.recv_from(&mut buf).await?;
        anyhow::ensure!(len > 12 && buf[3] & 0x0f == 0, "DNS answered an error");
        answers.push(start.elapsed());
    }
    summary("DNS A query over UDP", answers);
    net.shutdown().await;
    emu.shutdown().await;
    Ok(())
}
