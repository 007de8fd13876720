//! The deploy run. Everything is checked first (components, images, rendering and policy once,
//! with one clock; the endpoints the post-deploy checks will reach; the gate); then, under the
//! deploy lock, the cluster-wide objects and the components along the dependency graph, each
//! rolled out with automatic rollback (`rollback::roll_out_or_back`); then the post-deploy
//! checks, whose failure rolls the whole deploy back.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::context::{self, Ctx, Hooks, RunInfo};
use super::error::{Error, Result};
use super::outcome::RunReport;
use super::recover::{self, POST_CHECKS_FAILED, run_post_checks};
use super::rollout::Planned;
use super::schedule::{self, Halt};
use super::{announce, events, progressive};
use super::{local_secret, local_security};
use crate::apply;
use crate::config::strategy::Kind;
use crate::config::{Component, Config, Order};
use crate::policy::{self, Approval};
use crate::release::Action;
use crate::render::{self, ImageOverrides, Rendered};
use crate::report::Level;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Selected components (unchecked names); empty with `all`.
    pub components: Vec<String>,
    pub all: bool,
    pub sequential: bool,
    pub images: Vec<String>,
    pub reason: Option<String>,
    pub approval: Approval,
    /// `STEP: reason` for gate steps skipped.
    pub skipped_checks: Vec<String>,
    pub post_checks: bool,
    pub force_unlock: bool,
    /// Waives notice and windows (never approvals); needs a reason; marked in the records.
    pub emergency: bool,
}

/// Everything checked before the cluster is touched.
pub struct Prepared {
    pub components: Vec<String>,
    pub rendered: BTreeMap<String, Rendered>,
    pub cluster_objects: Rendered,
    pub order: Order,
}

/// Pure checks, run once per deploy (one render, one policy check, one clock): selection,
/// image flags, rendering, policy now. Errors mean nothing was changed.
pub fn prepare(config: &Config, request: &Request) -> Result<Prepared> {
    prepare_at(config, request, Utc::now())
}

/// `prepare` with the policy judged at `now`.
pub fn prepare_at(config: &Config, request: &Request, now: DateTime<Utc>) -> Result<Prepared> {
    let components = if request.all {
        config.graph.sequential_order()
    } else if request.components.is_empty() {
        return Err(Error::Refused(
            "name at least one component or pass --all".into(),
        ));
    } else {
        config.graph.select(&request.components)?
    };
    let images = ImageOverrides::parse(&request.images)?;
    let selected: Vec<&Component> = components
        .iter()
        .filter_map(|c| config.component(c))
        .collect();
    images.check_against(&selected)?;
    images.check_built(&selected, &config.environment)?;
    let mut rendered = BTreeMap::new();
    for c in &selected {
        rendered.insert(
            c.name().to_string(),
            render::render(c, &config.environment, &images)?,
        );
    }
    if request.emergency
        && request
            .reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        return Err(Error::Refused(
            "--emergency needs --reason (it is recorded)".into(),
        ));
    }
    let environment = announce::policy_environment(&config.environment, request.emergency);
    policy::check(&environment, &request.approval, now)?;
    let order = if request.sequential {
        Order::Sequential
    } else {
        config.environment.strategy.order
    };
    Ok(Prepared {
        components,
        rendered,
        cluster_objects: render::render_cluster(&config.cluster_manifests)?,
        order,
    })
}

/// Whether this deploy ends with the post-deploy checks.
fn runs_post_checks(config: &Config, request: &Request) -> bool {
    request.post_checks && config.environment.strategy.post_deploy_checks
}

/// The first of `components` whose canary or blue-green rollout runs a Prometheus analysis.
fn analysed<'a>(config: &Config, components: &'a [String]) -> Option<&'a str> {
    components.iter().map(String::as_str).find(|c| {
        let strategy = config.environment.strategy.of(c);
        strategy.kind != Kind::Rolling && strategy.analysis.is_some()
    })
}

