//! Image vulnerability scan through `trivy` or `grype`, whichever is installed (trivy first).
//! A missing scanner is a finding only where the environment requires the scan.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::finding::Finding;
use crate::rules;

/// An installed scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanner {
    Trivy(PathBuf),
    Grype(PathBuf),
}

impl Scanner {
    /// The first of trivy, grype found in `search_path` (a PATH-style list).
    pub fn find(search_path: &OsString) -> Option<Self> {
        let lookup = |name: &str| {
            std::env::split_paths(search_path)
                .map(|dir| dir.join(name))
                .find(|p| is_executable(p))
        };
        lookup("trivy")
            .map(Scanner::Trivy)
            .or_else(|| lookup("grype").map(Scanner::Grype))
    }

    fn command(&self, image: &str) -> (PathBuf, Vec<String>) {
        match self {
            Scanner::Trivy(path) => (
                path.clone(),
                [
                    "image",
                    "--quiet",
                    "--no-progress",
                    "--severity",
                    "HIGH,CRITICAL",
                    "--exit-code",
                    "1",
                    image,
                ]
                .map(String::from)
                .to_vec(),
            ),
            Scanner::Grype(path) => (
                path.clone(),
                [image, "--fail-on", "high", "--quiet"]
                    .map(String::from)
                    .to_vec(),
            ),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Scanner::Trivy(_) => "trivy",
            Scanner::Grype(_) => "grype",
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The outcome of the scan step: findings and informational notes.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Scans every image (each once); the scanner's output goes to `log`.
pub async fn scan(
    images: &[String],
    required: bool,
    search_path: &OsString,
    log: &mut tokio::fs::File,
) -> std::io::Result<ScanOutcome> {
    let mut outcome = ScanOutcome::default();
    let Some(scanner) = Scanner::find(search_path) else {
        if required {
            outcome.findings.push(rules::IMAGE_SCAN.general(
                "no image scanner installed (trivy or grype) and this environment requires the scan",
            ));
        } else {
            outcome
                .notes
                .push("image scan skipped: neither trivy nor grype is installed".to_string());
        }
        return Ok(outcome);
    };
    let mut seen: Vec<&String> = Vec::new();
    for image in images {
        if seen.contains(&image) {
            continue;
        }
        seen.push(image);
        let (program, args) = scanner.command(image);
        log.write_all(format!("$ {} {}\n", program.display(), args.join(" ")).as_bytes())
            .await?;
        let output = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        match output {
            Ok(out) => {
                log.write_all(&out.stdout).await?;
                log.write_all(&out.stderr).await?;
                if !out.status.success() {
                    outcome.findings.push(rules::IMAGE_SCAN.general(format!(
                        "{} reports HIGH/CRITICAL vulnerabilities in {image} (or could not scan it: {}); details in the log",
                        scanner.name(),
                        out.status
                    )));
                }
            }
            Err(e) => outcome
                .findings
                .push(rules::IMAGE_SCAN.general(format!("cannot run {}: {e}", program.display()))),
        }
    }
    outcome.notes.push(format!(
        "{} scanned {} image(s)",
        scanner.name(),
        seen.len()
    ));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_scanner(dir: &Path, name: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        // Fails for images whose reference contains "vulnerable".
        std::fs::write(
            &path,
            "#!/bin/sh\necho scanned \"$@\"\ncase \"$*\" in *vulnerable*) exit 1;; esac\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    async fn run(images: &[&str], required: bool, dir: &Path) -> (ScanOutcome, String) {
        let log_path = dir.join("scan.log");
        let mut log = tokio::fs::File::create(&log_path).await.unwrap();
        let images: Vec<String> = images.iter().map(|s| s.to_string()).collect();
        let outcome = scan(&images, required, &dir.as_os_str().to_owned(), &mut log)
            .await
            .unwrap();
        (outcome, std::fs::read_to_string(log_path).unwrap())
    }

    #[tokio::test]
    async fn missing_scanner_fails_only_where_required() {
        let dir = tempfile::tempdir().unwrap();
        let (required, _) = run(&["fluo/web:1"], true, dir.path()).await;
        assert_eq!(required.findings.len(), 1);
        assert_eq!(required.findings[0].rule, "image.scan");
        let (optional, _) = run(&["fluo/web:1"], false, dir.path()).await;
        assert!(optional.findings.is_empty());
        assert!(optional.notes[0].contains("skipped"));
    }

    #[tokio::test]
    async fn vulnerable_image_is_a_finding_and_clean_image_passes() {
        let dir = tempfile::tempdir().unwrap();
        fake_scanner(dir.path(), "grype");
        let (outcome, log) = run(
            &["fluo/web:1", "fluo/vulnerable:2", "fluo/web:1"],
            true,
            dir.path(),
        )
        .await;
        assert_eq!(outcome.findings.len(), 1, "{:?}", outcome.findings);
        assert!(outcome.findings[0].message.contains("fluo/vulnerable:2"));
        assert!(log.contains("scanned fluo/web:1 --fail-on high"), "{log}");
        assert_eq!(
            log.matches("scanned fluo/web:1").count(),
            1,
            "each image once: {log}"
        );
    }

    #[test]
    fn trivy_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        fake_scanner(dir.path(), "grype");
        fake_scanner(dir.path(), "trivy");
        let found = Scanner::find(&dir.path().as_os_str().to_owned());
        assert!(matches!(found, Some(Scanner::Trivy(_))));
    }
}
