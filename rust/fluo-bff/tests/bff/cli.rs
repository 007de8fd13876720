use std::process::Command;

/// Runs the fluo-bff binary with arguments and a clean environment.
struct Run {
    code: Option<i32>,
    stderr: String,
}

fn fluo_bff(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_fluo-bff"))
        .args(args)
        .env_remove("NATS_URL")
        .env_remove("FLUO_BFF_LISTEN")
        .env_remove("FLUO_BFF_FAULT_5XX_RATIO")
        .output()
        .expect("run fluo-bff");
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
