//! 200 deploys of a small tree (nats <- bff, pods ready at once) under each fault mix the
//! emulator injects: writes answered 500/503, connections reset, watches closed early. They run
//! in-process through the fluo-core library against one emulator per mix (spawning the CLI 200
//! times per mix would spend minutes on process start-up and the gate alone); the gate and the
//! post-deploy checks are left out (`NoChecks`), everything else is the deploy engine of the
//! CLI. Every 20th deploy asks for a crash-looping nats, so rollbacks run under the faults too.
//!
//! After each deploy, with the faults off for the look: no record is `deploying`, the lock is
//! free, and each component runs the image of its requested revision if it deployed, else of
//! its last successful one. At the end every component's hash chain verifies.

use std::collections::BTreeMap;
use std::time::Duration;

use fluo_core::cli::Output;
use fluo_core::cluster::Cluster;
use fluo_core::config::Config;
use fluo_core::exit::Exit;
use fluo_core::history::History;
use fluo_core::identity::Identity;
use fluo_core::ops::deploy::{self, Request};
use fluo_core::ops::{ComponentResult, Ctx, Hooks, Stop};
use fluo_core::release::{self, Status};
use fluo_core::report::Reporter;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_emulator::Faults;

use crate::harness::{self, Infra, World};
use crate::image_of;

const DEPLOYS: usize = 200;

/// No gate and no post-deploy checks (they are not what this test is about).
struct NoChecks;

impl Hooks for NoChecks {
    fn gate<'a>(
        &'a self,
        _: &'a Config,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<(), (Exit, String)>> {
        Box::pin(async { Ok(()) })
    }

    fn post_checks_usable(&self, _: &Config, _: &[String]) -> Result<(), String> {
        Ok(())
    }

    fn post_checks<'a>(
        &'a self,
        _: &'a Config,
        _: &'a str,
        _: &'a [String],
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }
}

async fn context(w: &World) -> Ctx {
    let config = Config::load(w.infra.path(), "local").expect("fixture config loads");
    let cluster = Cluster::connect(Some(w.emulator.kubeconfig_path()), "kube-emulator")
        .await
        .expect("connect to the emulator");
    Ctx {
        history: History::new(&cluster.client),
        cluster,
        reporter: Reporter::new(Output::Text, true),
        identity: Identity {
            user: "tester".into(),
            commit: "0123456789ab".into(),
            dirty: false,
        },
        namespace: "fluo".into(),
        timeout: Some(Duration::from_secs(30)),
        lock_ttl: Duration::from_secs(30),
        kubeconfig: None,
        config,
        stop: Stop::new(),
        notifier: fluo_core::notify::Notifier::none(),
    }
}

/// Deployment name -> (logical image name, repository) of the small tree.
const TREE: [(&str, &str, &str); 2] = [
    ("nats", "nats", "fluo/nats"),
    ("bff", "fluo-bff", "fluo/fluo-bff"),
];

/// nats and bff only (bff depends on nats), one replica each; a `crashloop` image crashes
/// every 50 ms instead of every second, so a failing revision is seen and rolled back at once.
fn small_tree() -> Infra {
    let infra = Infra {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    for (name, toml, image) in [
        ("nats", harness::NATS, "fluo/nats:2.10"),
        ("bff", harness::BFF, "fluo/fluo-bff:dev"),
    ] {
        let labels = format!("      labels: {{app: {name}}}\n");
        let manifest = harness::workload(name, image).replacen(
            &labels,
            &format!("{labels}      annotations: {{kube-emulator.fluo.dev/crash-period: 50ms}}\n"),
            1,
        );
        assert!(manifest.contains("crash-period"), "{manifest}");
        infra.write(&format!("components/{name}/component.toml"), toml);
        infra.write(
            &format!("components/{name}/manifests/{name}.yaml"),
            &manifest,
        );
    }
    infra.write(
        "environments/local.toml",
        &harness::LOCAL_ENV.replace("bff = 2", "bff = 1"),
    );
    infra
}

/// How deploy `i` ended, for the tally printed at the end.
#[derive(Debug, Default)]
struct Tally {
    converged: usize,
    rolled_back: usize,
    refused_before_applying: usize,
}

async fn check_invariants(w: &World, i: usize, expected: &BTreeMap<&str, Option<String>>) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(w.client.clone(), "fluo-system");
    let list = secrets
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("deploy {i}: listing records: {e}"));
    for s in &list.items {
        let status = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("fluo.dev/status"))
            .map(String::as_str);
        assert_ne!(
            status,
            Some(Status::Deploying.as_str()),
            "deploy {i}: {:?} left deploying",
            s.metadata.name
        );
    }
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "fluo-system");
    let lease = leases
        .get_opt("fluo-deploy")
        .await
        .unwrap_or_else(|e| panic!("deploy {i}: reading the lease: {e}"));
    assert!(
        lease.is_none(),
        "deploy {i}: the lock is still held: {lease:?}"
    );
    for (name, _, _) in TREE {
        assert_eq!(
            image_of(&w.client, name).await,
            expected[name],
            "deploy {i}: {name} does not run its last successful revision's image"
        );
    }
}

