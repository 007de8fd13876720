//! Finding the programs the stack runs: nats-server and prometheus from the system (Debian
//! packages), fluo-bff and fluo-worker built from this workspace.

use std::env;
use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// Directories searched after `$PATH`: Debian installs nats-server to /usr/sbin, which is not
/// on every user's `$PATH`.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"];

/// Finds a system program: `$<override_var>` if set, else `$PATH`, else the sbin directories.
/// A missing program is an error that says how to install it.
pub fn system_binary(name: &str, override_var: &str) -> Result<PathBuf> {
    if let Some(path) = env::var_os(override_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingBinary {
                binary: name.to_owned(),
                looked_in: format!("${override_var}={}", path.display()),
            })
        };
    }
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::MissingBinary {
            binary: name.to_owned(),
            looked_in: "$PATH, /usr/sbin, /usr/local/sbin, /sbin, /usr/bin".to_owned(),
        })
}

/// The workspace services the stack runs.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Bff,
    Worker,
}

impl Service {
    fn binary_name(self) -> &'static str {
        match self {
            Service::Bff => "fluo-bff",
            Service::Worker => "fluo-worker",
        }
    }

    /// The variable that points at a prebuilt binary and skips the cargo build.
    pub fn override_var(self) -> &'static str {
        match self {
            Service::Bff => "FLUO_BFF_BIN",
            Service::Worker => "FLUO_WORKER_BIN",
        }
    }
}

/// The path of a workspace service binary: `$FLUO_BFF_BIN` / `$FLUO_WORKER_BIN` if set, else
/// built once per process with the same cargo profile and target directory as the running
/// test; cargo is not run at all when the binaries are newer than their sources.
pub async fn service_binary(service: Service) -> Result<PathBuf> {
    if let Some(path) = env::var_os(service.override_var()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingBinary {
                binary: service.binary_name().to_owned(),
                looked_in: format!("${}={}", service.override_var(), path.display()),
            })
        };
    }
    static BUILT: OnceCell<PathBuf> = OnceCell::const_new();
    let profile_dir = BUILT.get_or_try_init(build_services).await?;
    Ok(profile_dir.join(service.binary_name()))
}

/// The sources the service binaries are built from, relative to the workspace root. Only what
/// goes into the binaries: a changed test file does not make cargo relink them, so counting
/// tests/ would call them stale forever and rebuild on every run (with the narrower `-p`
/// feature set, which then also invalidates the workspace build).
const SERVICE_SOURCES: [&str; 8] = [
    "rust/fluo-bff/src",
    "rust/fluo-bff/Cargo.toml",
    "rust/fluo-worker/src",
    "rust/fluo-worker/Cargo.toml",
    "rust/fluo-jobs/src",
    "rust/fluo-jobs/Cargo.toml",
    "Cargo.toml",
    "Cargo.lock",
];

/// Whether every service binary in `profile_dir` is newer than every file it is built from.
/// Skipping cargo then matters: a no-op `cargo build` still waits for the target-dir lock that
/// parallel test processes and other builds hold.
fn services_are_fresh(workspace: &Path, profile_dir: &Path) -> bool {
    let newest_source = SERVICE_SOURCES
        .iter()
        .filter_map(|source| newest_mtime(&workspace.join(source)))
        .max();
    let oldest_binary = [Service::Bff, Service::Worker]
        .iter()
        .map(|s| {
            std::fs::metadata(profile_dir.join(s.binary_name()))
                .and_then(|m| m.modified())
                .ok()
        })
        .collect::<Option<Vec<_>>>()
        .and_then(|times| times.into_iter().min());
    matches!((newest_source, oldest_binary), (Some(source), Some(binary)) if binary >= source)
}

fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name() != "target")
        .filter_map(|entry| newest_mtime(&entry.path()))
        .max()
}

