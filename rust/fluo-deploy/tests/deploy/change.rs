//! Change management (issue 16): notifications to real webhook receivers on loopback, the
//! notice period, the emergency path and the escalation ladder.

use std::time::{Duration, Instant};

use fluo_core::notify::receiver::{Behaviour, TestReceiver, dead_url};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};

use crate::harness::{Infra, LOCAL_ENV, Run, World};
use crate::{app_objects, records};

/// The token in every test webhook URL: it must never show up anywhere.
const SECRET: &str = "T0SECRET/B0SECRET/XOXSECRETTOKEN";

/// Receivers: `team` (generic JSON, every event) and `on-call` (Slack, failures only).
fn change_env(extra: &str) -> String {
    format!(
        r#"{LOCAL_ENV}
[notifications]
delivery_timeout = "1s"
[[notifications.receivers]]
name = "team"
webhook_env = "TEST_TEAM_HOOK"
format = "json"
[[notifications.receivers]]
name = "on-call"
webhook_env = "TEST_ONCALL_HOOK"
format = "slack"
events = ["emergency-deploy", "deploy-failed", "rolled-back", "emergency-rollback", "incident-opened", "escalation", "incident-resolved"]
{extra}
"#
    )
}

async fn world(extra: &str) -> World {
    let w = World::start().await;
    w.infra.write("environments/local.toml", &change_env(extra));
    w
}

/// Event kinds a receiver got, in order (JSON `event`, or Slack's context line).
fn kinds(receiver: &TestReceiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| match r.body["event"].as_str() {
            Some(kind) => kind.to_string(),
            None => r.body["blocks"]
                .as_array()
                .and_then(|b| b.last())
                .and_then(|c| c["elements"][0]["text"].as_str())
                .and_then(|t| t.strip_prefix("fluo "))
                .and_then(|t| t.split(' ').next())
                .unwrap_or("?")
                .to_string(),
        })
        .collect()
}

struct Receivers {
    team: TestReceiver,
    oncall: TestReceiver,
}

impl Receivers {
    async fn start() -> Receivers {
        Receivers {
            team: TestReceiver::start(Behaviour::default()).await,
            oncall: TestReceiver::start(Behaviour::default()).await,
        }
    }
}

/// `fluo-deploy <args>` with both hook variables set; asserts the secret is in no output.
async fn run_with(w: &World, team: &str, oncall: &str, args: &[&str]) -> Run {
    let run = w
        .cmd(args)
        .env("TEST_TEAM_HOOK", team)
        .env("TEST_ONCALL_HOOK", oncall)
        .run()
        .await;
    for part in ["SECRET", team, oncall] {
        assert!(
            !run.stdout.contains(part) && !run.stderr.contains(part),
            "output of `{}` shows the webhook URL ({part}):\n{}\n{}",
            run.args,
            run.stdout,
            run.stderr
        );
    }
    run
}

async fn run(w: &World, r: &Receivers, args: &[&str]) -> Run {
    run_with(w, &r.team.url(SECRET), &r.oncall.url(SECRET), args).await
}

/// Every ConfigMap and Secret in fluo-system (release payloads decompressed) as text.
async fn system_text(client: &kube::Client) -> String {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "fluo-system");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "fluo-system");
    let mut text = serde_json::to_string(
        &maps
            .list(&ListParams::default())
            .await
            .expect("list ConfigMaps"),
    )
    .unwrap();
    for s in secrets
        .list(&ListParams::default())
        .await
        .expect("list Secrets")
        .items
    {
        for value in s.data.unwrap_or_default().values() {
            let mut json = String::new();
            let _ = std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&value.0[..]),
                &mut json,
            );
            text.push_str(&json);
            text.push_str(&String::from_utf8_lossy(&value.0));
        }
    }
    text
}

