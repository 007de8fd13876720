//! `logs`: the logs of a component's pods (all components by default), each line prefixed with
//! `component/pod/container` and with secrets redacted; with `follow`, streams from every
//! running container (of the pods there when it starts) until their streams end or the caller
//! stops. During an incident some containers are not running: for a container that is waiting
//! (ImagePullBackOff, ContainerCreating, ...) it shows the reason and message instead, and a
//! container whose log cannot be read gets one line saying why; the others are still shown.

use futures::{AsyncBufReadExt, StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use crate::ops::{Ctx, Error, Result};
use crate::render::component_selector;
use crate::secrets::redact;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub since: Option<std::time::Duration>,
    pub tail: Option<i64>,
    pub follow: bool,
}

/// One line of output: a log line, a waiting container, or a log that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub component: String,
    pub pod: String,
    pub container: String,
    #[serde(flatten)]
    pub kind: LineKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum LineKind {
    Log { line: String },
    Waiting { reason: String, message: String },
    Unavailable { message: String },
}

impl LogLine {
    /// `component/pod/container: ...`
    pub fn text(&self) -> String {
        let prefix = format!("{}/{}/{}", self.component, self.pod, self.container);
        match &self.kind {
            LineKind::Log { line } => format!("{prefix}: {line}"),
            LineKind::Waiting { reason, message } if message.is_empty() => {
                format!("{prefix}: [waiting: {reason}]")
            }
            LineKind::Waiting { reason, message } => {
                format!("{prefix}: [waiting: {reason}: {message}]")
            }
            LineKind::Unavailable { message } => format!("{prefix}: [logs unavailable: {message}]"),
        }
    }

    /// One JSON object (a JSON line).
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A container of a listed pod and, if it is not running yet, why.
struct Source {
    component: String,
    pod: String,
    container: String,
    waiting: Option<(String, String)>,
}

impl Source {
    fn line(&self, kind: LineKind) -> LogLine {
        LogLine {
            component: self.component.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
            kind,
        }
    }
}

/// Writes lines to `out` (one call per line), secrets redacted (they never reach output).
pub async fn logs(
    ctx: &Ctx,
    component: Option<&str>,
    options: &LogOptions,
    out: &mut (dyn FnMut(&LogLine) + Send),
) -> Result<()> {
    let components = match component {
        Some(c) => ctx.config.graph.select(&[c])?,
        None => ctx.config.graph.sequential_order(),
    };
    let api: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let mut sources = Vec::new();
    for c in &components {
        let pods = api
            .list(&ListParams::default().labels(&component_selector(c)))
            .await
            .map_err(|e| Error::Failed(format!("listing pods of {c}: {}", message_of(&e))))?;
        for pod in pods {
            sources.extend(sources_of(c, &pod));
        }
    }
    let params = |container: &str| LogParams {
        container: Some(container.to_string()),
        since_seconds: options.since.map(|d| d.as_secs().max(1) as i64),
        tail_lines: options.tail,
        follow: options.follow,
        ..Default::default()
    };
    let mut streams = Vec::new();
    for source in &sources {
        if let Some((reason, message)) = &source.waiting {
            out(&source.line(LineKind::Waiting {
                reason: reason.clone(),
                message: redact(message),
            }));
            continue;
        }
        if !options.follow {
            match api.logs(&source.pod, &params(&source.container)).await {
                Ok(text) => {
                    for line in text.lines() {
                        out(&source.line(LineKind::Log { line: redact(line) }));
                    }
                }
                Err(e) => out(&source.line(LineKind::Unavailable {
                    message: redact(&message_of(&e)),
                })),
            }
            continue;
        }
        match api
            .log_stream(&source.pod, &params(&source.container))
            .await
        {
            Ok(reader) => {
                let template = source.line(LineKind::Log {
                    line: String::new(),
                });
                streams.push(
                    reader
                        .lines()
                        .map(move |line| {
                            let mut out = template.clone();
                            out.kind = match line {
                                Ok(line) => LineKind::Log {
                                    line: redact(&line),
                                },
                                Err(e) => LineKind::Unavailable {
                                    message: format!("log stream error: {e}"),
                                },
                            };
                            out
                        })
                        .boxed(),
                );
            }
            Err(e) => out(&source.line(LineKind::Unavailable {
                message: redact(&message_of(&e)),
            })),
        }
    }
    let mut merged = stream::select_all(streams);
    while let Some(line) = merged.next().await {
        out(&line);
    }
    Ok(())
}

/// The containers of a pod, each with the reason it waits (if it has never started).
fn sources_of(component: &str, pod: &Pod) -> Vec<Source> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let statuses = crate::readiness::container_statuses(pod);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    containers
        .into_iter()
        .map(|container| {
            let status = statuses.iter().find(|s| s.name == container.name);
            let waiting = match status {
                None => Some(("ContainerCreating".to_string(), String::new())),
                // A container that ran before has logs (previous run) even while waiting.
                Some(s) if s.restart_count > 0 => None,
                Some(s) => s
                    .state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .map(|w| {
                        (
                            w.reason.clone().unwrap_or_else(|| "Waiting".into()),
                            w.message.clone().unwrap_or_default(),
                        )
                    }),
            };
            Source {
                component: component.to_string(),
                pod: name.clone(),
                container: container.name,
                waiting,
            }
        })
        .collect()
}

/// The API server's message, not the client's error structure.
fn message_of(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bff-1"},
            "spec": {"containers": [{"name": "main"}, {"name": "side"}]},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap()
    }

    #[test]
    fn waiting_containers_give_reason_and_message() {
        let p = pod(serde_json::json!([
            {"name": "main", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}},
            {"name": "side", "ready": true, "restartCount": 0, "image": "y", "imageID": "",
             "state": {"running": {}}},
        ]));
        let sources = sources_of("bff", &p);
        assert_eq!(
            sources[0].waiting,
            Some((
                "ImagePullBackOff".into(),
                "Back-off pulling image \"x\"".into()
            ))
        );
        assert_eq!(sources[1].waiting, None);
        let line = sources[0].line(LineKind::Waiting {
            reason: "ImagePullBackOff".into(),
            message: "Back-off".into(),
        });
        assert_eq!(
            line.text(),
            "bff/bff-1/main: [waiting: ImagePullBackOff: Back-off]"
        );
        let json: serde_json::Value = serde_json::from_str(&line.json()).unwrap();
        assert_eq!(json["type"], "waiting");
        assert_eq!(json["reason"], "ImagePullBackOff");
        assert_eq!(json["container"], "main");
    }

    #[test]
    fn a_pod_without_statuses_is_creating_and_a_restarted_one_has_logs() {
        let creating = sources_of("bff", &pod(serde_json::json!([])));
        assert_eq!(creating[0].waiting.as_ref().unwrap().0, "ContainerCreating");
        let restarted = sources_of(
            "bff",
            &pod(serde_json::json!([
                {"name": "main", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ])),
        );
        assert_eq!(restarted[0].waiting, None);
    }
}
