//! Probes for real: httpGet and tcpSocket against the pod's IP, exec inside the container's
//! namespaces, with the timing fields of the spec.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A probe's timing, with the API's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Value) -> Self {
        let secs =
            |k: &str, default: u64| Duration::from_secs(probe[k].as_u64().unwrap_or(default));
        let count = |k: &str, default: u32| probe[k].as_u64().map_or(default, |n| n.max(1) as u32);
        Self {
            initial_delay: secs("initialDelaySeconds", 0),
            period: secs("periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: secs("timeoutSeconds", 1).max(Duration::from_secs(1)),
            success_threshold: count("successThreshold", 1),
            failure_threshold: count("failureThreshold", 3),
        }
    }
}

/// A container port by number or by name.
pub fn port(container: &Value, port: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// Runs a probe once; Err carries the kubelet-style failure message.
pub async fn run(
    probe: &Value,
    container: &Value,
    pod_ip: Ipv4Addr,
    container_pid: Option<u32>,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        if let Some(get) = probe.get("httpGet").filter(|v| !v.is_null()) {
            http_get(get, container, pod_ip).await
        } else if let Some(tcp) = probe.get("tcpSocket").filter(|v| !v.is_null()) {
            let p = port(container, &tcp["port"]).ok_or("tcpSocket: unknown port")?;
            TcpStream::connect((pod_ip, p))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {pod_ip}:{p}: {e}"))
        } else if let Some(exec) = probe.get("exec").filter(|v| !v.is_null()) {
            exec_probe(exec, container_pid).await
        } else {
            Err("unsupported probe handler (grpc is not implemented by the process runtime)".into())
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("probe timed out after {timeout:?}")))
}

async fn http_get(get: &Value, container: &Value, pod_ip: Ipv4Addr) -> Result<(), String> {
    let p = port(container, &get["port"]).ok_or("httpGet: unknown port")?;
    if get["scheme"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
    {
        return Err("httpGet with scheme HTTPS is not implemented by the process runtime".into());
    }
    let host = get["host"].as_str().unwrap_or("").to_string();
    let addr = if host.is_empty() {
        pod_ip.to_string()
    } else {
        host
    };
    let path = get["path"].as_str().unwrap_or("/");
    let mut headers = String::new();
    for h in get["httpHeaders"].as_array().into_iter().flatten() {
        headers.push_str(&format!(
            "{}: {}\r\n",
            h["name"].as_str().unwrap_or(""),
            h["value"].as_str().unwrap_or("")
        ));
    }
    let url = format!("http://{addr}:{p}{path}");
    let mut s = TcpStream::connect((addr.as_str(), p))
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {addr}:{p}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}:{p}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n{headers}\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s
            .read(&mut head[n..])
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response {line:?}"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

async fn exec_probe(exec: &Value, pid: Option<u32>) -> Result<(), String> {
    let pid = pid.ok_or("the container is not running")?;
    let argv: Vec<String> = exec["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if argv.is_empty() {
        return Err("exec probe without command".into());
    }
    // As the kubelet runs them: in the container's namespaces and cgroup, with its environment.
    let out = super::exec::spawn(pid, &argv, false)
        .map_err(|e| format!("exec {argv:?}: {e}"))?
        .wait_with_output()
        .await
        .map_err(|e| format!("exec {argv:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "command {argv:?} exited with {}: {}",
            out.status.code().unwrap_or(-1),
            text.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timing_defaults_follow_the_api() {
        let t = Timing::of(&json!({}));
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3
            }
        );
        let t = Timing::of(
            &json!({"periodSeconds": 2, "failureThreshold": 90, "initialDelaySeconds": 5}),
        );
        assert_eq!(
            (
                t.period.as_secs(),
                t.failure_threshold,
                t.initial_delay.as_secs()
            ),
            (2, 90, 5)
        );
        let c = json!({"ports": [{"name": "monitor", "containerPort": 8222}]});
        assert_eq!(port(&c, &json!("monitor")), Some(8222));
        assert_eq!(port(&c, &json!(4222)), Some(4222));
        assert_eq!(port(&c, &json!("nope")), None);
    }

    #[tokio::test]
    async fn http_probes_read_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200, 503] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let probe = json!({"httpGet": {"path": "/healthz", "port": p}});
        let ip = Ipv4Addr::LOCALHOST;
        let t = Duration::from_secs(5);
        assert_eq!(run(&probe, &json!({}), ip, None, t).await, Ok(()));
        assert_eq!(
            run(&probe, &json!({}), ip, None, t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
    }
}
