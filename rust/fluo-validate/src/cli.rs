//! The `fluo-validate` command: its flags (the shared `fluo_core::cli::Global` plus the gate's
//! own), and the run: configuration -> checklist -> cluster -> [`Gate`] -> printed report ->
//! exit status (0 passed; 1 a step failed; 2 usage or configuration error; 5 refused by policy).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use fluo_core::cli::docs::DocsFlags;
use fluo_core::cli::{Global, Output};
use fluo_core::config::Config;
use fluo_core::exit::Exit;

use crate::environment::GitState;
use crate::{Checklist, Cluster, Gate, GateOptions, Report, Skip, Step};

/// Run the pre-deployment checklist (tests, flake-check, build, manifests, policy, status) for
/// an environment. The first failing step stops the gate.
///
/// Exit codes: 0 passed, 1 a step failed, 2 usage or configuration error, 5 refused by policy.
#[derive(Debug, Parser)]
#[command(
    name = "fluo-validate",
    version,
    mut_arg("timeout", |a| a.help(
        "Upper bound for each checklist command, e.g. 90s, 10m (default: checklist.toml's)"
    )),
    mut_arg("context", |a| a.help(
        "Kube context to target (default: the kubeconfig's current context; it must be the environment's)"
    )),
    mut_arg("verbose", |a| a.help("Also print the step log to stderr at the end")),
)]
pub struct Args {
    /// Run only these steps (comma-separated); refused where the environment forbids skipping.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<Step>>,
    /// Skip a step (repeatable, each with its own --reason); local environments only.
    #[arg(long, requires = "reason")]
    pub skip: Vec<Step>,
    /// Why the matching --skip is skipped (recorded in the release record).
    #[arg(long)]
    pub reason: Vec<String>,
    /// Do not contact the cluster (no dry run, no external Secret or reachability check).
    #[arg(long)]
    pub offline: bool,
    /// Where step output is streamed (default: $TMPDIR/fluo-validate/<env>-<time>.log).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub docs: DocsFlags,
    #[command(flatten)]
    pub global: Global,
}

/// The whole of `fluo-validate`: errors are usage or configuration errors (exit 2).
pub async fn run(args: Args) -> Exit {
    if let Some(exit) = args.docs.print::<Args>() {
        return exit;
    }
    match gate(&args).await {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("fluo-validate: {e:#}");
            Exit::Usage
        }
    }
}

async fn gate(args: &Args) -> Result<Exit> {
    if args.skip.len() != args.reason.len() {
        anyhow::bail!(
            "every --skip needs its own --reason ({} --skip, {} --reason)",
            args.skip.len(),
            args.reason.len()
        );
    }
    let infra = args.global.infra_dir();
    let env = &args.global.env;
    let log_path = args.log.clone().unwrap_or_else(|| default_log(env));
    let mut config = match Config::load(&infra, env) {
        Ok(config) => config,
        Err(error) => {
            if let Some(finding) = crate::load::manifest_error_finding(&error) {
                let report = Report::load_failure(env, finding, log_path);
                print(&report, args)?;
                return Ok(Exit::Failed);
            }
            return Err(anyhow::Error::new(error).context(format!(
                "loading the configuration from {}",
                infra.display()
            )));
        }
    };
    if let Some(namespace) = &args.global.namespace {
        config.environment.environment.namespace = namespace.clone();
    }
    let mut checklist = Checklist::load(&infra).context("loading the checklist")?;
    if let Some(limit) = args.global.timeout {
        for step in checklist.commands.values_mut() {
            step.timeout = step.timeout.min(limit);
        }
    }
    let git = GitState::detect(&checklist.workdir);
    let (context, cluster) = cluster(&args.global, args.offline).await;
    let mut options = GateOptions::new(checklist, log_path, git);
    options.only = args.only.clone();
    options.skip = args
        .skip
        .iter()
        .zip(&args.reason)
        .map(|(step, reason)| Skip {
            step: *step,
            reason: reason.clone(),
        })
        .collect();
    options.cluster = cluster;
    options.context = context;
    let gate = match Gate::new(&config, options) {
        Ok(gate) => gate,
        Err(e) => {
            eprintln!("fluo-validate: {e}");
            return Ok(e.exit());
        }
    };
    let report = gate.run().await.context("running the gate")?;
    print(&report, args)?;
    Ok(Exit::passed(report.passed))
}

/// The target context (`--context`, else the kubeconfig's current one: the gate checks that
/// it is the environment's) and, unless offline, the cluster, connected the way every fluo
/// command connects (`fluo_core::cluster`); a failure becomes the gate's finding.
async fn cluster(global: &Global, offline: bool) -> (Option<String>, Cluster) {
    let kubeconfig = fluo_core::cluster::read_kubeconfig(global.kubeconfig.as_deref());
    let context = global.context.clone().or_else(|| {
        kubeconfig
            .as_ref()
            .ok()
            .and_then(|(k, _)| k.current_context.clone())
    });
    if offline {
        return (context, Cluster::Offline);
    }
    if let Err(e) = kubeconfig {
        return (context, Cluster::Unavailable(e.to_string()));
    }
    let Some(context) = context else {
        return (
            None,
            Cluster::Unavailable("the kubeconfig has no current context; pass --context".into()),
        );
    };
    match fluo_core::cluster::Cluster::connect(global.kubeconfig.as_deref(), &context).await {
        Ok(cluster) => (Some(context), Cluster::Online(cluster.client)),
        Err(e) => (Some(context), Cluster::Unavailable(e.to_string())),
    }
}

fn default_log(env: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    std::env::temp_dir()
        .join("fluo-validate")
        .join(format!("{env}-{stamp}-{}.log", std::process::id()))
}

fn print(report: &Report, args: &Args) -> Result<()> {
    let text = match args.global.output {
        Output::Text => report.to_text(),
        Output::Json => report.to_json() + "\n",
    };
    // A closed pipe (`| head`) is not an error of the gate.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if args.global.verbose > 0 {
        let log = std::fs::read_to_string(&report.log).unwrap_or_default();
        eprint!("{log}");
    }
    Ok(())
}

/// `--infra`, else the nearest infra/ (for tests of the flag).
pub fn infra_dir(args: &Args) -> PathBuf {
    args.global.infra_dir()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn infra_flag_wins_and_steps_parse() {
        let args = Args::parse_from([
            "fluo-validate",
            "--infra",
            "/x/infra",
            "--only",
            "manifests,policy",
        ]);
        assert_eq!(infra_dir(&args), Path::new("/x/infra"));
        assert_eq!(args.only, Some(vec![Step::Manifests, Step::Policy]));
    }

    #[test]
    fn timeout_is_the_shared_duration() {
        let args = Args::parse_from(["fluo-validate", "--timeout", "90s"]);
        assert_eq!(
            args.global.timeout,
            Some(std::time::Duration::from_secs(90))
        );
        let err = Args::try_parse_from(["fluo-validate", "--timeout", "0s"]).unwrap_err();
        assert!(err.to_string().contains("--timeout"), "{err}");
    }
}
