//! `drill`: a drill is recorded with its figures and shown by `drill --list` and `history`; it
//! ages into a `status` warning (injected clock); `[drill] gate` refuses deploys on a stale
//! drill (exit 5, nothing changed); a drill whose rollback fails exits 3 and is recorded failed.

use std::collections::BTreeMap;

use chrono::Utc;
use fluo_core::config::Config;
use fluo_core::exit::Exit;
use fluo_core::ops::{Hooks, drill};
use fluo_core::render::Rendered;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::fault_mix::context;
use crate::harness::{Infra, LOCAL_ENV, World};
use crate::{image_of, records};

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_is_recorded_listed_and_ages_into_a_warning() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    w.cmd(["status"])
        .run()
        .await
        .code(0)
        .stderr_has("no successful rollback drill recorded");
    w.cmd(["drill"]).run().await.code(0).stdout_has("passed");
    let list = w.cmd(["drill", "--list", "-o", "json"]).run().await.json();
    let d = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(d["succeeded"], true, "{d}");
    assert_eq!(d["by"], "tester", "{d}");
    assert_eq!(d["components"], serde_json::json!(["nats"]));
    assert!(d["rollback_ms"].as_u64().unwrap() > 0, "{d}");
    assert!(d["total_ms"].as_u64() >= d["rollback_ms"].as_u64(), "{d}");
    // v2 is the drill release (marked), v3 the rollback to v1; v3 is deployed.
    let history = w.cmd(["history", "nats", "-o", "json"]).run().await.json();
    let revs = history.as_array().unwrap();
    let drill_rev = revs.iter().find(|r| r["revision"] == 2).unwrap();
    assert_eq!(drill_rev["drill"], true, "{drill_rev}");
    assert_eq!(drill_rev["deploy_id"], d["drill_deploy_id"]);
    let back = revs.iter().find(|r| r["revision"] == 3).unwrap();
    assert_eq!(back["status"], "deployed", "{back}");
    assert_eq!(back["deploy_id"], d["rollback_deploy_id"]);
    w.cmd(["history", "nats"])
        .run()
        .await
        .stdout_has("DRILL: rollback drill");
    let status = w.cmd(["status"]).run().await;
    assert!(
        !status.stderr.contains("rollback drill"),
        "{}",
        status.stderr
    );
    // The same record, 30 and 32 days on (period 31 days by default).
    let ctx = context(&w).await;
    assert_eq!(
        drill::overdue(&ctx, Utc::now() + days(30)).await.unwrap(),
        None
    );
    let late = drill::overdue(&ctx, Utc::now() + days(32)).await.unwrap();
    assert!(late.unwrap().contains("older than the period 31d"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gated_environment_refuses_deploys_on_a_stale_drill() {
    let infra = Infra::standard();
    infra.write(
        "environments/local.toml",
        &format!("{LOCAL_ENV}\n[drill]\ngate = true\nperiod = \"10d\"\n"),
    );
    let w = World::with(infra, std::time::Duration::from_millis(100)).await;
    // Nothing deployed: nothing to drill, the first deploy passes.
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let before = records(&w.client).await;
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(5)
        .stderr_has("drill: no successful rollback drill recorded");
    assert_eq!(
        records(&w.client).await,
        before,
        "a refused deploy changes nothing"
    );
    assert_eq!(
        image_of(&w.client, "nats").await.as_deref(),
        Some("fluo/nats:2.10")
    );
    w.cmd(["drill"]).run().await.code(0);
    let ctx = context(&w).await;
    let stale = drill::check_gate(&ctx, Utc::now() + days(11))
        .await
        .unwrap_err();
    assert_eq!(stale.exit(), Exit::Policy);
    assert!(
        stale.to_string().contains("older than the period 10d"),
        "{stale}"
    );
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(0);
}

/// Post-deploy checks that pass, but leave the deploy lock held by someone else: the drill's
/// rollback cannot take it.
struct LockTaker(kube::Client);

impl Hooks for LockTaker {
    fn gate<'a>(
        &'a self,
        _: &'a Config,
        _: &'a [String],
        _: &'a Rendered,
        _: &'a BTreeMap<String, Rendered>,
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
        Some(Box::pin(async {
            let leases: Api<Lease> = Api::namespaced(self.0.clone(), "fluo-system");
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(fluo_core::lock::LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some("someone-else".into()),
                    lease_duration_seconds: Some(600),
                    renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                    ..Default::default()
                }),
            };
            if let Err(e) = leases.create(&PostParams::default(), &lease).await {
                return Err(format!("taking the lock: {e}"));
            }
            Ok(())
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_whose_rollback_fails_exits_3_and_is_recorded_failed() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let mut ctx = context(&w).await;
    ctx.config.environment.strategy.post_deploy_checks = true;
    let outcome = drill::drill(&ctx, &LockTaker(w.client.clone()), false)
        .await
        .expect("the drill runs and is recorded");
    assert_eq!(outcome.exit, Exit::RollbackFailed);
    let recorded = drill::list(&ctx).await.unwrap();
    assert_eq!(recorded.len(), 1);
    let d = &recorded[0];
    assert!(!d.succeeded);
    assert_eq!(d.failed_stage.as_deref(), Some("rollback"));
    assert!(
        d.message.as_deref().unwrap().contains("someone-else"),
        "{d:?}"
    );
    assert_eq!(d.rollback_ms, None);
    // A failed drill does not count: status still warns.
    w.cmd(["status"])
        .run()
        .await
        .stderr_has("no successful rollback drill recorded");
}

/// A drill tells the environment's receivers (the notify module, a real webhook on loopback)
/// that it starts and how it ended, with the time to roll back; the URL never shows.
#[tokio::test(flavor = "multi_thread")]
async fn a_drill_notifies_its_start_and_result() {
    use fluo_core::notify::receiver::{Behaviour, TestReceiver};
    let receiver = TestReceiver::start(Behaviour::default()).await;
    let secret = "T0DRILL/B0DRILL/XOXDRILLTOKEN";
    let infra = Infra::standard();
    infra.write(
        "environments/local.toml",
        &format!(
            "{LOCAL_ENV}\n[notifications]\ndelivery_timeout = \"2s\"\n[[notifications.receivers]]\n\
             name = \"team\"\nwebhook_env = \"TEST_DRILL_HOOK\"\nformat = \"json\"\n\
             events = [\"drill-started\", \"drill-finished\"]\n"
        ),
    );
    let w = World::with(infra, std::time::Duration::ZERO).await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    assert!(receiver.received().is_empty(), "deploys are not routed");
    let run = w
        .cmd(["drill"])
        .env("TEST_DRILL_HOOK", &receiver.url(secret))
        .run()
        .await;
    run.code(0).stdout_has("passed");
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    let got = receiver.received();
    let kinds: Vec<&str> = got
        .iter()
        .map(|r| r.body["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["drill-started", "drill-finished"], "{got:?}");
    let drills = w.cmd(["drill", "--list", "-o", "json"]).run().await.json();
    let id = drills[0]["id"].as_str().unwrap().to_string();
    for r in &got {
        assert_eq!(r.body["reference"], id.as_str());
        assert_eq!(r.body["environment"], "local");
    }
    assert_eq!(
        got[0].body["summary"],
        format!("rollback drill {id} started: nats")
    );
    let result = got[1].body["result"].as_str().unwrap();
    assert!(result.starts_with("passed; rolled back in "), "{result}");
}
