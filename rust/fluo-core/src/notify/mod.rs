//! Notifications to webhook receivers (Slack-compatible or generic JSON).
//!
//! [`Notifier::emit`] never blocks and never fails: it queues the message for every receiver
//! the environment routes the event to. One task per receiver delivers its queue in order
//! (retries with back-off, bounded by `[notifications].delivery_timeout` per message), while
//! the command goes on. [`Notifier::finish`] waits at most one more delivery timeout for what
//! is still queued and returns every delivery's outcome, for the warning and the record.

pub mod deliver;
pub mod event;
pub mod payload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use deliver::WebhookUrl;
pub use event::{Change, Event, EventKind};

use crate::config::{Notifications, Receiver};

/// How one message to one receiver went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub receiver: String,
    pub event: EventKind,
    pub reference: String,
    pub summary: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// Why it failed (never the URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryStatus {
    Queued,
    Delivered,
    Failed,
}

/// A receiver with its URL resolved from the environment (None: the variable is unset).
struct Target {
    receiver: Receiver,
    url: Option<WebhookUrl>,
    queue: Mutex<Option<Queue>>,
}

struct Queue {
    sender: mpsc::UnboundedSender<(usize, serde_json::Value)>,
    task: JoinHandle<()>,
}

/// Sends the events of one command run.
pub struct Notifier {
    targets: Vec<Target>,
    budget: Duration,
    http: reqwest::Client,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Every kind emitted, routed or not.
    emitted: Mutex<Vec<EventKind>>,
}

impl Notifier {
    /// Receivers of `[notifications]`, their URLs read from the variables they name.
    pub fn from_config(notifications: &Notifications) -> Notifier {
        Self::with_lookup(notifications, |var| std::env::var(var).ok())
    }

    /// As [`from_config`](Self::from_config) with `lookup` in place of the process environment.
    pub fn with_lookup(
        notifications: &Notifications,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Notifier {
        crate::tls::install_crypto_provider();
        let targets = notifications
            .receivers
            .iter()
            .map(|r| Target {
                receiver: r.clone(),
                url: lookup(&r.webhook_env)
                    .filter(|u| !u.trim().is_empty())
                    .map(WebhookUrl::new),
                queue: Mutex::new(None),
            })
            .collect();
        Notifier {
            targets,
            budget: notifications.delivery_timeout,
            http: reqwest::Client::builder()
                .user_agent(concat!("fluo/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            deliveries: Arc::default(),
            emitted: Mutex::default(),
        }
    }

    /// A notifier with no receivers (sends nothing).
    pub fn none() -> Notifier {
        Self::with_lookup(&Notifications::default(), |_| None)
    }

    /// Queues `event` for every receiver that wants it. Needs a Tokio runtime.
    pub fn emit(&self, event: &Event) {
        self.emitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.kind);
        for target in self.targets.iter().filter(|t| t.receiver.wants(event.kind)) {
            let index = self.record(Delivery {
                receiver: target.receiver.name.clone(),
                event: event.kind,
                reference: event.reference.clone(),
                summary: event.summary.clone(),
                status: DeliveryStatus::Queued,
                attempts: 0,
                error: None,
            });
            let Some(url) = &target.url else {
                self.update(index, |d| {
                    d.status = DeliveryStatus::Failed;
                    d.error = Some(format!(
                        "environment variable {} (notifications.receivers.webhook_env) is not set",
                        target.receiver.webhook_env
                    ));
                });
                continue;
            };
            let body = payload::body(target.receiver.format, event);
            let mut queue = target.queue.lock().unwrap_or_else(|p| p.into_inner());
            let queue = queue.get_or_insert_with(|| self.start_queue(url.clone()));
            // The task only ends when the sender is dropped, so this cannot fail.
            let _ = queue.sender.send((index, body));
        }
    }

    /// Whether an event of `kind` was emitted by this command.
    pub fn emitted(&self, kind: EventKind) -> bool {
        self.emitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&kind)
    }

    fn start_queue(&self, url: WebhookUrl) -> Queue {
        let (sender, mut receiver) = mpsc::unbounded_channel::<(usize, serde_json::Value)>();
        let http = self.http.clone();
        let budget = self.budget;
        let deliveries = self.deliveries.clone();
        let task = tokio::spawn(async move {
            while let Some((index, body)) = receiver.recv().await {
                let outcome = deliver::post(&http, &url, &body, budget).await;
                let mut all = deliveries.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(d) = all.get_mut(index) {
                    d.attempts = outcome.attempts;
                    d.status = match outcome.error {
                        None => DeliveryStatus::Delivered,
                        Some(_) => DeliveryStatus::Failed,
                    };
                    d.error = outcome.error;
                }
            }
        });
        Queue { sender, task }
    }

    fn record(&self, delivery: Delivery) -> usize {
        let mut all = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        all.push(delivery);
        all.len() - 1
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Delivery)) {
        let mut all = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = all.get_mut(index) {
            change(d);
        }
    }

    /// Waits (at most one delivery timeout) for the queued messages, then returns every
    /// delivery since the last call; a message still queued then is failed.
    pub async fn finish(&self) -> Vec<Delivery> {
        let tasks: Vec<JoinHandle<()>> = self
            .targets
            .iter()
            .filter_map(|t| t.queue.lock().unwrap_or_else(|p| p.into_inner()).take())
            .map(|q| {
                drop(q.sender);
                q.task
            })
            .collect();
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(self.budget, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        let mut all = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        for d in all
            .iter_mut()
            .filter(|d| d.status == DeliveryStatus::Queued)
        {
            d.status = DeliveryStatus::Failed;
            d.error = Some(format!(
                "not delivered within {} after the command ended",
                humantime::format_duration(self.budget)
            ));
        }
        std::mem::take(&mut *all)
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "test-receiver"))]
pub mod receiver;
