//! Issue 15's deploy benchmark on real processes: is `deploy --all` within 1.3x of the critical
//! path, the slowest chain of components each deployed on its own (nats -> bff -> workers,
//! prometheus -> grafana)? Per round, on one process-runtime stack: `deploy --all`, then
//! `delete --all`, then each component alone in dependency order; all without the post-deploy
//! checks (they run once after everything, and are not part of any component's start-to-ready).
//!
//!     cargo build --bins -p kube-emulator -p fluo-validate -p fluo-deploy -p fluo-health \
//!       -p fluo-smoke -p fluo-bff -p fluo-worker -p fluo-rehearse
//!     cargo run -p fluo-rehearse --example bench_critical_path -- [ROUNDS]   # as root
//!
//! Results: docs/performance/rehearsal.md.

use std::collections::BTreeMap;
use std::time::Duration;

use fluo_rehearse::{Stack, StackOptions, steps};

const ORDER: [&str; 5] = ["nats", "prometheus", "grafana", "bff", "workers"];
const CHAINS: [&[&str]; 2] = [&["nats", "bff", "workers"], &["prometheus", "grafana"]];

async fn deploy(stack: &Stack, what: &[&str]) -> Duration {
    let mut args = vec!["deploy"];
    args.extend(what);
    args.push("--no-post-checks");
    args.extend(steps::DEPLOY_SKIPS);
    let run = stack.run("fluo-deploy", &args).await;
    run.expect(0).unwrap_or_else(|e| panic!("{e}"));
    // The per-component timeline (on stderr, so the table on stdout stays clean).
    for line in run.stderr.lines() {
        if ["deploying revision", "ready", "deployed v"]
            .iter()
            .any(|w| line.contains(w))
        {
            eprintln!("  {line}");
        }
    }
    run.took
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(1, |n| n.parse().expect("ROUNDS is a number"));
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let options = StackOptions {
            repo: std::env::current_dir().expect("cwd"),
            bin_dir: fluo_rehearse::own_dir()
                .and_then(|d| d.parent().map(std::path::Path::to_path_buf))
                .expect("target/debug"),
            emulator_args: Vec::new(),
        };
        let stack = Stack::start(&options).await.expect("the stack starts");
        println!("| round | deploy --all | nats | prometheus | grafana | bff | workers | critical path | ratio |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for round in 1..=rounds {
            let all = deploy(&stack, &["--all"]).await;
            if std::env::var_os("BENCH_EMULATOR_LOG").is_some() {
                eprintln!("--- kube-emulator log after round {round}'s deploy --all\n{}", stack.emulator_log());
            }
            let deleted = stack
                .run("fluo-deploy", &["delete", "--all", "--yes", "--reason", "bench"])
                .await;
            deleted.expect(0).unwrap_or_else(|e| panic!("{e}"));
            let mut own = BTreeMap::new();
            for component in ORDER {
                own.insert(component, deploy(&stack, &[component]).await);
            }
            let critical = CHAINS
                .iter()
                .map(|chain| chain.iter().map(|c| own[c]).sum::<Duration>())
                .max()
                .unwrap_or_default();
            let cells: Vec<String> = ORDER
                .iter()
                .map(|c| format!("{:.1} s", own[c].as_secs_f64()))
                .collect();
            println!(
                "| {round} | {:.1} s | {} | {:.1} s | {:.2}x |",
                all.as_secs_f64(),
                cells.join(" | "),
                critical.as_secs_f64(),
                all.as_secs_f64() / critical.as_secs_f64()
            );
            stack
                .run("fluo-deploy", &["delete", "--all", "--yes", "--reason", "bench"])
                .await
                .expect(0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
}
