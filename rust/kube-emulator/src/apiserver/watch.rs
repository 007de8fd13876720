//! Watch streams: initial state or replay from the ring, 410 Gone when the requested version
//! fell out of the ring, bookmarks, timeoutSeconds and fault-injected early closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::apiserver::resources::ResourceDef;
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::store::{Event, EventType, Store, meta_str};

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    /// Fault injection: close the stream after this long.
    pub close_after: Option<Duration>,
    pub bookmark_interval: Duration,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn in_scope(opts: &WatchOptions, obj: &Value) -> bool {
    opts.namespace
        .as_deref()
        .is_none_or(|ns| meta_str(obj, "namespace") == ns)
}

fn selected(opts: &WatchOptions, obj: &Value) -> bool {
    in_scope(opts, obj) && opts.labels.matches_object(obj) && opts.fields.matches(obj)
}

fn typed(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

/// Turns a store event into the event this watcher sees, if any.
fn translate(opts: &WatchOptions, ev: &Event) -> Option<(&'static str, Value)> {
    let now_in = selected(opts, &ev.object);
    let was_in = ev.previous.as_ref().is_some_and(|p| selected(opts, p));
    let kind = match (ev.kind, was_in, now_in) {
        (EventType::Modified, true, false) => "DELETED",
        (EventType::Modified, false, true) => "ADDED",
        (EventType::Modified, false, false) => return None,
        (k, _, true) => k.as_str(),
        (_, _, false) => return None,
    };
    Some((kind, typed(ev.def, &ev.object)))
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta})
}

/// Starts a watch and returns the stream of JSON lines; the task ends when the client goes away.
pub fn start(
    store: Arc<Store>,
    def: &'static ResourceDef,
    opts: WatchOptions,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut first: Vec<Bytes> = Vec::new();
    let (mut rx_events, mut last_rv, gone) = {
        let state = store.lock();
        let current = state.current_rv();
        let requested = opts
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0")
            .map(|rv| rv.parse::<u64>());
        match requested {
            Some(Err(_)) => {
                let status = crate::apiserver::status::ApiError::bad_request(format!(
                    "invalid resource version: {}",
                    opts.resource_version.as_deref().unwrap_or("")
                ));
                first.push(line("ERROR", &status.to_status()));
                (state.subscribe(), current, true)
            }
            Some(Ok(rv)) if !opts.send_initial_events => {
                if rv < state.oldest_replayable() {
                    let status = crate::apiserver::status::ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        state.oldest_replayable() + 1
                    ));
                    first.push(line("ERROR", &status.to_status()));
                    (state.subscribe(), current, true)
                } else {
                    for ev in state.events_since(def, rv) {
                        if let Some((k, o)) = translate(&opts, &ev) {
                            first.push(line(k, &o));
                        }
                    }
                    (state.subscribe(), current.max(rv), false)
                }
            }
            _ => {
                for o in state
                    .list(def, opts.namespace.as_deref())
                    .filter(|o| selected(&opts, o))
                {
                    first.push(line("ADDED", &typed(def, o)));
                }
                if opts.send_initial_events && opts.bookmarks {
                    first.push(line("BOOKMARK", &bookmark(def, current, true)));
                }
                (state.subscribe(), current, false)
            }
        }
    };
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if gone {
            return;
        }
        let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
        let close_at = opts.close_after.map(|t| tokio::time::Instant::now() + t);
        let end = match (deadline, close_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut ticker = tokio::time::interval(opts.bookmark_interval);
        ticker.tick().await;
        loop {
            let sleep_until = async {
                match end {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep_until => return,
                _ = ticker.tick(), if opts.bookmarks => {
                    if tx.send(line("BOOKMARK", &bookmark(def, last_rv, false))).await.is_err() {
                        return;
                    }
                }
                ev = rx_events.recv() => match ev {
                    Ok(ev) => {
                        if ev.def.plural != def.plural || ev.def.group != def.group || ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some((k, o)) = translate(&opts, &ev)
                            && tx.send(line(k, &o)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher that fell behind the channel is closed; it re-watches from its
                    // last version and replays from the ring (or gets 410 and relists).
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}
