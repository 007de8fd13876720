//! Who deploys what. The commit comes from git (`git rev-parse HEAD` and `git status
//! --porcelain` in the infra directory). `FLUO_COMMIT` ("<sha>" or "<sha>-dirty", what the Nix
//! apps export) stands in for git only where the environment allows it
//! (`[validation].allow_commit_override`), and is then recorded as an override; elsewhere it is
//! ignored with a warning. The user is `FLUO_USER`, else `USER`.

use std::path::Path;

use crate::config::Environment;

/// The variable that may stand in for git.
pub const COMMIT_ENV: &str = "FLUO_COMMIT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub commit: String,
    pub dirty: bool,
    /// Overrides to record with every record of this run.
    pub overrides: Vec<String>,
    /// Warnings for the operator (an ignored `FLUO_COMMIT`).
    pub warnings: Vec<String>,
}

impl Identity {
    pub fn detect(infra_dir: &Path, env: &Environment) -> Identity {
        let user = std::env::var("FLUO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        let asserted = std::env::var(COMMIT_ENV).ok().filter(|c| !c.is_empty());
        let mut identity = resolve(
            from_git(infra_dir),
            asserted.as_deref(),
            env.validation.allow_commit_override,
            &env.environment.name,
        );
        identity.user = user;
        identity
    }
}

/// The commit from git (`None`: not a git checkout) and an asserted `FLUO_COMMIT`.
fn resolve(
    git: Option<(String, bool)>,
    asserted: Option<&str>,
    allowed: bool,
    environment: &str,
) -> Identity {
    let mut identity = Identity {
        user: String::new(),
        commit: "unknown".into(),
        dirty: false,
        overrides: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some((commit, dirty)) = &git {
        identity.commit = commit.clone();
        identity.dirty = *dirty;
    }
    let Some(asserted) = asserted else {
        return identity;
    };
    let (commit, dirty) = parse_commit(asserted);
    if git
        .as_ref()
        .is_some_and(|(c, d)| *c == commit && *d == dirty)
    {
        return identity;
    }
    let git_says = git
        .as_ref()
        .map_or("no git checkout".to_string(), |(c, d)| {
            format!("git says {c}{}", if *d { "-dirty" } else { "" })
        });
    if allowed {
        identity.overrides.push(format!(
            "commit {asserted} taken from {COMMIT_ENV} ({git_says})"
        ));
        identity.commit = commit;
        identity.dirty = dirty;
    } else {
        identity.warnings.push(format!(
            "{COMMIT_ENV}={asserted} ignored: environment `{environment}` takes the commit from git only ([validation].allow_commit_override = false); {git_says}"
        ));
    }
    identity
}

/// "<sha>-dirty" -> (sha, true).
pub fn parse_commit(value: &str) -> (String, bool) {
    match value.strip_suffix("-dirty") {
        Some(sha) => (sha.to_string(), true),
        None => (value.to_string(), false),
    }
}

/// HEAD and whether the tree under `dir` has changes; None when `dir` is not in a checkout.
pub fn from_git(dir: &Path) -> Option<(String, bool)> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let sha = git(&["rev-parse", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
    Some((sha, dirty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_suffix_is_split_off() {
        assert_eq!(parse_commit("abc-dirty"), ("abc".into(), true));
        assert_eq!(parse_commit("abc"), ("abc".into(), false));
    }

    #[test]
    fn git_wins_unless_the_environment_allows_the_override() {
        let git = Some(("c0ffee".to_string(), true));
        let refused = resolve(git.clone(), Some("forged"), false, "production");
        assert_eq!((refused.commit.as_str(), refused.dirty), ("c0ffee", true));
        assert!(refused.overrides.is_empty());
        assert!(
            refused.warnings[0].contains("ignored"),
            "{:?}",
            refused.warnings
        );
        let allowed = resolve(git.clone(), Some("forged"), true, "local");
        assert_eq!((allowed.commit.as_str(), allowed.dirty), ("forged", false));
        assert_eq!(
            allowed.overrides,
            ["commit forged taken from FLUO_COMMIT (git says c0ffee-dirty)"]
        );
        let same = resolve(git, Some("c0ffee-dirty"), false, "production");
        assert!(same.overrides.is_empty() && same.warnings.is_empty());
    }

    #[test]
    fn without_git_the_commit_is_unknown_unless_allowed() {
        let refused = resolve(None, Some("abc"), false, "production");
        assert_eq!(refused.commit, "unknown");
        let allowed = resolve(None, Some("abc-dirty"), true, "local");
        assert_eq!((allowed.commit.as_str(), allowed.dirty), ("abc", true));
        assert!(allowed.overrides[0].contains("no git checkout"));
        assert_eq!(resolve(None, None, true, "local").commit, "unknown");
    }

    #[test]
    fn reads_a_real_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("git runs (apt-get install git)")
        };
        assert!(git(&["init", "-q"]).status.success());
        assert_eq!(from_git(dir.path()), None, "no commit yet");
        std::fs::write(dir.path().join("a"), "1").unwrap();
        git(&["add", "a"]);
        assert!(git(&["commit", "-qm", "a"]).status.success());
        let (sha, dirty) = from_git(dir.path()).unwrap();
        assert_eq!((sha.len(), dirty), (40, false));
        std::fs::write(dir.path().join("a"), "2").unwrap();
        assert!(from_git(dir.path()).unwrap().1);
    }
}
