use fluo_teststack::{Cli, Ran};

/// Runs the fluo-bff binary without the environment variables its flags read.
async fn fluo_bff(args: &[&str]) -> Ran {
    let unset = ["NATS_URL", "FLUO_BFF_LISTEN", "FLUO_BFF_FAULT_5XX_RATIO"];
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
    fluo_bff(&["--no-such-flag"])
        .await
        .code(2)
        .stderr_has("unexpected argument '--no-such-flag'");
}
