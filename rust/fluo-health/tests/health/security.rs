//! The security checks against the real nats-server and the real BFF: they pass on a stack
//! secured as deployed (NATS users and TLS, BFF API tokens) and fail, naming what is wrong, on
//! the same stack with authentication off, with the wrong CA, or without the tokens they need.

use fluo_teststack::Stack;

use super::support::{TestInfra, fluo_health};

const CHECKS: &str = "api-auth,nats-auth,nats-tls";

/// The BFF and the NATS client port, reached directly.
fn direct(stack: &Stack) -> TestInfra {
    TestInfra::direct(&[("bff", stack.bff_url()), ("nats", stack.nats_url())])
}

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn security_checks_pass_on_the_secured_stack_and_name_a_wrong_ca_or_a_missing_token() {
    let stack = Stack::builder()
        .nats()
        .bff()
        .secured()
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting the secured stack: {e}"));
    let secrets = stack.secured().unwrap().dir.clone();
    let infra = direct(&stack);
    let token = path(secrets.join("tests.token"));
    let reader = path(secrets.join("reader.token"));
    let ca = path(secrets.join("ca.crt"));
    let run = |checks: &str, extra: Vec<String>| {
        fluo_health(&infra)
            .args(["--check", checks, "-o", "json", "--api-token-file", &token])
            .args(extra)
    };

    let ran = run(
        CHECKS,
        vec![
            "--api-read-token-file".into(),
            reader.clone(),
            "--nats-ca-file".into(),
            ca.clone(),
        ],
    )
    .run()
    .await;
    ran.code(0);
    let (_, api) = ran.check("api-auth");
    assert!(
        api.starts_with("POST /api/jobs without a token 401, with a jobs:read-only token 403; GET /api/jobs/{id} with the smoke token accepted"),
        "{api}"
    );
    let (_, anonymous) = ran.check("nats-auth");
    assert!(
        anonymous.starts_with(
            "an anonymous client over TLS was refused: -ERR 'Authorization Violation'"
        ),
        "{anonymous}"
    );
    let (_, tls) = ran.check("nats-tls");
    assert!(
        tls.starts_with(&format!("plaintext refused, certificate verified against the CA from {ca} as \"127.0.0.1\", an unrelated CA refused (")),
        "{tls}"
    );
    ran.stdout_lacks(&stack.secured().unwrap().token("tests"));

    // A CA the server's certificate does not chain to: nats-tls fails naming the verifier's error.
    let other = tempfile::tempdir().unwrap();
    let bundle = fluo_secrets::tls::generate("another-ca", &["127.0.0.1".into()]).unwrap();
    fluo_secrets::tls::write(other.path(), &bundle).unwrap();
    let wrong_ca = path(other.path().join("ca.crt"));
    let ran = run("nats-tls", vec!["--nats-ca-file".into(), wrong_ca.clone()])
        .run()
        .await;
    ran.code(1);
    let evidence = ran.failed_check("nats-tls");
    assert!(
        evidence.contains(&format!(
            "does not verify against the CA from {wrong_ca} as \"127.0.0.1\""
        )) && evidence.contains("UnknownIssuer"),
        "{evidence}"
    );

    // No jobs:read-only token: the wrong-scope test cannot be made, and says how to give one.
    let ran = run("api-auth", vec![]).run().await;
    ran.code(1);
    let evidence = ran.failed_check("api-auth");
    assert!(
        evidence.starts_with(
            "no jobs:read-only API token for the wrong-scope check: give --api-read-token-file"
        ),
        "{evidence}"
    );
}

#[tokio::test]
async fn security_checks_fail_on_a_stack_with_authentication_off() {
    let stack = Stack::builder()
        .nats()
        .bff()
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting the stack: {e}"));
    let infra = direct(&stack);
    let dir = tempfile::tempdir().unwrap();
    for name in ["full.token", "read.token"] {
        std::fs::write(dir.path().join(name), "fluo_0000\n").unwrap();
    }
    let bundle = fluo_secrets::tls::generate("fluo-local-ca", &["127.0.0.1".into()]).unwrap();
    fluo_secrets::tls::write(dir.path(), &bundle).unwrap();

    let ran = fluo_health(&infra)
        .args(["--check", CHECKS, "-o", "json"])
        .args(["--api-token-file", &path(dir.path().join("full.token"))])
        .args([
            "--api-read-token-file",
            &path(dir.path().join("read.token")),
        ])
        .args(["--nats-ca-file", &path(dir.path().join("ca.crt"))])
        .run()
        .await;
    ran.code(1);
    assert_eq!(ran.json()["passed"], false);
    let api = ran.failed_check("api-auth");
    assert!(
        api.starts_with("POST /api/jobs without a token answered 400 Bad Request, want 401 Unauthorized: the request got past authorization"),
        "{api}"
    );
    let anonymous = ran.failed_check("nats-auth");
    assert!(
        anonymous.starts_with(&format!(
            "NATS at {} accepted an anonymous client in plaintext (CONNECT without a user answered PONG",
            stack.nats_url().trim_start_matches("nats://")
        )),
        "{anonymous}"
    );
    let tls = ran.failed_check("nats-tls");
    assert!(
        tls.contains(
            "does not require TLS (INFO tls_required false); a plaintext client got PONG (accepted)"
        ),
        "{tls}"
    );
}