/// The notification logs in fluo-system (record.json of each), oldest first.
async fn notification_logs(client: &kube::Client) -> Vec<serde_json::Value> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "fluo-system");
    let list = maps
        .list(&ListParams::default().labels("fluo.dev/record=notifications"))
        .await
        .expect("list notification logs");
    list.items
        .iter()
        .map(|m| {
            serde_json::from_str(&m.data.as_ref().expect("data")["record.json"]).expect("log JSON")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_failed_deploy_and_emergency_rollback_notify_in_order() {
    let w = world("").await;
    let r = Receivers::start().await;
    run(&w, &r, &["deploy", "--all"]).await.code(0);
    assert_eq!(kinds(&r.team), ["deploy-started", "deploy-succeeded"]);
    assert!(r.oncall.received().is_empty(), "on-call gets failures only");
    let succeeded = &r.team.received()[1].body;
    assert_eq!(succeeded["environment"], "local");
    assert_eq!(succeeded["who"], "tester");
    assert_eq!(succeeded["commit"], "0123456789abcdef-dirty");
    assert!(
        succeeded["result"]
            .as_str()
            .unwrap()
            .contains("bff: deployed v1"),
        "{succeeded}"
    );

    // A crash-looping bff fails fast and is rolled back automatically.
    run(
        &w,
        &r,
        &[
            "-vv",
            "deploy",
            "bff",
            "--image",
            "fluo-bff=fluo/fluo-bff:crashloop",
            "--reason",
            "try 2",
            "--change-ticket",
            "CHG-7",
        ],
    )
    .await
    .code(1);
    assert_eq!(
        kinds(&r.team),
        [
            "deploy-started",
            "deploy-succeeded",
            "deploy-started",
            "deploy-failed",
            "rolled-back"
        ]
    );
    assert_eq!(kinds(&r.oncall), ["deploy-failed", "rolled-back"]);
    let failed = &r.team.received()[3].body;
    assert_eq!(failed["reason"], "try 2");
    assert_eq!(failed["ticket"], "CHG-7");
    assert_eq!(
        failed["components"][0],
        serde_json::json!({"component": "bff", "from": "v1 (fluo/fluo-bff:dev)", "to": "v2 (fluo/fluo-bff:crashloop)"})
    );
    assert!(
        failed["result"]
            .as_str()
            .unwrap()
            .contains("rolled back to v1"),
        "{failed}"
    );
    assert!(
        failed["next"]
            .as_str()
            .unwrap()
            .contains("fluo-deploy --env local history"),
        "{failed}"
    );
    let slack = &r.oncall.received()[0].body;
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("[local] deploy "),
        "{slack}"
    );
    assert_eq!(slack["blocks"][0]["type"], "header");

    run(&w, &r, &["rollback-to-previous", "--reason", "bad release"])
        .await
        .code(0);
    assert_eq!(
        kinds(&r.oncall),
        ["deploy-failed", "rolled-back", "emergency-rollback"]
    );
    assert_eq!(
        kinds(&r.team).last().map(String::as_str),
        Some("emergency-rollback")
    );
    let logs = notification_logs(&w.client).await;
    assert_eq!(logs.len(), 3, "one log per command: {logs:?}");
    assert!(
        logs.iter()
            .flat_map(|l| l["deliveries"].as_array().unwrap())
            .all(|d| d["status"] == "delivered"),
        "{logs:?}"
    );
    let recorded = system_text(&w.client).await;
    assert!(recorded.contains("deploy-started"), "the logs were read");
    assert!(
        !recorded.contains("SECRET") && !recorded.contains(&r.team.base_url),
        "a record holds the webhook URL"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_and_slow_receivers_cost_bounded_time_and_are_recorded() {
    let w = world("").await;
    let r = Receivers::start().await;
    run(&w, &r, &["deploy", "--all"]).await.code(0);
    let timed = |team: String, image: &'static str| {
        let w = &w;
        let oncall = r.oncall.url(SECRET);
        async move {
            let started = Instant::now();
            let run = run_with(w, &team, &oncall, &["deploy", "bff", "--image", image]).await;
            (run, started.elapsed())
        }
    };
    let (ok, baseline) = timed(r.team.url(SECRET), "fluo-bff=fluo/fluo-bff:2").await;
    ok.code(0);
    let (dead, dead_took) = timed(dead_url(SECRET).await, "fluo-bff=fluo/fluo-bff:3").await;
    dead.code(0)
        .stderr_has("notification `deploy-started` to receiver `team` failed")
        .stderr_has("the command's outcome is unchanged");
    let slow = TestReceiver::start(Behaviour {
        delay: Duration::from_secs(30),
        ..Behaviour::default()
    })
    .await;
    let (slow_run, slow_took) = timed(slow.url(SECRET), "fluo-bff=fluo/fluo-bff:4").await;
    slow_run.code(0).stderr_has("no answer within 1s");
    // delivery_timeout is 1s: the end of a run waits at most that long for its messages.
    let bound = baseline + Duration::from_millis(2500);
    assert!(
        dead_took < bound && slow_took < bound,
        "baseline {baseline:?}, dead {dead_took:?}, slow {slow_took:?}"
    );
    crate::assert_images(&w.client, &[("bff", "fluo/fluo-bff:4")]).await;
    let logs = notification_logs(&w.client).await;
    let failed: Vec<&serde_json::Value> = logs
        .iter()
        .flat_map(|l| l["deliveries"].as_array().unwrap())
        .filter(|d| d["status"] == "failed" && d["receiver"] == "team")
        .collect();
    assert_eq!(
        failed.len(),
        4,
        "two messages each for the dead and the slow receiver: {logs:?}"
    );
    assert!(!serde_json::to_string(&logs).unwrap().contains("SECRET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_breach_sends_the_status_update_and_the_rollback() {
    let w = crate::monitor::world_watching(&crate::monitor::fake_prometheus("0.5").await).await;
    let env = std::fs::read_to_string(w.infra.path().join("environments/local.toml")).unwrap();
    w.infra.write(
        "environments/local.toml",
        &change_env("").replace(LOCAL_ENV, &env),
    );
    let r = Receivers::start().await;
    run(&w, &r, &["deploy", "--all"]).await.code(0);
    run(
        &w,
        &r,
        &["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"],
    )
    .await
    .code(0);
    run(&w, &r, &["monitor", "--duration", "2m"]).await.code(1);
    let team = kinds(&r.team);
    assert_eq!(
        team[4..],
        ["monitoring-finished", "rolled-back"],
        "{team:?}"
    );
    let status = &r.team.received()[4].body;
    assert!(
        status["summary"].as_str().unwrap().contains("NOT healthy"),
        "{status}"
    );
    assert!(
        status["result"]
            .as_str()
            .unwrap()
            .contains("BREACH: BFF 5xx ratio 50.0%"),
        "{status}"
    );
    assert_eq!(kinds(&r.oncall), ["rolled-back"]);
}

/// Notice: 48h in the fixture environment.
const NOTICE: &str = "[notice]\nperiod = \"48h\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn notice_refuses_unannounced_and_too_recent_deploys_and_accepts_old_enough_ones() {
    let w = world(NOTICE).await;
    let r = Receivers::start().await;
    let refused = run(&w, &r, &["deploy", "--all"]).await;
    refused
        .code(5)
        .stderr_has("requires 48h notice")
        .stderr_has("no announcement covers nats, prometheus, bff, workers")
        .stderr_has("Earliest possible deploy: ");
    crate::assert_untouched(&w.client).await;
    assert!(
        kinds(&r.team).is_empty(),
        "a refusal is not announced as a deploy"
    );
    // Bad announcements change nothing either.
    let soon = chrono::Utc::now().to_rfc3339();
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    run(
        &w,
        &r,
        &[
            "announce", "--start", &soon, "--end", &past, "--reason", "x",
        ],
    )
    .await
    .code(2)
    .stderr_has("the window must end after it starts");
    run(
        &w,
        &r,
        &["announce", "natz", "--start", &soon, "--reason", "x"],
    )
    .await
    .code(2)
    .stderr_has("natz");
    run(&w, &r, &["announce", "--start", &soon])
        .await
        .code(2)
        .stderr_has("needs --reason");
    crate::assert_untouched(&w.client).await;

    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1)).to_rfc3339();
    let announced = run(
        &w,
        &r,
        &[
            "-o",
            "json",
            "announce",
            "--start",
            &start,
            "--duration",
            "72h",
            "--reason",
            "release 1.2",
            "--change-ticket",
            "CHG-9",
        ],
    )
    .await;
    announced.code(0);
    let id = announced.json()["id"].as_str().expect("id").to_string();
    assert_eq!(kinds(&r.team), ["announcement"]);
    let too_recent = run(&w, &r, &["deploy", "--all"]).await;
    too_recent.code(5).stderr_has(&format!("announcement {id}"));
    let created: chrono::DateTime<chrono::Utc> = announced.json()["created_at"]
        .as_str()
        .expect("created_at")
        .parse()
        .expect("RFC 3339");
    let earliest = (created + chrono::Duration::hours(48))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    too_recent.stderr_has(&format!("Earliest possible deploy: {earliest}"));
    assert!(
        records(&w.client).await.is_empty() && app_objects(&w.client).await.is_empty(),
        "nothing changed"
    );

    // The clock, injected: the announcement was made 49 hours ago.
    backdate(&w.client, &id, chrono::Duration::hours(49)).await;
    run(&w, &r, &["deploy", "--all"]).await.code(0);
    let listed = run(&w, &r, &["announce", "--list"]).await;
    listed
        .code(0)
        .stdout_has(&id)
        .stdout_has("planned")
        .stdout_has("CHG-9");
    run(&w, &r, &["announce", "--cancel", &id, "--reason", "done"])
        .await
        .code(0);
    run(
        &w,
        &r,
        &["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"],
    )
    .await
    .code(5);
    assert_eq!(kinds(&r.team)[..2], ["announcement", "deploy-started"]);
    assert_eq!(
        kinds(&r.team).last().map(String::as_str),
        Some("announcement-cancelled")
    );
}

/// Moves announcement `id`'s creation time back by `by` (as if it had been made then).
async fn backdate(client: &kube::Client, id: &str, by: chrono::Duration) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "fluo-system");
    let name = format!("fluo.announcement.{id}");
    let mut object = maps.get(&name).await.expect("announcement record");
    let data = object.data.as_mut().expect("data");
    let mut record: serde_json::Value = serde_json::from_str(&data["record.json"]).expect("JSON");
    let created: chrono::DateTime<chrono::Utc> =
        record["created_at"].as_str().unwrap().parse().unwrap();
    record["created_at"] = serde_json::json!(created - by);
    data.insert("record.json".into(), record.to_string());
    maps.replace(&name, &PostParams::default(), &object)
        .await
        .expect("backdate");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_deploy_waives_notice_notifies_at_once_and_is_marked() {
    let w = world(NOTICE).await;
    let r = Receivers::start().await;
    run(&w, &r, &["deploy", "--all", "--emergency"])
        .await
        .code(2)
        .stderr_has("--emergency needs --reason");
    run(
        &w,
        &r,
        &["deploy", "--all", "--emergency", "--reason", "outage fix"],
    )
    .await
    .code(0);
    assert_eq!(kinds(&r.oncall), ["emergency-deploy"]);
    assert_eq!(kinds(&r.team), ["emergency-deploy", "deploy-succeeded"]);
    assert_eq!(r.team.received()[1].body["emergency"], true);
    let history = run(&w, &r, &["history", "bff"]).await;
    history.code(0).stdout_has("EMERGENCY: outage fix");
}

