//! `[strategy.components.<c>]` of an environment file: how a component's new revision reaches
//! traffic. `rolling` (the default) is the plain rolling update; `canary` and `blue-green` are
//! the progressive strategies of `ops::progressive`, with a Prometheus analysis whose queries
//! and thresholds are checked here, at load time (docs/progressive-delivery.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::duration;
use super::{Component, Error, Result};

/// `[strategy]`: the order of components and, per component, how a revision reaches traffic.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    #[serde(default)]
    pub order: Order,
    #[serde(default = "super::yes")]
    pub post_deploy_checks: bool,
    /// Per component: rolling (the default), canary or blue-green (`strategy`).
    #[serde(default)]
    pub components: BTreeMap<String, ComponentStrategy>,
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            order: Order::Parallel,
            post_deploy_checks: true,
            components: BTreeMap::new(),
        }
    }
}

impl Strategy {
    /// The strategy of `component` (rolling unless its environment names another).
    pub fn of(&self, component: &str) -> ComponentStrategy {
        self.components.get(component).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Independent components concurrently, following the dependency graph.
    #[default]
    Parallel,
    /// One at a time in SOP-002's listed order.
    Sequential,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Rolling,
    Canary,
    BlueGreen,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rolling => "rolling",
            Kind::Canary => "canary",
            Kind::BlueGreen => "blue-green",
        }
    }
}

/// How a canary gets its share of the requests.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    /// The canary's pods join the stable Service: the share follows the replica counts.
    #[default]
    Replicas,
    /// A canary Service and an ingress-nginx canary Ingress weighted at the step's percentage;
    /// the stable Services are pinned to the stable pods meanwhile.
    Ingress,
}

/// One component's strategy.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComponentStrategy {
    pub kind: Kind,
    /// Canary: the canary's share of the stable replica count per step, in percent, ending
    /// at 100 (e.g. [10, 50, 100]).
    #[serde(default)]
    pub steps: Vec<u32>,
    /// Canary: how long each step runs before its analysis starts.
    #[serde(default, deserialize_with = "duration")]
    pub pause: Duration,
    /// Canary: steps that wait for `fluo-deploy promote <c>` after their analysis passed.
    #[serde(default)]
    pub gates: Vec<u32>,
    /// Canary: how requests reach the canary (`replicas`, the default, or `ingress`).
    #[serde(default)]
    pub traffic: Traffic,
    /// Blue-green: wait for `fluo-deploy promote <c>` before switching the Service to green.
    #[serde(default)]
    pub manual_switch: bool,
    /// Blue-green: how long blue stays scaled after the switch, so that `rollback` within it
    /// is a selector switch (default 10m).
    #[serde(default = "default_keep_blue", deserialize_with = "duration")]
    pub keep_blue: Duration,
    #[serde(default)]
    pub analysis: Option<Analysis>,
}

fn default_keep_blue() -> Duration {
    Duration::from_secs(600)
}

/// The Prometheus analysis of a step (canary) or of green (blue-green).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Time between samples.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Samples per analysis; all must pass.
    pub samples: u32,
    /// The rate() window of the queries (default 1m).
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub window: Duration,
    /// A sample without data (no traffic yet) passes when true; by default it fails.
    #[serde(default)]
    pub pass_without_data: bool,
    /// How long the analysis waits, before its first sample, for Prometheus to have scraped every
    /// new pod twice within `window` (a rate needs two scrapes); past it the analysis fails
    /// (default 2m).
    #[serde(default = "default_scrape_wait", deserialize_with = "duration")]
    pub scrape_wait: Duration,
    pub checks: Vec<Check>,
}

fn default_window() -> Duration {
    Duration::from_secs(60)
}

fn default_scrape_wait() -> Duration {
    Duration::from_secs(120)
}

