//! The backup: `<dir>/<id>/backup.json` (streams' configurations and consumers, message
//! counts) and `<stream>.jsonl` per stream (every stored message: sequence, subject, headers,
//! payload in base64), read with the JetStream API's message get, in sequence order.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_nats::jetstream::consumer;
use async_nats::jetstream::stream::{self, RawMessageErrorKind};
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::Connection;

pub const INDEX: &str = "backup.json";

/// `backup.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    pub id: String,
    pub taken_at: DateTime<Utc>,
    pub environment: String,
    pub streams: Vec<StreamBackup>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StreamBackup {
    pub config: stream::Config,
    pub consumers: Vec<consumer::Config>,
    /// Messages in `<name>.jsonl`.
    pub messages: u64,
}

/// One stored message.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub seq: u64,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Base64.
    pub data: String,
}

/// Backs up every stream into a new directory under `dir`; returns its path.
pub async fn take(conn: &Connection, dir: &Path, environment: &str) -> Result<PathBuf, String> {
    let id = fluo_core::state::store::new_id(Utc::now());
    let target = dir.join(&id);
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    let names: Vec<String> = conn
        .jetstream
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| format!("list the JetStream streams: {e}"))?;
    let mut streams = Vec::new();
    for name in names {
        streams.push(stream_backup(conn, &name, &target).await?);
    }
    let index = Index {
        id,
        taken_at: Utc::now(),
        environment: environment.to_string(),
        streams,
    };
    let text = serde_json::to_string_pretty(&index).map_err(|e| e.to_string())?;
    let path = target.join(INDEX);
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(target)
}

async fn stream_backup(
    conn: &Connection,
    name: &str,
    target: &Path,
) -> Result<StreamBackup, String> {
    let mut stream = conn
        .jetstream
        .get_stream(name)
        .await
        .map_err(|e| format!("stream {name}: {e}"))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("stream {name}: {e}"))?
        .clone();
    let consumers: Vec<consumer::Info> = stream
        .consumers()
        .try_collect()
        .await
        .map_err(|e| format!("consumers of stream {name}: {e}"))?;
    let path = target.join(format!("{name}.jsonl"));
    let file =
        std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut messages = 0;
    let state = &info.state;
    if state.messages > 0 {
        for seq in state.first_sequence..=state.last_sequence {
            let m = match stream.get_raw_message(seq).await {
                Ok(m) => m,
                // A deleted message leaves a gap in the sequence.
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(format!("stream {name} message {seq}: {e}")),
            };
            let headers = m
                .headers
                .iter()
                .flat_map(|(k, values)| {
                    values
                        .iter()
                        .map(move |v| (k.to_string(), v.as_str().to_string()))
                })
                .collect();
            let line = Message {
                seq,
                subject: m.subject.to_string(),
                headers,
                data: base64::engine::general_purpose::STANDARD.encode(&m.payload),
            };
            let text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
            writeln!(out, "{text}").map_err(|e| format!("write {}: {e}", path.display()))?;
            messages += 1;
        }
    }
    out.flush()
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(StreamBackup {
        config: info.config,
        consumers: consumers.into_iter().map(|c| c.config).collect(),
        messages,
    })
}
