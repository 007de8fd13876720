//! pods/log: deterministic lines per container plus lines supplied through annotations
//! (see README), with the apiserver's container selection errors and follow mode.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use chrono::{DateTime, Utc};
use http::header;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::apiserver::resources::by_kind;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::{Event, Store, meta_str};
use crate::http::params::Params;
use crate::kubelet::process::ProcessNode;
use crate::kubelet::process::logs::{Render as FileRender, render as render_file};
use crate::kubelet::simulated::{ANN_LOG, ANN_LOG_CONTAINER_PREFIX, is_crashloop_image};

/// The log lines of one container of a pod, in order (without timestamps).
pub fn lines(pod: &Value, container: &str) -> Vec<String> {
    let spec = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .cloned()
        .unwrap_or_default();
    let image = spec["image"].as_str().unwrap_or("");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let mut out = vec![format!(
        "kube-emulator: container {container} of pod {ns}/{name} started (image {image})"
    )];
    let annotations = &pod["metadata"]["annotations"];
    for key in [
        ANN_LOG.to_string(),
        format!("{ANN_LOG_CONTAINER_PREFIX}{container}"),
    ] {
        if let Some(text) = annotations[&key].as_str() {
            out.extend(text.lines().map(str::to_string));
        }
    }
    if is_crashloop_image(image) {
        out.push(format!(
            "kube-emulator: container {container} exited with code 1 (image tag crashloop)"
        ));
    }
    out
}

/// The earliest log time asked for by `sinceSeconds` or `sinceTime`, if any.
fn since(params: &Params) -> Result<Option<DateTime<Utc>>> {
    if let Some(secs) = params.get("sinceSeconds") {
        let secs: i64 = secs.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid sinceSeconds {secs:?}: must be a positive integer"
            ))
        })?;
        return Ok(Some(Utc::now() - chrono::Duration::seconds(secs)));
    }
    params
        .get("sinceTime")
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(format!("invalid sinceTime {t:?}: not RFC 3339"))
                })
        })
        .transpose()
}

/// Every line already logged carries the container's start time (the pod's startTime), so
/// `since` keeps all of them or none.
fn render(pod: &Value, container: &str, params: &Params, since: Option<DateTime<Utc>>) -> String {
    let started_at = pod["status"]["startTime"]
        .as_str()
        .unwrap_or("1970-01-01T00:00:00Z");
    let started = started_at.replace('Z', ".000000000Z");
    let all = lines(pod, container);
    let too_old = since.is_some_and(|cutoff| {
        DateTime::parse_from_rfc3339(started_at).is_ok_and(|t| t.with_timezone(&Utc) < cutoff)
    });
    let tail = params
        .get("tailLines")
        .and_then(|t| t.parse::<usize>().ok());
    let from = if too_old {
        all.len()
    } else {
        tail.map_or(0, |t| all.len().saturating_sub(t))
    };
    let mut text = String::new();
    for l in &all[from.min(all.len())..] {
        if params.get("timestamps") == Some("true") {
            text.push_str(&started);
            text.push(' ');
        }
        text.push_str(l);
        text.push('\n');
    }
    if let Some(limit) = params
        .get("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
    {
        text.truncate(limit);
    }
    text
}

fn check_started(pod: &Value, name: &str, container: &str) -> Result<()> {
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container));
    let waiting = match status {
        None => Some("ContainerCreating"),
        Some(s)
            if s["restartCount"].as_i64().unwrap_or(0) == 0
                && s["state"]["running"].is_null()
                && s["state"]["terminated"].is_null() =>
        {
            s["state"]["waiting"]["reason"].as_str()
        }
        Some(_) => None,
    };
    match waiting {
        Some(reason) if reason != "CrashLoopBackOff" => Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        ))),
        _ => Ok(()),
    }
}

