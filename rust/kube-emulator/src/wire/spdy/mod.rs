//! SPDY/3.1 framing as moby/spdystream speaks it (the library under kubectl's port-forward):
//! control frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE) and DATA frames, with name/value header blocks compressed by zlib primed with
//! the SPDY/3 dictionary. Each direction of a connection keeps ONE compression context for its
//! whole life (every header block ends with a sync flush, never a stream end), so an [`Encoder`]
//! and a [`Decoder`] live as long as the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The only protocol version spdystream speaks.
pub const VERSION: u16 = 3;
/// The largest payload one frame can carry (24-bit length).
pub const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;
/// A decompressed header block larger than this is refused (spdystream has no limit; we keep
/// one so a hostile peer cannot make the emulator allocate without bound).
const MAX_HEADER_BLOCK: usize = 1 << 20;

const CONTROL_BIT: u32 = 0x8000_0000;
const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (spdystream `RstStreamStatus`).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unsupported SPDY version {0} (only 3 is spoken)")]
    UnsupportedVersion(u16),
    #[error("unknown SPDY control frame type {0}")]
    UnknownFrameType(u16),
    #[error("invalid {frame} frame: {reason}")]
    InvalidFrame { frame: &'static str, reason: String },
    #[error("{0} frame with stream id 0")]
    ZeroStreamId(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(String),
    #[error("header compression: {0}")]
    Compression(String),
    #[error("frame payload of {0} bytes exceeds the 24-bit length")]
    TooLarge(usize),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Name/value headers of a stream. Names are lower case (SPDY requires it); one name may carry
/// several values, which travel NUL-separated. Order carries no meaning (spdystream keeps them
/// in a Go map), so equality ignores it.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, Vec<String>)>);

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(n, v)| other.0.iter().any(|(on, ov)| on == n && ov == v))
    }
}

impl Eq for Headers {}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value (the name is lower-cased).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.to_string()),
            None => self.0.push((name, vec![value.to_string()])),
        }
        self
    }

    /// The first value of `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u32(len_u32(self.0.len())?);
        for (name, values) in &self.0 {
            let value = values.join("\0");
            out.put_u32(len_u32(name.len())?);
            out.put_slice(name.as_bytes());
            out.put_u32(len_u32(value.len())?);
            out.put_slice(value.as_bytes());
        }
        Ok(())
    }

    fn decode(mut block: &[u8]) -> Result<Self> {
        fn take<'a>(block: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8]> {
            if block.len() < n {
                return Err(Error::HeaderBlock(format!("truncated at {what}")));
            }
            let (head, rest) = block.split_at(n);
            *block = rest;
            Ok(head)
        }
        fn word(block: &mut &[u8], what: &str) -> Result<usize> {
            let b = take(block, 4, what)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        }
        fn text(bytes: &[u8], what: &str) -> Result<String> {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| Error::HeaderBlock(format!("{what} is not UTF-8")))
        }
        let count = word(&mut block, "the header count")?;
        let mut headers = Headers::new();
        for _ in 0..count {
            let len = word(&mut block, "a name length")?;
            let name = text(take(&mut block, len, "a name")?, "a header name")?;
            if name.is_empty() || name != name.to_ascii_lowercase() {
                return Err(Error::HeaderBlock(format!(
                    "header name {name:?} is empty or not lower case"
                )));
            }
            if headers.get(&name).is_some() {
                return Err(Error::HeaderBlock(format!("header {name:?} appears twice")));
            }
            let len = word(&mut block, "a value length")?;
            let value = text(take(&mut block, len, "a value")?, "a header value")?;
            headers
                .0
                .push((name, value.split('\0').map(str::to_string).collect()));
        }
        if !block.is_empty() {
            return Err(Error::HeaderBlock(format!(
                "{} bytes after the last header",
                block.len()
            )));
        }
        Ok(headers)
    }
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A SPDY/3 frame in its unpacked form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

fn len_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::TooLarge(n))
}

fn stream_id(id: u32, frame: &'static str) -> Result<u32> {
    match id & 0x7fff_ffff {
        0 => Err(Error::ZeroStreamId(frame)),
        id => Ok(id),
    }
}

