//! Who may call the jobs API: bearer tokens whose SHA-256 hashes and scopes are in the tokens
//! file (`fluo_jobs::tokens`), re-read when the mounted Secret changes so a rotation needs no
//! restart (`token_store`); too many failed attempts from one address are answered 429 for a
//! while (`limiter`). Tokens are never logged: only the token's name (from the file) and the
//! peer address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fluo_jobs::tokens::Scope;

use crate::error::ApiError;
pub use crate::limiter::{FAILURE_WINDOW, FailureLimiter, MAX_FAILURES};
use crate::state::AppState;
pub use crate::token_store::{RELOAD_EVERY, TokenStore, keep_reloading};

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
    let tokens = store.tokens();
    let refusal = match bearer(&request).map(|t| tokens.verify(t)) {
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
