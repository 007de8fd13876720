//! Running a command-line program to completion, then asserting on its exit code and stderr:
//! what the services' flag tests do.

use std::process::Command;

/// How a program run ended.
#[derive(Debug)]
pub struct CliRun {
    /// The exit code; None when a signal ended the program.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args` to completion, without the environment variables in `unset` (so
/// the test's environment cannot change the flags under test). Panics if it cannot start.
pub fn run_cli(program: &str, args: &[&str], unset: &[&str]) -> CliRun {
    let mut command = Command::new(program);
    command.args(args);
    for name in unset {
        command.env_remove(name);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl CliRun {
    /// Asserts the exit code and that stderr contains `message`.
    #[track_caller]
    pub fn fails_with(&self, code: i32, message: &str) {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
        assert!(self.stderr.contains(message), "stderr: {}", self.stderr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_code_and_output_without_the_unset_variables() {
        assert!(
            std::env::var_os("HOME").is_some(),
            "the test needs HOME set"
        );
        let run = run_cli(
            "/bin/sh",
            &["-c", "echo out; echo \"err ${HOME:-unset}\" >&2; exit 3"],
            &["HOME"],
        );
        assert_eq!(run.code, Some(3));
        assert_eq!(run.stdout, "out\n");
        run.fails_with(3, "err unset");
    }

    #[test]
    #[should_panic(expected = "stderr: err")]
    fn a_wrong_exit_code_fails_showing_stderr() {
        run_cli("/bin/sh", &["-c", "echo err >&2; exit 1"], &[]).fails_with(2, "err");
    }
}
