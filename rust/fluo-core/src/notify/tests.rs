use std::time::{Duration, Instant};

use super::receiver::{Behaviour, TestReceiver, dead_url};
use super::*;
use crate::config::{EventSelector, PayloadFormat};

fn receiver(name: &str, var: &str, format: PayloadFormat, events: &[EventKind]) -> Receiver {
    Receiver {
        name: name.into(),
        webhook_env: var.into(),
        format,
        events: if events.is_empty() {
            vec![EventSelector::All]
        } else {
            events.iter().copied().map(EventSelector::Kind).collect()
        },
    }
}

fn notifications(receivers: Vec<Receiver>, timeout_ms: u64) -> Notifications {
    Notifications {
        receivers,
        delivery_timeout: Duration::from_millis(timeout_ms),
    }
}

fn event(kind: EventKind, summary: &str) -> Event {
    Event::new(kind, "staging", summary)
}

#[tokio::test]
async fn routes_events_per_receiver_in_order_and_in_each_format() {
    let team = TestReceiver::start(Behaviour::default()).await;
    let oncall = TestReceiver::start(Behaviour::default()).await;
    let config = notifications(
        vec![
            receiver("team", "TEAM", PayloadFormat::Slack, &[]),
            receiver(
                "on-call",
                "ONCALL",
                PayloadFormat::Json,
                &[EventKind::DeployFailed],
            ),
        ],
        2000,
    );
    let (team_url, oncall_url) = (team.url("T1"), oncall.url("O1"));
    let n = Notifier::with_lookup(&config, |var| match var {
        "TEAM" => Some(team_url.clone()),
        "ONCALL" => Some(oncall_url.clone()),
        _ => None,
    });
    n.emit(&event(EventKind::DeployStarted, "deploy d1 started"));
    n.emit(&event(EventKind::DeployFailed, "deploy d1 failed"));
    n.emit(&event(EventKind::RolledBack, "bff rolled back"));
    let deliveries = n.finish().await;
    let got: Vec<String> = team
        .received()
        .iter()
        .map(|r| {
            r.body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        [
            "staging: deploy d1 started",
            "staging: deploy d1 failed",
            "staging: bff rolled back"
        ]
    );
    let oncall_got = oncall.received();
    assert_eq!(oncall_got.len(), 1);
    assert_eq!(oncall_got[0].body["event"], "deploy-failed");
    assert_eq!(oncall_got[0].path, "/services/O1");
    assert_eq!(deliveries.len(), 4);
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered),
        "{deliveries:?}"
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_back_off() {
    let team = TestReceiver::start(Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    })
    .await;
    let url = team.url("T1");
    let n = Notifier::with_lookup(
        &notifications(
            vec![receiver("team", "TEAM", PayloadFormat::Slack, &[])],
            3000,
        ),
        |_| Some(url.clone()),
    );
    n.emit(&event(EventKind::Shutdown, "shutdown"));
    let deliveries = n.finish().await;
    assert_eq!(
        deliveries[0].status,
        DeliveryStatus::Delivered,
        "{deliveries:?}"
    );
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(team.requests(), 3);
    assert_eq!(team.received().len(), 1);
}

#[tokio::test]
async fn a_dead_receiver_fails_within_the_budget_without_naming_the_url() {
    let url = dead_url("SECRET-TOKEN").await;
    let n = Notifier::with_lookup(
        &notifications(
            vec![receiver("team", "TEAM", PayloadFormat::Slack, &[])],
            800,
        ),
        |_| Some(url.clone()),
    );
    let started = Instant::now();
    n.emit(&event(EventKind::DeployStarted, "deploy d1 started"));
    n.emit(&event(EventKind::DeploySucceeded, "deploy d1 succeeded"));
    let deliveries = n.finish().await;
    // Both messages get at most one budget each, and finish() adds at most one more.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(deliveries.len(), 2);
    for d in &deliveries {
        assert_eq!(d.status, DeliveryStatus::Failed, "{d:?}");
        let error = d.error.clone().unwrap();
        assert!(
            !error.contains("SECRET") && !error.contains(&url),
            "{error}"
        );
    }
    assert!(deliveries[0].attempts > 1, "{deliveries:?}");
    let recorded = serde_json::to_string(&deliveries).unwrap();
    assert!(!recorded.contains("SECRET"), "{recorded}");
}

#[tokio::test]
async fn a_slow_receiver_costs_at_most_one_budget_after_the_command() {
    let slow = TestReceiver::start(Behaviour {
        delay: Duration::from_secs(30),
        ..Behaviour::default()
    })
    .await;
    let url = slow.url("S1");
    let n = Notifier::with_lookup(
        &notifications(
            vec![receiver("team", "TEAM", PayloadFormat::Json, &[])],
            500,
        ),
        |_| Some(url.clone()),
    );
    n.emit(&event(EventKind::DeployStarted, "deploy d1 started"));
    n.emit(&event(EventKind::DeploySucceeded, "deploy d1 succeeded"));
    let started = Instant::now();
    let deliveries = n.finish().await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Failed),
        "{deliveries:?}"
    );
    // The first message times out (or is cut off at the deadline), the second never starts.
    for d in &deliveries {
        let error = d.error.as_deref().unwrap();
        assert!(
            error.contains("no answer within 500ms")
                || error.contains("not delivered within 500ms"),
            "{error}"
        );
    }
    assert!(slow.received().is_empty());
}

#[tokio::test]
async fn an_unset_variable_is_a_failed_delivery_naming_the_variable() {
    let n = Notifier::with_lookup(
        &notifications(
            vec![receiver(
                "team",
                "FLUO_TEAM_HOOK",
                PayloadFormat::Slack,
                &[],
            )],
            500,
        ),
        |_| None,
    );
    n.emit(&event(EventKind::Delete, "delete"));
    let deliveries = n.finish().await;
    assert_eq!(deliveries[0].status, DeliveryStatus::Failed);
    assert!(
        deliveries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("environment variable FLUO_TEAM_HOOK")
    );
    assert!(n.finish().await.is_empty(), "finish drains");
}
