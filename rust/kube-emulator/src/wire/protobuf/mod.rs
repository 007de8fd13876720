//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the objects
//! kubectl's typed generators create: `kubectl create namespace|secret|configmap|serviceaccount`.
//!
//! A body is the prefix `k8s\0` and a `runtime.Unknown` envelope (typeMeta = 1 {apiVersion = 1,
//! kind = 2}, raw = 2, contentEncoding = 3, contentType = 4) whose `raw` bytes are the object's
//! message. The supported kinds are turned into the JSON object the JSON path would have
//! received, so create and update handle them unchanged. Field numbers are those of k8s.io/api
//! core/v1 and apimachinery meta/v1 `generated.proto`; other fields are skipped, as every
//! protobuf reader skips unknown fields. Empty strings and zero numbers are left out, as Go's
//! `omitempty` JSON encoding of the same object would.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::apiserver::status::ApiError;

/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    Magic,
    #[error("truncated varint at byte {at} (in {msg})")]
    TruncatedVarint { msg: &'static str, at: usize },
    #[error("varint at byte {at} is longer than 64 bits (in {msg})")]
    VarintOverflow { msg: &'static str, at: usize },
    #[error("invalid field key at byte {at} (in {msg}): {why}")]
    Key {
        msg: &'static str,
        at: usize,
        why: String,
    },
    #[error("{msg} field {number} at byte {at}: {why}")]
    Field {
        msg: &'static str,
        number: u64,
        at: usize,
        why: String,
    },
    #[error("the runtime.Unknown envelope names no kind")]
    NoKind,
    #[error("content encoding {0:?} of the runtime.Unknown envelope is not supported")]
    ContentEncoding(String),
    #[error(
        "kube-emulator decodes protobuf request bodies only for v1 Namespace, Secret, ConfigMap and ServiceAccount (the kubectl create generators for them) and SelfSubjectRulesReview, not {api_version} {kind}; send {kind} as JSON or YAML instead, e.g. with kubectl apply -f"
    )]
    UnsupportedKind { api_version: String, kind: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnsupportedKind { .. } | Error::ContentEncoding(_) => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            _ => ApiError::bad_request(format!("the protobuf request body is malformed: {e}")),
        }
    }
}

/// Decodes a protobuf request body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value> {
    let rest = body.strip_prefix(MAGIC).ok_or(Error::Magic)?;
    let envelope = Envelope::read(Reader::new(rest, MAGIC.len(), "runtime.Unknown"))?;
    if !envelope.content_encoding.is_empty() {
        return Err(Error::ContentEncoding(envelope.content_encoding.into()));
    }
    if envelope.kind.is_empty() {
        return Err(Error::NoKind);
    }
    type Decoder = fn(Reader<'_>, &mut Map<String, Value>) -> Result<()>;
    let (kind, decoder): (&'static str, Decoder) = match (envelope.api_version, envelope.kind) {
        ("v1", "Namespace") => ("Namespace", namespace),
        ("v1", "Secret") => ("Secret", secret),
        ("v1", "ConfigMap") => ("ConfigMap", config_map),
        ("v1", "ServiceAccount") => ("ServiceAccount", service_account),
        // What `kubectl auth can-i --list` posts.
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            ("SelfSubjectRulesReview", rules_review)
        }
        (api_version, kind) => {
            return Err(Error::UnsupportedKind {
                api_version: api_version.into(),
                kind: kind.into(),
            });
        }
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(envelope.api_version));
    obj.insert("kind".into(), json!(kind));
    decoder(Reader::new(envelope.raw, envelope.raw_at, kind), &mut obj)?;
    Ok(Value::Object(obj))
}

/// The `runtime.Unknown` wrapper around the object's bytes.
struct Envelope<'a> {
    api_version: &'a str,
    kind: &'a str,
    raw: &'a [u8],
    raw_at: usize,
    content_encoding: &'a str,
}

