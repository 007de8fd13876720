//! Controllers: Deployment rollouts (conditions, revisions, rollback, deadline), StatefulSet,
//! DaemonSet, Job, Service + Endpoints, PVC binding.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::Condition;
use serde_json::json;

use super::support::*;

/// kubectl's rollout-status success rule (observedGeneration first).
fn rolled_out() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let Some(st) = &d.status else { return false };
        let want = d.spec.replicas.unwrap_or(1);
        st.observed_generation >= d.metadata.generation
            && st.updated_replicas.unwrap_or(0) == want
            && st.replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want
    }
}

fn condition(d: &Deployment, kind: &str) -> (String, String) {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_.as_deref() == Some(kind)))
        .map(|c| {
            (
                c.status.clone().unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default()
}

fn revision(meta: &kube::api::ObjectMeta) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn deployment_rolls_out_with_conditions_revisions_and_rollback() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("web", "nginx:1.27", 3))
        .await
        .unwrap();
    let d = wait_for(&api, "web", "first rollout", rolled_out()).await;
    assert_eq!(
        condition(&d, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    assert_eq!(
        condition(&d, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
    assert_eq!(revision(&d.metadata), "1");
    let spec = d.spec.clone();
    assert_eq!(
        spec.strategy.unwrap().rolling_update.unwrap().max_surge,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into()))
    );
    assert_eq!(spec.progress_deadline_seconds, Some(600));

    let first_rs = rs_api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(first_rs.len(), 1);
    let first_name = first_rs[0].metadata.name.clone().unwrap();
    let hash = first_rs[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(first_name, format!("web-{hash}"));

    let set_image = |image: &str| {
        Patch::Strategic(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        )
    };
    api.patch("web", &PatchParams::default(), &set_image("nginx:1.28"))
        .await
        .unwrap();
    let d = wait_for(&api, "web", "second rollout", rolled_out()).await;
    assert_eq!(revision(&d.metadata), "2");
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(2));
    let sets = rs_api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 2);
    let old = sets
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(first_name.as_str()))
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));

    // Rolling back to the first template reuses its ReplicaSet under revision 3.
    api.patch("web", &PatchParams::default(), &set_image("nginx:1.27"))
        .await
        .unwrap();
    let d = wait_for(&api, "web", "rollback rollout", rolled_out()).await;
    assert_eq!(revision(&d.metadata), "3");
    let reused = rs_api.get(&first_name).await.unwrap();
    assert_eq!(revision(&reused.metadata), "3");
    assert_eq!(reused.spec.replicas, Some(3));
    assert_eq!(
        rs_api
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn revision_history_limit_prunes_old_replicasets() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let mut d = deployment("hist", "app:1", 1);
    d.spec.revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    for tag in 2..=4 {
        wait_for(&api, "hist", "rollout", rolled_out()).await;
        api.patch("hist", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("app:{tag}")}]}}}}))).await.unwrap();
    }
    wait_for(&api, "hist", "last rollout", rolled_out()).await;
    eventually("old ReplicaSets pruned to the history limit", || async {
        let n = rs_api
            .list(&ListParams::default().labels("app=hist"))
            .await
            .unwrap()
            .items
            .len();
        (n == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn crashloop_exceeds_the_progress_deadline() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut d = deployment("crash", "registry.local/app:crashloop", 1);
    d.spec.progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = wait_for(
        &api,
        "crash",
        "ProgressDeadlineExceeded",
        |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                condition(d, "Progressing") == ("False".into(), "ProgressDeadlineExceeded".into())
            })
        },
    )
    .await;
    assert_eq!(condition(&d, "Available").0, "False");
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs[0].restart_count)
            .unwrap_or(0)
    };
    let first = eventually("a crash-looping pod", || async {
        let list = pods
            .list(&ListParams::default().labels("app=crash"))
            .await
            .unwrap()
            .items;
        list.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
                .as_deref()
                == Some("CrashLoopBackOff")
        })
    })
    .await;
    let name = first.metadata.name.clone().unwrap();
    let before = restarts(&first);
    wait_for(
        &pods,
        &name,
        "restartCount to grow",
        move |p: Option<&Pod>| p.is_some_and(|p| restarts(p) > before),
    )
    .await;
}

