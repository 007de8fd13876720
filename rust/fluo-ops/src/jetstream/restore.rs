//! `restore`: each stream of a backup is deleted if it exists, created again with its backed-up
//! configuration, refilled with its messages in their order (subjects, headers and payloads as
//! they were; sequence numbers and timestamps are new) and given its consumers again (their
//! delivery state starts over: un-acked work is delivered again). Streams that are not in the
//! backup are left alone.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use async_nats::HeaderMap;
use base64::Engine;
use serde::Serialize;

use super::Connection;
use super::backup::{INDEX, Index, Message};

/// What one stream got back.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub stream: String,
    pub messages: u64,
    pub consumers: usize,
}

/// The backup to restore: `arg` as a path, else as an id under `dir`; without `arg`, the
/// newest backup under `dir`.
pub fn locate(dir: &Path, arg: Option<&str>) -> Result<PathBuf, String> {
    let found = match arg {
        Some(a) if Path::new(a).join(INDEX).is_file() => PathBuf::from(a),
        Some(a) => dir.join(a),
        None => {
            let mut ids: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| format!("no backups in {} ({e})", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(INDEX).is_file())
                .collect();
            // Ids start with the time they were taken, so the last one sorts last.
            ids.sort();
            ids.pop()
                .ok_or_else(|| format!("no backups in {}", dir.display()))?
        }
    };
    if !found.join(INDEX).is_file() {
        return Err(format!("{} is not a backup (no {INDEX})", found.display()));
    }
    Ok(found)
}

/// Reads and checks a backup completely before anything is changed.
pub fn read(path: &Path) -> Result<(Index, Vec<Vec<Message>>), String> {
    let index_path = path.join(INDEX);
    let text = std::fs::read_to_string(&index_path)
        .map_err(|e| format!("read {}: {e}", index_path.display()))?;
    let index: Index = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a backup index: {e}", index_path.display()))?;
    let mut all = Vec::new();
    for s in &index.streams {
        let file = path.join(format!("{}.jsonl", s.config.name));
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file).map_err(|e| format!("read {}: {e}", file.display()))?,
        );
        let mut messages = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| format!("read {}: {e}", file.display()))?;
            let m: Message = serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", file.display(), n + 1))?;
            messages.push(m);
        }
        if messages.len() as u64 != s.messages {
            return Err(format!(
                "{} holds {} messages, the index says {}: the backup is incomplete",
                file.display(),
                messages.len(),
                s.messages
            ));
        }
        all.push(messages);
    }
    Ok((index, all))
}

/// Restores every stream of `index` (read by [`read`]).
pub async fn restore(
    conn: &Connection,
    index: &Index,
    messages: &[Vec<Message>],
) -> Result<Vec<Restored>, String> {
    let mut out = Vec::new();
    for (s, messages) in index.streams.iter().zip(messages) {
        let name = &s.config.name;
        match conn.jetstream.delete_stream(name).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(format!("delete stream {name}: {e}")),
        }
        let stream = conn
            .jetstream
            .create_stream(s.config.clone())
            .await
            .map_err(|e| format!("create stream {name}: {e}"))?;
        for m in messages {
            publish(conn, m)
                .await
                .map_err(|e| format!("stream {name}: message {} ({}): {e}", m.seq, m.subject))?;
        }
        for c in &s.consumers {
            stream
                .create_consumer(c.clone())
                .await
                .map_err(|e| format!("stream {name}: consumer {:?}: {e}", c.durable_name))?;
        }
        out.push(Restored {
            stream: name.clone(),
            messages: messages.len() as u64,
            consumers: s.consumers.len(),
        });
    }
    Ok(out)
}

async fn publish(conn: &Connection, m: &Message) -> Result<(), String> {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&m.data)
        .map_err(|e| format!("payload is not base64: {e}"))?;
    let mut headers = HeaderMap::new();
    // Expectations were about the original stream's sequence; they would refuse the copy.
    for (k, v) in m
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("Nats-Expected"))
    {
        headers.append(k.as_str(), v.as_str());
    }
    let ack = conn
        .jetstream
        .publish_with_headers(m.subject.clone(), headers, payload.into())
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())?;
    Ok(())
}