impl<'a> Envelope<'a> {
    fn read(mut r: Reader<'a>) -> Result<Self> {
        let mut e = Envelope {
            api_version: "",
            kind: "",
            raw: &[],
            raw_at: r.base,
            content_encoding: "",
        };
        while let Some(f) = r.next()? {
            match f.number {
                1 => {
                    let mut tm = f.message("runtime.TypeMeta")?;
                    while let Some(f) = tm.next()? {
                        match f.number {
                            1 => e.api_version = f.str()?,
                            2 => e.kind = f.str()?,
                            _ => {}
                        }
                    }
                }
                2 => (e.raw, e.raw_at) = f.bytes_at()?,
                3 => e.content_encoding = f.str()?,
                _ => {}
            }
        }
        Ok(e)
    }
}

fn namespace(mut r: Reader<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    while let Some(f) = r.next()? {
        match f.number {
            1 => put_object(obj, "metadata", object_meta(f.message("ObjectMeta")?)?),
            2 => {
                let mut spec = Map::new();
                let mut r = f.message("NamespaceSpec")?;
                while let Some(f) = r.next()? {
                    if f.number == 1 {
                        push(&mut spec, "finalizers", json!(f.str()?));
                    }
                }
                put_object(obj, "spec", spec);
            }
            3 => {
                // Only the phase: conditions are written by the server, never by a client.
                let mut status = Map::new();
                let mut r = f.message("NamespaceStatus")?;
                while let Some(f) = r.next()? {
                    string_field(&mut status, &f, &[(1, "phase")])?;
                }
                put_object(obj, "status", status);
            }
            _ => {}
        }
    }
    Ok(())
}

fn secret(mut r: Reader<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    while let Some(f) = r.next()? {
        match f.number {
            1 => put_object(obj, "metadata", object_meta(f.message("ObjectMeta")?)?),
            2 => map_entry(obj, "data", &f, MapValue::Bytes)?,
            3 => string_field(obj, &f, &[(3, "type")])?,
            4 => map_entry(obj, "stringData", &f, MapValue::String)?,
            5 => {
                obj.insert("immutable".into(), json!(f.bool()?));
            }
            _ => {}
        }
    }
    Ok(())
}

fn rules_review(mut r: Reader<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    while let Some(f) = r.next()? {
        if f.number == 2 {
            let mut spec = Map::new();
            let mut r = f.message("SelfSubjectRulesReviewSpec")?;
            while let Some(f) = r.next()? {
                string_field(&mut spec, &f, &[(1, "namespace")])?;
            }
            put_object(obj, "spec", spec);
        }
    }
    Ok(())
}

fn config_map(mut r: Reader<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    while let Some(f) = r.next()? {
        match f.number {
            1 => put_object(obj, "metadata", object_meta(f.message("ObjectMeta")?)?),
            2 => map_entry(obj, "data", &f, MapValue::String)?,
            3 => map_entry(obj, "binaryData", &f, MapValue::Bytes)?,
            4 => {
                obj.insert("immutable".into(), json!(f.bool()?));
            }
            _ => {}
        }
    }
    Ok(())
}