/// A ladder of seconds, so a test can watch it.
const LADDER: &str = "[[escalation]]\nafter = \"2s\"\nrole = \"deployer\"\naction = \"roll back by hand\"\n\
[[escalation]]\nafter = \"4s\"\nrole = \"senior\"\ncontact = \"@senior\"\naction = \"take over\"\n";

/// Pods get ready 2s after they start and nats is replaced with the Recreate strategy (its old
/// pod goes first): nats v2 crash-loops, and `--timeout 1s` leaves its automatic rollback to v1
/// too little time for a new pod. Exit 3, an incident.
async fn incident_world(r: &Receivers) -> (World, String) {
    let w = World::with(Infra::standard(), Duration::from_secs(2)).await;
    w.infra
        .write("environments/local.toml", &change_env(LADDER));
    let nats = crate::harness::workload("nats", "fluo/nats:2.10").replace(
        "  replicas: 1\n",
        "  replicas: 1\n  strategy: {type: Recreate}\n",
    );
    assert!(nats.contains("Recreate"), "fixture edit");
    w.infra.write("components/nats/manifests/nats.yaml", &nats);
    run(&w, r, &["deploy", "nats"]).await.code(0);
    run(
        &w,
        r,
        &[
            "deploy",
            "nats",
            "--image",
            "nats=fluo/nats:crashloop",
            "--timeout",
            "1s",
        ],
    )
    .await
    .code(3)
    .stdout_has("ROLLBACK FAILED")
    .stderr_has("incident ");
    let open = run(&w, r, &["-o", "json", "incident"]).await;
    open.code(0);
    let id = open.json()[0]["id"]
        .as_str()
        .expect("an open incident")
        .to_string();
    (w, id)
}

