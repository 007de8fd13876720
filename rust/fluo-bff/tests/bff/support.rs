//! Shared helpers: generous timeouts for a loaded 2-core CI machine.

use std::time::Duration;

/// How long a job may take to reach a state in tests.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);
