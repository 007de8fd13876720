//! Test harness: an in-process kube-emulator, a fixture infra tree in a temp dir, and a fluent
//! runner for the fluo-deploy binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_emulator::{Emulator, Options};

pub const NATS: &str = r#"
[component]
name = "nats"
sop_order = 1
depends_on = []
[rollout]
timeout = "60s"
[[images]]
name = "nats"
nix_package = "image-nats"
default_ref = "fluo/nats:2.10"
"#;

pub const PROMETHEUS: &str = r#"
[component]
name = "prometheus"
sop_order = 2
depends_on = []
[rollout]
timeout = "60s"
[[images]]
name = "prometheus"
nix_package = "image-prometheus"
default_ref = "fluo/prometheus:2.53"
"#;

pub const BFF: &str = r#"
[component]
name = "bff"
sop_order = 4
depends_on = ["nats"]
[rollout]
timeout = "60s"
[[images]]
name = "fluo-bff"
nix_package = "image-fluo-bff"
default_ref = "fluo/fluo-bff:dev"
"#;

pub const WORKERS: &str = r#"
[component]
name = "workers"
sop_order = 5
depends_on = ["bff"]
[rollout]
timeout = "60s"
[[images]]
name = "fluo-worker"
nix_package = "image-fluo-worker"
default_ref = "fluo/fluo-worker:dev"
"#;

/// A Deployment + Service running `image`. A BFF image gets the API-token setting the
/// staging/production policy (`security.bff-auth`) asks for.
pub fn workload(name: &str, image: &str) -> String {
    let env = if image.contains("fluo-bff") {
        "\n        env: [{name: FLUO_BFF_AUTH_TOKENS_FILE, value: /var/run/fluo/tokens.toml}]"
    } else {
        ""
    };
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
        image: {image}{env}
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

pub const LOCAL_ENV: &str = r#"
[environment]
name = "local"
context = "kube-emulator"
namespace = "fluo"
[images]
registry = ""
[replicas]
bff = 2
[access]
mode = "direct"
# The discard port: nothing answers, so post-deploy checks (off here) fail when turned on.
urls = { bff = "http://127.0.0.1:9", nats-monitor = "http://127.0.0.1:9", prometheus = "http://127.0.0.1:9", grafana = "http://127.0.0.1:9" }
[strategy]
order = "parallel"
post_deploy_checks = false
[approvals]
required = false
[validation]
require_clean_git = false
allow_skip = true
allow_inline_secrets = true
require_image_scan = false
allow_commit_override = true
allow_purge_history = true
[monitoring]
duration = "1m"
interval = "10s"
max_error_ratio = 0.1
max_restarts = 1
max_backlog = 10
"#;

pub const DEFAULT_DENY: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#;

/// Gate command steps that pass at once (the real checklist runs the test suite and builds).
pub const PASSING_CHECKLIST: &str = r#"
[steps.tests]
command = ["true"]
[steps.flake-check]
command = ["true"]
[steps.build]
command = ["true"]
"#;

/// A fixture infra tree: nats, prometheus, bff, workers (one Deployment + Service each).
pub struct Infra {
    pub dir: tempfile::TempDir,
}

impl Infra {
    pub fn standard() -> Infra {
        let dir = tempfile::tempdir().expect("temp dir");
        let infra = Infra { dir };
        for (name, toml, image) in [
            ("nats", NATS, "fluo/nats:2.10"),
            ("prometheus", PROMETHEUS, "fluo/prometheus:2.53"),
            ("bff", BFF, "fluo/fluo-bff:dev"),
            ("workers", WORKERS, "fluo/fluo-worker:dev"),
        ] {
            infra.write(&format!("components/{name}/component.toml"), toml);
            infra.write(
                &format!("components/{name}/manifests/{name}.yaml"),
                &workload(name, image),
            );
        }
        // The gate's policy step wants a default-deny policy in the app namespace.
        infra.write("components/nats/manifests/default-deny.yaml", DEFAULT_DENY);
        infra.write("environments/local.toml", LOCAL_ENV);
        infra.write("checklist.toml", PASSING_CHECKLIST);
        infra
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write fixture");
    }
}

/// An emulator plus an infra tree.
pub struct World {
    pub emulator: Emulator,
    pub infra: Infra,
    pub client: kube::Client,
}

impl World {
    pub async fn start() -> World {
        Self::with(Infra::standard(), Duration::from_millis(100)).await
    }

    pub async fn with(infra: Infra, ready_after: Duration) -> World {
        fluo_core::tls::install_crypto_provider();
        let emulator = Emulator::start(Options {
            ready_after,
            ..Default::default()
        })
        .await
        .expect("kube-emulator starts");
        let client = emulator.client().await;
        World {
            emulator,
            infra,
            client,
        }
    }

    /// `fluo-deploy <args>` against this world.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut c = Cmd::new(self.emulator.kubeconfig_path(), self.infra.path());
        c.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        c
    }
}

pub struct Cmd {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub removed: Vec<String>,
}

impl Cmd {
    pub fn new(kubeconfig: &Path, infra: &Path) -> Cmd {
        Cmd {
            args: vec![
                "--kubeconfig".into(),
                kubeconfig.display().to_string(),
                "--infra".into(),
                infra.display().to_string(),
            ],
            envs: vec![
                ("FLUO_COMMIT".into(), "0123456789abcdef-dirty".into()),
                ("FLUO_USER".into(), "tester".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
            removed: vec![],
        }
    }

    /// Without variable `k` (e.g. NO_COLOR, set by default).
    pub fn env_remove(mut self, k: &str) -> Cmd {
        self.envs.retain(|(key, _)| key != k);
        self.removed.push(k.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fluo-deploy"));
        c.args(&self.args)
            .env_remove("KUBECONFIG")
            .env_remove("FLUO_ENV")
            .env_remove("FLUO_INFRA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in &self.removed {
            c.env_remove(k);
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    pub async fn run(self) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(180), self.command().output())
            .await
            .expect("fluo-deploy finishes within 180s")
            .expect("fluo-deploy runs");
        Run {
            args: self.args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(want),
            "fluo-deploy {} exited {:?}, wanted {want}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr of `fluo-deploy {}` lacks {needle:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }

    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout of `fluo-deploy {}` lacks {needle:?}:\n{}",
            self.args,
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Position of the first stderr line containing `needle`.
    pub fn line_of(&self, needle: &str) -> usize {
        self.stderr
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no stderr line contains {needle:?}:\n{}", self.stderr))
    }
}

pub fn repo_infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}