/// A full deploy of `prepared` (from `prepare`): post-check preflight, gate, lock, cluster
/// objects, components, post checks. A failure of the post checks, a signal or the loss of the
/// lock rolls back what the run deployed (`recover::roll_back_run`).
pub async fn deploy(
    ctx: &Ctx,
    prepared: &Prepared,
    request: &Request,
    hooks: &dyn Hooks,
) -> Result<RunReport> {
    ctx.check_durations()?;
    if runs_post_checks(&ctx.config, request) {
        hooks
            .post_checks_usable(&ctx.config, &prepared.components)
            .map_err(|problems| {
                Error::Refused(format!(
                    "the post-deploy checks cannot run as configured (nothing changed; fix {} or pass --no-post-checks): {problems}",
                    ctx.config.environment_file.display()
                ))
            })?;
    }
    if !runs_post_checks(&ctx.config, request)
        && let Some(component) = analysed(&ctx.config, &prepared.components)
    {
        hooks.analysis_usable(&ctx.config).map_err(|problem| {
            Error::Refused(format!(
                "the analysis of {component}'s {} rollout cannot reach Prometheus as configured (nothing changed; fix {}): {problem}",
                ctx.config.environment.strategy.of(component).kind.as_str(),
                ctx.config.environment_file.display()
            ))
        })?;
    }
    announce::check_notice(ctx, &prepared.components, request.emergency, Utc::now()).await?;
    super::drill_records::check_gate(ctx, Utc::now()).await?;
    // The gate checks that external Secrets exist: the local one is made first.
    local_secret::ensure_grafana_admin(ctx).await?;
    local_security::ensure(ctx).await?;
    tokio::select! {
        biased;
        () = ctx.stop.stopped() => {}
        gate = hooks.gate(
            &ctx.config,
            &prepared.components,
            &prepared.cluster_objects,
            &prepared.rendered,
        ) => {
            gate.map_err(|(exit, findings)| Error::Gate(exit, findings))?;
        }
    }
    if let Some(reason) = ctx.stop.reason() {
        return Err(Error::Failed(format!(
            "{reason} before anything was applied (nothing changed)"
        )));
    }
    context::ensure_namespaces(ctx).await?;
    let deploy_id = context::new_deploy_id();
    let lock = context::take_lock(ctx, &deploy_id, request.force_unlock).await?;
    if let Err(e) = super::backup::before_deploy(ctx, &prepared.rendered, hooks).await {
        lock.release().await;
        return Err(e);
    }
    let waived = match request.emergency {
        true => announce::waived_by_emergency(request.reason.as_deref()),
        false => vec![],
    };
    events::deploy_started(ctx, &deploy_id, prepared, request).await;
    let info = RunInfo {
        deploy_id: deploy_id.clone(),
        reason: request.reason.clone(),
        approval: request.approval.clone(),
        skipped_checks: [request.skipped_checks.clone(), waived].concat(),
        forced_unlock: if request.force_unlock {
            lock.replaced.clone()
        } else {
            None
        },
        emergency: request.emergency,
        drill: false,
    };
    let result =
        context::announcing_stops(ctx, deploy_locked(ctx, prepared, &info, request, hooks)).await;
    lock.release().await;
    if result
        .as_ref()
        .is_ok_and(|r| r.exit() == crate::exit::Exit::Ok)
    {
        progressive::gate::hold_blue(ctx, &deploy_id).await;
    }
    result
}

/// The revision of one rendered component, planned when its turn comes: planning every
/// component up front held a copy of every rendered object for the whole run (12 MB of a
/// 200-component deploy's peak).
fn planned(rendered: &Rendered) -> Planned {
    Planned {
        component: rendered.component.clone(),
        action: Action::Deploy,
        manifests: rendered.to_objects(),
        images: rendered.images.clone(),
        unresolved_digests: rendered.unresolved_digests.clone(),
    }
}

async fn deploy_locked(
    ctx: &Ctx,
    prepared: &Prepared,
    info: &RunInfo,
    request: &Request,
    hooks: &dyn Hooks,
) -> Result<RunReport> {
    let started = Instant::now();
    if !prepared.cluster_objects.documents.is_empty() {
        ctx.reporter
            .progress("cluster", Level::Info, "applying cluster-wide objects");
        apply::apply_all(
            &ctx.cluster,
            &prepared.cluster_objects.to_objects(),
            &ctx.namespace,
            |o| {
                ctx.reporter
                    .progress("cluster", Level::Info, &format!("applied {o}"));
            },
        )
        .await?;
    }
    let metrics = hooks.metrics(&ctx.config);
    // The post-deploy checks also check a blue-green green before its switch.
    let green_checks = runs_post_checks(&ctx.config, request).then_some(hooks);
    let components = schedule::run_graph(
        ctx,
        &prepared.components,
        prepared.order,
        Halt::OnStop,
        |c| {
            let metrics = metrics.as_deref();
            async move {
                let planned = planned(&prepared.rendered[&c]);
                progressive::roll_out_or_back(ctx, &planned, info, metrics, green_checks).await
            }
        },
    )
    .await;
    let deployed: Vec<String> = components
        .iter()
        .filter(|(_, r)| r.succeeded())
        .map(|(c, _)| c.clone())
        .collect();
    let checks = (runs_post_checks(&ctx.config, request)
        && deployed.len() == components.len()
        && !ctx.stop.is_stopped())
    .then(|| hooks.post_checks(&ctx.config, &ctx.namespace, &deployed))
    .flatten();
    let post_checks = match checks {
        Some(checks) => run_post_checks(ctx, checks).await,
        None => None,
    };
    let mut report = RunReport {
        deploy_id: info.deploy_id.clone(),
        components,
        post_checks,
        duration_ms: 0,
        stopped: None,
    };
    if let Some(reason) = ctx.stop.reason() {
        let cause = reason.to_string();
        recover::roll_back_run(ctx, &mut report, info, &cause, &cause).await;
    } else if let Some(Err(failure)) = report.post_checks.clone() {
        let cause = format!("{POST_CHECKS_FAILED}: {failure}");
        recover::roll_back_run(ctx, &mut report, info, &cause, POST_CHECKS_FAILED).await;
    }
    report.stopped = ctx.stop.reason().cloned();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
