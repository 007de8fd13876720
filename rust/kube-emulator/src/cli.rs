//! The `kube-emulator` command line (`serve`: run an emulated Kubernetes API server until
//! SIGINT/SIGTERM); the binary is a thin main over [`main`]. Exit codes: 0, 1 runtime failure,
//! 2 bad flags (nothing started).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::kubelet::process::{ImageMap, ProcessOptions};
use crate::network::IngressListen;
use crate::{Emulator, Faults, Options, Runtime};
use anyhow::Context;
use clap::{Parser, Subcommand};
use fluo_cli::docs::DocsCommand;
use fluo_cli::duration::parse as duration;
use fluo_cli::exit::Exit;

#[derive(Parser)]
#[command(
    name = "kube-emulator",
    version,
    about = "An emulated Kubernetes API server for tests and rehearsal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; boxing would only move it"
)]
enum Command {
    /// Serve the API, print the bound address, write a kubeconfig, run until SIGINT/SIGTERM.
    Serve(ServeArgs),
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "KUBE_EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Where to write the kubeconfig for this emulator.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Name of the cluster, user and context in the kubeconfig.
    #[arg(long, default_value = "kube-emulator")]
    context: String,
    /// Default delay before pods start and become ready (e.g. 0, 200ms, 2s).
    #[arg(long, default_value = "200ms", value_parser = duration)]
    ready_after: Duration,
    /// Share (0..1) of resource requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share (0..1) of resource requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Share (0..1) of write requests (POST/PUT/PATCH/DELETE) answered 500, not performed.
    #[arg(long, default_value_t = 0.0)]
    write_error_rate: f64,
    /// Share (0..1) of write requests answered 503 ServiceUnavailable, not performed.
    #[arg(long, default_value_t = 0.0)]
    write_unavailable_rate: f64,
    /// Share (0..1) of resource requests whose connection is reset without a response.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Latency added to every resource request (e.g. 50ms).
    #[arg(long, default_value = "0", value_parser = duration)]
    latency: Duration,
    /// Close every watch after this long (e.g. 5s).
    #[arg(long, value_parser = duration)]
    watch_close_after: Option<Duration>,
    /// Share (0..1) of watches closed early, at a random moment within --watch-close-within.
    #[arg(long, default_value_t = 0.0)]
    watch_close_rate: f64,
    /// Window for --watch-close-rate closes (0: right after the initial events).
    #[arg(long, default_value = "1s", value_parser = duration)]
    watch_close_within: Duration,
    /// What runs pods: `simulated` (outcomes from the pod spec) or `process` (containers as
    /// real host processes in per-pod namespaces; needs root).
    #[arg(long, value_enum, default_value = "simulated")]
    runtime: RuntimeKind,
    /// Process mode: the image map, TOML `[images."<pattern>"] command = "..."` (see README).
    #[arg(long, env = "KUBE_EMULATOR_IMAGE_MAP")]
    image_map: Option<PathBuf>,
    /// Process mode: where Ingress rules are served: ADDR:PORT, `default` (127.0.0.1:80 when it
    /// can be bound, otherwise off with a warning) or `off`.
    #[arg(long, default_value = "default", env = "KUBE_EMULATOR_INGRESS_LISTEN")]
    ingress_listen: IngressListen,
    /// Process mode: first CrashLoopBackOff delay; doubles per crash up to 5m (kubelet: 10s).
    #[arg(long, default_value = "10s", value_parser = duration)]
    crash_backoff: Duration,
    /// Watch events kept for resourceVersion replay (older versions get 410 Gone).
    #[arg(long, default_value_t = 4096)]
    watch_history: usize,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum RuntimeKind {
    Simulated,
    Process,
}

impl ServeArgs {
    fn options(&self) -> anyhow::Result<Options> {
        let faults = Faults {
            error_rate: self.error_rate,
            throttle_rate: self.throttle_rate,
            write_error_rate: self.write_error_rate,
            write_unavailable_rate: self.write_unavailable_rate,
            reset_rate: self.reset_rate,
            latency: self.latency,
            watch_close_after: self.watch_close_after,
            watch_close_rate: self.watch_close_rate,
            watch_close_within: self.watch_close_within,
        };
        faults.validate().context("invalid fault flags")?;
        if self.watch_history == 0 {
            anyhow::bail!("--watch-history must be at least 1");
        }
        let runtime = match (self.runtime, &self.image_map) {
            (RuntimeKind::Simulated, _) => Runtime::Simulated,
            (RuntimeKind::Process, None) => anyhow::bail!(
                "--runtime process needs --image-map FILE (which host command each image runs; see the README)"
            ),
            (RuntimeKind::Process, Some(path)) => {
                crate::network::bridge::preflight()?;
                let mut process = ProcessOptions::new(ImageMap::load(path)?);
                process.backoff_initial = self.crash_backoff;
                Runtime::Process(process)
            }
        };
        Ok(Options {
            listen: self.listen,
            context: self.context.clone(),
            ready_after: self.ready_after,
            faults,
            watch_history: self.watch_history,
            runtime,
            ingress: self.ingress_listen,
            ..Options::default()
        })
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let emulator = Emulator::start_with_kubeconfig(args.options()?, &args.kubeconfig_out)
        .await
        .with_context(|| {
            format!(
                "starting kube-emulator (kubeconfig {})",
                args.kubeconfig_out.display()
            )
        })?;
    println!("{}", emulator.addr());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emulator.shutdown().await;
    Ok(())
}

/// Parses the command line and runs it.
pub fn main() -> Exit {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Docs(docs) => return docs.print::<Cli>(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Exit::Failed;
        }
    };
    if let Err(e) = args.options() {
        eprintln!("error: {e:#}");
        return Exit::Usage;
    }
    match runtime.block_on(serve(args)) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failed
        }
    }
}
