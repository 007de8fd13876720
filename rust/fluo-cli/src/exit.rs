//! The exit codes every fluo command shares (documented in --help and docs/deploy.md). Every
//! `main` returns an [`Exit`]; nothing compares raw integers.

use std::process::{ExitCode, Termination};

/// Process exit status of a fluo command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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

/// The exit-code table for `--help` (`#[command(after_help = EXIT_CODES)]`).
pub const EXIT_CODES: &str = "Exit codes: 0 ok; 1 a check or rollout failed (rolled back where that applies); \
2 usage or configuration error, nothing changed; 3 rollout failed AND automatic rollback failed (escalate); \
4 another deploy holds the lock; 5 refused by policy (window, approval).";

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Ok when `passed`, else Failed (checks and gates).
    pub fn passed(passed: bool) -> Exit {
        if passed { Exit::Ok } else { Exit::Failed }
    }
}

/// The process status code, to compare with what a child process exited with.
impl From<Exit> for i32 {
    fn from(exit: Exit) -> i32 {
        exit.code()
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// `fn main() -> Exit`.
impl Termination for Exit {
    fn report(self) -> ExitCode {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_shared_table() {
        let all = [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::RollbackFailed,
            Exit::Locked,
            Exit::Policy,
        ];
        assert_eq!(all.map(Exit::code), [0, 1, 2, 3, 4, 5]);
        assert_eq!(Exit::passed(false), Exit::Failed);
        assert_eq!(ExitCode::from(Exit::Policy), ExitCode::from(5));
    }
}
