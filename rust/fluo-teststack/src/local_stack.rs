//! `fluo-local-stack`: starts the local FLUO stack for developers, prints the URLs and tears it
//! down on Ctrl-C (the binary is a thin main over [`main`]).

use crate::{Component, Stack};
use anyhow::Context;
use clap::Parser;
use fluo_cli::exit::Exit;

/// Run nats-server (JetStream), the FLUO BFF, a worker and Prometheus on loopback.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Do not start Prometheus.
    #[arg(long)]
    no_prometheus: bool,
    /// Do not start the worker (jobs stay queued).
    #[arg(long)]
    no_worker: bool,
}

/// Parses the command line and runs the stack until Ctrl-C.
pub async fn main() -> Exit {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => Exit::Ok,
        Err(err) => {
            eprintln!("fluo-local-stack: {err:#}");
            Exit::Failed
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = Stack::builder().nats().bff();
    if !args.no_worker {
        builder = builder.worker();
    }
    if !args.no_prometheus {
        builder = builder.prometheus();
    }
    let mut stack = builder.start().await.context("starting the local stack")?;
    println!(
        "FLUO local stack is up (data and logs in {})",
        stack.dir().display()
    );
    println!(
        "  NATS        {}  (monitoring {})",
        stack.nats_url(),
        stack.nats_monitor_url()
    );
    println!(
        "  BFF         {}  (try: curl {}/health)",
        stack.bff_url(),
        stack.bff_url()
    );
    if stack.is_running(Component::Worker) {
        println!("  worker      {}/metrics", stack.worker_url());
    }
    if stack.is_running(Component::Prometheus) {
        println!("  Prometheus  {}", stack.prometheus_url());
    }
    for component in Component::ALL {
        if stack.is_running(component) {
            println!("  log         {}", stack.log_path(component).display());
        }
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for component in [
        Component::Prometheus,
        Component::Worker,
        Component::Bff,
        Component::Nats,
    ] {
        stack.stop(component).await?;
    }
    println!("stopped");
    Ok(())
}
