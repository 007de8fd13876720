//! fluo-validate: the SOP-002 pre-deployment gate. Parses flags, loads the configuration, runs
//! `fluo_validate::Gate`, prints the report and maps it to an exit code.
//!
//! Exit codes: 0 passed; 1 a step failed (named in the output); 2 usage or configuration
//! error; 5 refused by policy (--only/--skip where the environment forbids them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use fluo_core::config::Config;
use fluo_validate::environment::GitState;
use fluo_validate::{Checklist, Cluster, Gate, GateOptions, Report, Skip, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Run the pre-deployment checklist (tests, flake-check, build, manifests, policy, status) for
/// an environment. The first failing step stops the gate.
///
/// Exit codes: 0 passed, 1 a step failed, 2 usage or configuration error, 5 refused by policy.
#[derive(Debug, Parser)]
#[command(name = "fluo-validate", version)]
struct Args {
    /// Run only these steps (comma-separated); refused where the environment forbids skipping.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<Step>>,
    /// Skip a step (repeatable, each with its own --reason); local environments only.
    #[arg(long, requires = "reason")]
    skip: Vec<Step>,
    /// Why the matching --skip is skipped (recorded in the release record).
    #[arg(long)]
    reason: Vec<String>,
    /// Do not contact the cluster (no dry run, no external Secret or reachability check).
    #[arg(long)]
    offline: bool,
    /// Where step output is streamed (default: $TMPDIR/fluo-validate/<env>-<time>.log).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Path to the kubeconfig file.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kube context to target (default: the kubeconfig's current context).
    #[arg(long)]
    context: Option<String>,
    /// Namespace of the FLUO components (default: the environment's namespace).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Environment: infra/environments/<ENV>.toml.
    #[arg(long = "env", env = "FLUO_ENV", default_value = "local")]
    env: String,
    /// The infra/ directory (default: the nearest infra/ with environments/ here or in a parent directory, else ./infra).
    #[arg(long, env = "FLUO_INFRA_DIR")]
    infra: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Output,
    /// Upper bound for each checklist command (e.g. 90s, 10m; default: checklist.toml's).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Also print the step log to stderr at the end.
    #[arg(short = 'v', long)]
    verbose: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}`: expected e.g. 90s, 10m, 1h"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{text}`: expected e.g. 90s, 10m, 1h")),
    }
}

fn infra_dir(args: &Args) -> PathBuf {
    args.infra
        .clone()
        .unwrap_or_else(fluo_core::config::default_infra_dir)
}

/// The target context and, unless offline, a client for it.
async fn cluster(args: &Args) -> (Option<String>, Cluster) {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display())),
        None => kube::config::Kubeconfig::read()
            .context("reading the kubeconfig ($KUBECONFIG or ~/.kube/config)"),
    };
    let context = args.context.clone().or_else(|| {
        kubeconfig
            .as_ref()
            .ok()
            .and_then(|k| k.current_context.clone())
    });
    if args.offline {
        return (context, Cluster::Offline);
    }
    if let Err(e) = kubeconfig {
        return (context, Cluster::Unavailable(format!("{e:#}")));
    }
    let Some(context) = context else {
        return (
            None,
            Cluster::Unavailable("the kubeconfig has no current context; pass --context".into()),
        );
    };
    match fluo_core::cluster::Cluster::connect(args.kubeconfig.as_deref(), &context).await {
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
    let text = match args.output {
        Output::Text => report.to_text(),
        Output::Json => report.to_json() + "\n",
    };
    // A closed pipe (`| head`) is not an error of the gate.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    if let Some(path) = &args.report {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if args.verbose {
        let log = std::fs::read_to_string(&report.log).unwrap_or_default();
        eprint!("{log}");
    }
    Ok(())
}

async fn run(args: Args) -> Result<ExitCode> {
    if args.skip.len() != args.reason.len() {
        anyhow::bail!(
            "every --skip needs its own --reason ({} --skip, {} --reason)",
            args.skip.len(),
            args.reason.len()
        );
    }
    let infra = infra_dir(&args);
    let log_path = args.log.clone().unwrap_or_else(|| default_log(&args.env));
    let mut config = match Config::load(&infra, &args.env) {
        Ok(config) => config,
        Err(error) => {
            if let Some(finding) = fluo_validate::load::manifest_error_finding(&error) {
                let report = Report::load_failure(&args.env, finding, log_path);
                print(&report, &args)?;
                return Ok(ExitCode::from(1));
            }
            return Err(anyhow::Error::new(error).context(format!(
                "loading the configuration from {}",
                infra.display()
            )));
        }
    };
    if let Some(namespace) = &args.namespace {
        config.environment.environment.namespace = namespace.clone();
    }
    let mut checklist = Checklist::load(&infra).context("loading the checklist")?;
    if let Some(limit) = args.timeout {
        for step in checklist.commands.values_mut() {
            step.timeout = step.timeout.min(limit);
        }
    }
    let git = GitState::detect(&checklist.workdir);
    let (context, cluster) = cluster(&args).await;
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
            return Ok(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)));
        }
    };
    let report = gate.run().await.context("running the gate")?;
    print(&report, &args)?;
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    fluo_core::tls::install_crypto_provider();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fluo-validate: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn infra_flag_wins() {
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
}