/// Runs `cargo build -p fluo-bff -p fluo-worker` into the running executable's profile
/// directory and returns that directory.
async fn build_services() -> Result<PathBuf> {
    let exe = env::current_exe().map_err(|source| Error::Io {
        action: "find the running executable",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let (target_dir, profile_dir, profile) = cargo_layout(&exe)?;
    let cargo = env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_owned))
        .unwrap_or_else(|| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if services_are_fresh(&workspace, &profile_dir) {
        return Ok(profile_dir);
    }
    let args = [
        "build",
        "--quiet",
        "--profile",
        &profile,
        "--target-dir",
        &target_dir.display().to_string(),
        "-p",
        "fluo-bff",
        "-p",
        "fluo-worker",
    ]
    .map(str::to_owned);
    let command = format!("{cargo} {}", args.join(" "));
    let output = tokio::process::Command::new(&cargo)
        .args(&args)
        .current_dir(&workspace)
        .output()
        .await
        .map_err(|source| Error::Io {
            action: "run cargo in",
            path: workspace.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Build {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(profile_dir)
}

/// `(target dir, profile dir, cargo profile name)` of an executable cargo built: tests live in
/// `<target>/<profile>/deps`, examples in `<target>/<profile>/examples`, binaries in
/// `<target>/<profile>`.
fn cargo_layout(exe: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let not_found = || Error::TargetDir {
        exe: exe.to_path_buf(),
    };
    let mut profile_dir = exe.parent().ok_or_else(not_found)?;
    if matches!(
        profile_dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        profile_dir = profile_dir.parent().ok_or_else(not_found)?;
    }
    let target_dir = profile_dir.parent().ok_or_else(not_found)?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(name) => name.to_owned(),
        None => return Err(not_found()),
    };
    Ok((target_dir.to_path_buf(), profile_dir.to_path_buf(), profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_map_to_their_profile() {
        let (target, dir, profile) =
            cargo_layout(Path::new("/w/target/debug/deps/bff-1234")).unwrap();
        assert_eq!(target, Path::new("/w/target"));
        assert_eq!(dir, Path::new("/w/target/debug"));
        assert_eq!(profile, "dev");
        let (_, dir, profile) =
            cargo_layout(Path::new("/w/target/release/examples/bench")).unwrap();
        assert_eq!(dir, Path::new("/w/target/release"));
        assert_eq!(profile, "release");
        let (_, dir, profile) =
            cargo_layout(Path::new("/w/target/debug/fluo-local-stack")).unwrap();
        assert_eq!(dir, Path::new("/w/target/debug"));
        assert_eq!(profile, "dev");
    }

    #[test]
    fn binaries_older_than_their_sources_are_rebuilt() {
        let workspace = tempfile::tempdir().unwrap();
        let profile = tempfile::tempdir().unwrap();
        for source in SERVICE_SOURCES {
            std::fs::create_dir_all(workspace.path().join(source).parent().unwrap()).unwrap();
        }
        std::fs::write(workspace.path().join("Cargo.toml"), "").unwrap();
        assert!(
            !services_are_fresh(workspace.path(), profile.path()),
            "no binaries yet"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        for name in ["fluo-bff", "fluo-worker"] {
            std::fs::write(profile.path().join(name), "").unwrap();
        }
        assert!(services_are_fresh(workspace.path(), profile.path()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tests = workspace.path().join("rust/fluo-bff/tests");
        std::fs::create_dir_all(&tests).unwrap();
        std::fs::write(tests.join("new_test.rs"), "").unwrap();
        assert!(
            services_are_fresh(workspace.path(), profile.path()),
            "tests are not part of the binaries"
        );
        std::fs::write(workspace.path().join("Cargo.lock"), "").unwrap();
        assert!(
            !services_are_fresh(workspace.path(), profile.path()),
            "a source changed"
        );
    }

    #[test]
    fn a_missing_system_binary_says_how_to_install_it() {
        let err = system_binary("fluo-not-installed", "FLUO_TESTSTACK_UNSET_VAR").unwrap_err();
        assert!(
            err.to_string()
                .contains("install it with: apt-get install nats-server prometheus"),
            "{err}"
        );
    }
}
