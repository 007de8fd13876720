//! Resolving an image tag to the digest of its manifest through the OCI distribution API:
//! `HEAD /v2/<name>/manifests/<tag>` with the manifest and index media types accepted, the
//! digest taken from `Docker-Content-Digest`; a `GET` (digest computed from the bytes, and
//! checked against the header) where the HEAD answer has none. A registry that asks for a
//! bearer token gets the anonymous token flow; credentials are never sent.
//!
//! https by default; plain http only for the registries an environment lists as insecure and
//! for loopback ones (`[images.resolve]`, docs/deploy.md "Image digests").

pub mod challenge;

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::config::Resolve;
use crate::image_ref::ImageRef;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a reference was not resolved. Only [`Error::Unreachable`] may be deployed by tag
/// (where the environment does not require digests); the others are refused everywhere.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "image {reference:?}: tag `{tag}` is not in repository `{repository}` of registry {registry} ({detail})"
    )]
    UnknownTag {
        reference: String,
        tag: String,
        repository: String,
        registry: String,
        detail: String,
    },
    #[error(
        "image {reference:?}: registry {registry} cannot be reached to resolve its digest ({detail})"
    )]
    Unreachable {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("image {reference:?}: registry {registry} gave no usable digest ({detail})")]
    BadAnswer {
        reference: String,
        registry: String,
        detail: String,
    },
}

/// The media types a pinned reference may name: OCI and Docker v2 manifests and indexes
/// (an index pins every platform at once).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const DIGEST_HEADER: &str = "docker-content-digest";

/// Resolves tags with one environment's `[images.resolve]` settings.
pub struct Resolver {
    http: reqwest::Client,
    insecure: Vec<String>,
    timeout: Duration,
}

/// Where one reference's manifest lives.
struct Target {
    reference: String,
    /// Host[:port] as written (`docker.io` for references without one).
    registry: String,
    base: String,
    repository: String,
    tag: String,
}

