//! Configuration: references from workload templates (env valueFrom, envFrom, volumes) to a
//! ConfigMap or Secret, or a key of one, that does not exist. Optional references are skipped,
//! as the kubelet does.

use k8s_openapi::api::core::v1::{Container, PodSpec};

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
    let mut out = Vec::new();
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