pub async fn serve(
    store: Arc<Store>,
    ns: &str,
    name: &str,
    params: &Params,
    process: Option<Arc<ProcessNode>>,
) -> Result<Response> {
    let pods = by_kind("", "Pod").expect("pods served");
    let pod = crate::apiserver::registry::get(&store, pods, ns, name)?;
    let container = params.container(&pod, name)?;
    check_started(&pod, name, &container)?;
    let since = since(params)?;
    if let Some(node) = process {
        return serve_file(node, &pod, &container, params, since).await;
    }
    // Subscribe before rendering so a change right after cannot be missed by follow.
    let mut changes = store.lock().subscribe();
    let text = render(&pod, &container, params, since);
    let builder = Response::builder().header(header::CONTENT_TYPE, "text/plain");
    if params.get("follow") != Some("true") {
        return Ok(builder
            .body(Body::from(text))
            .expect("static response parts"));
    }
    // Follow: stream what is there, then new annotation lines as the pod changes, until it goes.
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let (ns, name) = (ns.to_string(), name.to_string());
    let mut sent = lines(&pod, &container).len();
    let timestamps = params.get("timestamps") == Some("true");
    tokio::spawn(async move {
        if tx.send(bytes::Bytes::from(text)).await.is_err() {
            return;
        }
        loop {
            let this_pod = |ev: &Event| {
                ev.def.kind == "Pod"
                    && meta_str(&ev.object, "namespace") == ns
                    && meta_str(&ev.object, "name") == name
            };
            tokio::select! {
                ev = changes.recv() => match ev {
                    Ok(ev) if this_pod(&ev) => {}
                    Ok(_) => continue,
                    // Missed events: look at the pod anyway.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
            let Some(pod) = store.lock().get(pods, &ns, &name).cloned() else {
                return;
            };
            let all = lines(&pod, &container);
            if all.len() > sent {
                let mut chunk = String::new();
                for l in &all[sent..] {
                    if timestamps {
                        chunk.push_str(&crate::apiserver::registry::now());
                        chunk.push(' ');
                    }
                    chunk.push_str(l);
                    chunk.push('\n');
                }
                sent = all.len();
                if tx.send(bytes::Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(streamed(builder, rx))
}

/// Process mode: the container's real stdout/stderr, from its log file; `follow` streams what
/// is appended until the container restarts or the pod goes.
async fn serve_file(
    node: Arc<ProcessNode>,
    pod: &Value,
    container: &str,
    params: &Params,
    since: Option<DateTime<Utc>>,
) -> Result<Response> {
    let name = meta_str(pod, "name").to_string();
    let uid = meta_str(pod, "uid").to_string();
    let previous = params.get("previous") == Some("true");
    let path = node.log_file(&uid, container, previous).ok_or_else(|| {
        ApiError::bad_request(if previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )
        })
    })?;
    let number = |k: &str| params.get(k).and_then(|v| v.parse::<usize>().ok());
    let timestamps = params.get("timestamps") == Some("true");
    let opts = FileRender {
        timestamps,
        tail_lines: number("tailLines"),
        limit_bytes: number("limitBytes"),
        since,
    };
    let stored = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let text = render_file(&stored, &opts);
    let builder = Response::builder().header(header::CONTENT_TYPE, "text/plain");
    if params.get("follow") != Some("true") || previous {
        return Ok(builder
            .body(Body::from(text))
            .expect("static response parts"));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let container = container.to_string();
    tokio::spawn(async move {
        if tx.send(bytes::Bytes::from(text)).await.is_err() {
            return;
        }
        let mut offset = stored.len();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = tx.closed() => return,
            }
            let current = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            let complete = current[offset.min(current.len())..]
                .rfind('\n')
                .map_or(offset, |i| offset + i + 1);
            if complete > offset {
                let chunk = render_file(
                    &current[offset..complete],
                    &FileRender {
                        timestamps,
                        ..FileRender::default()
                    },
                );
                offset = complete;
                if tx.send(bytes::Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            // The container restarted (a new file) or the pod is gone: the stream ends.
            if node.log_file(&uid, &container, false).as_ref() != Some(&path) {
                return;
            }
        }
    });
    Ok(streamed(builder, rx))
}

/// A response whose body is what arrives on `rx` until its sender is dropped.
fn streamed(
    builder: axum::http::response::Builder,
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    builder
        .body(Body::from_stream(stream))
        .expect("static response parts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_deterministic_and_include_annotations() {
        let pod = json!({"metadata":{"name":"p","namespace":"ns","annotations":{
            "kube-emulator.fluo.dev/log":"hello\nERROR boom","kube-emulator.fluo.dev/log.b":"only b"}},
            "spec":{"containers":[{"name":"a","image":"img:1"},{"name":"b","image":"img:crashloop"}]}});
        let a = lines(&pod, "a");
        assert_eq!(
            a,
            vec![
                "kube-emulator: container a of pod ns/p started (image img:1)",
                "hello",
                "ERROR boom"
            ]
        );
        let b = lines(&pod, "b");
        assert_eq!(b.len(), 5);
        assert!(b[3] == "only b" && b[4].contains("exited with code 1"));
        let params = Params::from_pairs(vec![("tailLines".into(), "1".into())]);
        assert_eq!(render(&pod, "a", &params, None), "ERROR boom\n");
        assert!(
            Params::from_pairs(vec![])
                .container(&pod, "p")
                .unwrap_err()
                .message
                .contains("choose one of: [a b]")
        );
    }

    #[test]
    fn since_keeps_lines_logged_after_the_cutoff_only() {
        let pod = json!({"metadata":{"name":"p","namespace":"ns"},
            "spec":{"containers":[{"name":"a","image":"img:1"}]},
            "status":{"startTime":"2020-01-01T00:00:00Z"}});
        let none = Params::from_pairs(vec![]);
        let recent = since(&Params::from_pairs(vec![(
            "sinceSeconds".into(),
            "60".into(),
        )]))
        .unwrap();
        assert_eq!(render(&pod, "a", &none, recent), "");
        let before_start = since(&Params::from_pairs(vec![(
            "sinceTime".into(),
            "2019-12-31T23:00:00Z".into(),
        )]))
        .unwrap();
        assert!(render(&pod, "a", &none, before_start).contains("container a of pod ns/p"));
        for (key, bad) in [
            ("sinceSeconds", "0"),
            ("sinceSeconds", "x"),
            ("sinceTime", "yesterday"),
        ] {
            let err = since(&Params::from_pairs(vec![(key.into(), bad.into())])).unwrap_err();
            assert_eq!(err.code, 400, "{key}={bad}");
            assert!(err.message.contains(key), "{}", err.message);
        }
    }
}
