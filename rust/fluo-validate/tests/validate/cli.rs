//! The CLI over copies of infra/: step order and stopping, policy refusals, skip records,
//! file/line/path reporting, redaction.

use super::support::{Cli, Infra, repo_infra, step_status};

const PASS: &str = "true";

#[test]
fn the_repository_infra_passes_manifests_and_policy_offline() {
    let log = tempfile::tempdir().unwrap();
    Cli::new()
        .args(["--only", "manifests,policy", "--offline", "--infra"])
        .args([repo_infra()])
        .args(["--log".as_ref(), log.path().join("l").as_os_str()])
        .run()
        .code(0)
        .stdout_has("validation passed for local");
}

#[test]
fn every_step_passing_exits_zero_with_a_timed_table() {
    let infra = Infra::copy_of_repo();
    infra.checklist(PASS, PASS, PASS);
    let run = Cli::new()
        .infra(&infra)
        .args(["--offline", "--context", "docker-desktop", "-o", "json"])
        .run()
        .code(0);
    let report = run.json();
    for step in [
        "tests",
        "flake-check",
        "build",
        "manifests",
        "policy",
        "status",
    ] {
        assert_eq!(step_status(&report, step), "passed", "{report:#}");
    }
    assert_eq!(report["passed"], true);
    assert!(report["steps"][0]["duration"].is_u64());
}

#[test]
fn a_failing_checklist_step_stops_the_gate_and_names_the_step() {
    let infra = Infra::copy_of_repo();
    infra.checklist(
        "echo tests-ran",
        "echo flake-broken >&2; exit 4",
        "touch build-ran",
    );
    let run = Cli::new()
        .infra(&infra)
        .args(["--offline", "--context", "docker-desktop"])
        .run()
        .code(1)
        .stdout_has("validation FAILED at step `flake-check`");
    assert!(run.stdout.contains("flake-check  FAILED"), "{}", run.stdout);
    for later in ["build", "manifests", "policy", "status"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(later) && l.contains("not run")),
            "{later} should be not run:\n{}",
            run.stdout
        );
    }
    assert!(
        !infra.root().join("build-ran").exists(),
        "the build step ran after a failure"
    );
    let log = std::fs::read_to_string(infra.log()).unwrap();
    assert!(
        log.contains("tests-ran") && log.contains("flake-broken"),
        "{log}"
    );
}

#[test]
fn staging_and_production_refuse_only_and_skip_with_exit_5() {
    let infra = Infra::copy_of_repo();
    infra.checklist("touch tests-ran", PASS, PASS);
    for env in ["staging", "production"] {
        Cli::new()
            .infra(&infra)
            .args(["--env", env, "--offline", "--only", "manifests"])
            .run()
            .code(5)
            .stderr_has("refused by policy");
        Cli::new()
            .infra(&infra)
            .args([
                "--env",
                env,
                "--offline",
                "--skip",
                "tests",
                "--reason",
                "hurry",
            ])
            .run()
            .code(5)
            .stderr_has("refused by policy");
    }
    assert!(
        !infra.log().exists(),
        "a refused gate must not run anything"
    );
    assert!(!infra.root().join("tests-ran").exists());
}

#[test]
fn a_local_skip_is_reported_with_its_reason() {
    let infra = Infra::copy_of_repo();
    infra.checklist("touch tests-ran", PASS, PASS);
    let run = Cli::new()
        .infra(&infra)
        .args(["--offline", "--context", "docker-desktop", "-o", "json"])
        .args(["--skip", "tests", "--reason", "ran in CI for this commit"])
        .run()
        .code(0);
    let report = run.json();
    assert_eq!(step_status(&report, "tests"), "skipped");
    assert_eq!(report["skipped"][0]["step"], "tests");
    assert_eq!(report["skipped"][0]["reason"], "ran in CI for this commit");
    assert!(!infra.root().join("tests-ran").exists());
    Cli::new()
        .infra(&infra)
        .args(["--offline", "--skip", "tests"])
        .run()
        .code(2);
}

