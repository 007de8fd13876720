//! `rotate nats`: the NATS users replaced on the live cluster without a failed request, as one
//! gated, recorded and resumable operation (docs/security.md):
//! 1. nats-auth lists a new user per service beside the current one (`bff` -> `bff-2`), and
//!    nats-server reloads until it accepts every new user;
//! 2. nats-credentials holds the new users, and the Deployments that mount it (BFF, workers)
//!    roll onto them;
//! 3. once no client is connected as an old user, nats-auth lists only the new users and
//!    nats-server reloads until it refuses every old one.
//!
//! Everything is checked before the first write (the Secrets belong together, NATS is ready
//! and accepts the current users, the reload can run, the Deployments are rolled out): a
//! refusal changes nothing (exit 2). Gated like a deploy (reason, windows, approvals,
//! confirmation) and run under the deploy lock; recorded in the nats component's history with
//! the new user names, failed or not. The state lives in the two Secrets ([`state`], and a
//! step annotation on nats-auth), so after a failure the same command resumes where it
//! stopped. No password is ever printed.

pub mod nats;
pub mod roll;
pub mod secrets;
pub mod state;

use std::time::{Duration, Instant};

use fluo_core::exit::Exit;
use fluo_core::ops::{self, Ctx, context};
use fluo_core::release::Action;
use fluo_core::report::Level;
use fluo_core::teardown::{self, Teardown};
use fluo_secrets::nats_users::User;
use k8s_openapi::api::apps::v1::Deployment;

use nats::{Nats, Verdict};
use secrets::{ADDING, DROPPING, Secrets};
use state::Plan;

/// The component whose history records rotations (it holds the users).
const COMPONENT: &str = "nats";

/// A rotation after its checks.
struct Rotation {
    secrets: Secrets,
    plan: Plan,
    nats: Nats,
    deployments: Vec<Deployment>,
    /// Resumed after the old users were dropped: their passwords are gone with them.
    resumed_dropping: bool,
    restarted: Vec<String>,
}

pub async fn run(ctx: &Ctx, request: &Teardown) -> Result<Exit, ops::Error> {
    teardown::gate(ctx, request, "rotating the NATS users", false)?;
    let id = fluo_core::state::store::new_id(chrono::Utc::now());
    let deploy_id = format!("rotate-{id}");
    let refused =
        |e: String| ops::Error::Refused(format!("rotate nats refused: {e}; nothing changed"));
    let mut rotation = prepare(ctx).await.map_err(refused)?;
    let lock = context::take_lock(ctx, &deploy_id, request.force_unlock).await?;
    // What was checked is what gets written: no one changed the Secrets meanwhile.
    match Secrets::read(&ctx.cluster.client, &ctx.namespace).await {
        Ok(now) if now.versions() == rotation.secrets.versions() => {}
        Ok(_) => {
            lock.release().await;
            return Err(refused(
                "the Secrets changed while taking the deploy lock; run it again".into(),
            ));
        }
        Err(e) => {
            lock.release().await;
            return Err(refused(e));
        }
    }
    let started = Instant::now();
    let result = steps(ctx, &mut rotation).await;
    let recorded = record(ctx, request, &deploy_id, started, &rotation, &result).await;
    lock.release().await;
    result.map_err(|e| {
        ops::Error::Failed(format!(
            "rotate nats failed: {e}; run `fluo-deploy rotate nats` again to resume where it stopped"
        ))
    })?;
    let revision = recorded?;
    report(ctx, &rotation, revision, started.elapsed());
    Ok(Exit::Ok)
}

/// Every check before the first write.
async fn prepare(ctx: &Ctx) -> Result<Rotation, String> {
    let client = &ctx.cluster.client;
    let secrets = Secrets::read(client, &ctx.namespace).await?;
    let current = state::current_users(&secrets.credentials()?)?;
    let mut plan = state::plan(&secrets.conf()?, &current)?;
    let resumed_dropping = plan.starting && secrets.step() == Some(DROPPING);
    if resumed_dropping {
        plan = Plan {
            old: Vec::new(),
            new: current.clone(),
            starting: false,
        };
    }
    let deployments = roll::deployments(ctx).await?;
    roll::rolled_out(ctx, &deployments)?;
    let nats = Nats::find(
        client,
        &ctx.namespace,
        ctx.config.environment.backup.as_ref(),
    )
    .await?;
    nats.can_reload().await?;
    for user in &current {
        if nats.probe(client, user).await? != Verdict::Accepted {
            return Err(format!(
                "NATS refuses nats-credentials' user {} (the services' current credential): fix that first",
                user.name
            ));
        }
    }
    Ok(Rotation {
        secrets,
        plan,
        nats,
        deployments,
        resumed_dropping,
        restarted: Vec::new(),
    })
}

fn say(ctx: &Ctx, message: &str) {
    ctx.reporter.progress(COMPONENT, Level::Info, message);
}

