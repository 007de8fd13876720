//! The process-wide rustls crypto provider.
//!
//! The workspace builds reqwest with `rustls-no-provider`: it takes the process's default
//! provider and panics building a client when none is installed. kube and async-nats already
//! use ring, so ring becomes that default and the binaries link one provider only. Every binary
//! and test that builds an HTTP or kube client calls [`install_crypto_provider`] first.

/// Makes ring the process's rustls provider. Idempotent: when a provider is already installed
/// (by an earlier call or by another library), that one stays.
pub fn install_crypto_provider() {
    // Err only says a provider is already installed, which is what the caller needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_a_provider_and_a_second_call_keeps_it() {
        install_crypto_provider();
        let first = rustls::crypto::CryptoProvider::get_default().expect("a provider is installed");
        install_crypto_provider();
        let second = rustls::crypto::CryptoProvider::get_default().expect("still installed");
        assert!(std::sync::Arc::ptr_eq(first, second));
        assert!(!first.cipher_suites.is_empty());
    }
}