/// One metric with its limits: an absolute `max`, and/or `max_over_baseline` (the new pods'
/// value may be at most this factor times the stable pods' value). The metric is a built-in
/// one (`metric`) or a custom PromQL `query` with a `name`, where `{pods}` stands for the label
/// matcher of the pods sampled and `{window}` for the rate window (e.g. `60s`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(default)]
    pub metric: Option<Metric>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub max_over_baseline: Option<f64>,
}

impl Check {
    /// The check's name in evidence and status: the built-in metric's, or the custom `name`.
    pub fn name(&self) -> &str {
        match (&self.metric, &self.name) {
            (Some(m), _) => m.as_str(),
            (None, Some(n)) => n,
            (None, None) => "query",
        }
    }

    /// The PromQL over the pods matching `pods`, rated over `window`.
    pub fn promql(&self, pods: &str, window: Duration) -> String {
        match (&self.metric, &self.query) {
            (Some(m), _) => m.query(pods, window),
            (None, Some(q)) => q
                .replace("{pods}", pods)
                .replace("{window}", &format!("{}s", window.as_secs().max(1))),
            (None, None) => String::new(),
        }
    }
}

/// The built-in queries, each over the pods of one track (`{pods}`: their scrape instances).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Share of the BFF's HTTP responses that were 5xx.
    #[serde(rename = "http-5xx-ratio")]
    Http5xxRatio,
    /// The BFF's 99th percentile request latency, in seconds.
    HttpP99Seconds,
    /// Share of the worker's job deliveries that failed.
    WorkerFailureRatio,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Http5xxRatio => "http-5xx-ratio",
            Metric::HttpP99Seconds => "http-p99-seconds",
            Metric::WorkerFailureRatio => "worker-failure-ratio",
        }
    }

    /// The PromQL of this metric over the series matching `pods` (a label matcher such as
    /// `instance=~"10.0.0.1:.*"`), rated over `window`. A ratio's numerator falls back to 0:
    /// a healthy BFF or worker has never counted a 5xx or a failure, so that series does not
    /// exist, and the ratio is 0, not "no data" (which fails the analysis); without traffic the
    /// denominator is empty and the ratio still has no data.
    pub fn query(self, pods: &str, window: Duration) -> String {
        let w = format!("{}s", window.as_secs().max(1));
        match self {
            Metric::Http5xxRatio => format!(
                "(sum(rate(fluo_bff_http_requests_total{{status=~\"5..\",{pods}}}[{w}])) or vector(0)) / sum(rate(fluo_bff_http_requests_total{{{pods}}}[{w}]))"
            ),
            Metric::HttpP99Seconds => format!(
                "histogram_quantile(0.99, sum by (le) (rate(fluo_bff_http_request_duration_seconds_bucket{{{pods}}}[{w}])))"
            ),
            Metric::WorkerFailureRatio => format!(
                "(sum(rate(fluo_worker_jobs_processed_total{{outcome=\"failed\",{pods}}}[{w}])) or vector(0)) / sum(rate(fluo_worker_jobs_processed_total{{{pods}}}[{w}]))"
            ),
        }
    }
}

