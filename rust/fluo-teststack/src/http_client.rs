//! The HTTP client the stack and its users share.

/// A reqwest client. The workspace builds reqwest's rustls without a crypto provider (ring is
/// the process default, as for kube and async-nats), so install ring first; doing it twice is
/// harmless.
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// Installs ring as the process's rustls provider if none is installed yet. Call it before
/// building your own reqwest client in a test.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