#[test]
fn broken_yaml_is_reported_with_file_and_line() {
    let infra = Infra::copy_of_repo();
    infra.write(
        "components/bff/manifests/zz-broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    );
    let run = Cli::new()
        .infra(&infra)
        .args(["--offline", "--only", "manifests"])
        .run()
        .code(1)
        .stdout_has("yaml.invalid")
        .stdout_has("validation FAILED at step `manifests`");
    assert!(
        run.stdout.contains("zz-broken.yaml:4") || run.stdout.contains("zz-broken.yaml:5"),
        "{}",
        run.stdout
    );
}

const EXTRA: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
data:
  LOG_LEVEL: info
datta:
  oops: typo
---
apiVersion: v1
kind: Service
metadata:
  name: extra
spec:
  selector:
    app.kubernetes.io/name: nothing-has-this
  ports:
  - port: 80
";

#[test]
fn unknown_fields_and_bad_references_are_reported_with_file_line_and_path() {
    let infra = Infra::copy_of_repo();
    infra.write("components/workers/manifests/extra.yaml", EXTRA);
    let run = Cli::new()
        .infra(&infra)
        .args(["--offline", "--only", "manifests", "-o", "json"])
        .run()
        .code(1);
    let report = run.json();
    let findings = report["steps"][3]["findings"].as_array().unwrap();
    let find = |rule: &str| {
        findings
            .iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} in {findings:#?}"))
    };
    let unknown = &find("schema.unknown-field")["location"];
    assert!(
        unknown["file"]
            .as_str()
            .unwrap()
            .ends_with("workers/manifests/extra.yaml")
    );
    assert_eq!(unknown["line"], 7);
    assert_eq!(unknown["path"], "datta");
    let selector = &find("ref.service-selector")["location"];
    assert_eq!(selector["line"], 15);
    assert_eq!(selector["path"], "spec.selector");
    assert_eq!(selector["object"], "Service/extra");
}

#[test]
fn a_planted_secret_never_reaches_output_report_or_log() {
    const PLANTED: &str = "PLANTEDs3cr3tVa1ue-x9Qz";
    let infra = Infra::copy_of_repo();
    infra.write(
        "components/bff/manifests/zz-leak.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\n  annotations:\n    api-token: {PLANTED}\ndata:\n  DB_PASSWORD: {PLANTED}\n  dsn: postgres://app:{PLANTED}@db/app\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  token: {PLANTED}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: leak\nspec:\n  replicas: \"{PLANTED}\"\n  selector: {{matchLabels: {{app: leak}}}}\n  template:\n    metadata: {{labels: {{app: leak}}}}\n    spec:\n      containers:\n      - name: leak\n        image: leak:1\n        env:\n        - name: API_KEY\n          value: {PLANTED}\n"
        ),
    );
    let report_file = infra.root().join("report.json");
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        // manifests fails first (the wrong type), so run policy on its own too.
        for only in ["manifests", "policy"] {
            let run = Cli::new()
                .infra(&infra)
                .args([
                    "--env",
                    "local",
                    "--offline",
                    "--only",
                    only,
                    "-o",
                    format,
                    "-v",
                ])
                .args(["--report".as_ref(), report_file.as_os_str()])
                .run()
                .code(1);
            outputs.push(run.stdout.clone());
            outputs.push(run.stderr.clone());
            outputs.push(std::fs::read_to_string(&report_file).unwrap());
            outputs.push(std::fs::read_to_string(infra.log()).unwrap());
        }
    }
    let all = outputs.join("\n");
    for rule in [
        "secret.annotation",
        "secret.configmap",
        "secret.env",
        "schema.invalid",
    ] {
        assert!(all.contains(rule), "{rule} not reported:\n{all}");
    }
    assert!(
        !all.contains("s3cr3tVa1ue"),
        "the planted secret leaked:\n{all}"
    );
}

#[test]
fn configuration_errors_exit_2() {
    let infra = Infra::copy_of_repo();
    Cli::new()
        .infra(&infra)
        .args(["--env", "nosuch", "--offline"])
        .run()
        .code(2)
        .stderr_has("nosuch");
    infra.write("checklist.toml", "[steps.policy]\ncommand = [\"true\"]\n");
    Cli::new()
        .infra(&infra)
        .args(["--offline"])
        .run()
        .code(2)
        .stderr_has("checklist.toml");
    Cli::new().args(["--only", "lint"]).run().code(2);
}

#[test]
fn completions_and_the_man_page_come_from_the_flags() {
    for shell in ["bash", "zsh", "fish"] {
        Cli::new()
            .args(["--completions", shell])
            .run()
            .code(0)
            .stdout_has("fluo-validate")
            .stdout_has("offline")
            .stdout_has("kubeconfig");
    }
    Cli::new()
        .args(["--man"])
        .run()
        .code(0)
        .stdout_has(".TH fluo-validate 1")
        .stdout_has("\\-\\-skip");
}

#[test]
fn a_zero_timeout_is_refused_naming_the_flag() {
    Cli::new()
        .args(["--offline", "--timeout", "0s"])
        .run()
        .code(2)
        .stderr_has("--timeout")
        .stderr_has("`0s` is zero");
}