#[tokio::test]
async fn statefulset_creates_ordered_pods_claims_and_revisions() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let sts: StatefulSet = from_yaml(
        r#"
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "postgres:16"}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#,
    );
    api.create(&PostParams::default(), &sts).await.unwrap();
    let ready = |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
            st.ready_replicas == Some(2)
                && st.updated_replicas == Some(2)
                && st.current_revision == st.update_revision
        })
    };
    let s = wait_for(&api, "db", "statefulset ready", ready).await;
    let rev1 = s.status.unwrap().update_revision.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for n in ["db-0", "db-1"] {
        let p = pods.get(n).await.unwrap();
        assert_eq!(p.spec.unwrap().hostname.as_deref(), Some(n));
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let claim = wait_for(
        &pvcs,
        "data-db-0",
        "claim bound",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await;
    assert!(claim.spec.unwrap().volume_name.is_some());
    api.patch("db", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}}))).await.unwrap();
    let s = wait_for(
        &api,
        "db",
        "updated statefulset",
        move |s: Option<&StatefulSet>| {
            ready(s)
                && s.and_then(|s| s.status.as_ref())
                    .and_then(|st| st.update_revision.clone())
                    != Some(rev1.clone())
        },
    )
    .await;
    assert_eq!(s.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn daemonset_and_job_complete() {
    let emu = emulator().await;
    let client = emu.client().await;
    let ds_api: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let ds: DaemonSet = from_yaml(
        r#"
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "agent:1"}]}
"#,
    );
    ds_api.create(&PostParams::default(), &ds).await.unwrap();
    wait_for(
        &ds_api,
        "agent",
        "daemonset available",
        |d: Option<&DaemonSet>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.desired_number_scheduled == 1
                    && s.number_available == Some(1)
                    && s.updated_number_scheduled == Some(1)
            })
        },
    )
    .await;

    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let job: Job = from_yaml(
        r#"
metadata: {name: migrate}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: "migrate:1"}]
"#,
    );
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = wait_for(&jobs, "migrate", "job complete", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            })
    })
    .await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(2));
    assert!(st.completion_time.is_some());

    let failing: Job = from_yaml(
        r#"
metadata: {name: broken}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: "migrate:crashloop"}]
"#,
    );
    jobs.create(&PostParams::default(), &failing).await.unwrap();
    wait_for(&jobs, "broken", "job failed", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "Failed"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("BackoffLimitExceeded")
                })
            })
    })
    .await;
}

#[tokio::test]
async fn service_gets_cluster_ip_and_endpoints_from_ready_pods() {
    let emu = emulator().await;
    let client = emu.client().await;
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = from_yaml(
        r#"
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#,
    );
    let created = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut d = deployment("web", "nginx:1", 2);
    d.spec.template.spec.as_mut().unwrap().containers[0].ports = Some(vec![from_json(
        json!({"name": "http", "containerPort": 8080}),
    )]);
    api.create(&PostParams::default(), &d).await.unwrap();
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let ep = wait_for(
        &eps,
        "web",
        "two ready endpoints",
        |e: Option<&Endpoints>| {
            e.and_then(|e| e.subsets.as_ref())
                .and_then(|s| s.first())
                .and_then(|s| s.addresses.as_ref())
                .is_some_and(|a| a.len() == 2)
        },
    )
    .await;
    let subset = &ep.subsets.unwrap()[0];
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8080);
}

#[tokio::test]
async fn pods_refused_by_admission_surface_as_replica_failure_until_the_cause_is_fixed() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut d = deployment("needs-sa", "nginx:1.27", 2);
    if let Some(spec) = d.spec.template.spec.as_mut() {
        spec.service_account_name = Some("needs-sa".into());
    }
    api.create(&PostParams::default(), &d).await.unwrap();
    let refused = |d: Option<&Deployment>| {
        d.is_some_and(|d| condition(d, "ReplicaFailure") == ("True".into(), "FailedCreate".into()))
    };
    let d = wait_for(
        &api,
        "needs-sa",
        "ReplicaFailure on the deployment",
        refused,
    )
    .await;
    let message = d
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
        .and_then(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.starts_with("pods \"needs-sa-")
            && message.ends_with(
                "\" is forbidden: error looking up service account default/needs-sa: serviceaccount \"needs-sa\" not found"
            ),
        "{message}"
    );
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let listed = pods
        .list(&ListParams::default().labels("app=needs-sa"))
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "no pod was stored");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let failed = events
        .list(&ListParams::default().fields("reason=FailedCreate"))
        .await
        .unwrap();
    assert!(
        failed
            .items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Error creating: pods"))),
        "{failed:?}"
    );

    // Creating the account fixes it without touching the Deployment: the controller retries.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::default_namespaced(client.clone());
    accounts
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "needs-sa"}})),
        )
        .await
        .unwrap();
    let d = wait_for(&api, "needs-sa", "rollout after the fix", rolled_out()).await;
    assert_eq!(condition(&d, "ReplicaFailure"), Default::default());
}