fn service_account(mut r: Reader<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    while let Some(f) = r.next()? {
        match f.number {
            1 => put_object(obj, "metadata", object_meta(f.message("ObjectMeta")?)?),
            2 => {
                let reference = strings_message(
                    f.message("ObjectReference")?,
                    &[
                        (1, "kind"),
                        (2, "namespace"),
                        (3, "name"),
                        (4, "uid"),
                        (5, "apiVersion"),
                        (6, "resourceVersion"),
                        (7, "fieldPath"),
                    ],
                )?;
                push(obj, "secrets", Value::Object(reference));
            }
            3 => {
                let reference =
                    strings_message(f.message("LocalObjectReference")?, &[(1, "name")])?;
                push(obj, "imagePullSecrets", Value::Object(reference));
            }
            4 => {
                obj.insert("automountServiceAccountToken".into(), json!(f.bool()?));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `ObjectMeta`, without the fields only the server writes and no client sends
/// (selfLink = 4, managedFields = 17).
fn object_meta(mut r: Reader<'_>) -> Result<Map<String, Value>> {
    const STRINGS: &[(u64, &str)] = &[
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ];
    let mut m = Map::new();
    while let Some(f) = r.next()? {
        match f.number {
            7 => {
                let generation = f.int64()?;
                if generation != 0 {
                    m.insert("generation".into(), json!(generation));
                }
            }
            8 => {
                if let Some(t) = time(&f)? {
                    m.insert("creationTimestamp".into(), json!(t));
                }
            }
            9 => {
                if let Some(t) = time(&f)? {
                    m.insert("deletionTimestamp".into(), json!(t));
                }
            }
            10 => {
                m.insert("deletionGracePeriodSeconds".into(), json!(f.int64()?));
            }
            11 => map_entry(&mut m, "labels", &f, MapValue::String)?,
            12 => map_entry(&mut m, "annotations", &f, MapValue::String)?,
            13 => push(&mut m, "ownerReferences", owner_reference(&f)?),
            14 => push(&mut m, "finalizers", json!(f.str()?)),
            _ => string_field(&mut m, &f, STRINGS)?,
        }
    }
    Ok(m)
}

fn owner_reference(f: &Field<'_>) -> Result<Value> {
    const STRINGS: &[(u64, &str)] = &[(1, "kind"), (3, "name"), (4, "uid"), (5, "apiVersion")];
    let mut m = Map::new();
    let mut r = f.message("OwnerReference")?;
    while let Some(f) = r.next()? {
        match f.number {
            6 => {
                m.insert("controller".into(), json!(f.bool()?));
            }
            7 => {
                m.insert("blockOwnerDeletion".into(), json!(f.bool()?));
            }
            _ => string_field(&mut m, &f, STRINGS)?,
        }
    }
    Ok(Value::Object(m))
}

/// A meta/v1 `Time` (seconds = 1, nanos = 2) as RFC 3339; an empty message is the zero time
/// (JSON null, left out). Like apimachinery, nanoseconds are dropped.
fn time(f: &Field<'_>) -> Result<Option<String>> {
    let mut r = f.message("Time")?;
    if r.buf.is_empty() {
        return Ok(None);
    }
    let mut seconds = 0;
    while let Some(f) = r.next()? {
        if f.number == 1 {
            seconds = f.int64()?;
        }
    }
    let t = chrono::DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| f.invalid(format!("Time seconds {seconds} are out of range")))?;
    Ok(Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// A message whose listed fields are all strings (object references).
fn strings_message(mut r: Reader<'_>, names: &[(u64, &str)]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    while let Some(f) = r.next()? {
        string_field(&mut m, &f, names)?;
    }
    Ok(m)
}

/// Sets the string field `f` if its number is listed; an empty string is left out.
fn string_field(m: &mut Map<String, Value>, f: &Field<'_>, names: &[(u64, &str)]) -> Result<()> {
    if let Some((_, name)) = names.iter().find(|(n, _)| *n == f.number) {
        let s = f.str()?;
        if s.is_empty() {
            m.remove(*name);
        } else {
            m.insert((*name).into(), json!(s));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum MapValue {
    String,
    /// `bytes` values, base64 in JSON.
    Bytes,
}

/// One entry (key = 1, value = 2) of a protobuf map field, added to the JSON object `m[name]`.
fn map_entry(m: &mut Map<String, Value>, name: &str, f: &Field<'_>, kind: MapValue) -> Result<()> {
    let mut r = f.message("map entry")?;
    let mut key = "";
    let mut value = json!("");
    while let Some(f) = r.next()? {
        match f.number {
            1 => key = f.str()?,
            2 => {
                value = match kind {
                    MapValue::String => json!(f.str()?),
                    MapValue::Bytes => {
                        json!(base64::engine::general_purpose::STANDARD.encode(f.bytes_at()?.0))
                    }
                }
            }
            _ => {}
        }
    }
    let mut entry = Map::new();
    entry.insert(key.into(), value);
    put_object(m, name, entry);
    Ok(())
}

/// Sets `m[key]` to `value`, merging into an object already there (a message field repeated on
/// the wire merges, as protobuf specifies).
fn put_object(m: &mut Map<String, Value>, key: &str, value: Map<String, Value>) {
    match m.get_mut(key) {
        Some(Value::Object(existing)) => existing.extend(value),
        _ => {
            m.insert(key.into(), Value::Object(value));
        }
    }
}

/// Appends `value` to the array `m[key]`.
fn push(m: &mut Map<String, Value>, key: &str, value: Value) {
    match m.get_mut(key) {
        Some(Value::Array(items)) => items.push(value),
        _ => {
            m.insert(key.into(), Value::Array(vec![value]));
        }
    }
}

/// Reads the fields of one message; `base` is where `buf` starts in the body, for errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    msg: &'static str,
}

/// One field as read off the wire.
struct Field<'a> {
    msg: &'static str,
    number: u64,
    at: usize,
    value: Wire<'a>,
}

enum Wire<'a> {
    Varint(u64),
    /// fixed32 / fixed64: none of the decoded fields use them, they are only skipped.
    Fixed,
    Bytes {
        data: &'a [u8],
        at: usize,
    },
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, msg: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            msg,
        }
    }

    fn varint(&mut self) -> Result<u64> {
        let at = self.base + self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Error::TruncatedVarint { msg: self.msg, at });
            };
            self.pos += 1;
            // The tenth byte may only carry the 64th bit.
            if i == 9 && b > 1 {
                return Err(Error::VarintOverflow { msg: self.msg, at });
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::VarintOverflow { msg: self.msg, at })
    }

    fn take(&mut self, len: u64, number: u64, at: usize) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= left => {
                let data = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(data)
            }
            _ => Err(Error::Field {
                msg: self.msg,
                number,
                at,
                why: format!("needs {len} bytes but only {left} remain"),
            }),
        }
    }

    fn next(&mut self) -> Result<Option<Field<'a>>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(Error::Key {
                msg: self.msg,
                at,
                why: "field number 0".into(),
            });
        }
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8, number, at)?;
                Wire::Fixed
            }
            2 => {
                let len = self.varint()?;
                let data_at = self.base + self.pos;
                Wire::Bytes {
                    data: self.take(len, number, at)?,
                    at: data_at,
                }
            }
            5 => {
                self.take(4, number, at)?;
                Wire::Fixed
            }
            wire => {
                return Err(Error::Key {
                    msg: self.msg,
                    at,
                    why: format!("unsupported wire type {wire} (field {number})"),
                });
            }
        };
        Ok(Some(Field {
            msg: self.msg,
            number,
            at,
            value,
        }))
    }
}

