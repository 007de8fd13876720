//! The command line: completions and the man page come from the flags.

use fluo_teststack::TestInfra;

use super::support::smoke;

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_flags() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    for shell in ["bash", "zsh", "fish"] {
        smoke(&infra, &["--completions", shell])
            .await
            .code(0)
            .stdout_has("fluo-smoke")
            .stdout_has("kubeconfig");
    }
    smoke(&infra, &["--man"])
        .await
        .code(0)
        .stdout_has(".TH fluo-smoke 1");
}
