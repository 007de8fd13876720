//! Offline validation benchmark (docs/performance/validate.md):
//!
//!     cargo run --release -p fluo-validate --example bench [-- INFRA_DIR]
//!
//! 1. the repository's infra/ (load + schema + cross-references + policy, through the gate with
//!    `--only manifests,policy` offline, log file included);
//! 2. a copy of infra/ plus one component with 1,000 generated manifests.
//!
//! Each case runs once cold (schema tables built on first use) and then 20 times; min and
//! median are printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fluo_core::config::Config;
use fluo_teststack::copy_dir;
use fluo_validate::environment::GitState;
use fluo_validate::{Checklist, Gate, GateOptions, Step};

const RUNS: usize = 20;

async fn validate_once(infra: &Path, log: &Path) -> Duration {
    let started = Instant::now();
    let config = Config::load(infra, "local").expect("config loads");
    let mut options = GateOptions::new(
        Checklist::defaults(infra),
        log.to_path_buf(),
        GitState::Clean,
    );
    options.only = Some(vec![Step::Manifests, Step::Policy]);
    let report = Gate::new(&config, options)
        .expect("gate")
        .run()
        .await
        .expect("gate runs");
    let elapsed = started.elapsed();
    assert!(report.passed, "{}", report.to_text());
    elapsed
}

async fn measure(name: &str, infra: &Path, documents: usize, log: &Path) {
    let cold = validate_once(infra, log).await;
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        times.push(validate_once(infra, log).await);
    }
    times.sort();
    println!(
        "{name}: {documents} documents: cold {:.1} ms, min {:.1} ms, median {:.1} ms ({RUNS} runs)",
        cold.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS / 2].as_secs_f64() * 1e3,
    );
}

/// One hardened app of four documents (Deployment, Service, ConfigMap, NetworkPolicy).
fn app(i: usize) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i}
data:
  LOG_LEVEL: info
  UPSTREAM: http://api-{i}.fluo.svc:8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {{type: RuntimeDefault}}
      containers:
      - name: app
        image: fluo/app:{i}.0
        ports:
        - {{name: http, containerPort: 8080}}
        envFrom:
        - configMapRef: {{name: app-{i}}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {{drop: [ALL]}}
        resources:
          requests: {{cpu: 10m, memory: 16Mi}}
          limits: {{cpu: 100m, memory: 64Mi}}
        livenessProbe: {{httpGet: {{path: /health, port: http}}}}
        readinessProbe: {{httpGet: {{path: /ready, port: http}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
spec:
  selector: {{app: app-{i}}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: app-{i}
spec:
  podSelector:
    matchLabels: {{app: app-{i}}}
  policyTypes: [Ingress]
  ingress:
  - ports:
    - port: 8080
"#
    )
}

#[tokio::main]
async fn main() {
    let infra: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"));
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("bench.log");
    let repo_documents = Config::load(&infra, "local")
        .map(|c| {
            c.cluster_manifests.len()
                + c.components
                    .iter()
                    .map(|c| c.manifests.len())
                    .sum::<usize>()
        })
        .expect("infra loads");
    measure("infra/", &infra, repo_documents, &log).await;

    let generated = work.path().join("infra");
    copy_dir(&infra, &generated);
    let manifests = generated.join("components/workers/manifests");
    for file in 0..25 {
        let text: Vec<String> = (0..10).map(|j| app(file * 10 + j)).collect();
        std::fs::write(
            manifests.join(format!("gen-{file:02}.yaml")),
            text.join("---\n"),
        )
        .unwrap();
    }
    measure(
        "infra/ + 1,000 generated",
        &generated,
        repo_documents + 1000,
        &log,
    )
    .await;
}