fn sent_after(incident: &serde_json::Value, step: usize) -> f64 {
    let opened: chrono::DateTime<chrono::Utc> =
        incident["opened_at"].as_str().unwrap().parse().unwrap();
    let sent: chrono::DateTime<chrono::Utc> = incident["steps"][step]["sent_at"]
        .as_str()
        .expect("sent")
        .parse()
        .unwrap();
    (sent - opened).num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ladder_sends_each_step_once_on_time_even_with_two_watchers() {
    let r = Receivers::start().await;
    let (w, id) = incident_world(&r).await;
    assert_eq!(kinds(&r.oncall), ["deploy-failed", "incident-opened"]);
    let (a, b) = tokio::join!(
        run(&w, &r, &["incident", "watch"]),
        run(&w, &r, &["incident", "watch"])
    );
    a.code(0);
    b.code(0);
    assert_eq!(
        kinds(&r.oncall),
        [
            "deploy-failed",
            "incident-opened",
            "escalation",
            "escalation"
        ]
    );
    let steps = &r.oncall.received()[2..];
    assert!(
        steps[0].body["text"]
            .as_str()
            .unwrap()
            .contains("escalation 1/2 (2s): deployer")
    );
    assert!(
        steps[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Who: tester (deployer)")
    );
    assert!(
        steps[1].body["text"]
            .as_str()
            .unwrap()
            .contains("Who: @senior (senior)")
    );
    let all = run(&w, &r, &["-o", "json", "incident", "list", "--all"])
        .await
        .json();
    let incident = &all[0];
    assert_eq!(incident["id"], id.as_str());
    let (first, second) = (sent_after(incident, 0), sent_after(incident, 1));
    assert!(
        (2.0..3.5).contains(&first),
        "step 1 sent {first}s after opening"
    );
    assert!(
        (4.0..5.5).contains(&second),
        "step 2 sent {second}s after opening"
    );
    // Nothing left: another watcher sends nothing.
    run(&w, &r, &["incident", "watch"]).await.code(0);
    assert_eq!(r.oncall.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_stops_the_ladder_and_is_notified() {
    let r = Receivers::start().await;
    let (w, id) = incident_world(&r).await;
    let watcher = w
        .cmd(["incident", "watch"])
        .env("TEST_ONCALL_HOOK", &r.oncall.url(SECRET))
        .command()
        .spawn()
        .expect("watch");
    let waited = Instant::now();
    while kinds(&r.oncall).len() < 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "step 1 never came: {:?}",
            kinds(&r.oncall)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run(&w, &r, &["incident", "resolve", &id])
        .await
        .code(2)
        .stderr_has("needs --reason");
    run(
        &w,
        &r,
        &["incident", "resolve", &id, "--reason", "fixed by hand"],
    )
    .await
    .code(0);
    let out = tokio::time::timeout(Duration::from_secs(10), watcher.wait_with_output())
        .await
        .expect("watch ends")
        .expect("watch runs");
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        kinds(&r.oncall),
        [
            "deploy-failed",
            "incident-opened",
            "escalation",
            "incident-resolved"
        ]
    );
    run(&w, &r, &["incident"])
        .await
        .code(0)
        .stdout_has("no open incidents");
    run(&w, &r, &["incident", "resolve", &id, "--reason", "again"])
        .await
        .code(2)
        .stderr_has("already resolved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_deploy_sends_due_escalations() {
    let r = Receivers::start().await;
    let (w, _id) = incident_world(&r).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // Step 1 (2s) is due when this deploy starts and step 2 (4s) while it waits for its pods
    // (ready 2s after they start, over three dependency levels): the deploy sends both.
    let deploy = run(&w, &r, &["deploy", "--all", "--no-post-checks"]).await;
    deploy.code(0);
    let first = deploy.line_of("escalation 1/2 to deployer sent");
    let second = deploy.line_of("escalation 2/2 to senior sent");
    assert!(
        deploy.line_of("deploying revision") < second && first < second,
        "{}",
        deploy.stderr
    );
    let oncall = kinds(&r.oncall);
    assert_eq!(
        oncall,
        [
            "deploy-failed",
            "incident-opened",
            "escalation",
            "escalation"
        ]
    );
}
