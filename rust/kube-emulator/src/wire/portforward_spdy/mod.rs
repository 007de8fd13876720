//! pods/portforward as kubectl speaks it: the `portforward.k8s.io` protocol over SPDY/3.1,
//! either through a plain HTTP/1.1 `Upgrade: SPDY/3.1` or tunnelled in the binary messages of a
//! WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (KEP-4006; kubectl's default, with
//! the plain upgrade as fallback).
//!
//! Per local connection kubectl opens two streams carrying the headers `streamtype` (`error` or
//! `data`), `port` and `requestid`. Like the kubelet (pkg/kubelet/cri/streaming/portforward/
//! httpstream.go) we answer every SYN_STREAM with a SYN_REPLY, pair the streams by request id,
//! relay the data stream to the pod port's target, and on failure write the message on the
//! error stream. Both streams are closed (FIN) when forwarding ends, which is what kubectl waits
//! for before it closes the local connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::apiserver::status::{ApiError, Result};
use crate::wire::spdy::{Decoder, Encoder, Frame, Headers, goaway, rst};

/// The port-forward subprotocol (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The header that negotiates the subprotocol of a plain SPDY upgrade.
pub const PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The `Upgrade` token of the plain SPDY upgrade.
pub const SPDY_UPGRADE: &str = "SPDY/3.1";
/// The WebSocket subprotocol of the tunnelled form.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Largest DATA frame we send (spdystream accepts up to 16 MiB; smaller keeps latency low).
const CHUNK: usize = 32 * 1024;
/// How long dialling a target may take before the error stream reports it.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pod port's connections go: an address to dial, or why there is none (sent on the
/// error stream). The node decides (an annotation of the simulated kubelet, the pod's IP in
/// process mode).
pub type Resolve = Arc<dyn Fn(u16) -> Result<String, String> + Send + Sync>;

/// The pod a session forwards to, resolved when the connection was upgraded.
#[derive(Clone)]
pub struct PodTarget {
    /// `namespace/name`, as error messages name the pod.
    pub pod_ref: String,
    pub uid: String,
    resolve: Resolve,
}

impl std::fmt::Debug for PodTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodTarget")
            .field("pod_ref", &self.pod_ref)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl PodTarget {
    pub fn new(pod: &serde_json::Value, resolve: Resolve) -> Self {
        let meta = &pod["metadata"];
        Self {
            pod_ref: format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default()
            ),
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            resolve,
        }
    }

    /// The address to dial for `port`, or the message saying why there is none.
    pub fn target(&self, port: u16) -> Result<String, String> {
        (self.resolve)(port)
    }
}

/// True when the request asks for a WebSocket offering the tunnelled SPDY subprotocol.
pub fn wants_tunnel(headers: &HeaderMap) -> bool {
    header_values(headers, header::UPGRADE).any(|v| v.eq_ignore_ascii_case("websocket"))
        && header_values(headers, header::SEC_WEBSOCKET_PROTOCOL).any(|p| p == TUNNEL_PROTOCOL)
}

/// True when the request asks for a plain `Upgrade: SPDY/3.1`.
pub fn wants_spdy(headers: &HeaderMap) -> bool {
    header_values(headers, header::UPGRADE).any(|v| v.eq_ignore_ascii_case(SPDY_UPGRADE))
}

/// Comma-separated values over every occurrence of a header.
fn header_values(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Accepts the WebSocket upgrade with the tunnelling subprotocol and serves SPDY inside it.
pub async fn upgrade_tunnel(req: Request, pod: PodTarget) -> Result<Response> {
    let (mut parts, _body) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("unable to upgrade connection: {e}")))?;
    Ok(ws
        .protocols([TUNNEL_PROTOCOL])
        .on_upgrade(move |socket| run_tunnel(socket, pod)))
}