/// Checks every `[strategy.components.<c>]` against the components and their manifests.
pub(super) fn check(
    path: &Path,
    strategies: &BTreeMap<String, ComponentStrategy>,
    components: &[Component],
) -> Result<()> {
    for (name, s) in strategies {
        let invalid = |key: &str, value: &dyn std::fmt::Debug, reason: &str| Error::Invalid {
            path: path.to_path_buf(),
            key: format!("strategy.components.{name}.{key}"),
            value: format!("{value:?}"),
            reason: reason.to_string(),
        };
        // Without components (emergency loading) only the values themselves are checked.
        let component = components.iter().find(|c| c.name() == name);
        if component.is_none() && !components.is_empty() {
            let known: Vec<&str> = components.iter().map(Component::name).collect();
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                key: format!("strategy.components.{name}"),
                value: format!("{name:?}"),
                reason: format!("unknown component (known: {})", known.join(", ")),
            });
        }
        if s.traffic == Traffic::Ingress && s.kind != Kind::Canary {
            return Err(invalid(
                "traffic",
                &"ingress",
                "is for kind = \"canary\" (weights split a canary's requests)",
            ));
        }
        if s.kind == Kind::Rolling {
            continue;
        }
        if let Some(reason) = component.and_then(unfit_for_progressive) {
            return Err(invalid("kind", &s.kind.as_str(), &reason));
        }
        match s.kind {
            Kind::Canary => check_steps(s, &invalid)?,
            _ if !s.steps.is_empty() || !s.gates.is_empty() => {
                return Err(invalid(
                    "steps",
                    &s.steps,
                    "steps and gates are for kind = \"canary\"",
                ));
            }
            _ => {}
        }
        if s.traffic == Traffic::Ingress
            && let Some(reason) = component.and_then(unweighable)
        {
            return Err(invalid("traffic", &"ingress", &reason));
        }
        if s.kind == Kind::Canary && s.manual_switch {
            return Err(invalid(
                "manual_switch",
                &true,
                "is for kind = \"blue-green\" (a canary uses gates)",
            ));
        }
        if let Some(a) = &s.analysis {
            check_analysis(a, &invalid)?;
        }
    }
    Ok(())
}

fn check_steps(
    s: &ComponentStrategy,
    invalid: &dyn Fn(&str, &dyn std::fmt::Debug, &str) -> Error,
) -> Result<()> {
    if s.steps.last() != Some(&100) {
        return Err(invalid(
            "steps",
            &s.steps,
            "must list canary percentages ending at 100, e.g. [10, 50, 100]",
        ));
    }
    if s.steps.iter().any(|p| *p == 0 || *p > 100) || s.steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            "steps",
            &s.steps,
            "must be increasing percentages between 1 and 100",
        ));
    }
    if let Some(g) = s.gates.iter().find(|g| !s.steps.contains(g)) {
        return Err(invalid("gates", g, "must name one of the steps"));
    }
    Ok(())
}

fn check_analysis(
    a: &Analysis,
    invalid: &dyn Fn(&str, &dyn std::fmt::Debug, &str) -> Error,
) -> Result<()> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if a.interval.is_zero() {
        return Err(invalid(
            "analysis.interval",
            &show(a.interval),
            "must be greater than zero",
        ));
    }
    if a.window.as_secs() == 0 {
        return Err(invalid(
            "analysis.window",
            &show(a.window),
            "must be at least 1s",
        ));
    }
    if !(1..=1000).contains(&a.samples) {
        return Err(invalid("analysis.samples", &a.samples, "must be 1-1000"));
    }
    if a.checks.is_empty() {
        return Err(invalid(
            "analysis.checks",
            &"[]",
            "list at least one check (metric and max and/or max_over_baseline)",
        ));
    }
    for (i, c) in a.checks.iter().enumerate() {
        check_source(c, i, invalid)?;
        let key = format!("analysis.checks.{}", c.name());
        if c.max.is_none() && c.max_over_baseline.is_none() {
            return Err(invalid(
                &key,
                &"(no limit)",
                "set max and/or max_over_baseline",
            ));
        }
        for (field, value) in [("max", c.max), ("max_over_baseline", c.max_over_baseline)] {
            if let Some(v) = value
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(invalid(
                    &format!("{key}.{field}"),
                    &v,
                    "must be a number >= 0",
                ));
            }
        }
    }
    Ok(())
}

