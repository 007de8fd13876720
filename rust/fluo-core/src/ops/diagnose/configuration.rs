//! Configuration: references from workload templates (env valueFrom, envFrom, volumes) to a
//! ConfigMap or Secret, or a key of one, that does not exist (optional references are skipped,
//! as the kubelet does); and a FLUO service (fluo-bff, fluo-worker) that exited 2: it refused
//! its configuration, and its last log line is its own validation message.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::exit::Exit;

use super::snapshot::Snapshot;
use super::{Family, Finding};

#[derive(Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

/// One reference: what, which object, which key (None: the whole object), where from.
struct Reference {
    source: Source,
    name: String,
    key: Option<String>,
    from: String,
}

pub fn findings(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = rejected(snapshot);
    for t in snapshot.templates() {
        let Some(spec) = t.template.spec.as_ref() else {
            continue;
        };
        for r in references(spec) {
            let (kind, objects) = match r.source {
                Source::ConfigMap => ("ConfigMap", &snapshot.config_maps),
                Source::Secret => ("Secret", &snapshot.secrets),
            };
            let problem = match (objects.get(&r.name), &r.key) {
                (None, _) => format!("{kind} {} does not exist", r.name),
                (Some(keys), Some(k)) if !keys.contains(k) => {
                    format!("{kind} {} has no key {k}", r.name)
                }
                _ => continue,
            };
            out.push(Finding {
                family: Family::Configuration,
                pattern: "missing-reference",
                component: t.component.clone(),
                object: t.object.clone(),
                evidence: vec![format!("{} references it, but {problem}", r.from)],
                hint: format!(
                    "create {kind} {} in namespace {} (with the key) as part of the component's \
                     manifests, or fix the reference",
                    r.name, snapshot.namespace
                ),
            });
        }
    }
    out
}

/// The services whose exit code 2 means "configuration refused" (fluo-jobs `service.rs`).
const SERVICES: [&str; 2] = ["fluo-bff", "fluo-worker"];

/// Service containers whose current or previous run exited 2, with the service's message.
fn rejected(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in &snapshot.pods {
        let pod_name = super::snapshot::name_of(&pod.metadata);
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        for cs in statuses.into_iter().flatten() {
            let Some(service) = SERVICES.into_iter().find(|s| cs.image.contains(s)) else {
                continue;
            };
            let exited_2 = [cs.state.as_ref(), cs.last_state.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
                .any(|t| t.exit_code == Exit::Usage.code());
            if !exited_2 {
                continue;
            }
            let mut evidence = vec![format!(
                "container {} ({service}) exited with code 2: it refused its configuration",
                cs.name
            )];
            let lines = snapshot.logs.get(&(pod_name.clone(), cs.name.clone()));
            evidence.extend(
                lines
                    .into_iter()
                    .flatten()
                    .filter(|l| l.contains(&format!("{service}: ")))
                    .map(|l| format!("log: {l}")),
            );
            out.push(Finding {
                family: Family::Configuration,
                pattern: "config-rejected",
                component: super::snapshot::component_of(&pod.metadata),
                object: format!("Pod/{pod_name}"),
                evidence,
                hint: format!(
                    "fix the setting the message names in the component's manifests (env of the \
                     container); `{service} --check-config` with the same environment checks a \
                     fix, and the gate's `service.config` rule checks it before every deploy"
                ),
            });
        }
    }
    out
}

fn references(spec: &PodSpec) -> Vec<Reference> {
    let mut out = Vec::new();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        container_references(c, &mut out);
    }
    for v in spec.volumes.iter().flatten() {
        let from = format!("volume {}", v.name);
        if let Some(cm) = v.config_map.as_ref().filter(|c| c.optional != Some(true)) {
            push_volume(
                &mut out,
                Source::ConfigMap,
                &cm.name,
                cm.items.as_deref(),
                &from,
            );
        }
        if let Some(s) = v.secret.as_ref().filter(|s| s.optional != Some(true)) {
            let name = s.secret_name.clone().unwrap_or_default();
            push_volume(&mut out, Source::Secret, &name, s.items.as_deref(), &from);
        }
    }
    out
}

fn push_volume(
    out: &mut Vec<Reference>,
    source: Source,
    name: &str,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    from: &str,
) {
    out.push(Reference {
        source,
        name: name.to_string(),
        key: None,
        from: from.to_string(),
    });
    for item in items.unwrap_or_default() {
        out.push(Reference {
            source,
            name: name.to_string(),
            key: Some(item.key.clone()),
            from: from.to_string(),
        });
    }
}

fn container_references(c: &Container, out: &mut Vec<Reference>) {
    for e in c.env.iter().flatten() {
        let Some(from) = e.value_from.as_ref() else {
            continue;
        };
        let place = format!("env {} of container {}", e.name, c.name);
        if let Some(r) = from
            .config_map_key_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            out.push(Reference {
                source: Source::ConfigMap,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                from: place.clone(),
            });
        }
        if let Some(r) = from
            .secret_key_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            out.push(Reference {
                source: Source::Secret,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                from: place,
            });
        }
    }
    for e in c.env_from.iter().flatten() {
        let place = format!("envFrom of container {}", c.name);
        if let Some(r) = e
            .config_map_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            out.push(Reference {
                source: Source::ConfigMap,
                name: r.name.clone(),
                key: None,
                from: place.clone(),
            });
        }
        if let Some(r) = e.secret_ref.as_ref().filter(|r| r.optional != Some(true)) {
            out.push(Reference {
                source: Source::Secret,
                name: r.name.clone(),
                key: None,
                from: place,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_that_exited_2_is_named_with_its_own_message() {
        let pod = |image: &str, code: i32| {
            serde_json::from_value(json!({
                "metadata": {"name": "bff-1", "labels": {"fluo.dev/component": "bff"}},
                "status": {"containerStatuses": [{"name": "bff", "image": image, "imageID": "",
                    "ready": false, "restartCount": 3,
                    "lastState": {"terminated": {"exitCode": code}}}]}
            }))
            .unwrap()
        };
        let mut snapshot = Snapshot {
            pods: vec![pod("fluo/fluo-bff:2", 2)],
            ..Default::default()
        };
        snapshot.logs.insert(
            ("bff-1".into(), "bff".into()),
            vec![
                "starting".into(),
                "fluo-bff: --fault-5xx-ratio (FLUO_BFF_FAULT_5XX_RATIO) \"7\" must be a number from 0 to 1".into(),
            ],
        );
        let f = findings(&snapshot);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].pattern, "config-rejected");
        assert_eq!(f[0].component.as_deref(), Some("bff"));
        assert_eq!(f[0].evidence.len(), 2);
        assert!(f[0].evidence[1].contains("FLUO_BFF_FAULT_5XX_RATIO) \"7\""));
        // Another exit code, or another image: not a configuration refusal.
        snapshot.pods = vec![pod("fluo/fluo-bff:2", 1), pod("nats:2.10", 2)];
        assert!(findings(&snapshot).is_empty());
    }
}
