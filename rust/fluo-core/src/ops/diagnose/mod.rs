//! `diagnose`: looks at the live namespace and names the cause of the SOP-002 failure patterns
//! (container startup, connectivity, configuration, state), each with the object, the evidence
//! and a fix hint. Collection (`snapshot`) is the only part that talks to the cluster; every
//! pattern is a pure function over the snapshot, one file per pattern family.

pub mod configuration;
pub mod connectivity;
pub mod jetstream;
pub mod policy;
pub mod snapshot;
pub mod startup;
pub mod state;

use serde::Serialize;

use crate::ops::{Ctx, Result};
pub use snapshot::Snapshot;

/// The SOP-002 failure family a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Startup,
    Connectivity,
    Configuration,
    State,
}

/// One diagnosed problem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub family: Family,
    /// Kebab-case pattern name, e.g. `crash-loop`, `selector-matches-nothing`.
    pub pattern: &'static str,
    /// The component (its `fluo.dev/component` label), if the object has one.
    pub component: Option<String>,
    /// `Kind/name`.
    pub object: String,
    /// What was observed (from status, events and logs; secrets redacted).
    pub evidence: Vec<String>,
    pub hint: String,
}

/// The result of a diagnosis, and what could not be examined.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub namespace: String,
    pub ok: bool,
    pub findings: Vec<Finding>,
    /// Checks that were not performed and why (e.g. JetStream stream health).
    pub not_checked: Vec<String>,
}

/// Every pattern over one snapshot, sorted; `component` keeps only that component's findings.
pub fn analyze(snapshot: &Snapshot, component: Option<&str>) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(startup::findings(snapshot));
    findings.extend(connectivity::findings(snapshot));
    findings.extend(policy::findings(snapshot));
    findings.extend(configuration::findings(snapshot));
    findings.extend(state::findings(snapshot));
    if let Some(c) = component {
        findings.retain(|f| f.component.as_deref() == Some(c));
    }
    findings.sort();
    findings.dedup();
    findings
}

/// Collects the namespace's state and diagnoses it.
pub async fn diagnose(ctx: &Ctx, component: Option<&str>) -> Result<Diagnosis> {
    if let Some(c) = component {
        ctx.config.graph.select(&[c])?;
    }
    let snapshot = Snapshot::collect(&ctx.cluster.client, &ctx.namespace).await?;
    let findings = analyze(&snapshot, component);
    Ok(Diagnosis {
        namespace: ctx.namespace.clone(),
        ok: findings.is_empty(),
        findings,
        // The JetStream checks need the NATS monitoring endpoint: `jetstream::add`.
        not_checked: Vec::new(),
    })
}

/// The text form: one block per finding.
pub fn text(diagnosis: &Diagnosis) -> String {
    let mut out = String::new();
    if diagnosis.findings.is_empty() {
        out.push_str(&format!(
            "no problems found in namespace {}\n",
            diagnosis.namespace
        ));
    }
    for f in &diagnosis.findings {
        let component = f.component.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "[{:?}] {} {} (component {component})\n",
            f.family, f.pattern, f.object
        ));
        for e in &f.evidence {
            out.push_str(&format!("  evidence: {e}\n"));
        }
        out.push_str(&format!("  fix: {}\n", f.hint));
    }
    for n in &diagnosis.not_checked {
        out.push_str(&format!("not checked: {n}\n"));
    }
    out
}