async fn deploys_under(faults: Faults) {
    let w = World::with(small_tree(), Duration::ZERO).await;
    let ctx = context(&w).await;
    let mut expected: BTreeMap<&str, Option<String>> =
        TREE.iter().map(|(name, _, _)| (*name, None)).collect();
    let mut tally = Tally::default();
    for i in 0..DEPLOYS {
        let requested: BTreeMap<&str, String> = TREE
            .iter()
            .map(|(name, _, repo)| {
                let tag = if *name == "nats" && i % 20 == 19 {
                    "crashloop".to_string()
                } else {
                    format!("v{i}")
                };
                (*name, format!("{repo}:{tag}"))
            })
            .collect();
        let request = Request {
            components: vec!["nats".into(), "bff".into()],
            images: TREE
                .iter()
                .map(|(name, image, _)| format!("{image}={}", requested[name]))
                .collect(),
            reason: Some(format!("fault mix deploy {i}")),
            ..Request::default()
        };
        let prepared = deploy::prepare(&ctx.config, &request).expect("prepare");
        w.emulator.set_faults(faults.clone()).expect("faults");
        let result = deploy::deploy(&ctx, &prepared, &request, &NoChecks).await;
        w.emulator
            .set_faults(Faults::default())
            .expect("faults off");
        match result {
            Ok(report) => {
                assert_ne!(
                    report.exit(),
                    Exit::RollbackFailed,
                    "deploy {i}: a rollback failed: {report:?}"
                );
                if report.exit() == Exit::Ok {
                    tally.converged += 1;
                } else {
                    tally.rolled_back += 1;
                }
                for (name, _, _) in TREE {
                    if let Some(ComponentResult::Deployed { .. }) = report.components.get(name) {
                        expected.insert(name, Some(requested[name].clone()));
                    }
                }
            }
            Err(e) => {
                // Refused before anything was applied (e.g. the lock could not be read).
                assert_eq!(e.exit(), Exit::Failed, "deploy {i}: {e}");
                tally.refused_before_applying += 1;
            }
        }
        check_invariants(&w, i, &expected).await;
    }
    let history = History::new(&w.client);
    for (component, records) in history.by_component().await.expect("records") {
        assert_eq!(
            release::verify_chain(&records),
            Vec::<String>::new(),
            "{component}"
        );
    }
    eprintln!("{DEPLOYS} deploys under {faults:?}: {tally:?}");
    assert!(
        tally.converged >= DEPLOYS / 2,
        "most deploys should converge under these fault rates: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_deploys_with_writes_answered_500_and_503() {
    deploys_under(Faults {
        write_error_rate: 0.05,
        write_unavailable_rate: 0.05,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_deploys_with_connections_reset() {
    deploys_under(Faults {
        reset_rate: 0.05,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_deploys_with_watches_closed_early() {
    deploys_under(Faults {
        watch_close_rate: 0.5,
        watch_close_within: Duration::from_millis(100),
        ..Faults::default()
    })
    .await;
}