/// Answers `Upgrade: SPDY/3.1` with 101 (as apimachinery's `httpstream.Handshake` and
/// `spdy.responseUpgrader` do) and serves SPDY on the upgraded connection.
pub fn upgrade_spdy(mut req: Request, pod: PodTarget) -> Result<Response> {
    let headers = req.headers();
    if !header_values(headers, header::CONNECTION).any(|v| v.eq_ignore_ascii_case("upgrade")) {
        return Err(ApiError::bad_request(
            "unable to upgrade: missing upgrade headers in request (Connection: Upgrade)",
        ));
    }
    let offered: Vec<&str> = header_values(headers, PROTOCOL_VERSION).collect();
    // A client that names no protocol predates negotiation and gets the only one there is.
    if !offered.is_empty() && !offered.contains(&PROTOCOL) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [\"{PROTOCOL}\"]"
            ),
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), pod).await,
            Err(e) => tracing::warn!(error = %e, "port-forward: SPDY upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY_UPGRADE)
        .header(PROTOCOL_VERSION, PROTOCOL)
        .body(Body::empty())
        .expect("static response parts"))
}

/// Relays a WebSocket's binary messages to and from an in-memory pipe, so the SPDY session
/// sees one byte stream whichever transport carries it.
pub async fn run_tunnel(socket: WebSocket, pod: PodTarget) {
    let (session_io, bridge_io) = tokio::io::duplex(256 * 1024);
    let session = tokio::spawn(run(session_io, pod));
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(bridge_io);
    let inbound = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                Message::Binary(b) if pipe_wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = pipe_wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; CHUNK + 64];
        loop {
            match pipe_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if ws_tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    // The session ends the outbound side (writer shutdown) when it is done; the peer's close
    // ends the inbound side, which ends the session.
    tokio::join!(inbound, outbound);
    let _ = session.await;
}

/// What a stream is for, from its `streamtype` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamType {
    Error,
    Data,
}

/// A validated SYN_STREAM.
#[derive(Debug)]
struct NewStream {
    kind: StreamType,
    port: u16,
    request_id: String,
}

/// Checks a stream's headers as the kubelet's `httpStreamReceived` does.
fn parse_stream(stream_id: u32, headers: &Headers) -> Result<NewStream, String> {
    let port = headers
        .get("port")
        .ok_or_else(|| "\"port\" header is required".to_string())?;
    let port = match port.parse::<u16>() {
        Ok(0) => return Err(format!("port {port:?} must be > 0")),
        Ok(p) => p,
        Err(e) => return Err(format!("unable to parse {port:?} as a port: {e}")),
    };
    let kind = match headers.get("streamtype") {
        Some("error") => StreamType::Error,
        Some("data") => StreamType::Data,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("\"streamtype\" header is required".into()),
    };
    // Clients older than the requestid header send error then data with consecutive odd ids.
    let request_id = match headers.get("requestid") {
        Some(id) => id.to_string(),
        None if kind == StreamType::Error => stream_id.to_string(),
        None => stream_id.saturating_sub(2).to_string(),
    };
    Ok(NewStream {
        kind,
        port,
        request_id,
    })
}

/// The kubelet's wording, which kubectl prints after "an error occurred forwarding".
pub fn forward_error(port: u16, pod: &PodTarget, cause: &str) -> String {
    format!(
        "error forwarding port {port} to pod {}, uid {}: {cause}",
        pod.pod_ref, pod.uid
    )
}

/// The two streams of one forwarded connection, gathered until both have arrived.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>, oneshot::Receiver<()>)>,
}

/// What the session keeps per open client stream.
struct Open {
    request_id: String,
    /// Data streams: bytes from the client, closed on FIN.
    inbound: Option<mpsc::Sender<Bytes>>,
    /// Fired when the client resets the stream.
    reset: Option<oneshot::Sender<()>>,
}

