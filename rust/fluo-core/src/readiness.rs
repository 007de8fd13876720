//! Readiness rules per kind: small pure functions over one object (and, for fail-fast, the pods
//! of its newest revision).
//!
//! Ported from kubectl's `pkg/polymorphichelpers/rollout_status.go` (observedGeneration is
//! checked first, so a status written for an older spec never counts as ready) plus kapp-style
//! fail-fast: a Deployment whose Progressing condition reports ProgressDeadlineExceeded, whose
//! ReplicaFailure condition says its pods cannot be created (admission denied them: Pod
//! Security, a missing ServiceAccount, a quota, a webhook), or a new-revision pod stuck in a
//! waiting reason that never resolves by itself, fails at once instead of at the timeout.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, PersistentVolumeClaim, Pod, Service};

/// Waiting reasons of a container that will not resolve without a change (kapp, Helm 4 kstatus).
pub const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// The verdict for one object at one point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready yet; the message says what is awaited (kubectl wording).
    Waiting(String),
    /// Will not become ready without intervention; the message names the cause.
    Failed(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Deployment: kubectl's DeploymentStatusViewer plus ProgressDeadlineExceeded and pod fail-fast.
/// `new_pods` are the pods of the Deployment's newest ReplicaSet.
pub fn deployment(d: &Deployment, new_pods: &[Pod]) -> Readiness {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Readiness::Waiting("waiting for deployment spec update to be observed".into());
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return Readiness::Waiting("waiting for deployment spec update to be observed".into());
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"));
    if let Some(c) = progressing
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Readiness::Failed(format!(
            "exceeded its progress deadline: {}",
            c.message.as_deref().unwrap_or("no message")
        ));
    }
    let replica_failure = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    });
    if let Some(c) = replica_failure {
        return Readiness::Failed(format!(
            "cannot create pods ({}): {}",
            c.reason.as_deref().unwrap_or("ReplicaFailure"),
            c.message.as_deref().unwrap_or("no message")
        ));
    }
    if let Some(failure) = failing_pod(new_pods) {
        return Readiness::Failed(failure);
    }
    let desired = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Readiness::Waiting(format!(
            "{updated} out of {desired} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return Readiness::Waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Readiness::Waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Readiness::Ready
}

/// StatefulSet: kubectl's StatefulSetStatusViewer (RollingUpdate with optional partition).
/// `new_pods` are pods at `status.updateRevision`.
pub fn stateful_set(s: &StatefulSet, new_pods: &[Pod]) -> Readiness {
    let generation = s.metadata.generation.unwrap_or(0);
    let Some(status) = &s.status else {
        return Readiness::Waiting("waiting for statefulset spec update to be observed".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || generation > observed {
        return Readiness::Waiting("waiting for statefulset spec update to be observed".into());
    }
    if let Some(failure) = failing_pod(new_pods) {
        return Readiness::Failed(failure);
    }
    let spec = &s.spec;
    let desired = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < desired {
        return Readiness::Waiting(format!("waiting for {} pods to be ready", desired - ready));
    }
    let strategy = spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        // kubectl refuses rollout status for OnDelete; pods only change when deleted, so
        // "all ready at the observed generation" is the most that can be awaited.
        return Readiness::Ready;
    }
    if let Some(partition) = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
    {
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < desired - partition {
            return Readiness::Waiting(format!(
                "partitioned roll out: {updated} out of {} new pods have been updated",
                desired - partition
            ));
        }
        return Readiness::Ready;
    }
    if status.update_revision != status.current_revision {
        return Readiness::Waiting(format!(
            "rolling update to complete {} pods at revision {}",
            status.updated_replicas.unwrap_or(0),
            status.update_revision.as_deref().unwrap_or("?")
        ));
    }
    Readiness::Ready
}

/// DaemonSet: kubectl's DaemonSetStatusViewer.
pub fn daemon_set(d: &DaemonSet, new_pods: &[Pod]) -> Readiness {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Readiness::Waiting("waiting for daemon set spec update to be observed".into());
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return Readiness::Waiting("waiting for daemon set spec update to be observed".into());
    }
    if let Some(failure) = failing_pod(new_pods) {
        return Readiness::Failed(failure);
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return Readiness::Waiting(format!(
            "{updated} out of {desired} new pods have been updated"
        ));
    }
    if available < desired {
        return Readiness::Waiting(format!(
            "{available} of {desired} updated pods are available"
        ));
    }
    Readiness::Ready
}

/// Job: Complete=True is ready, Failed=True is a failure.
pub fn job(j: &Job, pods: &[Pod]) -> Readiness {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        if c.status == "True" && c.type_ == "Complete" {
            return Readiness::Ready;
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Readiness::Failed(format!(
                "job failed: {}",
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no reason")
            ));
        }
    }
    if let Some(failure) = failing_pod(pods) {
        return Readiness::Failed(failure);
    }
    Readiness::Waiting("waiting for job to complete".into())
}

