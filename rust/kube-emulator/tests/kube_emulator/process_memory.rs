//! `--runtime process` memory limits: a cgroup per container from `resources.limits.memory`;
//! a process over its limit is OOM-killed (`OOMKilled`, exit 137) and restarted per
//! restartPolicy; no cgroup outlives its pod or the emulator. Needs root and a writable cgroup
//! memory controller (v1 `memory` hierarchy or cgroup2 with `memory`), as CI has.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::process::*;
use super::support::*;

/// python3 allocating (and touching) `mib` MiB, then sleeping.
fn allocating(name: &str, limit: &str, mib: u32) -> Value {
    let script = format!(
        "b = bytearray({mib} * 1024 * 1024)\nprint('allocated', flush=True)\nimport time\ntime.sleep(3600)\n"
    );
    json!({"name": name, "image": "test/python:3", "command": ["python3", "-c", script],
        "resources": {"limits": {"memory": limit}}})
}

fn with_policy(mut p: Pod, policy: &str) -> Pod {
    p.spec.as_mut().unwrap().restart_policy = Some(policy.into());
    p
}

/// The base cgroup the emulator of `slot` recorded (the test fails if it has none).
fn base_cgroup(slot: u8) -> PathBuf {
    let record = Path::new("/run/kube-emulator")
        .join(slot.to_string())
        .join("cgroup");
    let base = std::fs::read_to_string(&record).unwrap_or_else(|e| {
        panic!(
            "no cgroup recorded in {} ({e}): this test needs a writable cgroup memory controller \
             (a v1 `memory` hierarchy or cgroup2 with `memory` in cgroup.controllers) and root",
            record.display()
        )
    });
    PathBuf::from(base.trim())
}

fn slot_of(p: &Pod) -> u8 {
    let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
    ip.split('.').nth(2).unwrap().parse().unwrap()
}

fn pid_of(p: &Pod) -> u32 {
    container_status(p, 0)["containerID"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed_and_cgroups_go_with_their_pods() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    create(
        &pods,
        &with_policy(
            pod("hog", json!({}), json!([allocating("app", "32Mi", 200)])),
            "Never",
        ),
    )
    .await;
    create(
        &pods,
        &pod(
            "hog-again",
            json!({}),
            json!([allocating("app", "32Mi", 200)]),
        ),
    )
    .await;
    create(
        &pods,
        &pod("fits", json!({}), json!([allocating("app", "64Mi", 8)])),
    )
    .await;
    create(
        &pods,
        &pod(
            "bad-limit",
            json!({}),
            json!([allocating("app", "lots", 1)]),
        ),
    )
    .await;

    // restartPolicy Never: the pod fails, its container terminated OOMKilled with 137.
    let p = wait_for(&pods, "hog", "the pod Failed", |p: Option<&Pod>| {
        p.is_some_and(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
    })
    .await;
    let cs = container_status(&p, 0);
    assert_eq!(cs["state"]["terminated"]["reason"], "OOMKilled", "{cs}");
    assert_eq!(cs["state"]["terminated"]["exitCode"], 137, "{cs}");
    assert!(!logs(&pods, "hog", "app", false).await.contains("allocated"));

    // restartPolicy Always: restarted, lastState says why.
    let p = wait_for(&pods, "hog-again", "a restart", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs[0].restart_count >= 1)
        })
    })
    .await;
    let cs = container_status(&p, 0);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "OOMKilled", "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137, "{cs}");

    // Under its limit: runs, in its own cgroup with the limit from the spec.
    eventually("the small allocation succeeded", || async {
        logs(&pods, "fits", "app", false)
            .await
            .contains("allocated")
            .then_some(())
    })
    .await;
    let fits = pods.get("fits").await.unwrap();
    let cs = container_status(&fits, 0);
    assert!(cs["state"]["running"].is_object(), "{cs}");
    assert_eq!(cs["restartCount"], 0, "{cs}");
    let slot = slot_of(&fits);
    let base = base_cgroup(slot);
    let fits_uid = fits.metadata.uid.clone().unwrap();
    let dir = base.join(&fits_uid).join("app");
    let limit_file = ["memory.limit_in_bytes", "memory.max"]
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no memory limit file in {}", dir.display()));
    let limit = std::fs::read_to_string(&limit_file).unwrap();
    assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    let pid = pid_of(&fits);
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "process {pid} is in {}: {procs:?}",
        dir.display()
    );

    // A limit that is no quantity: the kubelet's config error naming field and value.
    let p = wait_for(
        &pods,
        "bad-limit",
        "CreateContainerConfigError",
        |p: Option<&Pod>| {
            p.is_some_and(|p| {
                container_status(p, 0)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
            })
        },
    )
    .await;
    let cs = container_status(&p, 0);
    let message = cs["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("resources.limits.memory \"lots\""), "{cs}");
    let uid = p.metadata.uid.clone().unwrap();
    assert!(
        !base.join(&uid).exists(),
        "no cgroup for a container that never started"
    );

    // Deleting the pod removes its cgroups; shutting down removes the emulator's.
    pods.delete("fits", &DeleteParams::default()).await.unwrap();
    let pod_cgroup = base.join(&fits_uid);
    eventually("the deleted pod's cgroup is removed", || async {
        (!pod_cgroup.exists()).then_some(())
    })
    .await;
    assert!(base.exists());
    emu.shutdown().await;
    assert!(!base.exists(), "{} survived the emulator", base.display());
    assert!(!alive(pid));
}
