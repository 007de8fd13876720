//! The `fluo-secrets` binary follows the exit-code table every fluo command shares
//! (`fluo_cli::exit`): a refused input is 2 and writes nothing; success is 0 and prints paths,
//! never secrets.

use std::path::Path;
use std::process::{Command, Output};

use fluo_cli::exit::Exit;
use fluo_secrets::{api_tokens, cli, files, tls};

fn fluo_secrets(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fluo-secrets"))
        .args(args)
        .output()
        .expect("running fluo-secrets")
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Names and contents of the files in `dir`, to show that a refused command changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .expect("reading the directory")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("reading a file"))
        })
        .collect();
    all.sort();
    all
}

#[test]
fn refused_inputs_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let added = fluo_secrets(&[
        "token",
        "add",
        "--file",
        &path("tokens.toml"),
        "--name",
        "smoke",
        "--scopes",
        "jobs:submit,jobs:read",
        "--token-out",
        &path("smoke.token"),
    ]);
    assert_eq!(code(&added), Some(0), "{}", stderr(&added));
    let token = std::fs::read_to_string(dir.path().join("smoke.token")).unwrap();
    assert!(!String::from_utf8_lossy(&added.stdout).contains(token.trim()));
    assert!(tokens.is_file());
    let before = snapshot(dir.path());

    // An unknown id, a token file that exists, a missing scope list, a CA file in the way.
    let unknown = fluo_secrets(&[
        "token",
        "remove",
        "--file",
        &path("tokens.toml"),
        "--id",
        "000000000000",
    ]);
    assert_eq!(code(&unknown), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no token with id 000000000000 in "));
    let exists = fluo_secrets(&[
        "token",
        "add",
        "--file",
        &path("tokens.toml"),
        "--name",
        "other",
        "--scopes",
        "jobs:read",
        "--token-out",
        &path("smoke.token"),
    ]);
    assert_eq!(code(&exists), Some(2), "{}", stderr(&exists));
    assert!(stderr(&exists).contains("smoke.token already exists"));
    std::fs::write(dir.path().join("ca.crt"), "in the way").unwrap();
    let before_tls = snapshot(dir.path());
    let tls_out = fluo_secrets(&["tls", "--out", &path("")]);
    assert_eq!(code(&tls_out), Some(2), "{}", stderr(&tls_out));
    assert!(stderr(&tls_out).contains("ca.crt already exists"));
    assert_eq!(snapshot(dir.path()), before_tls, "tls wrote a file");
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    let missing_dir = fluo_secrets(&["nats-users", "--out", &path("no/such/dir")]);
    assert_eq!(code(&missing_dir), Some(2), "{}", stderr(&missing_dir));
    let bad_flag = fluo_secrets(&["token", "list"]);
    assert_eq!(code(&bad_flag), Some(2), "{}", stderr(&bad_flag));
    assert!(stderr(&bad_flag).contains("--file"));

    assert_eq!(snapshot(dir.path()), before, "a refused command wrote");
}

#[test]
fn only_failures_that_are_not_the_input_exit_1() {
    let write = |kind: std::io::ErrorKind| files::Error::Write {
        path: "/x/tls.key".into(),
        source: std::io::Error::from(kind),
    };
    let cases: Vec<(anyhow::Error, Exit)> = vec![
        (
            write(std::io::ErrorKind::PermissionDenied).into(),
            Exit::Failed,
        ),
        (write(std::io::ErrorKind::NotFound).into(), Exit::Usage),
        (
            tls::Error::File(files::Error::Exists {
                path: "/x/ca.crt".into(),
            })
            .into(),
            Exit::Usage,
        ),
        (api_tokens::Error::NoScopes.into(), Exit::Usage),
        (
            api_tokens::Error::File(write(std::io::ErrorKind::StorageFull)).into(),
            Exit::Failed,
        ),
        (anyhow::anyhow!("something else"), Exit::Failed),
    ];
    for (error, exit) in cases {
        assert_eq!(cli::exit_of(&error), exit, "{error:#}");
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    let man = fluo_secrets(&["man"]);
    assert_eq!(code(&man), Some(0), "{}", stderr(&man));
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH fluo-secrets 1"), "{page}");
    for subcommand in ["tls", "nats\\-users", "token", "completions"] {
        assert!(page.contains(subcommand), "no {subcommand}:\n{page}");
    }
    let bash = fluo_secrets(&["completions", "bash"]);
    assert_eq!(code(&bash), Some(0), "{}", stderr(&bash));
    let script = String::from_utf8(bash.stdout).unwrap();
    for needle in ["fluo-secrets", "nats-users", "--token-out"] {
        assert!(script.contains(needle), "no {needle}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fluo-secrets.bash");
    std::fs::write(&file, &script).unwrap();
    let parsed = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash (apt-get install bash)");
    assert!(parsed.status.success(), "{}", stderr(&parsed));
}
