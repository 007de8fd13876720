//! A temp copy of the repository's `infra/` with one test environment, for running the fluo-*
//! command-line tools against the local stack or stand-ins; and the tree copy behind it, for
//! tests that change their own copy.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A copy of the repository's infra/ plus `environments/<name>.toml`; removed on drop.
pub struct TestInfra {
    dir: TempDir,
    env: String,
}

impl TestInfra {
    /// Environment `name` on kube context `context`, namespace `fluo`, with `access` (the
    /// `[access]` tables), no git/approval gates in `[validation]` and a short `[monitoring]`.
    /// Panics if the copy cannot be written: a test cannot go on without it.
    pub fn new(name: &str, context: &str, access: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the infra copy");
        copy_dir(&repo_infra(), &dir.path().join("infra"));
        let body = format!(
            "[environment]\nname = \"{name}\"\ncontext = \"{context}\"\nnamespace = \"fluo\"\n\n{access}\n\
             [validation]\nrequire_clean_git = false\nallow_skip = true\nallow_inline_secrets = true\nrequire_image_scan = false\n\n\
             [monitoring]\nduration = \"1m\"\ninterval = \"1s\"\nmax_error_ratio = 0.05\nmax_restarts = 3\nmax_backlog = 1000\n"
        );
        let file = dir.path().join(format!("infra/environments/{name}.toml"));
        std::fs::write(&file, body).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        Self {
            dir,
            env: name.to_owned(),
        }
    }

    /// Environment `ci` reaching each component at the URL given for its `[access.urls]` key.
    pub fn direct(urls: &[(&str, String)]) -> Self {
        let urls: String = urls
            .iter()
            .map(|(key, url)| format!("{key} = \"{url}\"\n"))
            .collect();
        Self::new(
            "ci",
            "none",
            &format!("[access]\nmode = \"direct\"\n\n[access.urls]\n{urls}"),
        )
    }

    /// Environment `ci` reaching the BFF through an ingress at `url` that routes on `host`.
    pub fn ingress(url: &str, host: &str) -> Self {
        Self::new(
            "ci",
            "none",
            &format!(
                "[access]\nmode = \"ingress\"\ningress_url = \"{url}\"\ningress_host = \"{host}\"\n"
            ),
        )
    }

    /// The infra/ directory (for `--infra` or `FLUO_INFRA_DIR`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("infra")
    }

    /// The environment's name (for `--env` or `FLUO_ENV`).
    pub fn env(&self) -> &str {
        &self.env
    }
}

/// The repository's own infra/.
pub fn repo_infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

/// Copies the directory tree `from` to `to`. Panics naming the path that failed.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_repository_infra_and_writes_the_environment() {
        let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
        assert_eq!(infra.env(), "ci");
        assert!(
            infra
                .path()
                .join("components/nats/component.toml")
                .is_file()
        );
        let env = std::fs::read_to_string(infra.path().join("environments/ci.toml")).unwrap();
        let env: toml::Table = env.parse().expect("valid TOML");
        assert_eq!(env["access"]["mode"].as_str(), Some("direct"));
        assert_eq!(
            env["access"]["urls"]["bff"].as_str(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(env["environment"]["namespace"].as_str(), Some("fluo"));
        assert!(env["monitoring"].is_table());
    }

    #[test]
    fn ingress_names_url_and_host_and_the_copy_goes_away_on_drop() {
        let infra = TestInfra::ingress("http://127.0.0.1:1", "fluo-api.localhost");
        let env = std::fs::read_to_string(infra.path().join("environments/ci.toml")).unwrap();
        assert!(env.contains("mode = \"ingress\"\ningress_url = \"http://127.0.0.1:1\"\ningress_host = \"fluo-api.localhost\"\n"), "{env}");
        let path = infra.path();
        drop(infra);
        assert!(!path.exists());
    }
}