/// Serves one SPDY connection until the client goes away.
pub async fn run<IO>(io: IO, pod: PodTarget)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (tx, rx) = mpsc::channel::<Frame>(256);
    let writer = tokio::spawn(write_frames(wr, rx));
    let mut session = Session {
        pod,
        tx,
        open: HashMap::new(),
        pairs: HashMap::new(),
        forwards: JoinSet::new(),
    };
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if !session.handle(frame).await {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, pod = %session.pod.pod_ref, "port-forward: bad SPDY frame, closing the connection");
                    let _ = session
                        .tx
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: goaway::PROTOCOL_ERROR,
                        })
                        .await;
                    break 'read;
                }
            }
        }
        while let Some(done) = session.forwards.try_join_next() {
            if let Ok((error_id, data_id)) = done {
                session.open.remove(&error_id);
                session.open.remove(&data_id);
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Dropping the forwards aborts them; the writer drains what is queued, then closes.
    session.forwards.abort_all();
    while session.forwards.join_next().await.is_some() {}
    drop(session);
    let _ = writer.await;
}

async fn write_frames<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Frame>) {
    let mut wr = std::pin::pin!(wr);
    let mut encoder = Encoder::new();
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        // Batch whatever is already queued into one write.
        while let Some(frame) = next {
            if let Err(e) = encoder.encode(&frame, &mut out) {
                tracing::error!(error = %e, "port-forward: cannot encode a SPDY frame");
                return;
            }
            next = if out.len() < 256 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        out.clear();
    }
    let _ = wr.shutdown().await;
}

struct Session {
    pod: PodTarget,
    tx: mpsc::Sender<Frame>,
    open: HashMap<u32, Open>,
    pairs: HashMap<String, Pair>,
    /// Running forwards; each returns its (error, data) stream ids when done.
    forwards: JoinSet<(u32, u32)>,
}

impl Session {
    /// Handles one frame from the client; false ends the session.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => self.new_stream(stream_id, &headers).await,
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if let Some(open) = self.open.get_mut(&stream_id) {
                    if let Some(inbound) = &open.inbound
                        && !data.is_empty()
                        && inbound.send(data).await.is_err()
                    {
                        open.inbound = None;
                    }
                    if fin {
                        open.inbound = None;
                    }
                }
                true
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(mut open) = self.open.remove(&stream_id) {
                    if let Some(reset) = open.reset.take() {
                        let _ = reset.send(());
                    }
                    // A pair that never completed is abandoned with its stream.
                    if let Some(pair) = self.pairs.get(&open.request_id)
                        && (pair.error == Some(stream_id)
                            || pair.data.as_ref().is_some_and(|d| d.0 == stream_id))
                    {
                        self.pairs.remove(&open.request_id);
                    }
                }
                true
            }
            // Client pings have odd ids; the answer is the same frame (spdystream echoes).
            Frame::Ping { id } if id % 2 == 1 => self.tx.send(Frame::Ping { id }).await.is_ok(),
            Frame::GoAway { .. } => false,
            // spdystream does no flow control and sends no settings we must honour.
            Frame::Ping { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Headers { .. }
            | Frame::SynReply { .. } => true,
        }
    }

    async fn new_stream(&mut self, stream_id: u32, headers: &Headers) -> bool {
        let stream = match parse_stream(stream_id, headers) {
            Ok(s) => s,
            Err(reason) => {
                tracing::warn!(stream_id, %reason, "port-forward: stream rejected");
                return self
                    .tx
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::CANCEL,
                    })
                    .await
                    .is_ok();
            }
        };
        let pair = self.pairs.entry(stream.request_id.clone()).or_default();
        let duplicate = match stream.kind {
            StreamType::Error => pair.error.is_some(),
            StreamType::Data => pair.data.is_some(),
        };
        if duplicate || self.open.contains_key(&stream_id) {
            tracing::warn!(stream_id, request = %stream.request_id, "port-forward: duplicate stream rejected");
            return self
                .tx
                .send(Frame::RstStream {
                    stream_id,
                    status: rst::PROTOCOL_ERROR,
                })
                .await
                .is_ok();
        }
        pair.port = stream.port;
        let (reset_tx, reset_rx) = oneshot::channel();
        let inbound = match stream.kind {
            StreamType::Error => {
                pair.error = Some(stream_id);
                None
            }
            StreamType::Data => {
                let (in_tx, in_rx) = mpsc::channel(16);
                pair.data = Some((stream_id, in_rx, reset_rx));
                Some(in_tx)
            }
        };
        self.open.insert(
            stream_id,
            Open {
                request_id: stream.request_id.clone(),
                inbound,
                reset: (stream.kind == StreamType::Data).then_some(reset_tx),
            },
        );
        // client-go waits for the reply before it uses the stream.
        if self
            .tx
            .send(Frame::SynReply {
                stream_id,
                fin: false,
                headers: Headers::new(),
            })
            .await
            .is_err()
        {
            return false;
        }
        let complete = self
            .pairs
            .get(&stream.request_id)
            .is_some_and(|p| p.error.is_some() && p.data.is_some());
        if complete && let Some(pair) = self.pairs.remove(&stream.request_id) {
            let (Some(error_id), Some((data_id, inbound, reset))) = (pair.error, pair.data) else {
                unreachable!("a complete pair has both streams");
            };
            let streams = Streams {
                port: pair.port,
                error_id,
                data_id,
                out: self.tx.clone(),
            };
            let pod = self.pod.clone();
            self.forwards.spawn(forward(streams, pod, inbound, reset));
        }
        true
    }
}

