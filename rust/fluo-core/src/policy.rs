//! Environment policy checked before anything changes: deployment windows (UTC) and approvals
//! (a change ticket matching the environment's pattern plus an approver who, where the
//! environment says so, is on its list of approvers and is not the deployer). Destructive
//! commands obey the same rules. A refusal is exit 5.

use chrono::{DateTime, Utc};

use crate::config::Environment;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "refused by policy: {now} is outside the deployment windows of environment `{env}` ({windows})"
    )]
    OutsideWindow {
        env: String,
        now: String,
        windows: String,
    },
    #[error("refused by policy: environment `{env}` requires --change-ticket and --approved-by")]
    ApprovalMissing { env: String },
    #[error(
        "refused by policy: change ticket {ticket:?} does not match {pattern:?} (approvals.change_ticket_pattern of environment `{env}`)"
    )]
    BadTicket {
        env: String,
        ticket: String,
        pattern: String,
    },
    #[error(
        "refused by policy: {approver:?} may not approve in environment `{env}` (approvals.approvers: {approvers})"
    )]
    NotAnApprover {
        env: String,
        approver: String,
        approvers: String,
    },
    #[error(
        "refused by policy: {approver:?} cannot approve their own change in environment `{env}` (approvals.distinct_approver = true); ask another approver"
    )]
    SelfApproval { env: String, approver: String },
    #[error(
        "refused by policy: environment `{env}` does not allow purging release history ([validation].allow_purge_history = false)"
    )]
    PurgeNotAllowed { env: String },
}

/// What the operator supplied.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    pub change_ticket: Option<String>,
    pub approved_by: Option<String>,
    /// Every name the deployer goes by (user, signing key id): the approver must not be one
    /// where approvals.distinct_approver is set.
    pub deployer: Vec<String>,
}

/// Checks windows and approvals at `now`.
pub fn check(env: &Environment, approval: &Approval, now: DateTime<Utc>) -> Result<()> {
    let name = env.environment.name.clone();
    if !env.windows.is_empty() && !env.windows.iter().any(|w| w.contains(now)) {
        let windows = env
            .windows
            .iter()
            .map(|w| {
                let days: Vec<String> = w.days.iter().map(|d| d.to_string()).collect();
                format!(
                    "{} {}-{} UTC",
                    days.join(","),
                    w.start.format("%H:%M"),
                    w.end.format("%H:%M")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::OutsideWindow {
            env: name,
            now: now.format("%a %H:%M UTC").to_string(),
            windows,
        });
    }
    check_approver(env, approval)?;
    if env.approvals.required {
        let (Some(ticket), Some(approver)) = (&approval.change_ticket, &approval.approved_by)
        else {
            return Err(Error::ApprovalMissing { env: name });
        };
        if approver.trim().is_empty() {
            return Err(Error::ApprovalMissing { env: name });
        }
        if let Some(pattern) = &env.approvals.change_ticket_pattern {
            // The pattern was compiled when the environment was loaded.
            let re = regex::Regex::new(pattern).expect("pattern checked by config");
            if !re.is_match(ticket) {
                return Err(Error::BadTicket {
                    env: name,
                    ticket: ticket.clone(),
                    pattern: pattern.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The approver given, if any, against the list of approvers and the deployer.
fn check_approver(env: &Environment, approval: &Approval) -> Result<()> {
    let Some(approver) = approval.approved_by.as_deref().map(str::trim) else {
        return Ok(());
    };
    let name = env.environment.name.clone();
    let rules = &env.approvals;
    if rules.distinct_approver
        && approval
            .deployer
            .iter()
            .any(|d| d.trim().eq_ignore_ascii_case(approver))
    {
        return Err(Error::SelfApproval {
            env: name,
            approver: approver.to_string(),
        });
    }
    if !rules.approvers.is_empty()
        && !rules
            .approvers
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(approver))
    {
        return Err(Error::NotAnApprover {
            env: name,
            approver: approver.to_string(),
            approvers: rules.approvers.join(", "),
        });
    }
    Ok(())
}

/// Purging history is allowed only where the environment says so.
pub fn check_purge(env: &Environment) -> Result<()> {
    if env.validation.allow_purge_history {
        Ok(())
    } else {
        Err(Error::PurgeNotAllowed {
            env: env.environment.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Environment {
        let mut env = Environment::bare("production", "fluo-production", "fluo");
        let window = "days = [\"Tue\", \"Wed\", \"Thu\"]\nstart = \"09:00\"\nend = \"16:00\"";
        env.windows = vec![toml::from_str(window).unwrap()];
        env.approvals.required = true;
        env.approvals.change_ticket_pattern = Some("^CHG-[0-9]+$".into());
        env
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn approved() -> Approval {
        Approval {
            change_ticket: Some("CHG-42".into()),
            approved_by: Some("bob".into()),
            deployer: vec!["alice".into(), "alice-key".into()],
        }
    }

    #[test]
    fn approver_must_be_listed_and_not_the_deployer() {
        let tuesday = at("2026-11-24T10:00:00Z");
        let mut env = production();
        env.approvals.distinct_approver = true;
        env.approvals.approvers = vec!["bob".into(), "alice".into()];
        assert_eq!(check(&env, &approved(), tuesday), Ok(()));
        let own = Approval {
            approved_by: Some("ALICE".into()),
            ..approved()
        };
        let err = check(&env, &own, tuesday).unwrap_err();
        assert!(matches!(err, Error::SelfApproval { .. }), "{err}");
        let stranger = Approval {
            approved_by: Some("mallory".into()),
            ..approved()
        };
        let err = check(&env, &stranger, tuesday).unwrap_err();
        assert!(
            err.to_string().contains("approvals.approvers: bob, alice"),
            "{err}"
        );
        env.approvals.distinct_approver = false;
        assert_eq!(
            check(&env, &own, tuesday),
            Ok(()),
            "self-approval allowed where not ruled out"
        );
    }

    #[test]
    fn purge_needs_the_environment_to_allow_it() {
        let mut env = production();
        assert!(matches!(
            check_purge(&env),
            Err(Error::PurgeNotAllowed { .. })
        ));
        env.validation.allow_purge_history = true;
        assert_eq!(check_purge(&env), Ok(()));
    }

    #[test]
    fn inside_window_with_approval_is_allowed() {
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            check(&production(), &approved(), at("2026-11-24T10:00:00Z")),
            Ok(())
        );
    }

    #[test]
    fn outside_window_is_refused_naming_the_windows() {
        let err = check(&production(), &approved(), at("2026-11-28T10:00:00Z")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused by policy: Sat 10:00 UTC is outside the deployment windows of environment `production` (Tue,Wed,Thu 09:00-16:00 UTC)"
        );
        assert!(
            check(&production(), &approved(), at("2026-11-24T16:00:00Z")).is_err(),
            "end is exclusive"
        );
    }

    #[test]
    fn approvals_need_ticket_matching_pattern_and_approver() {
        let tuesday = at("2026-11-24T10:00:00Z");
        let none = Approval::default();
        assert!(matches!(
            check(&production(), &none, tuesday),
            Err(Error::ApprovalMissing { .. })
        ));
        let bad = Approval {
            change_ticket: Some("JIRA-1".into()),
            ..approved()
        };
        assert!(matches!(
            check(&production(), &bad, tuesday),
            Err(Error::BadTicket { .. })
        ));
        let no_approver = Approval {
            approved_by: None,
            ..approved()
        };
        assert!(matches!(
            check(&production(), &no_approver, tuesday),
            Err(Error::ApprovalMissing { .. })
        ));
    }
}
