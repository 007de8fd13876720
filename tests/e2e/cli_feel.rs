//! issue 19, one CLI feel across the binaries: each operator command prints its shell
//! completions and man page from its clap definition (`fluo_cli::docs`), and every binary,
//! services included, exits 2 on a flag it does not know (the shared exit-code table).

use std::path::Path;
use std::process::{Command, Output};

/// How a binary is asked for its docs: `completions <SHELL>` / `man` subcommands, or the
/// `--completions <SHELL>` / `--man` flags of binaries without subcommands.
enum Docs {
    Subcommands,
    Flags,
}

/// Each operator binary with what its man page and completions must name (subcommands, or
/// flags where it has none).
const OPERATOR_BINARIES: [(&str, Docs, &[&str]); 7] = [
    (
        "fluo-deploy",
        Docs::Subcommands,
        &["deploy", "rollback", "history"],
    ),
    (
        "fluo-validate",
        Docs::Flags,
        &["only", "skip", "kubeconfig"],
    ),
    ("fluo-health", Docs::Flags, &["kubeconfig", "timeout"]),
    ("fluo-smoke", Docs::Flags, &["api-token-file", "kubeconfig"]),
    (
        "fluo-secrets",
        Docs::Subcommands,
        &["tls", "nats-users", "token"],
    ),
    ("fluo-rehearse", Docs::Flags, &["report-json", "bin-dir"]),
    ("kube-emulator", Docs::Subcommands, &["serve"]),
];

fn run(bin: &Path, name: &str, args: &[&str]) -> Output {
    Command::new(bin.join(name))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"))
}

fn stdout(name: &str, out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_operator_binary_prints_completions_and_a_man_page_from_its_flags() {
    let bin = fluo_e2e::binaries();
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, docs, names) in OPERATOR_BINARIES {
        let (man, bash): (&[&str], &[&str]) = match docs {
            Docs::Subcommands => (&["man"], &["completions", "bash"]),
            Docs::Flags => (&["--man"], &["--completions", "bash"]),
        };
        let page = stdout(name, run(bin, name, man));
        assert!(page.contains(&format!(".TH {name} 1")), "{name}:\n{page}");
        let script = stdout(name, run(bin, name, bash));
        for wanted in names {
            // roff escapes the hyphen.
            let roff = wanted.replace('-', "\\-");
            assert!(page.contains(&roff), "{name}: man page without {wanted}");
            assert!(
                script.contains(wanted),
                "{name}: completions without {wanted}"
            );
        }
        let file = dir.path().join(format!("{name}.bash"));
        std::fs::write(&file, &script).expect("writing the script");
        let parsed = Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("bash runs (apt-get install bash)");
        assert!(
            parsed.status.success(),
            "{name}: bash -n: {}",
            String::from_utf8_lossy(&parsed.stderr)
        );
        for shell in ["zsh", "fish"] {
            let other = match docs {
                Docs::Subcommands => run(bin, name, &["completions", shell]),
                Docs::Flags => run(bin, name, &["--completions", shell]),
            };
            assert!(stdout(name, other).contains(name), "{name} {shell}");
        }
    }
}

#[test]
fn every_binary_exits_2_on_an_unknown_flag() {
    let bin = fluo_e2e::binaries();
    let mut names: Vec<&str> = OPERATOR_BINARIES.iter().map(|b| b.0).collect();
    names.extend(["fluo-bff", "fluo-worker"]);
    for name in names {
        let out = run(bin, name, &["--no-such-flag"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("--no-such-flag"), "{name}: {stderr}");
    }
}
