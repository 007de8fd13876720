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

#[test]
fn every_binary_main_is_under_60_lines() {
    let rust = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for binary in ["fluo-deploy", "fluo-validate", "fluo-health", "fluo-smoke"] {
        let main = rust.join(binary).join("src/main.rs");
        let text = std::fs::read_to_string(&main)
            .unwrap_or_else(|e| panic!("reading {}: {e}", main.display()));
        let lines = text.lines().count();
        assert!(lines < 60, "{} has {lines} lines", main.display());
    }
}