/// Writes frames; owns the sending direction's header compression context.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        // spdystream compresses with zlib.BestCompression and the SPDY/3 dictionary.
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("a fresh deflate stream accepts a dictionary");
        Self { deflate }
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<()> {
        let mut body = Vec::new();
        let (kind, flags) = match frame {
            Frame::Data {
                stream_id: id,
                fin,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(Error::TooLarge(data.len()));
                }
                out.put_u32(stream_id(*id, "DATA")?);
                out.put_u32(u32::from(flag(*fin, FLAG_FIN)) << 24 | data.len() as u32);
                out.put_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id: id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                body.put_u32(stream_id(*id, "SYN_STREAM")?);
                body.put_u32(associated_to & 0x7fff_ffff);
                body.put_u8((priority & 0x07) << 5);
                body.put_u8(0); // credential slot
                body.extend(self.compress(headers)?);
                (
                    TYPE_SYN_STREAM,
                    flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL),
                )
            }
            Frame::SynReply {
                stream_id: id,
                fin,
                headers,
            } => {
                body.put_u32(stream_id(*id, "SYN_REPLY")?);
                body.extend(self.compress(headers)?);
                (TYPE_SYN_REPLY, flag(*fin, FLAG_FIN))
            }
            Frame::Headers {
                stream_id: id,
                fin,
                headers,
            } => {
                body.put_u32(stream_id(*id, "HEADERS")?);
                body.extend(self.compress(headers)?);
                (TYPE_HEADERS, flag(*fin, FLAG_FIN))
            }
            Frame::RstStream {
                stream_id: id,
                status,
            } => {
                body.put_u32(stream_id(*id, "RST_STREAM")?);
                body.put_u32(*status);
                (TYPE_RST_STREAM, 0)
            }
            Frame::Settings { clear, entries } => {
                body.put_u32(len_u32(entries.len())?);
                for e in entries {
                    body.put_u32(u32::from(e.flags) << 24 | (e.id & 0x00ff_ffff));
                    body.put_u32(e.value);
                }
                (TYPE_SETTINGS, flag(*clear, FLAG_CLEAR_SETTINGS))
            }
            Frame::Ping { id } => {
                body.put_u32(*id);
                (TYPE_PING, 0)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                body.put_u32(last_good_stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                (TYPE_GOAWAY, 0)
            }
            Frame::WindowUpdate {
                stream_id: id,
                delta,
            } => {
                body.put_u32(stream_id(*id, "WINDOW_UPDATE")?);
                body.put_u32(delta & 0x7fff_ffff);
                (TYPE_WINDOW_UPDATE, 0)
            }
        };
        if body.len() > MAX_FRAME_PAYLOAD {
            return Err(Error::TooLarge(body.len()));
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32(u32::from(flags) << 24 | body.len() as u32);
        out.put_slice(&body);
        Ok(())
    }

    /// Compresses one header block, ending with a sync flush so the peer can decode it now
    /// while the stream continues into the next block.
    fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>> {
        let mut raw = Vec::new();
        headers.encode(&mut raw)?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.deflate.total_in();
        loop {
            let consumed = (self.deflate.total_in() - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Compression(e.to_string()))?;
            let consumed = (self.deflate.total_in() - start) as usize;
            // Done once all input is in and deflate left output space unused (zlib's rule
            // for a completed flush).
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

/// Reads frames; owns the receiving direction's header decompression context.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            inflate: Decompress::new(true),
        }
    }

    /// Takes one complete frame off the front of `buf`, or returns `None` (consuming nothing)
    /// when `buf` does not yet hold a whole frame.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let mut body = buf.split_to(len).freeze();
        if first & CONTROL_BIT == 0 {
            return Ok(Some(Frame::Data {
                stream_id: stream_id(first, "DATA")?,
                fin: flags & FLAG_FIN != 0,
                data: body,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let kind = (first & 0xffff) as u16;
        let invalid = |frame: &'static str, reason: String| Error::InvalidFrame { frame, reason };
        let exact = |frame: &'static str, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(invalid(
                    frame,
                    format!("length {len}, expected {want} bytes"),
                ))
            }
        };
        let at_least = |frame: &'static str, want: usize| {
            if len >= want {
                Ok(())
            } else {
                Err(invalid(
                    frame,
                    format!("length {len}, expected at least {want} bytes"),
                ))
            }
        };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                at_least("SYN_STREAM", 10)?;
                let id = stream_id(body.get_u32(), "SYN_STREAM")?;
                let associated_to = body.get_u32() & 0x7fff_ffff;
                let priority = body.get_u8() >> 5;
                body.advance(1); // credential slot
                Frame::SynStream {
                    stream_id: id,
                    associated_to,
                    priority,
                    fin: flags & FLAG_FIN != 0,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.decompress(&body)?,
                }
            }
            TYPE_SYN_REPLY => {
                at_least("SYN_REPLY", 4)?;
                let id = stream_id(body.get_u32(), "SYN_REPLY")?;
                Frame::SynReply {
                    stream_id: id,
                    fin: flags & FLAG_FIN != 0,
                    headers: self.decompress(&body)?,
                }
            }
            TYPE_HEADERS => {
                at_least("HEADERS", 4)?;
                let id = stream_id(body.get_u32(), "HEADERS")?;
                Frame::Headers {
                    stream_id: id,
                    fin: flags & FLAG_FIN != 0,
                    headers: self.decompress(&body)?,
                }
            }
            TYPE_RST_STREAM => {
                exact("RST_STREAM", 8)?;
                let id = stream_id(body.get_u32(), "RST_STREAM")?;
                let status = body.get_u32();
                if status == 0 {
                    return Err(invalid("RST_STREAM", "status 0".into()));
                }
                Frame::RstStream {
                    stream_id: id,
                    status,
                }
            }
            TYPE_SETTINGS => {
                at_least("SETTINGS", 4)?;
                let count = body.get_u32() as usize;
                if body.len() != count.saturating_mul(8) {
                    return Err(invalid(
                        "SETTINGS",
                        format!("{count} entries in {} bytes", body.len()),
                    ));
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = body.get_u32();
                        Setting {
                            flags: (word >> 24) as u8,
                            id: word & 0x00ff_ffff,
                            value: body.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            TYPE_PING => {
                exact("PING", 4)?;
                Frame::Ping { id: body.get_u32() }
            }
            TYPE_GOAWAY => {
                exact("GOAWAY", 8)?;
                Frame::GoAway {
                    last_good_stream_id: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                exact("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate {
                    stream_id: stream_id(body.get_u32(), "WINDOW_UPDATE")?,
                    delta: body.get_u32() & 0x7fff_ffff,
                }
            }
            other => return Err(Error::UnknownFrameType(other)),
        };
        Ok(Some(frame))
    }

    fn decompress(&mut self, data: &[u8]) -> Result<Headers> {
        let mut out = Vec::with_capacity(data.len() * 4 + 64);
        let start = self.inflate.total_in();
        loop {
            let consumed = (self.inflate.total_in() - start) as usize;
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(Error::HeaderBlock(format!(
                        "decompresses to more than {MAX_HEADER_BLOCK} bytes"
                    )));
                }
                out.reserve(out.len());
            }
            let before = (consumed, out.len());
            match self
                .inflate
                .decompress_vec(&data[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(id) if id == dictionary_id() => {
                        self.inflate
                            .set_dictionary(DICTIONARY)
                            .map_err(|e| Error::Compression(e.to_string()))?;
                        continue;
                    }
                    Some(id) => {
                        return Err(Error::Compression(format!(
                            "peer used dictionary {id:#010x}, not the SPDY/3 dictionary"
                        )));
                    }
                    None => return Err(Error::Compression(e.to_string())),
                },
            }
            let consumed = (self.inflate.total_in() - start) as usize;
            if consumed == data.len() && out.len() < out.capacity() {
                return Headers::decode(&out);
            }
            if (consumed, out.len()) == before {
                return Err(Error::Compression("inflate made no progress".into()));
            }
        }
    }
}

