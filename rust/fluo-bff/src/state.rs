//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::backend::Backend;
use crate::config::Config;
use crate::fault::Fault;
use crate::limiter::FailureLimiter;
use crate::metrics::Metrics;
use crate::token_store::TokenStore;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub backend: Backend,
    pub metrics: Metrics,
    pub fault: Fault,
    /// The API tokens; None only with `--insecure-no-auth`.
    pub tokens: Option<Arc<TokenStore>>,
    pub limiter: FailureLimiter,
    /// Set on SIGTERM so /ready fails while in-flight requests drain.
    pub shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(config: Config, backend: Backend, tokens: Option<Arc<TokenStore>>) -> Self {
        let metrics = Metrics::new(&config.version, &config.commit);
        let fault = Fault::new(config.fault_5xx_ratio);
        AppState(Arc::new(Shared {
            config,
            backend,
            metrics,
            fault,
            tokens,
            limiter: FailureLimiter::default(),
            shutting_down: AtomicBool::new(false),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
