//! NATS security, seen from outside as an attacker in the cluster would try it:
//! - `nats-tls`: the client port requires TLS (a plaintext client is refused), the server's
//!   certificate verifies against the expected CA under the name clients use, and a client
//!   trusting an unrelated CA refuses it (the verification is real);
//! - `nats-auth`: an anonymous client (no user) is refused.

use crate::check::ProbeResult;
use crate::natswire::{self, Answer, Target, TlsFailure};

/// The expected CA: PEM and where it came from (for evidence).
#[derive(Debug, Clone)]
pub struct Ca {
    pub pem: Vec<u8>,
    pub source: String,
}

pub async fn tls_probe(target: &Target, ca: &Ca) -> ProbeResult {
    let (info, answer) = natswire::plaintext(target).await?;
    if !info.tls_required {
        return Err(format!(
            "NATS at {} does not require TLS (INFO tls_required false); a plaintext client got {answer} ({})",
            target.addr, target.via
        ));
    }
    if answer == Answer::Pong {
        return Err(format!(
            "NATS at {} accepted a plaintext client although INFO says tls_required ({})",
            target.addr, target.via
        ));
    }
    match natswire::over_tls(target, &ca.pem).await {
        Ok(_) => {}
        Err(TlsFailure::Handshake(e)) => {
            return Err(format!(
                "the certificate of NATS at {} does not verify against the CA from {} as {:?}: {e} ({})",
                target.addr, ca.source, target.server_name, target.via
            ));
        }
        Err(TlsFailure::Setup(e)) => return Err(e),
    }
    let unrelated = unrelated_ca()?;
    match natswire::over_tls(target, &unrelated).await {
        Err(TlsFailure::Handshake(e)) => Ok(format!(
            "plaintext refused, certificate verified against the CA from {} as {:?}, an unrelated CA refused ({e}) ({})",
            ca.source, target.server_name, target.via
        )),
        Err(TlsFailure::Setup(e)) => Err(e),
        Ok(_) => Err(format!(
            "a client trusting an unrelated CA accepted the certificate of NATS at {}: verification is not in force ({})",
            target.addr, target.via
        )),
    }
}

/// A CA that signed nothing the server has: a freshly made one.
fn unrelated_ca() -> Result<Vec<u8>, String> {
    fluo_secrets::tls::generate("fluo-health-unrelated-ca", &["unrelated.invalid".into()])
        .map(|bundle| bundle.ca_cert.into_bytes())
        .map_err(|e| format!("making an unrelated CA: {e}"))
}

/// `ca` is needed when the server requires TLS (the anonymous attempt goes over TLS, as a
/// client that has the CA but no user would).
pub async fn anonymous_probe(target: &Target, ca: Option<&Ca>) -> ProbeResult {
    let (info, answer) = natswire::plaintext(target).await?;
    let (answer, how) = if info.tls_required {
        let ca = ca.ok_or_else(|| {
            "NATS requires TLS and no CA is known to try an anonymous client over it: give \
             --nats-ca-file or create the Secret nats-tls (key ca.crt)"
                .to_owned()
        })?;
        match natswire::over_tls(target, &ca.pem).await {
            Ok((_, answer)) => (answer, "over TLS"),
            Err(TlsFailure::Handshake(e)) => {
                return Err(format!(
                    "TLS handshake with NATS at {} failed, so the anonymous attempt could not be made: {e}",
                    target.addr
                ));
            }
            Err(TlsFailure::Setup(e)) => return Err(e),
        }
    } else {
        (answer, "in plaintext")
    };
    match answer {
        Answer::Pong => Err(format!(
            "NATS at {} accepted an anonymous client {how} (CONNECT without a user answered PONG; INFO auth_required {}) ({})",
            target.addr, info.auth_required, target.via
        )),
        refused => Ok(format!(
            "an anonymous client {how} was refused: {refused} ({})",
            target.via
        )),
    }
}

/// The expected CA: `file` (`--nats-ca-file`), else key `ca.crt` of the Secret `nats-tls`
/// (what the BFF and workers trust); None when neither is there.
pub async fn expected_ca(
    file: Option<&std::path::Path>,
    cluster: Option<&crate::access::Cluster>,
) -> Result<Option<Ca>, String> {
    if let Some(file) = file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("reading the NATS CA file {}: {e}", file.display()))?;
        return Ok(Some(Ca {
            pem,
            source: file.display().to_string(),
        }));
    }
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    let secret = fluo_secrets::bundle::NATS_TLS;
    let pem = crate::api_token::secret_key(cluster, secret, "ca.crt").await?;
    Ok(pem.map(|pem| Ca {
        pem: pem.into_bytes(),
        source: format!("Secret {secret}"),
    }))
}
