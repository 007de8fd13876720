use fluo_teststack::{CliRun, run_cli};

/// Runs the fluo-bff binary without the environment variables its flags read.
fn fluo_bff(args: &[&str]) -> CliRun {
    let unset = ["NATS_URL", "FLUO_BFF_LISTEN", "FLUO_BFF_FAULT_5XX_RATIO"];
    run_cli(env!("CARGO_BIN_EXE_fluo-bff"), args, &unset)
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_value() {
    fluo_bff(&["--listen", "nowhere"]).fails_with(
        2,
        "--listen (FLUO_BFF_LISTEN) \"nowhere\" is not a socket address",
    );
    fluo_bff(&["--nats-url", "http://127.0.0.1:4222"]).fails_with(
        2,
        "--nats-url (NATS_URL) \"http://127.0.0.1:4222\" must start with nats://",
    );
    fluo_bff(&["--fault-5xx-ratio", "2"]).fails_with(
        2,
        "FLUO_BFF_FAULT_5XX_RATIO) \"2\" must be a number from 0 to 1",
    );
    fluo_bff(&["--no-such-flag"]).fails_with(2, "unexpected argument '--no-such-flag'");
}
