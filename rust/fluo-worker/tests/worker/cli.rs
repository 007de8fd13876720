use fluo_teststack::{Cli, Ran};

/// Runs the fluo-worker binary without the environment variables its flags read.
async fn fluo_worker(args: &[&str]) -> Ran {
    let unset = [
        "NATS_URL",
        "FLUO_WORKER_LISTEN",
        "FLUO_WORKER_CONCURRENCY",
        "FLUO_WORKER_ACK_WAIT_SECS",
        "NATS_USER",
        "NATS_USER_FILE",
        "NATS_PASSWORD_FILE",
        "NATS_CA_FILE",
    ];
    let cli = Cli::new(env!("CARGO_BIN_EXE_fluo-worker")).env_remove(&unset);
    cli.args(args).run().await
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag_and_value() {
    fluo_worker(&["--concurrency", "0"])
        .await
        .code(2)
        .stderr_has("--concurrency (FLUO_WORKER_CONCURRENCY) 0 must be from 1 to 1024");
    fluo_worker(&["--ack-wait-secs", "0"])
        .await
        .code(2)
        .stderr_has("--ack-wait-secs (FLUO_WORKER_ACK_WAIT_SECS) 0 must be from 1 to 3600");
    fluo_worker(&["--listen", "x"])
        .await
        .code(2)
        .stderr_has("--listen (FLUO_WORKER_LISTEN) \"x\"");
}

#[tokio::test]
async fn check_config_validates_without_starting() {
    // Exits at once when valid (a started worker would never return here).
    fluo_worker(&["--check-config", "--listen", "127.0.0.1:1"])
        .await
        .code(0)
        .stdout_has("fluo-worker: configuration is valid");
    fluo_worker(&["--check-config", "--concurrency", "5000"])
        .await
        .code(2)
        .stderr_has("--concurrency (FLUO_WORKER_CONCURRENCY) 5000 must be from 1 to 1024");
    fluo_worker(&[
        "--check-config",
        "--nats-user",
        "w",
        "--nats-password-file",
        "/nonexistent/pw",
    ])
    .await
    .code(2)
    .stderr_has("--nats-password-file (NATS_PASSWORD_FILE) /nonexistent/pw");
    fluo_worker(&[
        "--check-config=values",
        "--nats-user",
        "w",
        "--nats-password-file",
        "/nonexistent/pw",
    ])
    .await
    .code(0);
}
