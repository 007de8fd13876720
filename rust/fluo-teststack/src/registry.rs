//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.x) on a free
//! loopback port with a temp config and storage, killed on drop; images are pushed through the
//! registry's own HTTP API (blob uploads, then the manifest), as a client such as skopeo would.

use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::binaries::system_binary;
use crate::error::{Error, Result};
use crate::ports::free_port;
use crate::process::{ChildProcess, log_tail};

/// How to get the registry binary (also in scripts/setup).
pub const REGISTRY_HINT: &str = "apt-get install docker-registry (or run scripts/setup tests)";
const READY_WITHIN: Duration = Duration::from_secs(20);
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub struct Registry {
    _process: ChildProcess,
    _dir: tempfile::TempDir,
    addr: String,
    http: reqwest::Client,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Registry {
    /// Starts the registry and waits until `/v2/` answers.
    pub async fn start() -> Result<Registry> {
        let binary =
            system_binary("docker-registry", "DOCKER_REGISTRY_BIN").map_err(|e| match e {
                Error::MissingBinary { binary, looked_in } => Error::MissingPackage {
                    binary,
                    looked_in,
                    hint: REGISTRY_HINT,
                },
                other => other,
            })?;
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            action: "create a temp dir for",
            path: "docker-registry".into(),
            source,
        })?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        let text = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        std::fs::write(&config, text).map_err(|source| Error::Io {
            action: "write",
            path: config.clone(),
            source,
        })?;
        let log = dir.path().join("registry.log");
        let mut process = ChildProcess::spawn(
            &binary,
            &["serve".into(), config.display().to_string()],
            &[],
            &log,
        )?;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| http_error(&addr, e))?;
        let url = format!("http://{addr}/v2/");
        let started = Instant::now();
        loop {
            if let Some(status) = process.exited() {
                return Err(Error::Http {
                    url,
                    reason: format!(
                        "docker-registry exited ({status}); log: {}",
                        log_tail(&log, 20)
                    ),
                });
            }
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                return Err(Error::Timeout {
                    what: format!("docker-registry at {url}"),
                    seconds: READY_WITHIN.as_secs(),
                    last: log_tail(&log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Registry {
            _process: process,
            _dir: dir,
            addr,
            http,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Pushes `repository:tag` as a one-layer OCI image (config blob, layer blob, manifest)
    /// and returns the digest the registry answered for the manifest.
    pub async fn push_image(&self, repository: &str, tag: &str) -> Result<String> {
        let layer = format!("layer of {repository}:{tag}\n").into_bytes();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
        }))
        .expect("JSON");
        self.push_blob(repository, &layer).await?;
        self.push_blob(repository, &config).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256_digest(&layer),
                "size": layer.len(),
            }],
        }))
        .expect("JSON");
        let url = format!("http://{}/v2/{repository}/manifests/{tag}", self.addr);
        let answer = self
            .http
            .put(&url)
            .header("content-type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
        let digest = answer
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        match (answer.status().as_u16(), digest) {
            (201, Some(digest)) => Ok(digest),
            (status, _) => Err(Error::Http {
                url,
                reason: format!(
                    "manifest upload answered HTTP {status}: {}",
                    body(answer).await
                ),
            }),
        }
    }

    /// A monolithic blob upload: POST for a session, PUT the bytes with their digest.
    async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<()> {
        let url = format!("http://{}/v2/{repository}/blobs/uploads/", self.addr);
        let session = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
        let location = session
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let Some(location) = location.filter(|_| session.status().as_u16() == 202) else {
            return Err(Error::Http {
                url,
                reason: format!("upload start answered HTTP {}", session.status().as_u16()),
            });
        };
        let location = match location.starts_with('/') {
            true => format!("http://{}{location}", self.addr),
            false => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={}", sha256_digest(bytes));
        let answer = self
            .http
            .put(&put)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| http_error(&put, e))?;
        match answer.status().as_u16() {
            201 => Ok(()),
            status => Err(Error::Http {
                url: put,
                reason: format!("blob upload answered HTTP {status}: {}", body(answer).await),
            }),
        }
    }
}

fn http_error(url: &str, e: reqwest::Error) -> Error {
    Error::Http {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

async fn body(answer: reqwest::Response) -> String {
    answer.text().await.unwrap_or_default()
}
