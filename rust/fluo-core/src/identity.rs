//! Who deploys what: the user and the commit (FLUO_COMMIT from Nix, "<sha>-dirty" meaning a dirty
//! tree; else `git rev-parse HEAD` and `git status --porcelain` in the infra directory).

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub commit: String,
    pub dirty: bool,
}

impl Identity {
    pub fn detect(infra_dir: &Path) -> Identity {
        let user = std::env::var("FLUO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        let (commit, dirty) = match std::env::var("FLUO_COMMIT") {
            Ok(c) if !c.is_empty() => parse_commit(&c),
            _ => from_git(infra_dir),
        };
        Identity {
            user,
            commit,
            dirty,
        }
    }
}

/// "<sha>-dirty" -> (sha, true).
pub fn parse_commit(value: &str) -> (String, bool) {
    match value.strip_suffix("-dirty") {
        Some(sha) => (sha.to_string(), true),
        None => (value.to_string(), false),
    }
}

fn from_git(dir: &Path) -> (String, bool) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(sha) => {
            let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
            (sha, dirty)
        }
        None => ("unknown".into(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_suffix_is_split_off() {
        assert_eq!(parse_commit("abc-dirty"), ("abc".into(), true));
        assert_eq!(parse_commit("abc"), ("abc".into(), false));
    }
}