/// The client streams one forwarded connection writes to.
struct Streams {
    port: u16,
    error_id: u32,
    data_id: u32,
    out: mpsc::Sender<Frame>,
}

impl Streams {
    async fn send(&self, stream_id: u32, fin: bool, data: Bytes) -> bool {
        self.out
            .send(Frame::Data {
                stream_id,
                fin,
                data,
            })
            .await
            .is_ok()
    }
}

/// Forwards one connection: dial the target, relay both ways until both directions finished
/// or the client reset the data stream, then close the streams (the error stream carries the
/// reason if the target could not be reached).
async fn forward(
    streams: Streams,
    pod: PodTarget,
    inbound: mpsc::Receiver<Bytes>,
    mut reset: oneshot::Receiver<()>,
) -> (u32, u32) {
    let port = streams.port;
    let dialled = match pod.target(port) {
        Err(why) => Err(why),
        Ok(addr) => match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: timed out after {DIAL_TIMEOUT:?}")),
        },
    };
    let mut data_reset = false;
    match dialled {
        Err(cause) => {
            let msg = forward_error(port, &pod, &cause);
            tracing::info!(message = %msg, "port-forward");
            streams
                .send(streams.error_id, false, Bytes::from(msg))
                .await;
        }
        Ok(conn) => {
            tokio::select! {
                _ = relay(conn, &streams, inbound) => {}
                _ = &mut reset => data_reset = true,
            }
        }
    }
    if !data_reset {
        streams.send(streams.data_id, true, Bytes::new()).await;
    }
    streams.send(streams.error_id, true, Bytes::new()).await;
    (streams.error_id, streams.data_id)
}

/// Copies target -> data stream (FIN at the target's EOF) and data stream -> target (write side
/// shut down at the client's FIN) until both are done.
async fn relay(conn: TcpStream, streams: &Streams, mut inbound: mpsc::Receiver<Bytes>) {
    let (mut rd, mut wr) = conn.into_split();
    let to_client = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if !streams.send(streams.data_id, false, chunk).await {
                        return;
                    }
                }
            }
        }
        streams.send(streams.data_id, true, Bytes::new()).await;
    };
    let to_target = async {
        while let Some(chunk) = inbound.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(to_client, to_target);
}

#[cfg(test)]
mod tests;