async fn steps(ctx: &Ctx, r: &mut Rotation) -> Result<(), String> {
    let client = &ctx.cluster.client;
    let timeout = ctx.timeout_of(COMPONENT);
    let (new, old) = (r.plan.new_names().join(", "), r.plan.old_names().join(", "));
    if r.plan.starting {
        r.secrets
            .write_auth(&r.plan.both_conf(), Some(ADDING))
            .await?;
        say(ctx, &format!("nats-auth: added users {new} beside {old}"));
    } else {
        say(ctx, &format!("resuming the rotation to {new}"));
    }
    let accept_new: Vec<(&User, Verdict)> =
        r.plan.new.iter().map(|u| (u, Verdict::Accepted)).collect();
    let took = r.nats.reload_until(client, &accept_new, timeout).await?;
    say(
        ctx,
        &format!("NATS reloaded: accepts {new} ({:.1}s)", took.as_secs_f64()),
    );
    if state::current_users(&r.secrets.credentials()?)? != r.plan.new {
        r.secrets.write_credentials(&r.plan.credentials()).await?;
        say(ctx, &format!("nats-credentials: now {new}"));
    }
    r.restarted = roll::roll(ctx, &r.deployments, &r.plan.new_names().join(",")).await?;
    say(ctx, "the services run with the new users");
    if !r.plan.old.is_empty() {
        old_clients_gone(ctx, r, timeout).await?;
    }
    if r.secrets.conf()? != r.plan.final_conf() {
        r.secrets
            .write_auth(&r.plan.final_conf(), Some(DROPPING))
            .await?;
        say(ctx, &format!("nats-auth: dropped {old}"));
    }
    let mut wanted = accept_new;
    wanted.extend(r.plan.old.iter().map(|u| (u, Verdict::Refused)));
    let took = r.nats.reload_until(client, &wanted, timeout).await?;
    r.secrets.write_auth(&r.plan.final_conf(), None).await?;
    let refused = match r.resumed_dropping {
        true => "the old users' refusal was not checked again (resumed after they were dropped)"
            .to_owned(),
        false => format!("refuses {old}"),
    };
    say(
        ctx,
        &format!("NATS reloaded: {refused} ({:.1}s)", took.as_secs_f64()),
    );
    Ok(())
}

/// Waits until no NATS client of a live pod is connected as an old user (the old pods have
/// ended), so that dropping the old users cuts nobody off. A connection no live pod holds
/// ([`nats::Connection::of_live_pod`]) is a client gone without closing it (on kube-emulator
/// the userspace Service proxy keeps such connections open); nats-server closes it at its next
/// missed pings, and dropping the user cuts off no one.
async fn old_clients_gone(ctx: &Ctx, r: &Rotation, timeout: Duration) -> Result<(), String> {
    let client = &ctx.cluster.client;
    let old = r.plan.old_names();
    let started = Instant::now();
    let describe = |list: &[nats::Connection]| {
        let text: Vec<String> = list.iter().map(nats::Connection::describe).collect();
        text.join(", ")
    };
    loop {
        let connected = r.nats.connections(client).await?;
        let live = nats::live_pods(client, &ctx.namespace).await?;
        let (still, gone): (Vec<_>, Vec<_>) = connected
            .into_iter()
            .filter(|c| old.contains(&c.user))
            .partition(|c| c.of_live_pod(&live));
        if still.is_empty() {
            if !gone.is_empty() {
                let message = format!(
                    "ignoring connections of clients whose pods are gone: {}",
                    describe(&gone)
                );
                say(ctx, &message);
            }
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "after {}s NATS still has clients of live pods connected as {}: dropping the old users would cut them off (find them with GET /connz?auth=true on port 8222)",
                timeout.as_secs(),
                describe(&still)
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The rotation's record in the nats component's history; its revision.
async fn record(
    ctx: &Ctx,
    request: &Teardown,
    deploy_id: &str,
    started: Instant,
    r: &Rotation,
    result: &Result<(), String>,
) -> Result<u32, ops::Error> {
    let action = Action::Rotate {
        users: r.plan.new_names(),
    };
    teardown::record_operation(ctx, COMPONENT, action, request, deploy_id, started, result).await
}

fn report(ctx: &Ctx, r: &Rotation, revision: u32, took: Duration) {
    let mut text = format!(
        "rotated the NATS users to {} in {:.1}s (recorded as {COMPONENT} v{revision})\n",
        r.plan.new_names().join(", "),
        took.as_secs_f64()
    );
    if !r.plan.old.is_empty() {
        text.push_str(&format!(
            "  refused by NATS now: {}\n",
            r.plan.old_names().join(", ")
        ));
    }
    text.push_str(&format!(
        "  restarted: {}\n",
        match r.restarted.is_empty() {
            true => "none (already on the new users)".to_owned(),
            false => r.restarted.join(", "),
        }
    ));
    let json = serde_json::json!({
        "users": r.plan.new_names(), "dropped": r.plan.old_names(),
        "restarted": r.restarted, "resumed": !r.plan.starting, "revision": revision,
    });
    ctx.reporter.result(&json, &text);
}