impl<'a> Field<'a> {
    fn invalid(&self, why: impl Into<String>) -> Error {
        Error::Field {
            msg: self.msg,
            number: self.number,
            at: self.at,
            why: why.into(),
        }
    }

    fn wire_name(&self) -> &'static str {
        match self.value {
            Wire::Varint(_) => "varint",
            Wire::Fixed => "fixed-width",
            Wire::Bytes { .. } => "length-delimited",
        }
    }

    /// Length-delimited bytes and where they start in the body.
    fn bytes_at(&self) -> Result<(&'a [u8], usize)> {
        match self.value {
            Wire::Bytes { data, at } => Ok((data, at)),
            _ => Err(self.invalid(format!(
                "expected length-delimited, got {}",
                self.wire_name()
            ))),
        }
    }

    fn str(&self) -> Result<&'a str> {
        let (data, _) = self.bytes_at()?;
        std::str::from_utf8(data).map_err(|e| self.invalid(format!("string is not UTF-8: {e}")))
    }

    fn message(&self, msg: &'static str) -> Result<Reader<'a>> {
        let (data, at) = self.bytes_at()?;
        Ok(Reader::new(data, at, msg))
    }

    fn varint(&self) -> Result<u64> {
        match self.value {
            Wire::Varint(v) => Ok(v),
            _ => Err(self.invalid(format!("expected varint, got {}", self.wire_name()))),
        }
    }

    fn bool(&self) -> Result<bool> {
        Ok(self.varint()? != 0)
    }

    /// int64 is the varint's two's-complement bits.
    fn int64(&self) -> Result<i64> {
        Ok(self.varint()? as i64)
    }
}

#[cfg(test)]
mod tests;
