//! `logs`: the logs of a component's pods (all components by default), each line prefixed with
//! `component/pod/container` and with secrets redacted; with `follow`, streams from every
//! container (of the pods running when it starts) until their streams end or the caller stops.

use futures::{AsyncBufReadExt, StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::ops::{Ctx, Error, Result};
use crate::render::component_selector;
use crate::secrets::redact;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub since: Option<std::time::Duration>,
    pub tail: Option<i64>,
    pub follow: bool,
}

/// Writes log lines to `out` (one call per line), secrets redacted (they never reach output).
pub async fn logs(
    ctx: &Ctx,
    component: Option<&str>,
    options: &LogOptions,
    out: &mut (dyn FnMut(&str) + Send),
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
            .map_err(|e| Error::Failed(format!("listing pods of {c}: {e}")))?;
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let containers = pod.spec.map(|s| s.containers).unwrap_or_default();
            for container in containers {
                sources.push((c.clone(), name.clone(), container.name));
            }
        }
    }
    let params = |container: &str| LogParams {
        container: Some(container.to_string()),
        since_seconds: options.since.map(|d| d.as_secs().max(1) as i64),
        tail_lines: options.tail,
        follow: options.follow,
        ..Default::default()
    };
    if !options.follow {
        for (c, pod, container) in &sources {
            let text = api
                .logs(pod, &params(container))
                .await
                .map_err(|e| Error::Failed(format!("logs of {c}/{pod}/{container}: {e}")))?;
            for line in text.lines() {
                out(&format!("{c}/{pod}/{container}: {}", redact(line)));
            }
        }
        return Ok(());
    }
    let mut streams = Vec::new();
    for (c, pod, container) in &sources {
        let reader = api
            .log_stream(pod, &params(container))
            .await
            .map_err(|e| Error::Failed(format!("logs of {c}/{pod}/{container}: {e}")))?;
        let prefix = format!("{c}/{pod}/{container}");
        streams.push(
            reader
                .lines()
                .map(move |line| match line {
                    Ok(line) => format!("{prefix}: {}", redact(&line)),
                    Err(e) => format!("{prefix}: <log stream error: {e}>"),
                })
                .boxed(),
        );
    }
    let mut merged = stream::select_all(streams);
    while let Some(line) = merged.next().await {
        out(&line);
    }
    Ok(())
}
