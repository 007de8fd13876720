//! Free loopback ports.

use std::net::{SocketAddr, TcpListener};

use crate::error::{Error, Result};

/// A port that was free a moment ago: bind 127.0.0.1:0, read the port, release it.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        action: "bind a free port on",
        path: "127.0.0.1:0".into(),
        source,
    })?;
    let addr: SocketAddr = listener.local_addr().map_err(|source| Error::Io {
        action: "read the address of",
        path: "127.0.0.1:0".into(),
        source,
    })?;
    Ok(addr.port())
}
