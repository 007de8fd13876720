//! The one way a run is stopped from outside: a signal (SIGINT/SIGTERM) or the loss of the
//! deploy lock. The first request stops new applies and starts the rollback of the components
//! in flight (as the automatic rollback does); a second signal aborts at once, and the run
//! still marks its records and releases the lock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a run was stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum Reason {
    /// SIGINT or SIGTERM (named).
    Interrupted { signal: String },
    /// The deploy lock was taken by someone else or could not be renewed in time.
    LockLost { detail: String },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Interrupted { signal } => write!(f, "interrupted by {signal}"),
            Reason::LockLost { detail } => write!(f, "deploy lock lost: {detail}"),
        }
    }
}

/// Shared by everything a run starts; cheap to clone.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stop: CancellationToken,
    abort: CancellationToken,
    reason: OnceLock<Reason>,
    signals: AtomicU32,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A signal arrived: the first stops the run, the second aborts it.
    pub fn interrupt(&self, signal: &str) {
        let _ = self.inner.reason.set(Reason::Interrupted {
            signal: signal.to_string(),
        });
        if self.inner.signals.fetch_add(1, Ordering::SeqCst) >= 1 {
            self.inner.abort.cancel();
        }
        self.inner.stop.cancel();
    }

    /// The deploy lock is no longer ours.
    pub fn lock_lost(&self, detail: &str) {
        let _ = self.inner.reason.set(Reason::LockLost {
            detail: detail.to_string(),
        });
        self.inner.stop.cancel();
    }

    /// Why the run was stopped (the first request), if it was.
    pub fn reason(&self) -> Option<&Reason> {
        self.inner.reason.get()
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    pub fn is_aborted(&self) -> bool {
        self.inner.abort.is_cancelled()
    }

    /// Resolves once the run is asked to stop.
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await
    }

    /// Resolves once the run is asked to abort (second signal).
    pub async fn aborted(&self) {
        self.inner.abort.cancelled().await
    }

    /// Turns SIGINT and SIGTERM into `interrupt` until the returned task is aborted (at the
    /// end of the run). Installed before the run starts, so no signal is missed.
    pub fn on_signals(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let stop = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                stop.interrupt(name);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_signal_stops_second_aborts_and_the_first_reason_wins() {
        let stop = Stop::new();
        assert!(!stop.is_stopped() && stop.reason().is_none());
        stop.interrupt("SIGTERM");
        assert!(stop.is_stopped() && !stop.is_aborted());
        stop.lock_lost("taken by bob");
        assert_eq!(stop.reason().unwrap().to_string(), "interrupted by SIGTERM");
        assert!(!stop.is_aborted(), "a lock loss is not a second signal");
        stop.interrupt("SIGINT");
        assert!(stop.is_aborted());
    }

    #[test]
    fn lock_loss_stops_without_aborting() {
        let stop = Stop::new();
        let seen = stop.clone();
        stop.lock_lost("lease fluo-system/fluo-deploy is now held by `bob`");
        assert!(seen.is_stopped() && !seen.is_aborted());
        assert_eq!(
            seen.reason().unwrap().to_string(),
            "deploy lock lost: lease fluo-system/fluo-deploy is now held by `bob`"
        );
    }
}
