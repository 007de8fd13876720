//! Helpers for the end-to-end scenarios: a kube-emulator with a fixture infra tree (`World`)
//! and a runner for the FLUO binaries (`World::run`), built fresh for the test's profile.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use fluo_rehearse::Run;
use kube_emulator::{Emulator, Options};

/// The binaries the scenarios run: the stack's, the rehearsal's and fluo-secrets (the CLI
/// scenarios). Built as one set, the same `-p` list as `scripts/test-all`, so cargo builds
/// them once (`scripts/rehearse` builds the same list but fluo-secrets).
pub fn binary_packages() -> Vec<&'static str> {
    let mut all = fluo_rehearse::BINARIES.to_vec();
    all.extend(["fluo-rehearse", "fluo-secrets"]);
    all
}

/// The target directory of this test executable (`<target>/<profile>`), where cargo puts the
/// binaries of the same profile.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its executable");
    // <target>/<profile>/deps/<test>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds the binaries once per test process (a no-op when fresh) and returns their directory.
pub fn binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let target = dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(&cargo);
        build.args(["build", "--bins", "--profile"]);
        build.arg(if profile == "debug" { "dev" } else { profile });
        for b in binary_packages() {
            build.args(["-p", b]);
        }
        // Not the test's environment: cargo and nextest set variables (CARGO_*, NEXTEST_*,
        // LD_LIBRARY_PATH) that build scripts track, so the same build from a test would
        // rebuild half the dependency tree, and `scripts/test-all`'s build after it again.
        let out = build
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| inherited(k)))
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap_or_else(|e| panic!("running `{cargo} build` for the e2e binaries: {e}"));
        assert!(
            out.status.success(),
            "building {:?} failed:\n{}",
            binary_packages(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The variables a shell that runs `cargo build` would have.
fn inherited(name: &str) -> bool {
    matches!(
        name,
        "PATH" | "HOME" | "USER" | "CARGO_HOME" | "RUSTUP_HOME" | "RUSTUP_TOOLCHAIN" | "TMPDIR"
    )
}

/// The checkout (this crate lives in `<repo>/tests`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// kube-emulator in process mode running the real `infra/` (needs root; fails saying what is
/// missing otherwise).
pub async fn process_stack() -> fluo_rehearse::Stack {
    process_stack_with(&[]).await
}

/// [`process_stack`] with extra `kube-emulator serve` flags (its API faults).
pub async fn process_stack_with(emulator_args: &[&str]) -> fluo_rehearse::Stack {
    fluo_core::tls::install_crypto_provider();
    let emulator_args = emulator_args.iter().map(|a| (*a).to_owned()).collect();
    let options = fluo_rehearse::StackOptions {
        repo: repo(),
        bin_dir: binaries().to_path_buf(),
        emulator_args,
    };
    match fluo_rehearse::Stack::start(&options).await {
        Ok(stack) => stack,
        Err(e) => panic!("starting the process-runtime stack: {e:#}"),
    }
}

/// A component with one Deployment and Service (pods answer nothing: emulated).
const COMPONENT: &str = r#"
[component]
name = "NAME"
sop_order = ORDER
depends_on = DEPS
[rollout]
timeout = "60s"
[[images]]
name = "NAME"
nix_package = "image-NAME"
default_ref = "fluo/NAME:1"
[[health]]
name = "NAME"
service = "NAME"
port = 8080
path = "/health"
"#;

fn workload(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {{type: RuntimeDefault}}
      containers:
      - name: main
        image: fluo/{name}:1
        ports:
        - containerPort: 8080
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {{drop: [ALL]}}
        resources:
          requests: {{cpu: 10m, memory: 16Mi}}
          limits: {{cpu: 100m, memory: 64Mi}}
        livenessProbe: {{tcpSocket: {{port: 8080}}}}
        readinessProbe: {{tcpSocket: {{port: 8080}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 8080
"#
    )
}

const ENVIRONMENT: &str = r#"
[environment]
name = "local"
context = "kube-emulator"
namespace = "fluo"
[access]
mode = "direct"
urls = { bff = "http://127.0.0.1:9", nats-monitor = "http://127.0.0.1:9", prometheus = "http://127.0.0.1:9", grafana = "http://127.0.0.1:9" }
[strategy]
order = "parallel"
post_deploy_checks = false
[validation]
require_clean_git = false
allow_skip = true
allow_inline_secrets = true
require_image_scan = false
[monitoring]
duration = "1m"
interval = "10s"
max_error_ratio = 0.1
max_restarts = 1
max_backlog = 10
"#;

const DEFAULT_DENY: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#;

const CHECKLIST: &str = r#"
[steps.tests]
command = ["true"]
[steps.flake-check]
command = ["true"]
[steps.build]
command = ["true"]
"#;

/// A kube-emulator and a two-component infra tree (nats <- bff) in a temp dir.
pub struct World {
    pub emulator: Emulator,
    pub infra: tempfile::TempDir,
    pub client: kube::Client,
}

impl World {
    pub async fn start() -> World {
        fluo_core::tls::install_crypto_provider();
        let emulator = Emulator::start(Options {
            ready_after: Duration::from_millis(100),
            ..Default::default()
        })
        .await
        .expect("kube-emulator starts");
        let client = emulator.client().await;
        let infra = tempfile::tempdir().expect("temp dir");
        let write = |rel: &str, text: &str| {
            let p = infra.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write fixture");
        };
        for (name, order, deps) in [("nats", "1", "[]"), ("bff", "2", "[\"nats\"]")] {
            let toml = COMPONENT
                .replace("NAME", name)
                .replace("ORDER", order)
                .replace("DEPS", deps);
            write(&format!("components/{name}/component.toml"), &toml);
            write(
                &format!("components/{name}/manifests/{name}.yaml"),
                &workload(name),
            );
        }
        write("components/nats/manifests/default-deny.yaml", DEFAULT_DENY);
        write("environments/local.toml", ENVIRONMENT);
        write("checklist.toml", CHECKLIST);
        World {
            emulator,
            infra,
            client,
        }
    }

    /// Runs `binary` with the world's kubeconfig and infra tree plus `args`.
    pub async fn run(&self, binary: &str, args: &[&str]) -> Run {
        let path = binaries().join(binary);
        let mut command = tokio::process::Command::new(&path);
        command
            .arg("--kubeconfig")
            .arg(self.emulator.kubeconfig_path())
            .arg("--infra")
            .arg(self.infra.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("FLUO_ENV")
            .env_remove("FLUO_INFRA_DIR")
            .env("FLUO_USER", "e2e")
            .env("FLUO_COMMIT", "0123456789abcdef")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(180), command.output())
            .await
            .unwrap_or_else(|_| panic!("{binary} {args:?} did not finish within 180s"))
            .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
        Run {
            what: format!("{binary} {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        }
    }
}

/// Test-side checks of a finished run: panic with both streams when it is not as wanted.
pub trait Checked {
    fn code(&self, want: i32) -> &Run;
    fn json_value(&self) -> serde_json::Value;
}

impl Checked for Run {
    fn code(&self, want: i32) -> &Run {
        self.expect(want).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json_value(&self) -> serde_json::Value {
        self.json().unwrap_or_else(|e| panic!("{e}"))
    }
}
