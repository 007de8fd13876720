//! From fluo-deploy's parsed flags to a validated configuration, a connected context and one
//! library call ([`crate::dispatch`]), ending in an exit status. Nothing changes before the
//! flags, the configuration and the deploy request have been checked.

use anyhow::Context as _;
use fluo_core::config::Config;
use fluo_core::exit::Exit;
use fluo_core::ops::deploy;
use fluo_core::ops::pin;
use fluo_core::ops::{self, Ctx};
use fluo_core::report::{Level, Reporter};
use fluo_core::session::Session;

use crate::cli::{Cli, Command, RollbackArgs};
use crate::dispatch::request_of;

/// The whole of `fluo-deploy`.
pub async fn run(cli: Cli) -> Exit {
    if let Some(exit) = print_docs(&cli.command) {
        return exit;
    }
    let reporter = cli.global.reporter();
    // Checks on flags alone come first: they change nothing.
    if let Some(message) = flag_error(&cli.command) {
        reporter.progress("", Level::Error, &message);
        return Exit::Usage;
    }
    let loaded = match crate::trust::load_config(&cli.global, &cli.command) {
        Ok(l) => l,
        Err(e) => {
            let message = format!("configuration error (nothing changed): {e}");
            reporter.progress("", Level::Error, &message);
            return Exit::Usage;
        }
    };
    if let Some(warning) = &loaded.warning {
        reporter.progress("", Level::Warn, warning);
    }
    let config = loaded.config;
    let session = match Session::open(
        &config,
        crate::trust::writes_records(&cli.command),
        loaded.environment_read,
        crate::trust::accept_unverified(&cli.command),
    ) {
        Ok(s) => s,
        Err(e) => {
            reporter.progress("", Level::Error, &format!("{e} (nothing changed)"));
            return Exit::Usage;
        }
    };
    for warning in session.warnings() {
        reporter.progress("", Level::Warn, warning);
    }
    let deployer = session.deployer();
    // Deploy-time checks that need no cluster run before connecting (once per deploy).
    let prepared = match &cli.command {
        Command::Deploy(args) => {
            let prepared = match deploy::prepare(&config, &request_of(args, &deployer)) {
                Ok(mut p) => pin::pin_images(&config, &mut p.rendered, &reporter)
                    .await
                    .map(|()| p),
                Err(e) => Err(e),
            };
            match prepared {
                Ok(p) => Some(p),
                Err(e) => {
                    reporter.progress("", Level::Error, &format!("{e} (nothing changed)"));
                    return e.exit();
                }
            }
        }
        _ => None,
    };
    let mut ctx = match connect(&cli, config, reporter, session).await {
        Ok(ctx) => ctx,
        Err((reporter, e)) => {
            reporter.progress("", Level::Error, &format!("{e:#} (nothing changed)"));
            return Exit::Usage;
        }
    };
    if loaded.graph_from_records
        && let Err(e) = graph_from_records(&mut ctx).await
    {
        ctx.reporter.progress("", Level::Error, &e.to_string());
        return e.exit();
    }
    // Deploys and rollbacks stop cleanly on SIGINT/SIGTERM (fluo_core::ops::stop).
    let signals = match &cli.command {
        Command::Deploy(args) if !args.dry_run => ctx.stop.on_signals().ok(),
        Command::Rollback { .. } | Command::RollbackToPrevious(_) | Command::Drill { .. } => {
            ctx.stop.on_signals().ok()
        }
        _ => None,
    };
    let exit = crate::dispatch::dispatch(&ctx, cli.command, prepared, &deployer).await;
    if let Some(signals) = signals {
        signals.abort();
    }
    let exit = match exit {
        Ok(exit) => exit,
        Err(e) => {
            ctx.reporter.progress("", Level::Error, &e.to_string());
            e.exit()
        }
    };
    // Waits (bounded) for the notifications still queued; never changes the exit code.
    ops::events::flush(&ctx).await;
    // The chain tips this run wrote, so that CI logs keep them (see `history --verify`).
    for line in ctx.history.anchor_lines() {
        ctx.reporter.progress("", Level::Info, &line);
    }
    exit
}

/// Without the checkout's component graph, the components are those the records name.
async fn graph_from_records(ctx: &mut Ctx) -> Result<(), ops::Error> {
    let records = ctx.history.list(None).await?;
    ctx.config
        .components_from_records(records.iter().map(|r| r.release.component.as_str()));
    Ok(())
}

/// `completions` and `man` need no configuration.
fn print_docs(command: &Command) -> Option<Exit> {
    match command {
        Command::Docs(docs) => Some(docs.print::<Cli>()),
        _ => None,
    }
}

/// Flag combinations clap cannot express.
fn flag_error(command: &Command) -> Option<String> {
    match command {
        Command::Rollback {
            rollback: RollbackArgs { reason: None, .. },
            ..
        }
        | Command::RollbackToPrevious(RollbackArgs { reason: None, .. }) => Some(
            "a rollback needs --reason (it is recorded with the new revision); nothing changed"
                .into(),
        ),
        Command::Deploy(a) if !a.skip.is_empty() && a.reason.is_none() => {
            Some("--skip needs --reason (it is recorded); nothing changed".into())
        }
        Command::Delete {
            components,
            all: false,
            ..
        } if components.is_empty() => {
            Some("name components to delete or pass --all; nothing changed".into())
        }
        _ => None,
    }
}

/// The context of every cluster command: the cluster of --context (else the environment's),
/// the app namespace of -n (else the environment's), the history, who is deploying.
async fn connect(
    cli: &Cli,
    config: Config,
    reporter: Reporter,
    session: Session,
) -> Result<Ctx, (Reporter, anyhow::Error)> {
    let env_context = &config.environment.environment.context;
    let context = cli.global.context_for(&config);
    if &context != env_context {
        reporter.progress(
            "",
            Level::Warn,
            &format!(
                "using --context {context} instead of the environment's context {env_context}"
            ),
        );
    }
    let connected = cli.global.connect(&config).await.with_context(|| {
        format!(
            "connecting to the cluster of environment `{}`",
            config.environment.environment.name
        )
    });
    let cluster = match connected {
        Ok(c) => c,
        Err(e) => return Err((reporter, e)),
    };
    let (identity, history) = session.into_parts(&cluster.client, &config);
    Ok(Ctx {
        history,
        identity,
        namespace: cli.global.namespace_for(&config),
        cluster,
        reporter,
        timeout: cli.global.timeout,
        lock_ttl: cli.lock_ttl,
        kubeconfig: cli.global.kubeconfig.clone(),
        notifier: fluo_core::notify::Notifier::from_config(&config.environment.notifications),
        config,
        stop: ops::Stop::new(),
    })
}
