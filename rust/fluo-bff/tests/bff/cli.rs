use fluo_teststack::{Cli, Ran};

/// Runs the fluo-bff binary without the environment variables its flags read.
async fn fluo_bff(args: &[&str]) -> Ran {
    let unset = [
        "NATS_URL",
        "FLUO_BFF_LISTEN",
        "FLUO_BFF_FAULT_5XX_RATIO",
        "FLUO_BFF_AUTH_TOKENS_FILE",
        "FLUO_BFF_INSECURE_NO_AUTH",
        "FLUO_BFF_METRICS_LISTEN",
        "NATS_USER",
        "NATS_USER_FILE",
        "NATS_PASSWORD_FILE",
        "NATS_CA_FILE",
    ];
    let cli = Cli::new(env!("CARGO_BIN_EXE_fluo-bff")).env_remove(&unset);
    cli.args(args).run().await
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag_and_value() {
    fluo_bff(&["--listen", "nowhere"])
        .await
        .code(2)
        .stderr_has("--listen (FLUO_BFF_LISTEN) \"nowhere\" is not a socket address");
    fluo_bff(&["--nats-url", "http://127.0.0.1:4222"])
        .await
        .code(2)
        .stderr_has("--nats-url (NATS_URL) \"http://127.0.0.1:4222\" must start with nats://");
    fluo_bff(&["--fault-5xx-ratio", "2"])
        .await
        .code(2)
        .stderr_has("FLUO_BFF_FAULT_5XX_RATIO) \"2\" must be a number from 0 to 1");
    fluo_bff(&[]).await.code(2).stderr_has(
        "the jobs API needs --auth-tokens-file (FLUO_BFF_AUTH_TOKENS_FILE), or --insecure-no-auth",
    );
    fluo_bff(&["--auth-tokens-file", "/nonexistent/tokens.toml"])
        .await
        .code(2)
        .stderr_has("cannot read the tokens file /nonexistent/tokens.toml");
    fluo_bff(&["--insecure-no-auth", "--nats-user", "bff"])
        .await
        .code(2)
        .stderr_has(
            "--nats-user (NATS_USER) or --nats-user-file (NATS_USER_FILE) and --nats-password-file (NATS_PASSWORD_FILE) go together",
        );
    fluo_bff(&[
        "--insecure-no-auth",
        "--nats-user-file",
        "/nonexistent/user",
        "--nats-password-file",
        "/nonexistent/pw",
    ])
    .await
    .code(2)
    .stderr_has("--nats-user-file (NATS_USER_FILE) /nonexistent/user");
    fluo_bff(&["--no-such-flag"])
        .await
        .code(2)
        .stderr_has("unexpected argument '--no-such-flag'");
}

#[tokio::test]
async fn check_config_validates_without_starting() {
    // Exits at once when valid (a started server would never return here).
    fluo_bff(&[
        "--check-config",
        "--insecure-no-auth",
        "--listen",
        "127.0.0.1:1",
    ])
    .await
    .code(0)
    .stdout_has("fluo-bff: configuration is valid");
    fluo_bff(&[
        "--check-config",
        "--insecure-no-auth",
        "--fault-5xx-ratio",
        "7",
    ])
    .await
    .code(2)
    .stderr_has("--fault-5xx-ratio (FLUO_BFF_FAULT_5XX_RATIO) \"7\" must be a number");
    // The full check reads the files it names; `values` leaves them to the mount.
    let files = [
        "--auth-tokens-file",
        "/nonexistent/tokens.toml",
        "--nats-user",
        "bff",
        "--nats-password-file",
        "/nonexistent/password",
    ];
    let full: Vec<&str> = ["--check-config"].into_iter().chain(files).collect();
    fluo_bff(&full).await.code(2).stderr_has("/nonexistent/");
    let values: Vec<&str> = ["--check-config=values"].into_iter().chain(files).collect();
    fluo_bff(&values).await.code(0).stdout_has("files not read");
}