impl Resolver {
    pub fn new(settings: &Resolve) -> Result<Self, String> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| format!("building the registry client: {e}"))?;
        Ok(Self {
            http,
            insecure: settings.insecure_registries.clone(),
            timeout: settings.timeout,
        })
    }

    /// The digest-pinned form `name@sha256:...` of `reference` (which has no digest).
    pub async fn pin(&self, reference: &str) -> Result<String> {
        let parsed = ImageRef::parse(reference).map_err(|e| Error::BadAnswer {
            reference: reference.to_string(),
            registry: "-".into(),
            detail: e.to_string(),
        })?;
        let target = self.target(reference, &parsed);
        let digest = match tokio::time::timeout(self.timeout, self.digest(&target)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(target.unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                )));
            }
        };
        Ok(format!("{}@{digest}", parsed.name()))
    }

    fn target(&self, reference: &str, parsed: &ImageRef) -> Target {
        let registry = parsed.domain.clone().unwrap_or_else(|| "docker.io".into());
        let (host, repository) = match registry.as_str() {
            // Docker Hub's API host, and its implicit `library/` for official images.
            "docker.io" | "index.docker.io" => (
                "registry-1.docker.io".to_string(),
                match parsed.path.contains('/') {
                    true => parsed.path.clone(),
                    false => format!("library/{}", parsed.path),
                },
            ),
            _ => (registry.clone(), parsed.path.clone()),
        };
        let scheme = match self.insecure.contains(&registry) || is_loopback(&registry) {
            true => "http",
            false => "https",
        };
        Target {
            reference: reference.to_string(),
            registry,
            base: format!("{scheme}://{host}"),
            repository,
            tag: parsed.tag.clone().unwrap_or_else(|| "latest".into()),
        }
    }

    async fn digest(&self, t: &Target) -> Result<String> {
        let url = format!("{}/v2/{}/manifests/{}", t.base, t.repository, t.tag);
        let mut token = None;
        let mut head = self.send(t, Method::HEAD, &url, token.as_deref()).await?;
        if head.status() == StatusCode::UNAUTHORIZED {
            token = Some(self.token(t, head.headers()).await?);
            head = self.send(t, Method::HEAD, &url, token.as_deref()).await?;
        }
        check_status(t, head.status())?;
        if let Some(digest) = header_digest(t, head.headers())? {
            return Ok(digest);
        }
        // No digest header: the digest of the manifest's bytes.
        let get = self.send(t, Method::GET, &url, token.as_deref()).await?;
        check_status(t, get.status())?;
        let announced = header_digest(t, get.headers())?;
        let body = get
            .bytes()
            .await
            .map_err(|e| t.unreachable(format!("reading the manifest: {e}")))?;
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        match announced {
            Some(a) if a.starts_with("sha256:") && a != computed => Err(t.bad(format!(
                "Docker-Content-Digest {a} is not the digest of the manifest it sent ({computed})"
            ))),
            _ => Ok(computed),
        }
    }

    async fn send(
        &self,
        t: &Target,
        method: Method,
        url: &str,
        token: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, MANIFEST_TYPES);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.map_err(|e| t.unreachable(cause(&e)))
    }

    /// The anonymous bearer token a 401 challenge points to.
    async fn token(&self, t: &Target, headers: &HeaderMap) -> Result<String> {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::parse)
            .ok_or_else(|| {
                t.unreachable(
                    "it requires credentials (HTTP 401 without a bearer challenge); only anonymous pulls are resolved".into(),
                )
            })?;
        let scope = challenge
            .scope
            .unwrap_or_else(|| format!("repository:{}:pull", t.repository));
        let mut query = vec![("scope", scope)];
        if let Some(service) = challenge.service {
            query.push(("service", service));
        }
        let url = reqwest::Url::parse_with_params(&challenge.realm, &query)
            .map_err(|e| t.bad(format!("token realm {:?}: {e}", challenge.realm)))?;
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| t.unreachable(format!("token service: {}", cause(&e))))?;
        if !answer.status().is_success() {
            return Err(t.unreachable(format!(
                "token service {} answered HTTP {}",
                challenge.realm,
                answer.status().as_u16()
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: Token = answer
            .json()
            .await
            .map_err(|e| t.unreachable(format!("token service answer: {e}")))?;
        body.token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| t.unreachable("the token service sent no token".into()))
    }
}

impl Target {
    fn unreachable(&self, detail: String) -> Error {
        Error::Unreachable {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }

    fn bad(&self, detail: String) -> Error {
        Error::BadAnswer {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }
}

fn check_status(t: &Target, status: StatusCode) -> Result<()> {
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(Error::UnknownTag {
            reference: t.reference.clone(),
            tag: t.tag.clone(),
            repository: t.repository.clone(),
            registry: t.registry.clone(),
            detail: "HTTP 404 for the manifest".into(),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(t.unreachable(format!(
            "HTTP {} for an anonymous pull; only anonymous pulls are resolved",
            status.as_u16()
        ))),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            Err(t.unreachable(format!("HTTP {}", s.as_u16())))
        }
        s => Err(t.bad(format!("HTTP {} for the manifest", s.as_u16()))),
    }
}

/// `Docker-Content-Digest`, checked for shape; None when absent.
fn header_digest(t: &Target, headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get(DIGEST_HEADER) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    let parsed = ImageRef::parse(&format!("x@{value}"));
    match parsed {
        Ok(_) if value.starts_with("sha256:") => Ok(Some(value.to_string())),
        _ => Err(t.bad(format!(
            "Docker-Content-Digest {value:?} is not sha256:<64 hex>"
        ))),
    }
}

/// `localhost`, `127.0.0.0/8` and `[::1]`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The innermost cause of a request error (reqwest's own message only says "error sending
/// request").
fn cause(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        text = format!("timed out: {text}");
    }
    text
}

#[cfg(test)]
mod tests;
