//! State: the storage of NATS JetStream (and any StatefulSet): every claim of a StatefulSet's
//! volumeClaimTemplates must exist and be Bound. Stream health needs a NATS connection and is
//! not examined here (see `Diagnosis::not_checked`).

use super::snapshot::{Snapshot, component_of, name_of};
use super::{Family, Finding};

pub fn findings(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for set in &snapshot.stateful_sets {
        let set_name = name_of(&set.metadata);
        let spec = &set.spec;
        let replicas = spec.replicas.unwrap_or(1);
        for template in spec.volume_claim_templates.iter().flatten() {
            let template_name = name_of(&template.metadata);
            for ordinal in 0..replicas {
                let claim_name = format!("{template_name}-{set_name}-{ordinal}");
                let claim = snapshot
                    .claims
                    .iter()
                    .find(|c| name_of(&c.metadata) == claim_name);
                let phase = claim
                    .and_then(|c| c.status.as_ref())
                    .and_then(|s| s.phase.clone());
                if phase.as_deref() == Some("Bound") {
                    continue;
                }
                let evidence = match (claim, phase) {
                    (None, _) => format!("PersistentVolumeClaim {claim_name} does not exist"),
                    (Some(_), p) => format!(
                        "PersistentVolumeClaim {claim_name} is {} (not Bound)",
                        p.as_deref().unwrap_or("without a phase")
                    ),
                };
                out.push(Finding {
                    family: Family::State,
                    pattern: "volume-not-bound",
                    component: component_of(&set.metadata),
                    object: format!("StatefulSet/{set_name}"),
                    evidence: vec![evidence],
                    hint: "check the claim's storageClassName and that a provisioner or a \
                           matching PersistentVolume exists (`kubectl describe pvc`)"
                        .into(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pending_or_missing_claim_of_the_nats_statefulset_is_named() {
        let set = serde_json::from_value(json!({
            "metadata": {"name": "nats", "labels": {"fluo.dev/component": "nats"}},
            "spec": {"replicas": 2, "serviceName": "nats", "selector": {},
                "template": {}, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }))
        .unwrap();
        let claim = serde_json::from_value(json!({"metadata": {"name": "data-nats-0"},
            "status": {"phase": "Pending"}}))
        .unwrap();
        let snapshot = Snapshot {
            stateful_sets: vec![set],
            claims: vec![claim],
            ..Default::default()
        };
        let f = findings(&snapshot);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].evidence[0].contains("data-nats-0 is Pending"));
        assert!(f[1].evidence[0].contains("data-nats-1 does not exist"));
        assert!(f.iter().all(|f| f.pattern == "volume-not-bound"));
    }
}
