//! Who may call the jobs API: bearer tokens whose SHA-256 hashes and scopes are in the tokens
//! file (`fluo_jobs::tokens`), re-read when the mounted Secret changes so a rotation needs no
//! restart; too many failed attempts from one address are answered 429 for a while.
//! Tokens are never logged: only the token's name (from the file) and the peer address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fluo_jobs::tokens::{self, Scope, TokensFile};

use crate::api::ApiError;
use crate::state::AppState;

/// How often the tokens file is checked for a new version (the kubelet updates a mounted
/// Secret within about a minute; this adds at most a few seconds).
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Failed attempts one address may make per window before it gets 429 for the rest of it.
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The tokens in force and where they come from.
pub struct TokenStore {
    path: PathBuf,
    current: RwLock<(String, Arc<TokensFile>)>,
}

impl TokenStore {
    /// Loads the file once; a bad file at start is a configuration error (exit 2).
    pub fn load(path: PathBuf) -> Result<Self, tokens::Error> {
        let text = read(&path)?;
        let file = TokensFile::parse(&text).map_err(|reason| tokens::Error::Invalid {
            path: path.clone(),
            reason,
        })?;
        Ok(TokenStore {
            path,
            current: RwLock::new((text, Arc::new(file))),
        })
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    pub fn tokens(&self) -> Arc<TokensFile> {
        self.current.read().expect("tokens lock poisoned").1.clone()
    }

    /// Re-reads the file; a changed, valid file replaces the tokens (returns true). A broken
    /// file keeps the tokens in force, so a bad edit cannot lock every client out.
    pub fn reload(&self) -> Result<bool, tokens::Error> {
        let text = read(&self.path)?;
        if self.current.read().expect("tokens lock poisoned").0 == text {
            return Ok(false);
        }
        let file = TokensFile::parse(&text).map_err(|reason| tokens::Error::Invalid {
            path: self.path.clone(),
            reason,
        })?;
        *self.current.write().expect("tokens lock poisoned") = (text, Arc::new(file));
        Ok(true)
    }
}

fn read(path: &PathBuf) -> Result<String, tokens::Error> {
    std::fs::read_to_string(path).map_err(|source| tokens::Error::Read {
        path: path.clone(),
        source,
    })
}

/// Re-reads the tokens file every [`RELOAD_EVERY`] for as long as the BFF runs.
pub async fn keep_reloading(store: Arc<TokenStore>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        match store.reload() {
            Ok(true) => tracing::info!(
                file = %store.path().display(),
                tokens = store.tokens().tokens.len(),
                "API tokens reloaded"
            ),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "API tokens not reloaded; the previous tokens stay in force")
            }
        }
    }
}

/// Failures per address in the current window.
#[derive(Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Seconds until `ip` may try again, when it is over the limit.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let windows = self.windows.lock().expect("limiter lock poisoned");
        let (started, failures) = windows.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(started.elapsed())?;
        (*failures >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    /// Counts one failure of `ip`; returns true when it just reached the limit.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let mut windows = self.windows.lock().expect("limiter lock poisoned");
        // Forget finished windows so the map cannot grow without bound.
        if windows.len() > 10_000 {
            windows.retain(|_, (started, _)| started.elapsed() < FAILURE_WINDOW);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 == MAX_FAILURES
    }
}

/// Why a request was refused.
enum Refusal {
    Missing,
    Invalid,
    Scope(Scope),
    Limited(u64),
}

impl Refusal {
    fn response(self) -> Response {
        let (status, challenge, message) = match self {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"fluo\"".to_owned(),
                "an API token is required: Authorization: Bearer <token>".to_owned(),
            ),
            Refusal::Invalid => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"fluo\", error=\"invalid_token\"".to_owned(),
                "the API token is not valid".to_owned(),
            ),
            Refusal::Scope(scope) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"fluo\", error=\"insufficient_scope\", scope=\"{}\"",
                    scope.as_str()
                ),
                format!("the API token lacks the scope {}", scope.as_str()),
            ),
            Refusal::Limited(seconds) => {
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed authentications; retry in {seconds} s"),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                return response;
            }
        };
        let mut response = ApiError::new(status, message).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).expect("ASCII challenge"),
        );
        response
    }
}

/// The bearer token of a request, if it has one in the `Authorization` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Route layer: the request needs a valid token carrying `scope`. A no-op when the BFF runs
/// with `--insecure-no-auth`.
pub async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(store) = &state.tokens else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if let Some(seconds) = state.limiter.blocked_for(ip) {
        state
            .metrics
            .auth_refusals
            .with_label_values(&["limited"])
            .inc();
        return Refusal::Limited(seconds).response();
    }
    let refusal = match bearer(&request).map(|t| store.tokens().verify(t)) {
        None => Refusal::Missing,
        Some(None) => Refusal::Invalid,
        Some(Some(grant)) if grant.scopes.contains(&scope) => {
            return next.run(request).await;
        }
        Some(Some(grant)) => {
            // `token_name`, not `token`: a name in a `"token":"..."` field reads as a leaked token.
            tracing::info!(token_name = %grant.name, peer = %ip, scope = scope.as_str(), "API token lacks the scope");
            Refusal::Scope(scope)
        }
    };
    let reason = match refusal {
        Refusal::Missing => "missing",
        Refusal::Invalid => "invalid",
        _ => "scope",
    };
    state
        .metrics
        .auth_refusals
        .with_label_values(&[reason])
        .inc();
    if !matches!(refusal, Refusal::Scope(_)) && state.limiter.fail(ip) {
        tracing::warn!(peer = %ip, limit = MAX_FAILURES, "too many failed authentications: refusing this address for a while");
    }
    refusal.response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_the_allowed_failures_only() {
        let limiter = FailureLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for n in 1..MAX_FAILURES {
            assert!(!limiter.fail(ip));
            assert_eq!(limiter.blocked_for(ip), None, "after {n} failures");
        }
        assert!(limiter.fail(ip));
        let seconds = limiter.blocked_for(ip).unwrap();
        assert!((1..=60).contains(&seconds));
        assert_eq!(limiter.blocked_for(other), None);
    }

    #[test]
    fn a_broken_reload_keeps_the_tokens_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let token = tokens::mint();
        let file = TokensFile {
            tokens: vec![tokens::Entry {
                name: "ci".into(),
                sha256: tokens::hash(&token),
                scopes: vec![Scope::JobsRead],
            }],
        };
        std::fs::write(&path, file.render()).unwrap();
        let store = TokenStore::load(path.clone()).unwrap();
        assert!(!store.reload().unwrap());
        std::fs::write(&path, "[[tokens]]\nname = 1\n").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("tokens.toml"), "{err}");
        assert!(store.tokens().verify(&token).is_some());
        std::fs::write(&path, TokensFile::default().render()).unwrap();
        assert!(store.reload().unwrap());
        assert!(store.tokens().verify(&token).is_none());
    }
}
