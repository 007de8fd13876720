//! Environment rules: a clean git tree where the environment requires one, and the target kube
//! context being the environment's.

use std::path::Path;

use crate::finding::Finding;
use crate::rules;

/// The state of the working tree the deploy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitState {
    Clean,
    Dirty,
    /// Not determinable (no git, not a checkout); the reason says why.
    Unknown(String),
}

impl GitState {
    /// `git status --porcelain` in `repo`. Deliberately not `FLUO_COMMIT`: an environment
    /// variable must not be able to declare a dirty tree clean.
    pub fn detect(repo: &Path) -> Self {
        match std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["status", "--porcelain"])
            .output()
        {
            Ok(out) if out.status.success() => {
                if out.stdout.iter().all(u8::is_ascii_whitespace) {
                    Self::Clean
                } else {
                    Self::Dirty
                }
            }
            Ok(out) => Self::Unknown(format!(
                "git status failed in {}: {}",
                repo.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Self::Unknown(format!("cannot run git: {e}")),
        }
    }
}

/// The environment rules as findings.
pub fn check(
    environment: &str,
    expected_context: &str,
    require_clean_git: bool,
    git: &GitState,
    context: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if require_clean_git {
        match git {
            GitState::Clean => {}
            GitState::Dirty => out.push(rules::ENV_CLEAN_GIT.general(format!(
                "the git tree has uncommitted changes; {environment} requires a clean tree"
            ))),
            GitState::Unknown(why) => out.push(rules::ENV_CLEAN_GIT.general(format!(
                "{environment} requires a clean git tree and its state is unknown: {why}"
            ))),
        }
    }
    match context {
        Some(actual) if actual == expected_context => {}
        Some(actual) => out.push(rules::ENV_CONTEXT.general(format!(
            "the target context is `{actual}` but environment {environment} deploys to `{expected_context}`"
        ))),
        None => out.push(rules::ENV_CONTEXT.general(format!(
            "no kube context selected (no kubeconfig current-context and no --context); environment {environment} deploys to `{expected_context}`"
        ))),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_git_required_only_where_configured() {
        let dirty = check("production", "prod", true, &GitState::Dirty, Some("prod"));
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].rule, "env.clean-git");
        let unknown = check(
            "production",
            "prod",
            true,
            &GitState::Unknown("no git".into()),
            Some("prod"),
        );
        assert_eq!(unknown[0].rule, "env.clean-git");
        assert!(check("local", "dd", false, &GitState::Dirty, Some("dd")).is_empty());
        assert!(check("production", "prod", true, &GitState::Clean, Some("prod")).is_empty());
    }

    #[test]
    fn context_must_match_the_environment() {
        let wrong = check(
            "staging",
            "fluo-staging",
            false,
            &GitState::Clean,
            Some("fluo-production"),
        );
        assert_eq!(wrong.len(), 1);
        assert_eq!(wrong[0].rule, "env.context");
        assert!(
            wrong[0].message.contains("fluo-production")
                && wrong[0].message.contains("fluo-staging")
        );
        let none = check("staging", "fluo-staging", false, &GitState::Clean, None);
        assert_eq!(none[0].rule, "env.context");
        assert!(
            check(
                "staging",
                "fluo-staging",
                false,
                &GitState::Clean,
                Some("fluo-staging")
            )
            .is_empty()
        );
    }

    #[test]
    fn detects_a_dirty_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap()
        };
        assert!(
            git(&["init", "-q"]).status.success(),
            "git init failed (apt-get install git)"
        );
        assert_eq!(GitState::detect(dir.path()), GitState::Clean);
        std::fs::write(dir.path().join("new.txt"), "x").unwrap();
        assert_eq!(GitState::detect(dir.path()), GitState::Dirty);
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(matches!(
            GitState::detect(elsewhere.path()),
            GitState::Unknown(_)
        ));
    }
}
