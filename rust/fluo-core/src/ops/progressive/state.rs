//! The live state of a component's progressive rollout, one record per component in
//! fluo-system (`fluo.rollout.<component>`): the step, the analysis evidence so far, an
//! operator's request (`promote`/`abort`, written by those commands and read by the running
//! deploy), and the blue workload kept after a blue-green switch. `status` shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::strategy::Kind;
use crate::state::store::{self, Store, Versioned};

const KIND: &str = "rollout";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    Promote,
    Abort,
}

/// Blue after a blue-green switch: scaled until `until`, so `rollback` is a selector switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blue {
    /// The revision green replaced (what a rollback restores).
    pub revision: u32,
    /// The revision that switched to green (blue is retired only while it is current).
    pub green_revision: u32,
    pub deployment: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub component: String,
    pub strategy: Kind,
    pub revision: u32,
    pub deploy_id: String,
    /// e.g. "step 2/3 (50%): analysing", "waiting for promote", "promoted", "aborted".
    pub phase: String,
    /// A deploy is working on it (steps, analysis or a gate): `promote`/`abort` reach it.
    pub active: bool,
    /// The evidence of the current step's analysis (and of the last step at the end).
    #[serde(default)]
    pub analysis: Vec<String>,
    #[serde(default)]
    pub request: Option<(Request, String)>,
    #[serde(default)]
    pub blue: Option<Blue>,
    pub updated_at: DateTime<Utc>,
}

pub fn store(client: &kube::Client) -> Store {
    Store::new(client, KIND)
}

/// The state of `component`, if any.
pub async fn get(store: &Store, component: &str) -> store::Result<Option<Versioned<Live>>> {
    match store.get::<Live>(component).await {
        Ok(v) => Ok(Some(v)),
        Err(store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every component's state.
pub async fn list(store: &Store) -> store::Result<Vec<Live>> {
    Ok(store
        .list::<Live>()
        .await?
        .into_iter()
        .map(|v| v.value)
        .collect())
}

/// Read-modify-write of `component`'s state (created from `init` when absent), repeated when
/// another command changed it in between. Returns the state written.
pub async fn update(
    store: &Store,
    component: &str,
    init: impl Fn() -> Option<Live>,
    change: impl Fn(&mut Live),
) -> store::Result<Option<Live>> {
    for _ in 0..20 {
        match get(store, component).await? {
            None => {
                let Some(mut live) = init() else {
                    return Ok(None);
                };
                change(&mut live);
                live.updated_at = Utc::now();
                match store.create(component, &live).await {
                    Ok(()) => return Ok(Some(live)),
                    Err(store::Error::Kube {
                        source: kube::Error::Api(e),
                        ..
                    }) if e.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            }
            Some(current) => {
                let mut live = current.value.clone();
                change(&mut live);
                live.updated_at = Utc::now();
                if store.replace(component, &live, &current).await? {
                    return Ok(Some(live));
                }
            }
        }
    }
    Err(store::Error::Document {
        name: store.name(component),
        message: "changed by others 20 times in a row".into(),
    })
}

/// One line per component for `status`.
pub fn text(states: &[Live]) -> String {
    let mut out = String::new();
    for s in states {
        out.push_str(&format!(
            "{} ({} v{}, deploy {}): {}\n",
            s.component,
            s.strategy.as_str(),
            s.revision,
            s.deploy_id,
            s.phase
        ));
        if let Some((request, by)) = &s.request {
            out.push_str(&format!("  requested: {request:?} by {by}\n"));
        }
        if let Some(b) = &s.blue {
            out.push_str(&format!(
                "  blue {} (v{}) kept until {}: `fluo-deploy rollback {}` switches back\n",
                b.deployment,
                b.revision,
                b.until.format("%Y-%m-%d %H:%M:%S UTC"),
                s.component
            ));
        }
        for line in &s.analysis {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}
