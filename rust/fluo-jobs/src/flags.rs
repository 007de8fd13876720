//! Validation of the flags both services take: the address to serve on and the NATS URL.
//! Errors name the flag, its environment variable and the value, like the rest of each
//! service's `ConfigError`.

use std::net::SocketAddr;

/// A shared flag with a value that is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--listen ({var}) {value:?} is not a socket address like {example}")]
    Listen {
        var: &'static str,
        value: String,
        example: &'static str,
    },
    #[error("--nats-url (NATS_URL) {value:?} must start with nats:// or tls://")]
    NatsUrl { value: String },
}

/// `--listen` (read from `var`, default `example`) as a socket address.
pub fn listen_address(
    value: &str,
    var: &'static str,
    example: &'static str,
) -> Result<SocketAddr, FlagError> {
    value.parse().map_err(|_| FlagError::Listen {
        var,
        value: value.to_owned(),
        example,
    })
}

/// `--nats-url`, when it has a scheme async-nats connects with.
pub fn nats_url(value: String) -> Result<String, FlagError> {
    if value.starts_with("nats://") || value.starts_with("tls://") {
        Ok(value)
    } else {
        Err(FlagError::NatsUrl { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_address_is_a_listen_address() {
        let addr = listen_address("127.0.0.1:8080", "FLUO_BFF_LISTEN", "0.0.0.0:8080").unwrap();
        assert_eq!(addr.port(), 8080);
    }

    #[test]
    fn a_host_name_is_not_a_listen_address_and_the_error_names_variable_and_value() {
        let err = listen_address("localhost", "FLUO_WORKER_LISTEN", "0.0.0.0:8081").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--listen (FLUO_WORKER_LISTEN) \"localhost\" is not a socket address like 0.0.0.0:8081"
        );
    }

    #[test]
    fn nats_urls_need_a_nats_or_tls_scheme() {
        assert_eq!(nats_url("nats://n:4222".into()).unwrap(), "nats://n:4222");
        assert_eq!(nats_url("tls://n:4222".into()).unwrap(), "tls://n:4222");
        assert_eq!(
            nats_url("http://n:4222".into()).unwrap_err().to_string(),
            "--nats-url (NATS_URL) \"http://n:4222\" must start with nats:// or tls://"
        );
    }
}