/// Pod: Ready condition True (or Succeeded); Failed phase or a fatal waiting reason fails.
pub fn pod(p: &Pod) -> Readiness {
    if let Some(failure) = failing_pod(std::slice::from_ref(p)) {
        return Readiness::Failed(failure);
    }
    let Some(status) = &p.status else {
        return Readiness::Waiting("waiting for pod to be scheduled".into());
    };
    match status.phase.as_deref() {
        Some("Succeeded") => return Readiness::Ready,
        Some("Failed") => {
            return Readiness::Failed(format!(
                "pod {} failed: {}",
                name_of(p),
                status.message.as_deref().unwrap_or("no message")
            ));
        }
        _ => {}
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        Readiness::Ready
    } else {
        Readiness::Waiting("waiting for pod to be ready".into())
    }
}

/// PersistentVolumeClaim: phase Bound; Lost is a failure.
pub fn persistent_volume_claim(pvc: &PersistentVolumeClaim) -> Readiness {
    match pvc.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => Readiness::Ready,
        Some("Lost") => Readiness::Failed("claim lost its volume".into()),
        _ => Readiness::Waiting("waiting for claim to be bound".into()),
    }
}

/// Service: ExternalName needs nothing; LoadBalancer needs an ingress; others a clusterIP
/// (headless "None" counts).
pub fn service(s: &Service) -> Readiness {
    let spec = s.spec.as_ref();
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("ExternalName") => Readiness::Ready,
        Some("LoadBalancer") => {
            let has_ingress = s
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| !i.is_empty());
            if has_ingress {
                Readiness::Ready
            } else {
                Readiness::Waiting("waiting for load balancer ingress".into())
            }
        }
        _ => {
            if spec
                .and_then(|s| s.cluster_ip.as_deref())
                .is_some_and(|ip| !ip.is_empty())
            {
                Readiness::Ready
            } else {
                Readiness::Waiting("waiting for cluster IP".into())
            }
        }
    }
}

/// The first pod with a container (init or main) waiting in a fatal reason, described as
/// "pod <name>: container <c> <reason>: <message>".
pub fn failing_pod(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(|p| {
        let status = p.status.as_ref()?;
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        containers.into_iter().find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            FATAL_WAITING_REASONS.contains(&reason).then(|| {
                format!(
                    "pod {}: container {} {}: {}",
                    name_of(p),
                    c.name,
                    reason,
                    waiting.message.as_deref().unwrap_or("no message")
                )
            })
        })
    })
}

/// The statuses of a pod's (main) containers; none before the kubelet reports them.
pub fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
}

