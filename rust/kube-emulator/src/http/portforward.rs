//! pods/portforward. kubectl's SPDY forms are served by [`crate::wire::portforward_spdy`]; this module
//! routes to them and serves the WebSocket `v4.channel.k8s.io` protocol kube-rs speaks: for the
//! i-th requested port, channel 2i carries data and 2i+1 errors; each channel's first frame is the
//! port number (little-endian u16). Bytes are relayed to the local address the pod's
//! `kube-emulator.fluo.dev/port-forward` annotation names.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::apiserver::resources::by_kind;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::Store;
use crate::http::params::Params;
use crate::kubelet::simulated::ANN_PORT_FORWARD;
use crate::wire::portforward_spdy::{self, PodTarget, Resolve};

/// Where a pod port forwards to, from the annotation: `8222=127.0.0.1:40000,4222=127.0.0.1:40001`
/// maps ports; a bare `127.0.0.1:40000` serves every port.
pub fn target_for(pod: &Value, port: u16) -> Option<String> {
    let spec = pod["metadata"]["annotations"][ANN_PORT_FORWARD].as_str()?;
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((p, addr)) if p.trim().parse::<u16>().ok() == Some(port) => {
                return Some(addr.trim().to_string());
            }
            Some(_) => {}
            None => return Some(entry.to_string()),
        }
    }
    None
}

/// The simulated kubelet's targets: the pod's port-forward annotation.
pub fn annotation_targets(pod: &Value) -> Resolve {
    let pod = pod.clone();
    Arc::new(move |port| {
        target_for(&pod, port).ok_or_else(|| {
            format!("no forwarding target: annotate the pod with {ANN_PORT_FORWARD}")
        })
    })
}

fn parse_ports(params: &Params) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for raw in params.all("ports") {
        for p in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request(format!("invalid port {p:?}")))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request("at least one port must be specified"));
    }
    Ok(ports)
}

pub async fn serve(
    store: Arc<Store>,
    ns: &str,
    name: &str,
    params: &Params,
    req: Request,
    targets: &(dyn Fn(&Value) -> Resolve + Send + Sync),
) -> Result<Response> {
    let pods = by_kind("", "Pod").expect("pods served");
    let pod = crate::apiserver::registry::get(&store, pods, ns, name)?;
    if pod["status"]["phase"] != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running (phase {})",
            pod["status"]["phase"].as_str().unwrap_or("Pending")
        )));
    }
    // kubectl: SPDY tunnelled in a WebSocket, or a plain SPDY upgrade (ports travel per stream).
    if portforward_spdy::wants_tunnel(req.headers()) {
        return portforward_spdy::upgrade_tunnel(req, PodTarget::new(&pod, targets(&pod))).await;
    }
    if portforward_spdy::wants_spdy(req.headers()) {
        return portforward_spdy::upgrade_spdy(req, PodTarget::new(&pod, targets(&pod)));
    }
    let ports = parse_ports(params)?;
    let (mut parts, _body) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("unable to upgrade connection: {e}")))?;
    let pod = PodTarget::new(&pod, targets(&pod));
    let targets: Vec<(u16, std::result::Result<String, String>)> =
        ports.iter().map(|p| (*p, pod.target(*p))).collect();
    Ok(ws
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| relay(socket, targets, pod)))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn relay(
    socket: WebSocket,
    targets: Vec<(u16, std::result::Result<String, String>)>,
    pod: PodTarget,
) {
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
    let mut writers = Vec::new();
    for (i, (port, target)) in targets.iter().enumerate() {
        let data_ch = (2 * i) as u8;
        let err_ch = data_ch + 1;
        for ch in [data_ch, err_ch] {
            if sink.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
        let conn = match target {
            Ok(addr) => TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| format!("dial tcp {addr}: {e}")),
            Err(why) => Err(why.clone()),
        };
        match conn {
            Ok(stream) => {
                let (mut rd, wr) = stream.into_split();
                writers.push(Some(wr));
                let tx = out_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(Message::Close(None)).await;
                                return;
                            }
                            Ok(n) => {
                                if tx.send(frame(data_ch, &buf[..n])).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let msg = portforward_spdy::forward_error(*port, &pod, &e);
                if sink.send(frame(err_ch, msg.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(out_tx);
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Message::Close(_)) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
            },
            incoming = source.next() => match incoming {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    let ch = b[0] as usize;
                    if ch.is_multiple_of(2)
                        && let Some(Some(w)) = writers.get_mut(ch / 2)
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_maps_ports() {
        let pod = json!({"metadata":{"annotations":{"kube-emulator.fluo.dev/port-forward":"8222=127.0.0.1:1000, 4222=127.0.0.1:2000"}}});
        assert_eq!(target_for(&pod, 4222).as_deref(), Some("127.0.0.1:2000"));
        assert_eq!(target_for(&pod, 9999), None);
        let any = json!({"metadata":{"annotations":{"kube-emulator.fluo.dev/port-forward":"127.0.0.1:3000"}}});
        assert_eq!(target_for(&any, 80).as_deref(), Some("127.0.0.1:3000"));
        assert!(parse_ports(&Params::from_pairs(vec![("ports".into(), "80,abc".into())])).is_err());
    }
}
