//! Just enough of the NATS client protocol to judge a server's security from outside: read the
//! server's INFO, optionally upgrade to TLS verified against a given CA, send an anonymous
//! CONNECT and a PING, and say what the server answered. A client library would retry, fall
//! back or hide which step refused; the security checks need each step's answer.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where a NATS server's client port is and the name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The TLS server name clients use (e.g. `nats`, the Service name in the manifests).
    pub server_name: String,
    /// How it is reached, for evidence.
    pub via: String,
}

/// The parts of the server's INFO the checks judge.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Info {
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub auth_required: bool,
}

/// What the server did with a CONNECT + PING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// PONG: the connection was accepted.
    Pong,
    /// `-ERR '<message>'`.
    Refused(String),
    /// The server closed the connection (or the TLS layer broke it) without a PONG.
    Closed(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Pong => f.write_str("PONG (accepted)"),
            Answer::Refused(message) => write!(f, "-ERR {message}"),
            Answer::Closed(why) => write!(f, "connection closed ({why})"),
        }
    }
}

/// The longest protocol line read (INFO lines are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// CONNECT (anonymous, or as `user` with its password) and a PING.
fn connect_line(user: Option<(&str, &str)>) -> String {
    let mut connect = serde_json::json!({"verbose": false, "pedantic": false, "lang": "rust",
        "version": "fluo-health", "protocol": 1, "name": "fluo-health security check"});
    if let Some((name, password)) = user {
        connect["user"] = name.into();
        connect["pass"] = password.into();
    }
    format!("CONNECT {connect}\r\nPING\r\n")
}

async fn read_line<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Result<String, String> {
    let mut line = Vec::new();
    let n = reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("end of stream".to_owned());
    }
    if line.len() > MAX_LINE {
        return Err(format!("a protocol line over {MAX_LINE} bytes"));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// Connects and reads the server's INFO.
async fn open(target: &Target) -> Result<(BufReader<TcpStream>, Info), String> {
    let tcp = TcpStream::connect(&target.addr).await.map_err(|e| {
        format!(
            "connecting to NATS at {} ({}): {e}",
            target.addr, target.via
        )
    })?;
    let mut reader = BufReader::new(tcp);
    let line = read_line(&mut reader)
        .await
        .map_err(|e| format!("reading INFO from {}: {e}", target.addr))?;
    let json = line
        .strip_prefix("INFO ")
        .ok_or_else(|| format!("{} is not a NATS server: it sent {line:?}", target.addr))?;
    let info = serde_json::from_str(json)
        .map_err(|e| format!("INFO from {} is not valid JSON: {e}", target.addr))?;
    Ok((reader, info))
}

/// Sends a CONNECT (anonymous, or as `user`) and a PING and reads until PONG, -ERR or the end.
async fn connect_as<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    user: Option<(&str, &str)>,
) -> Result<Answer, String> {
    let mut reader = BufReader::new(stream);
    if let Err(e) = reader
        .get_mut()
        .write_all(connect_line(user).as_bytes())
        .await
    {
        return Ok(Answer::Closed(e.to_string()));
    }
    // Bounded: a server sends at most a few INFO/PING lines before answering.
    for _ in 0..16 {
        let line = match read_line(&mut reader).await {
            Ok(line) => line,
            Err(why) => return Ok(Answer::Closed(why)),
        };
        if line == "PONG" {
            return Ok(Answer::Pong);
        }
        if let Some(message) = line.strip_prefix("-ERR ") {
            return Ok(Answer::Refused(message.to_owned()));
        }
    }
    Err("no PONG or -ERR after 16 lines".to_owned())
}

/// Plaintext, anonymous: what a client without TLS or credentials gets.
pub async fn plaintext(target: &Target) -> Result<(Info, Answer), String> {
    let (reader, info) = open(target).await?;
    let answer = connect_as(reader.into_inner(), None).await?;
    Ok((info, answer))
}

/// Upgrades to TLS trusting only `ca_pem` and checking the certificate names
/// `target.server_name`; Err(handshake error) when the certificate does not verify. Then an
/// anonymous CONNECT.
pub async fn over_tls(target: &Target, ca_pem: &[u8]) -> Result<(Info, Answer), TlsFailure> {
    over_tls_as(target, ca_pem, None).await
}

/// [`over_tls`] with the CONNECT of `user` (name, password) when given: whether the server
/// accepts that credential (`fluo-deploy rotate nats` probes old and new users so).
pub async fn over_tls_as(
    target: &Target,
    ca_pem: &[u8],
    user: Option<(&str, &str)>,
) -> Result<(Info, Answer), TlsFailure> {
    let (reader, info) = open(target).await.map_err(TlsFailure::Setup)?;
    let config = client_config(ca_pem).map_err(TlsFailure::Setup)?;
    let name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| TlsFailure::Setup(format!("server name {:?}: {e}", target.server_name)))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(name, reader.into_inner())
        .await
        .map_err(|e| TlsFailure::Handshake(e.to_string()))?;
    let answer = connect_as(tls, user).await.map_err(TlsFailure::Setup)?;
    Ok((info, answer))
}

/// Why [`over_tls`] did not get to an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate was refused (or the handshake broke).
    Handshake(String),
    /// Anything before the handshake: the connection, the CA file, the server name.
    Setup(String),
}

fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    fluo_core::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("the CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA holds no certificate".to_owned());
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_without_certificates_is_named() {
        assert_eq!(
            client_config(b"hello").unwrap_err(),
            "the CA holds no certificate"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_nats_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n").await.unwrap();
        });
        let target = Target {
            addr: addr.clone(),
            server_name: "nats".into(),
            via: "direct".into(),
        };
        let err = plaintext(&target).await.unwrap_err();
        assert_eq!(
            err,
            format!("{addr} is not a NATS server: it sent \"HTTP/1.1 400 Bad Request\"")
        );
    }
}