/// Adler-32 of [`DICTIONARY`]: the dictionary id a peer's zlib header names.
pub fn dictionary_id() -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in DICTIONARY {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 2.6.10.1): 4-byte
/// big-endian length-prefixed header names and values, then common status lines, dates and
/// content types. Must be byte-exact or the peer's inflate fails.
pub const DICTIONARY: &[u8] = concat!(
    "\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete",
    "\0\0\0\x05trace\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding",
    "\0\0\0\x0faccept-language\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow",
    "\0\0\0\x0dauthorization\0\0\0\x0dcache-control\0\0\0\x0aconnection",
    "\0\0\0\x0ccontent-base\0\0\0\x10content-encoding\0\0\0\x10content-language",
    "\0\0\0\x0econtent-length\0\0\0\x10content-location\0\0\0\x0bcontent-md5",
    "\0\0\0\x0dcontent-range\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag",
    "\0\0\0\x06expect\0\0\0\x07expires\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match",
    "\0\0\0\x11if-modified-since\0\0\0\x0dif-none-match\0\0\0\x08if-range",
    "\0\0\0\x13if-unmodified-since\0\0\0\x0dlast-modified\0\0\0\x08location",
    "\0\0\0\x0cmax-forwards\0\0\0\x06pragma\0\0\0\x12proxy-authenticate",
    "\0\0\0\x13proxy-authorization\0\0\0\x05range\0\0\0\x07referer\0\0\0\x0bretry-after",
    "\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\0\0\0\x11transfer-encoding",
    "\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\0\0\0\x03via\0\0\0\x07warning",
    "\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\0\0\0\x06status",
    "\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public",
    "\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin",
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
    "501 Not Implemented503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
)
.as_bytes();

#[cfg(test)]
mod tests;
