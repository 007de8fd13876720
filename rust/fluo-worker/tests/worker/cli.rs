use fluo_teststack::{CliRun, run_cli};

/// Runs the fluo-worker binary without the environment variables its flags read.
fn fluo_worker(args: &[&str]) -> CliRun {
    let unset = [
        "NATS_URL",
        "FLUO_WORKER_LISTEN",
        "FLUO_WORKER_CONCURRENCY",
        "FLUO_WORKER_ACK_WAIT_SECS",
    ];
    run_cli(env!("CARGO_BIN_EXE_fluo-worker"), args, &unset)
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_value() {
    fluo_worker(&["--concurrency", "0"]).fails_with(
        2,
        "--concurrency (FLUO_WORKER_CONCURRENCY) 0 must be from 1 to 1024",
    );
    fluo_worker(&["--ack-wait-secs", "0"]).fails_with(
        2,
        "--ack-wait-secs (FLUO_WORKER_ACK_WAIT_SECS) 0 must be from 1 to 3600",
    );
    fluo_worker(&["--listen", "x"]).fails_with(2, "--listen (FLUO_WORKER_LISTEN) \"x\"");
}
