//! The API server's TCP listener: TCP_NODELAY on every connection, and per connection a switch
//! with which fault injection resets it (RST, no response), as a crashed apiserver or a load
//! balancer dropping the connection would.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections for `axum::serve`.
pub struct Listener {
    tcp: TcpListener,
}

impl Listener {
    pub fn new(tcp: TcpListener) -> Self {
        Self { tcp }
    }
}

/// The peer of one connection, available to handlers as `ConnectInfo<Peer>`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    reset: Arc<AtomicBool>,
}

impl Peer {
    /// Resets the connection: nothing more is read from or written to it (the response of
    /// the current request is never sent) and it is closed with an RST.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// One accepted connection; fails every read and write once its [`Peer::reset`] was called.
pub struct Connection {
    tcp: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Connection {
    fn reset_error(&mut self) -> Option<io::Error> {
        if !self.reset.load(Ordering::SeqCst) {
            return None;
        }
        // SO_LINGER 0: closing sends an RST instead of a FIN.
        if let Err(e) = self.tcp.set_zero_linger() {
            tracing::debug!(error = %e, "could not set SO_LINGER 0");
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset by fault injection",
        ))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.reset_error() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.reset_error() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.reset_error() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.tcp.accept().await {
                Ok((tcp, addr)) => {
                    // Watch events are small writes; without TCP_NODELAY, Nagle's algorithm
                    // holds each one back until the client's delayed ACK (~40 ms).
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    let reset = Arc::new(AtomicBool::new(false));
                    let peer = Peer {
                        addr,
                        reset: reset.clone(),
                    };
                    return (Connection { tcp, reset }, peer);
                }
                // A peer that went away before accept: nothing to do.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.tcp.local_addr()?,
            reset: Arc::new(AtomicBool::new(false)),
        })
    }
}
