//! The exit codes every fluo command shares (documented in --help and docs/deploy.md).

/// Process exit status of a fluo command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok = 0,
    /// A check or rollout failed (and was rolled back where that applies).
    Failed = 1,
    /// Usage or configuration error; nothing changed.
    Usage = 2,
    /// A rollout failed and the automatic rollback failed too: escalate.
    RollbackFailed = 3,
    /// Another deploy holds the lock.
    Locked = 4,
    /// Refused by policy (deployment window, approvals).
    Policy = 5,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}
