//! An HTTP endpoint as the environment reaches it: a base URL, plus the Host header when going
//! through the ingress, plus a note on how it was reached (for evidence).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};

/// An HTTP client whose requests give up after `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    fluo_core::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a reqwest client with a crypto provider builds")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    host: Option<String>,
    via: String,
    token: Option<ApiToken>,
}

/// A BFF API token; shown as `ApiToken(***)` so it never reaches evidence or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        ApiToken(token.into())
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl Endpoint {
    /// A URL reached as is.
    pub fn direct(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            host: None,
            via: "direct".to_owned(),
            token: None,
        }
    }

    /// Through an ingress: requests go to `base` with `Host: host`.
    pub fn ingress(base: &str, host: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            host: Some(host.to_owned()),
            via: format!("ingress Host {host}"),
            token: None,
        }
    }

    /// Through a port-forward (local base URL) to `target` (e.g. `pod/nats-0:8222`).
    pub fn forwarded(base: &str, target: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            host: None,
            via: format!("port-forward {target}"),
            token: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// How the endpoint is reached, for evidence: "direct", "ingress Host x", "port-forward y".
    pub fn via(&self) -> &str {
        &self.via
    }

    /// The same endpoint, sending `Authorization: Bearer <token>` (the jobs API needs it).
    pub fn with_token(mut self, token: Option<ApiToken>) -> Self {
        self.token = token;
        self
    }

    pub fn request(&self, http: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let mut request = http.request(method, self.url(path));
        if let Some(host) = &self.host {
            request = request.header(reqwest::header::HOST, host);
        }
        match &self.token {
            Some(ApiToken(token)) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GET `path` and return status and body; the error names the URL and the root cause.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<(StatusCode, String), String> {
        self.send(self.request(http, Method::GET, path), "GET", path)
            .await
    }

    /// GET `path?query` (`query` already encoded); errors name `path` without the query, which
    /// can be long and unreadable encoded.
    pub async fn get_with_query(
        &self,
        http: &reqwest::Client,
        path: &str,
        query: &str,
    ) -> Result<(StatusCode, String), String> {
        let request = self.request(http, Method::GET, &format!("{path}?{query}"));
        self.send(request, "GET", path).await
    }

    /// POST a JSON body to `path` and return status and body.
    pub async fn post_json(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, String), String> {
        let request = self.request(http, Method::POST, path).json(body);
        self.send(request, "POST", path).await
    }

    /// POST raw bytes with a content type (for payloads that are deliberately not valid JSON).
    pub async fn post_raw(
        &self,
        http: &reqwest::Client,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> Result<(StatusCode, String), String> {
        let request = self
            .request(http, Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request, "POST", path).await
    }

    async fn send(
        &self,
        request: RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<(StatusCode, String), String> {
        let failed = |e: reqwest::Error| {
            format!(
                "{method} {} ({}): {}",
                self.url(path),
                self.via,
                root_cause(&e)
            )
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = response.text().await.map_err(failed)?;
        Ok((status, body))
    }
}

/// The innermost error message ("Connection refused (os error 111)"), which is what a person
/// needs; reqwest's own message only repeats the URL.
pub fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    if err.is_timeout() {
        return "request timed out".to_owned();
    }
    cause.to_string()
}

/// The first `max` characters of a body, on one line, for evidence.
pub fn excerpt(body: &str, max: usize) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_joins_paths_without_double_slash() {
        let ep = Endpoint::direct("http://127.0.0.1:8080/");
        assert_eq!(ep.url("/health"), "http://127.0.0.1:8080/health");
        assert_eq!(ep.via(), "direct");
    }

    #[test]
    fn ingress_endpoint_sends_the_host_header() {
        let ep = Endpoint::ingress("http://localhost", "fluo-api.localhost");
        let request = ep
            .request(&http_client(Duration::from_secs(5)), Method::GET, "/health")
            .build()
            .unwrap();
        assert_eq!(request.url().as_str(), "http://localhost/health");
        assert_eq!(request.headers()["host"], "fluo-api.localhost");
    }

    #[tokio::test]
    async fn connection_refused_names_url_and_cause() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = Endpoint::direct(&format!("http://127.0.0.1:{port}"));
        let err = ep
            .get(&http_client(Duration::from_secs(5)), "/health")
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!("GET http://127.0.0.1:{port}/health (direct): ")),
            "{err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    #[test]
    fn excerpt_is_one_line_and_bounded() {
        assert_eq!(excerpt("a\n  b", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc...");
    }
}
