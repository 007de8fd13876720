//! pods/exec for the process runtime, over the WebSocket channel protocol kubectl 1.30+ uses
//! (`v5.channel.k8s.io`, also `v4`): each binary frame starts with its channel, 0 stdin,
//! 1 stdout, 2 stderr, 3 the final status (a `Status`, with the exit code as the kubelet sends
//! it), 255 (v5) "close this channel" from the client. The plain SPDY form is not served.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::apiserver::resources::by_kind;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::Store;
use crate::http::params::Params;
use crate::kubelet::process::exec as process_exec;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

pub async fn serve(
    store: Arc<Store>,
    process_runtime: bool,
    ns: &str,
    name: &str,
    params: &Params,
    req: Request,
) -> Result<Response> {
    if !process_runtime {
        return Err(ApiError::bad_request(
            "exec needs real processes: start the emulator with --runtime process",
        ));
    }
    let pods = by_kind("", "Pod").expect("pods served");
    let pod = crate::apiserver::registry::get(&store, pods, ns, name)?;
    let container = params.container(&pod, name)?;
    let argv: Vec<String> = params
        .all("command")
        .iter()
        .map(|s| s.to_string())
        .collect();
    if argv.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let pid = process_exec::container_pid(&pod, &container)
        .map_err(|e| ApiError::bad_request(format!("unable to upgrade connection: {e}")))?;
    let stdin = params.flag("stdin");
    let (mut parts, _body) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "unable to upgrade connection: exec is served over WebSocket (v5.channel.k8s.io) only: {e}"
            ))
        })?;
    Ok(ws
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run(socket, pid, argv, stdin)))
}

/// A normal closure (1000): client-go reads it as the end of the streams; 1005 is an error.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    channel: u8,
    to: tokio::sync::mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.send(frame(channel, &buf[..n])).await.is_err() {
            return;
        }
    }
}

/// The kubelet's final status: Success, or NonZeroExitCode carrying the code.
pub fn exit_status(argv: &[String], code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {argv:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        None => json!({"metadata": {}, "status": "Failure",
            "message": format!("error executing command {argv:?}: killed by a signal"),
            "reason": "InternalError"}),
    }
}

async fn run(socket: WebSocket, pid: u32, argv: Vec<String>, want_stdin: bool) {
    let (mut sink, mut source) = socket.split();
    let mut child = match process_exec::spawn(pid, &argv, want_stdin) {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("error executing command {argv:?}: {e}")});
            let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, STDOUT, tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, STDERR, tx.clone())));
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    let mut output_open = true;
    // Relay until both output streams ended, feeding stdin meanwhile.
    while output_open {
        tokio::select! {
            out = rx.recv() => match out {
                Some(m) => if sink.send(m).await.is_err() { return },
                None => output_open = false,
            },
            incoming = source.next() => match incoming {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => match b[0] {
                    STDIN => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&b[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    CLOSE if b.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin);
    let status = child.wait().await.ok().and_then(|s| s.code());
    let body = exit_status(&argv, status);
    let _ = sink.send(frame(ERROR, body.to_string().as_bytes())).await;
    let _ = sink.send(normal_close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_status_carries_the_exit_code() {
        let argv = vec!["sh".to_string()];
        assert_eq!(exit_status(&argv, Some(0))["status"], "Success");
        let s = exit_status(&argv, Some(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }
}
