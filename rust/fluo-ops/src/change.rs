//! `announce` and `incident`: flags to the change-management calls of fluo-core's ops.

use std::time::Duration;

use fluo_core::exit::Exit;
use fluo_core::ops::Ctx;
use fluo_core::ops::{announce as notice, incident as incidents};
use fluo_core::report::Level;

use crate::cli::{AnnounceArgs, IncidentAction};

/// Default window length when neither --end nor --duration is given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);

pub async fn announce(ctx: &Ctx, args: AnnounceArgs) -> Exit {
    let now = chrono::Utc::now();
    let result = if args.list {
        notice::list(ctx).await.map(|all| {
            let text = notice::list_text(&all, now);
            ctx.reporter.result(&all, &text);
        })
    } else if let Some(id) = &args.cancel {
        notice::cancel(ctx, id, args.reason.as_deref(), now)
            .await
            .map(|a| {
                ctx.reporter
                    .result(&a, &format!("announcement {} cancelled\n", a.id));
            })
    } else {
        let Some(start) = args.start else {
            return usage(ctx, "announce needs --start (or --list / --cancel ID)");
        };
        let end = match (args.end, args.duration) {
            (Some(end), _) => end,
            (None, d) => match chrono::Duration::from_std(d.unwrap_or(DEFAULT_WINDOW)) {
                Ok(d) => start + d,
                Err(_) => return usage(ctx, "--duration is too long"),
            },
        };
        let request = notice::Request {
            window_start: start,
            window_end: end,
            components: args.components,
            ticket: args.change_ticket,
            reason: args.reason.unwrap_or_default(),
        };
        notice::announce(ctx, &request, now).await.map(|a| {
            let text = format!(
                "announced {} for {} - {} ({})\n",
                a.id,
                fluo_core::state::announcements::stamp(a.window_start),
                fluo_core::state::announcements::stamp(a.window_end),
                if a.components.is_empty() {
                    "all components".into()
                } else {
                    a.components.join(", ")
                }
            );
            ctx.reporter.result(&a, &text);
        })
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            ctx.reporter.progress("", Level::Error, &e.to_string());
            e.exit()
        }
    }
}

pub async fn incident(ctx: &Ctx, action: Option<IncidentAction>) -> Exit {
    let now = chrono::Utc::now();
    let result = match action.unwrap_or(IncidentAction::List { all: false }) {
        IncidentAction::List { all } => incidents::list(ctx, !all).await.map(|list| {
            ctx.reporter
                .result(&list, &incidents::list_text(&list, now));
        }),
        IncidentAction::Watch => incidents::watch(ctx).await.map(|()| {
            ctx.reporter.result(
                &serde_json::json!({"watching": false}),
                "no open incident has escalation steps left\n",
            );
        }),
        IncidentAction::Resolve { id, reason } => {
            incidents::resolve(ctx, &id, reason.as_deref().unwrap_or_default(), now)
                .await
                .map(|i| {
                    ctx.reporter
                        .result(&i, &format!("incident {} resolved\n", i.id))
                })
        }
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            ctx.reporter.progress("", Level::Error, &e.to_string());
            e.exit()
        }
    }
}

fn usage(ctx: &Ctx, message: &str) -> Exit {
    ctx.reporter
        .progress("", Level::Error, &format!("{message}; nothing changed"));
    Exit::Usage
}
