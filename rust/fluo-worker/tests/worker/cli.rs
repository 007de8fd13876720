use std::process::Command;

struct Run {
    code: Option<i32>,
    stderr: String,
}

fn fluo_worker(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_fluo-worker"))
        .args(args)
        .env_remove("NATS_URL")
        .env_remove("FLUO_WORKER_LISTEN")
        .env_remove("FLUO_WORKER_CONCURRENCY")
        .env_remove("FLUO_WORKER_ACK_WAIT_SECS")
        .output()
        .expect("run fluo-worker");
    Run {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    #[track_caller]
    fn fails_with(&self, code: i32, message: &str) {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
        assert!(self.stderr.contains(message), "stderr: {}", self.stderr);
    }
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