fn name_of(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("<unnamed>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn yaml<T: DeserializeOwned>(s: &str) -> T {
        serde_yaml::from_str(s).expect("fixture parses")
    }

    fn deploy(generation: i64, status: &str) -> Deployment {
        yaml(&format!(
            "metadata: {{name: bff, generation: {generation}}}\nspec: {{replicas: 2, selector: {{}}, template: {{}}}}\nstatus: {status}"
        ))
    }

    #[test]
    fn deployment_waits_for_observed_generation_even_if_counts_look_ready() {
        let d = deploy(
            3,
            "{observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}",
        );
        assert_eq!(
            deployment(&d, &[]),
            Readiness::Waiting("waiting for deployment spec update to be observed".into())
        );
    }

    #[test]
    fn deployment_rules_in_kubectl_order() {
        let cases = [
            (
                "{observedGeneration: 3, replicas: 2, updatedReplicas: 1, availableReplicas: 1}",
                "1 out of 2 new replicas have been updated",
            ),
            (
                "{observedGeneration: 3, replicas: 3, updatedReplicas: 2, availableReplicas: 2}",
                "1 old replicas are pending termination",
            ),
            (
                "{observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 1}",
                "1 of 2 updated replicas are available",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(
                deployment(&deploy(3, status), &[]),
                Readiness::Waiting(want.into())
            );
        }
        let ready = deploy(
            3,
            "{observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2}",
        );
        assert!(deployment(&ready, &[]).is_ready());
    }

    #[test]
    fn deployment_fails_fast_on_progress_deadline() {
        let d = deploy(
            1,
            "{observedGeneration: 1, replicas: 2, updatedReplicas: 1, conditions: [{type: Progressing, status: 'False', reason: ProgressDeadlineExceeded, message: 'ReplicaSet bff-1 has timed out progressing.'}]}",
        );
        assert_eq!(
            deployment(&d, &[]),
            Readiness::Failed(
                "exceeded its progress deadline: ReplicaSet bff-1 has timed out progressing."
                    .into()
            )
        );
    }

    #[test]
    fn deployment_fails_fast_when_its_pods_cannot_be_created() {
        let failing = deploy(
            1,
            "{observedGeneration: 1, replicas: 0, conditions: [{type: ReplicaFailure, status: 'True', reason: FailedCreate, message: 'pods \"bff-1-x\" is forbidden: error looking up service account fluo/bff: serviceaccount \"bff\" not found'}]}",
        );
        assert_eq!(
            deployment(&failing, &[]),
            Readiness::Failed(
                "cannot create pods (FailedCreate): pods \"bff-1-x\" is forbidden: error looking up service account fluo/bff: serviceaccount \"bff\" not found"
                    .into()
            )
        );
        let recovered = deploy(
            1,
            "{observedGeneration: 1, replicas: 0, conditions: [{type: ReplicaFailure, status: 'False', reason: FailedCreate}]}",
        );
        assert!(matches!(deployment(&recovered, &[]), Readiness::Waiting(_)));
    }

    fn waiting_pod(reason: &str) -> Pod {
        yaml(&format!(
            "metadata: {{name: bff-abc}}\nstatus:\n  phase: Running\n  containerStatuses:\n  - name: bff\n    image: x\n    imageID: ''\n    ready: false\n    restartCount: 3\n    state: {{waiting: {{reason: {reason}, message: 'back-off 40s restarting'}}}}"
        ))
    }

    #[test]
    fn every_fatal_waiting_reason_fails_the_deployment_naming_pod_and_reason() {
        let d = deploy(
            1,
            "{observedGeneration: 1, replicas: 2, updatedReplicas: 2}",
        );
        for reason in FATAL_WAITING_REASONS {
            let verdict = deployment(&d, &[waiting_pod(reason)]);
            assert_eq!(
                verdict,
                Readiness::Failed(format!(
                    "pod bff-abc: container bff {reason}: back-off 40s restarting"
                ))
            );
        }
    }

    #[test]
    fn transient_waiting_reason_keeps_waiting() {
        let d = deploy(
            1,
            "{observedGeneration: 1, replicas: 2, updatedReplicas: 2}",
        );
        assert!(matches!(
            deployment(&d, &[waiting_pod("ContainerCreating")]),
            Readiness::Waiting(_)
        ));
    }

    fn sts(spec_extra: &str, status: &str) -> StatefulSet {
        yaml(&format!(
            "metadata: {{name: nats, generation: 2}}\nspec: {{replicas: 3, serviceName: nats, selector: {{}}, template: {{}}{spec_extra}}}\nstatus: {status}"
        ))
    }

    #[test]
    fn stateful_set_rules() {
        let unobserved = sts("", "{replicas: 3, observedGeneration: 1, readyReplicas: 3}");
        assert!(
            matches!(stateful_set(&unobserved, &[]), Readiness::Waiting(m) if m.contains("spec update"))
        );
        let not_ready = sts("", "{replicas: 3, observedGeneration: 2, readyReplicas: 1}");
        assert_eq!(
            stateful_set(&not_ready, &[]),
            Readiness::Waiting("waiting for 2 pods to be ready".into())
        );
        let rolling = sts(
            "",
            "{replicas: 3, observedGeneration: 2, readyReplicas: 3, updatedReplicas: 1, currentRevision: a, updateRevision: b}",
        );
        assert!(
            matches!(stateful_set(&rolling, &[]), Readiness::Waiting(m) if m.contains("revision b"))
        );
        let done = sts(
            "",
            "{replicas: 3, observedGeneration: 2, readyReplicas: 3, updatedReplicas: 3, currentRevision: b, updateRevision: b}",
        );
        assert!(stateful_set(&done, &[]).is_ready());
    }

    #[test]
    fn stateful_set_partition_counts_only_pods_above_the_partition() {
        let spec = ", updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}";
        let waiting = sts(
            spec,
            "{replicas: 3, observedGeneration: 2, readyReplicas: 3, updatedReplicas: 0}",
        );
        assert!(
            matches!(stateful_set(&waiting, &[]), Readiness::Waiting(m) if m.contains("0 out of 1"))
        );
        let done = sts(
            spec,
            "{replicas: 3, observedGeneration: 2, readyReplicas: 3, updatedReplicas: 1, currentRevision: a, updateRevision: b}",
        );
        assert!(stateful_set(&done, &[]).is_ready());
    }

    #[test]
    fn stateful_set_fails_fast_on_crashing_new_pod() {
        let s = sts("", "{replicas: 3, observedGeneration: 2, readyReplicas: 0}");
        assert!(matches!(
            stateful_set(&s, &[waiting_pod("CrashLoopBackOff")]),
            Readiness::Failed(m) if m.contains("CrashLoopBackOff")
        ));
    }

    #[test]
    fn daemon_set_rules() {
        let ds = |generation: i64, status: &str| -> DaemonSet {
            yaml(&format!(
                "metadata: {{name: agent, generation: {generation}}}\nspec: {{selector: {{}}, template: {{}}}}\nstatus: {status}"
            ))
        };
        let base = "currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 2, desiredNumberScheduled: 2";
        assert!(matches!(
            daemon_set(&ds(2, &format!("{{observedGeneration: 1, {base}, updatedNumberScheduled: 2, numberAvailable: 2}}")), &[]),
            Readiness::Waiting(m) if m.contains("spec update")
        ));
        assert_eq!(
            daemon_set(
                &ds(
                    2,
                    &format!(
                        "{{observedGeneration: 2, {base}, updatedNumberScheduled: 1, numberAvailable: 2}}"
                    )
                ),
                &[]
            ),
            Readiness::Waiting("1 out of 2 new pods have been updated".into())
        );
        assert_eq!(
            daemon_set(
                &ds(
                    2,
                    &format!(
                        "{{observedGeneration: 2, {base}, updatedNumberScheduled: 2, numberAvailable: 1}}"
                    )
                ),
                &[]
            ),
            Readiness::Waiting("1 of 2 updated pods are available".into())
        );
        assert!(daemon_set(&ds(2, &format!("{{observedGeneration: 2, {base}, updatedNumberScheduled: 2, numberAvailable: 2}}")), &[]).is_ready());
    }

    #[test]
    fn job_complete_and_failed() {
        let j = |conditions: &str| -> Job {
            yaml(&format!(
                "metadata: {{name: migrate}}\nstatus: {{conditions: {conditions}}}"
            ))
        };
        assert!(job(&j("[{type: Complete, status: 'True'}]"), &[]).is_ready());
        assert_eq!(
            job(
                &j("[{type: Failed, status: 'True', reason: BackoffLimitExceeded}]"),
                &[]
            ),
            Readiness::Failed("job failed: BackoffLimitExceeded".into())
        );
        assert!(matches!(job(&j("[]"), &[]), Readiness::Waiting(_)));
    }

    #[test]
    fn pod_ready_condition_and_phases() {
        let p = |status: &str| -> Pod { yaml(&format!("metadata: {{name: p}}\nstatus: {status}")) };
        assert!(
            pod(&p(
                "{phase: Running, conditions: [{type: Ready, status: 'True'}]}"
            ))
            .is_ready()
        );
        assert!(matches!(
            pod(&p(
                "{phase: Running, conditions: [{type: Ready, status: 'False'}]}"
            )),
            Readiness::Waiting(_)
        ));
        assert!(pod(&p("{phase: Succeeded}")).is_ready());
        assert!(
            matches!(pod(&p("{phase: Failed, message: OOM}")), Readiness::Failed(m) if m.contains("OOM"))
        );
        assert!(
            matches!(pod(&waiting_pod("ErrImagePull")), Readiness::Failed(m) if m.contains("ErrImagePull"))
        );
    }

    #[test]
    fn pvc_and_service_rules() {
        let pvc = |phase: &str| -> PersistentVolumeClaim {
            yaml(&format!(
                "metadata: {{name: data}}\nstatus: {{phase: {phase}}}"
            ))
        };
        assert!(persistent_volume_claim(&pvc("Bound")).is_ready());
        assert!(matches!(
            persistent_volume_claim(&pvc("Pending")),
            Readiness::Waiting(_)
        ));
        assert!(matches!(
            persistent_volume_claim(&pvc("Lost")),
            Readiness::Failed(_)
        ));

        let svc = |spec: &str, status: &str| -> Service {
            yaml(&format!(
                "metadata: {{name: s}}\nspec: {spec}\nstatus: {status}"
            ))
        };
        assert!(service(&svc("{clusterIP: 10.0.0.1}", "{}")).is_ready());
        assert!(service(&svc("{clusterIP: None}", "{}")).is_ready());
        assert!(matches!(service(&svc("{}", "{}")), Readiness::Waiting(_)));
        assert!(matches!(
            service(&svc(
                "{type: LoadBalancer, clusterIP: 10.0.0.1}",
                "{loadBalancer: {}}"
            )),
            Readiness::Waiting(_)
        ));
        assert!(
            service(&svc(
                "{type: LoadBalancer, clusterIP: 10.0.0.1}",
                "{loadBalancer: {ingress: [{ip: 1.2.3.4}]}}"
            ))
            .is_ready()
        );
        assert!(service(&svc("{type: ExternalName, externalName: x.example}", "{}")).is_ready());
    }
}
