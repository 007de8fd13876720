//! The command-line feel at 2 a.m.: no escape codes where stderr is not a terminal, an
//! unreachable API server named with the cause, completions and man pages from the flags, thin
//! mains.

use std::path::Path;

use crate::harness::{Cmd, Infra, World};

const ESC: char = '\x1b';

#[tokio::test(flavor = "multi_thread")]
async fn log_and_progress_lines_carry_no_escape_codes_when_stderr_is_not_a_terminal() {
    let w = World::start().await;
    // Debug logging (tracing) and an error line of the reporter, stderr piped, NO_COLOR unset.
    let logged = w
        .cmd(["deploy", "nats"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("RUST_LOG", "debug")
        .run()
        .await;
    logged.code(0);
    assert!(
        logged.stderr.contains(" DEBUG "),
        "no tracing lines to check:\n{}",
        logged.stderr
    );
    assert!(!logged.stderr.contains(ESC), "{:?}", logged.stderr);
    let refused = w
        .cmd(["deploy", "nosuch"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .run()
        .await;
    refused.code(2).stderr_has("nosuch");
    assert!(!refused.stderr.contains(ESC), "{:?}", refused.stderr);
    // The control: forcing colour does colour the same lines, so the check above can fail.
    let forced = w
        .cmd(["deploy", "nosuch"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .run()
        .await;
    forced.code(2);
    assert!(forced.stderr.contains(ESC), "{:?}", forced.stderr);
}

/// A kubeconfig whose context `kube-emulator` points at a port nothing listens on.
fn dead_kubeconfig(dir: &Path) -> (std::path::PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let path = dir.join("dead-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: kube-emulator\n\
             clusters:\n- name: dead\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: kube-emulator\n  context:\n    cluster: dead\n    user: u\n\
             users:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .expect("write kubeconfig");
    (path, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_server_is_named_with_its_address_and_the_cause() {
    let infra = Infra::standard();
    let (kubeconfig, server) = dead_kubeconfig(infra.path());
    let mut cmd = Cmd::new(&kubeconfig, infra.path());
    cmd.args.push("status".into());
    let run = cmd.run().await;
    run.code(2)
        .stderr_has(&format!("cannot reach the API server {server}"))
        .stderr_has("context `kube-emulator`")
        .stderr_has("Connection refused")
        .stderr_has("nothing changed");
    assert!(!run.stderr.contains("ServiceError"), "{}", run.stderr);
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_flags() {
    let infra = Infra::standard();
    let kubeconfig = infra.path().join("unused-kubeconfig");
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = Cmd::new(&kubeconfig, infra.path());
        cmd.args.extend(["completions".into(), shell.into()]);
        let run = cmd.run().await;
        run.code(0)
            .stdout_has("fluo-deploy")
            .stdout_has("rollback-to-previous")
            .stdout_has("kubeconfig")
            .stdout_has("dry-run");
    }
    let mut cmd = Cmd::new(&kubeconfig, infra.path());
    cmd.args.push("man".into());
    cmd.run()
        .await
        .code(0)
        .stdout_has(".TH fluo-deploy 1")
        .stdout_has("rollback\\-to\\-previous")
        .stdout_has("Exit codes: 0 ok");
}

/// `cmd` run with its stdout and stderr on a terminal: a pty from util-linux `script`, whose
/// output is what the terminal showed.
async fn on_a_terminal(cmd: &Cmd) -> (Option<i32>, String) {
    let inner = cmd.command();
    let inner = inner.as_std();
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''"));
    let mut line = quote(inner.get_program());
    for arg in inner.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut script = tokio::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), script.output())
        .await
        .expect("the deploy finishes within 180s")
        .expect("util-linux `script` runs (apt-get install util-linux)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_a_deploy_draws_one_row_per_component_updated_in_place() {
    let w = World::start().await;
    let (code, screen) = on_a_terminal(&w.cmd(["deploy", "nats", "prometheus"])).await;
    assert_eq!(code, Some(0), "{screen}");
    // Rows are redrawn in place: the cursor moves up (CSI n A) or lines are cleared (K, J).
    assert!(redraws_in_place(&screen), "no in-place redraw: {screen:?}");
    let plain = strip_escapes(&screen);
    for component in ["nats", "prometheus"] {
        let row = format!("{component:<12} done ");
        assert!(plain.contains(&row), "no `{row}` row: {plain}");
    }
    // The plain line log of the same deploy off a terminal has no such sequences.
    let piped = w.cmd(["deploy", "nats", "prometheus"]).run().await;
    piped.code(0);
    assert!(!piped.stderr.contains(ESC), "{:?}", piped.stderr);
    assert!(!piped.stderr.contains("done     "), "{}", piped.stderr);
}

/// Whether `screen` holds a control sequence that moves the cursor up or clears a line.
fn redraws_in_place(screen: &str) -> bool {
    screen.split(ESC).skip(1).any(|seq| {
        let Some(params) = seq.strip_prefix('[') else {
            return false;
        };
        let end = params.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        end.starts_with(['A', 'K', 'J'])
    })
}

/// The text of a terminal transcript without its control sequences.
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ESC {
            // CSI: ESC [ parameters, then a final byte in @..~.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[test]
fn every_binary_main_is_under_60_lines() {
    // Every main of the workspace: <crate>/src/main.rs and <crate>/src/bin/*.rs.
    let rust = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut mains = Vec::new();
    for krate in std::fs::read_dir(&rust).expect("reading rust/") {
        let src = krate.expect("entry").path().join("src");
        mains.push(src.join("main.rs"));
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            mains.extend(bins.map(|b| b.expect("entry").path()));
        }
    }
    mains.retain(|m| m.is_file());
    assert!(mains.len() >= 10, "too few mains found: {mains:?}");
    for main in mains {
        let text = std::fs::read_to_string(&main)
            .unwrap_or_else(|e| panic!("reading {}: {e}", main.display()));
        let lines = text.lines().count();
        assert!(lines < 60, "{} has {lines} lines", main.display());
        assert!(
            text.contains("-> Exit") || text.contains("::Exit {"),
            "{}: main must return the shared Exit (fluo_cli::exit)",
            main.display()
        );
    }
}
