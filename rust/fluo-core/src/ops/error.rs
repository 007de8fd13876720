//! The one error type of the cluster operations (deploy, rollback, teardown, inspect, logs)
//! and the exit code each error means.

use crate::exit::Exit;
use crate::state::store;
use crate::{apply, cluster, history, lock, plan, policy, render};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] plan::Error),
    #[error(transparent)]
    Render(#[from] render::Error),
    #[error(transparent)]
    Policy(#[from] policy::Error),
    /// The gate refused: its exit code (1 checks failed, 2 usage, 5 policy) and findings.
    #[error("pre-deployment gate failed (nothing changed):\n{1}")]
    Gate(Exit, String),
    #[error(transparent)]
    Lock(#[from] lock::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    History(#[from] history::Error),
    /// The notice rule refused (exit 5) or could not be checked.
    #[error(transparent)]
    Notice(#[from] NoticeError),
    /// Usage error found before changing anything (exit 2).
    #[error("{0}")]
    Refused(String),
    /// An operation on the cluster failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// `rollback-to-previous` found only first installs: nothing earlier to restore (exit 2,
    /// nothing changed).
    #[error("{0}")]
    NothingToRollBack(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Plan(_) | Error::Render(_) | Error::Refused(_) | Error::NothingToRollBack(_) => {
                Exit::Usage
            }
            Error::Failed(_) => Exit::Failed,
            Error::Gate(exit, _) => *exit,
            Error::Cluster(
                cluster::Error::UnknownContext { .. } | cluster::Error::Kubeconfig { .. },
            ) => Exit::Usage,
            Error::Policy(_) => Exit::Policy,
            Error::Lock(lock::Error::Held { .. }) => Exit::Locked,
            Error::Notice(e) => e.exit(),
            _ => Exit::Failed,
        }
    }
}

/// Why the notice rule refused a deploy, or an `announce` could not be done.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error(
        "refused by policy: environment `{env}` requires {notice} notice for planned deploys; {detail}. Earliest possible deploy: {earliest} (or --emergency --reason ... for an emergency)"
    )]
    NoNotice {
        env: String,
        notice: String,
        detail: String,
        earliest: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("announcement {id} is already cancelled")]
    AlreadyCancelled { id: String },
    #[error("checking the notice period: {0}")]
    Store(#[from] store::Error),
}

impl NoticeError {
    pub fn exit(&self) -> Exit {
        match self {
            NoticeError::NoNotice { .. } => Exit::Policy,
            NoticeError::Invalid(_) | NoticeError::AlreadyCancelled { .. } => Exit::Usage,
            NoticeError::Store(store::Error::NotFound { .. }) => Exit::Usage,
            NoticeError::Store(_) => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shared_table() {
        assert_eq!(Error::Refused("x".into()).exit(), Exit::Usage);
        assert_eq!(Error::NothingToRollBack("x".into()).exit(), Exit::Usage);
        assert_eq!(Error::Failed("x".into()).exit(), Exit::Failed);
        assert_eq!(Error::Gate(Exit::Policy, "x".into()).exit(), Exit::Policy);
        let held = lock::Error::Held {
            holder: "a".into(),
            age: "1s".into(),
            ttl: 30,
        };
        assert_eq!(Error::Lock(held).exit(), Exit::Locked);
    }
}
