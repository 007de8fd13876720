//! Which release records retention may remove: per component, keep the last N revisions that
//! deployed successfully (deploys and deliberate rollbacks) and the last M other records
//! (failures, automatic rollbacks, delete/shutdown records), and always the newest record (the
//! anchored tip), the revision currently deployed and the target of the latest rollback. Ten
//! failed attempts therefore never push the last good revision out.

use std::collections::BTreeSet;

use crate::config::Retention;
use crate::release::{Action, Outcome, Status, Stored};

/// The records of one component to delete, oldest first.
pub fn to_prune<'a>(records: &'a [Stored], policy: &Retention) -> Vec<&'a Stored> {
    let mut newest_first: Vec<&Stored> = records.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.release.revision));
    // A deploy or a deliberate rollback that succeeded; the automatic rollbacks after failed
    // attempts count with the failures, so that they cannot push the last good deploy out.
    let succeeded = |r: &Stored| {
        r.release.outcome == Outcome::Succeeded
            && matches!(
                r.release.action,
                Action::Deploy
                    | Action::Rollback {
                        automatic: false,
                        ..
                    }
            )
    };
    let mut keep: BTreeSet<u32> = BTreeSet::new();
    keep.extend(
        newest_first
            .iter()
            .filter(|r| succeeded(r))
            .take(policy.successful)
            .map(|r| r.release.revision),
    );
    keep.extend(
        newest_first
            .iter()
            .filter(|r| !succeeded(r))
            .take(policy.others)
            .map(|r| r.release.revision),
    );
    keep.extend(newest_first.first().map(|r| r.release.revision));
    keep.extend(
        newest_first
            .iter()
            .filter(|r| r.status == Status::Deployed)
            .map(|r| r.release.revision)
            .next(),
    );
    keep.extend(newest_first.iter().find_map(|r| match r.release.action {
        Action::Rollback { to, .. } => Some(to),
        _ => None,
    }));
    let mut prune: Vec<&Stored> = newest_first
        .into_iter()
        .filter(|r| !keep.contains(&r.release.revision))
        .collect();
    prune.reverse();
    prune
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests::release;

    fn record(revision: u32, outcome: Outcome, status: Status, action: Action) -> Stored {
        let mut r = release("bff", revision, None);
        r.outcome = outcome;
        r.action = action;
        Stored {
            name: crate::release::record_name("bff", revision),
            status,
            label_revision: Some(revision),
            recorded_digest: String::new(),
            payload_digest: String::new(),
            signature: None,
            left_in_place: None,
            release: r,
        }
    }

    fn revisions(pruned: &[&Stored]) -> Vec<u32> {
        pruned.iter().map(|r| r.release.revision).collect()
    }

    #[test]
    fn failed_attempts_never_push_the_last_good_revision_out() {
        let mut records = vec![record(
            1,
            Outcome::Succeeded,
            Status::Deployed,
            Action::Deploy,
        )];
        for rev in 2..=31 {
            records.push(record(
                rev,
                Outcome::Failed,
                Status::RolledBack,
                Action::Deploy,
            ));
        }
        let policy = Retention {
            successful: 3,
            others: 10,
        };
        let pruned = revisions(&to_prune(&records, &policy));
        assert!(!pruned.contains(&1), "the deployed revision is kept");
        assert_eq!(
            pruned,
            (2..=21).collect::<Vec<_>>(),
            "the oldest failures go"
        );
    }

    #[test]
    fn automatic_rollbacks_after_failures_do_not_push_the_last_deploy_out() {
        let mut records = vec![record(
            1,
            Outcome::Succeeded,
            Status::Superseded,
            Action::Deploy,
        )];
        let mut restored = 1;
        for rev in (2..=11).step_by(2) {
            records.push(record(
                rev,
                Outcome::Failed,
                Status::RolledBack,
                Action::Deploy,
            ));
            let status = if rev == 10 {
                Status::Deployed
            } else {
                Status::Superseded
            };
            records.push(record(
                rev + 1,
                Outcome::Succeeded,
                status,
                Action::Rollback {
                    to: restored,
                    automatic: true,
                },
            ));
            restored = rev + 1;
        }
        let policy = Retention {
            successful: 1,
            others: 2,
        };
        let kept: Vec<u32> = records
            .iter()
            .map(|r| r.release.revision)
            .filter(|rev| !revisions(&to_prune(&records, &policy)).contains(rev))
            .collect();
        assert_eq!(
            kept,
            [1, 9, 10, 11],
            "v1: the last deploy; v11 current, v9 its target"
        );
    }

    #[test]
    fn keeps_n_successful_m_others_and_the_latest_rollback_target() {
        let mut records = Vec::new();
        for rev in 1..=10 {
            records.push(record(
                rev,
                Outcome::Succeeded,
                Status::Superseded,
                Action::Deploy,
            ));
        }
        records.push(record(
            11,
            Outcome::Succeeded,
            Status::Deployed,
            Action::Rollback {
                to: 2,
                automatic: false,
            },
        ));
        records.push(record(12, Outcome::Failed, Status::Failed, Action::Deploy));
        let policy = Retention {
            successful: 2,
            others: 1,
        };
        assert_eq!(
            revisions(&to_prune(&records, &policy)),
            [1, 3, 4, 5, 6, 7, 8, 9],
            "kept: v2 (target of the latest rollback), v10 and v11 (the last two successful), v12"
        );
    }
}
