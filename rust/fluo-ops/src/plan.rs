//! `fluo-deploy deploy --dry-run`: the plan of a deploy without making it. The same checks as a
//! deploy (selection, image flags, rendering, policy), then what it would do: the graph order
//! (waves of components that run together), each component's version from -> to (revision and
//! images), and the diff of the rendered objects against the live cluster (server-side dry
//! run). Reads only: no namespace, lock, record or object is created or changed.

use std::collections::BTreeMap;

use fluo_core::config::Order;
use fluo_core::inspect::{self, ObjectDiff};
use fluo_core::ops::deploy::{Prepared, Request};
use fluo_core::ops::{self, Ctx};
use fluo_core::report::table;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde::Serialize;

/// What a deploy would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub environment: String,
    pub namespace: String,
    /// "parallel" (along the dependency graph) or "sequential" (SOP order).
    pub order: &'static str,
    /// Components that start together, in order.
    pub waves: Vec<Vec<String>>,
    pub components: Vec<ComponentPlan>,
    pub diff: Vec<ObjectDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentPlan {
    pub component: String,
    /// Selected components it waits for.
    pub after: Vec<String>,
    /// The deployed revision now (None: not installed).
    pub from: Option<Version>,
    pub to: Version,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Version {
    pub revision: u32,
    /// Logical image name -> ref.
    pub images: BTreeMap<String, String>,
}

/// The plan of `request`, `prepared` by the deploy's own checks; reads only.
pub async fn plan(ctx: &Ctx, prepared: &Prepared, request: &Request) -> ops::Result<Plan> {
    let graph = &ctx.config.graph;
    let selected = &prepared.components;
    let waves: Vec<Vec<String>> = match prepared.order {
        Order::Sequential => selected.iter().map(|c| vec![c.clone()]).collect(),
        Order::Parallel => graph
            .waves()
            .into_iter()
            .map(|wave| wave.into_iter().filter(|c| selected.contains(c)).collect())
            .filter(|wave: &Vec<String>| !wave.is_empty())
            .collect(),
    };
    let mut components = Vec::new();
    for c in selected {
        let records = ctx.history.list(Some(c)).await?;
        let from = fluo_core::history::current(&records).map(|r| Version {
            revision: r.release.revision,
            images: r.release.images.clone(),
        });
        let next = records
            .iter()
            .map(|r| r.release.revision)
            .max()
            .unwrap_or(0)
            + 1;
        components.push(ComponentPlan {
            component: c.clone(),
            after: graph
                .dependencies(c)
                .iter()
                .filter(|d| selected.contains(d))
                .cloned()
                .collect(),
            from,
            to: Version {
                revision: next,
                images: prepared.rendered[c].images.clone(),
            },
        });
    }
    let diff = if namespace_exists(ctx).await? {
        inspect::diff(ctx, selected, &request.images).await?
    } else {
        // A first install: the server cannot dry-run into a namespace that does not exist yet,
        // and every object would be created.
        all_created(&prepared.rendered)
    };
    Ok(Plan {
        environment: ctx.config.environment.environment.name.clone(),
        namespace: ctx.namespace.clone(),
        order: match prepared.order {
            Order::Sequential => "sequential",
            Order::Parallel => "parallel",
        },
        waves,
        components,
        diff,
    })
}

async fn namespace_exists(ctx: &Ctx) -> ops::Result<bool> {
    let namespaces: Api<Namespace> = Api::all(ctx.cluster.client.clone());
    namespaces
        .get_opt(&ctx.namespace)
        .await
        .map(|ns| ns.is_some())
        .map_err(|e| ops::Error::Failed(format!("reading namespace {}: {e}", ctx.namespace)))
}

fn all_created(rendered: &BTreeMap<String, fluo_core::render::Rendered>) -> Vec<ObjectDiff> {
    rendered
        .iter()
        .flat_map(|(component, r)| {
            r.objects().map(move |o| ObjectDiff {
                component: component.clone(),
                object: format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                ),
                change: "create".into(),
                paths: vec![],
            })
        })
        .collect()
}

impl Plan {
    /// The plan for people: order, versions table, diff, and that nothing changed.
    pub fn text(&self) -> String {
        let mut out = format!(
            "plan for environment {} (namespace {}), {}:\n",
            self.environment,
            self.namespace,
            match self.order {
                "sequential" => "one component at a time in SOP order",
                _ => "independent components together along the dependency graph",
            }
        );
        for (i, wave) in self.waves.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, wave.join(", ")));
        }
        let rows: Vec<Vec<String>> = self
            .components
            .iter()
            .map(|c| {
                vec![
                    c.component.clone(),
                    or_dash(&c.after.join(",")),
                    c.from
                        .as_ref()
                        .map_or("(not installed)".to_string(), version_text),
                    version_text(&c.to),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["COMPONENT", "AFTER", "FROM", "TO"], &rows));
        out.push_str("\ndiff against the live cluster:\n");
        out.push_str(&inspect::diff_text(&self.diff));
        out.push_str("dry run: nothing was changed\n");
        out
    }
}

fn version_text(v: &Version) -> String {
    let images: Vec<String> = v.images.iter().map(|(n, r)| format!("{n}={r}")).collect();
    format!("v{} {}", v.revision, images.join(" "))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_waves_versions_and_the_diff() {
        let plan = Plan {
            environment: "local".into(),
            namespace: "fluo".into(),
            order: "parallel",
            waves: vec![vec!["nats".into()], vec!["bff".into()]],
            components: vec![
                ComponentPlan {
                    component: "nats".into(),
                    after: vec![],
                    from: Some(Version {
                        revision: 1,
                        images: [("nats".into(), "n:1".into())].into(),
                    }),
                    to: Version {
                        revision: 2,
                        images: [("nats".into(), "n:2".into())].into(),
                    },
                },
                ComponentPlan {
                    component: "bff".into(),
                    after: vec!["nats".into()],
                    from: None,
                    to: Version {
                        revision: 1,
                        images: [("fluo-bff".into(), "b:1".into())].into(),
                    },
                },
            ],
            diff: vec![ObjectDiff {
                component: "nats".into(),
                object: "Deployment/nats".into(),
                change: "change".into(),
                paths: vec!["/spec/template/spec/containers/0/image".into()],
            }],
        };
        assert_eq!(
            plan.text(),
            "plan for environment local (namespace fluo), independent components together along the dependency graph:\n\
             \x20 1. nats\n\
             \x20 2. bff\n\
             \n\
             COMPONENT  AFTER  FROM             TO\n\
             nats       -      v1 nats=n:1      v2 nats=n:2\n\
             bff        nats   (not installed)  v1 fluo-bff=b:1\n\
             \n\
             diff against the live cluster:\n\
             ~ nats: Deployment/nats (change)\n\
             \x20   /spec/template/spec/containers/0/image\n\
             dry run: nothing was changed\n"
        );
    }
}
