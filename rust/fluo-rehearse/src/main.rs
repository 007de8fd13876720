//! fluo-rehearse: SOP-002 on real processes, one step after the other, with a report.
//! Exit codes: 0 every step did what the SOP says; 1 a step failed; 2 usage or a missing
//! prerequisite (nothing started).

use std::path::PathBuf;

use clap::Parser;
use fluo_core::cli::docs::DocsFlags;
use fluo_core::exit::Exit;

/// Rehearse SOP-002 on kube-emulator's process runtime: gate, deploy-all, health, smoke,
/// monitor, a bad release rolled back automatically, emergency and component rollback,
/// delete-all and redeploy, history --verify. Needs root (pod network namespaces).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The FLUO checkout (infra/, scripts/, the image map); default: the current directory.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Where the built binaries are; default: next to this one.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Also write the report as Markdown (for a change record) to this file.
    #[arg(long, value_name = "FILE")]
    report_md: Option<PathBuf>,
    /// Print each command the steps run, with its time and stderr (fluo-deploy's timeline), as
    /// it finishes: where a step's time goes.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    docs: DocsFlags,
}

fn main() -> Exit {
    let cli = Cli::parse();
    if let Some(exit) = cli.docs.print::<Cli>() {
        return exit;
    }
    let Some(bin_dir) = cli.bin_dir.clone().or_else(fluo_rehearse::own_dir) else {
        eprintln!("fluo-rehearse: cannot tell where the binaries are; give --bin-dir");
        return Exit::Usage;
    };
    let options = fluo_rehearse::StackOptions {
        repo: cli.repo.clone(),
        bin_dir,
        emulator_args: Vec::new(),
    };
    let output = fluo_rehearse::Output {
        json: cli.report_json,
        markdown: cli.report_md,
        trace: cli.trace,
    };
    let run = fluo_rehearse::run(options, output);
    fluo_core::cli::main(0, run)
}