/// A check names a built-in `metric`, or a custom `query` (with `name` and `{pods}`) whose
/// brackets and quotes balance; a query Prometheus still refuses fails the analysis.
fn check_source(
    c: &Check,
    i: usize,
    invalid: &dyn Fn(&str, &dyn std::fmt::Debug, &str) -> Error,
) -> Result<()> {
    let at = |field: &str| format!("analysis.checks[{i}].{field}");
    match (&c.metric, &c.query) {
        (Some(m), Some(q)) => Err(invalid(
            &at("query"),
            q,
            &format!("give metric ({}) or query, not both", m.as_str()),
        )),
        (None, None) => Err(invalid(
            &at("metric"),
            &"(none)",
            "set metric (http-5xx-ratio, http-p99-seconds, worker-failure-ratio) or a custom query with a name",
        )),
        (Some(_), None) if c.name.is_some() => Err(invalid(
            &at("name"),
            &c.name.as_deref().unwrap_or_default(),
            "name is for a custom query (a built-in metric has its own)",
        )),
        (Some(_), None) => Ok(()),
        (None, Some(q)) => {
            let name = c.name.as_deref().unwrap_or_default();
            if !super::is_dns_label(name) {
                return Err(invalid(
                    &at("name"),
                    &name,
                    "a custom query needs a name of lowercase letters, digits and '-'",
                ));
            }
            if !q.contains("{pods}") {
                return Err(invalid(
                    &at("query"),
                    q,
                    "must select the sampled pods with {pods} inside a selector, e.g. rate(x_total{{pods}}[{window}])",
                ));
            }
            match unbalanced(q) {
                Some(reason) => Err(invalid(&at("query"), q, &reason)),
                None => Ok(()),
            }
        }
    }
}

/// Why the brackets or quotes of `q` do not balance (None when they do).
fn unbalanced(q: &str) -> Option<String> {
    let mut open = Vec::new();
    let mut quote = None;
    for ch in q.chars() {
        match (quote, ch) {
            (Some(qc), c) if c == qc => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(ch),
            (None, '(' | '[' | '{') => open.push(ch),
            (None, ')' | ']' | '}') => {
                let want = match ch {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(want) {
                    return Some(format!("unbalanced '{ch}'"));
                }
            }
            _ => {}
        }
    }
    match (quote, open.last()) {
        (Some(qc), _) => Some(format!("unclosed {qc}")),
        (None, Some(o)) => Some(format!("unclosed '{o}'")),
        (None, None) => None,
    }
}

/// Why `component`'s canary cannot be weighed at its Ingress (None when it can).
fn unweighable(component: &Component) -> Option<String> {
    let objects: Vec<serde_json::Value> = component
        .manifests
        .iter()
        .map(|d| d.object.clone())
        .collect();
    if !crate::routing::weighable_ingresses(&objects).is_empty() {
        return None;
    }
    let ingresses: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Ingress")
        .map(|i| {
            format!(
                "{} (class {})",
                i["metadata"]["name"].as_str().unwrap_or("?"),
                i["spec"]["ingressClassName"].as_str().unwrap_or("default")
            )
        })
        .collect();
    Some(format!(
        "component {} needs an Ingress of class \"{}\" (ingress-nginx, whose canary-weight annotation weighs the canary) with a path to a Service of its Deployment; it declares {}",
        component.name(),
        crate::routing::WEIGHING_CLASS,
        if ingresses.is_empty() {
            "no Ingress".to_string()
        } else {
            ingresses.join(", ")
        }
    ))
}

/// Why `component` cannot run a progressive strategy (None when it can): it needs exactly one
/// Deployment and nothing stateful (stateful components stay rolling).
fn unfit_for_progressive(component: &Component) -> Option<String> {
    let kinds: Vec<&str> = component
        .manifests
        .iter()
        .filter_map(|d| d.object["kind"].as_str())
        .collect();
    if let Some(stateful) = kinds
        .iter()
        .find(|k| ["StatefulSet", "PersistentVolumeClaim", "DaemonSet"].contains(k))
    {
        return Some(format!(
            "component {} declares a {stateful}: stateful components stay rolling",
            component.name()
        ));
    }
    let deployments = kinds.iter().filter(|k| **k == "Deployment").count();
    (deployments != 1).then(|| {
        format!(
            "component {} declares {deployments} Deployments; a progressive strategy needs exactly one",
            component.name()
        )
    })
}
