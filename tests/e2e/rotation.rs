//! issue 21: `fluo-deploy rotate nats` on the real stack of kube-emulator's process runtime
//! (real nats-server, BFF and worker processes), under steady job traffic through the Ingress:
//! no request fails while the users are rotated, NATS refuses the old credentials afterwards
//! and accepts the new, no password is printed, and the rotation is in nats' history. A
//! rotation without `--reason` is refused first and changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use fluo_rehearse::load::Traffic;
use fluo_rehearse::steps;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

async fn client(stack: &fluo_rehearse::Stack) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&stack.runner.kubeconfig).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn secret(client: &kube::Client, name: &str) -> Secret {
    Api::<Secret>::namespaced(client.clone(), "fluo")
        .get(name)
        .await
        .unwrap()
}

fn value(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("data");
    String::from_utf8(data[key].0.clone()).unwrap()
}

/// What a refused rotation must leave alone: the Secrets' and Deployments' resource versions.
async fn snapshot(client: &kube::Client) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for name in ["nats-auth", "nats-credentials"] {
        out.push((
            name.to_owned(),
            secret(client, name).await.metadata.resource_version,
        ));
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), "fluo");
    for d in deployments.list(&Default::default()).await.unwrap() {
        out.push((d.metadata.name.unwrap(), d.metadata.resource_version));
    }
    out
}

/// NATS' answer to a user and password, through a port-forward to nats-0 with the CA of
/// nats-tls: Ok(true) accepted, Ok(false) authorization violation.
async fn accepted(client: &kube::Client, user: &str, password: &str) -> Result<bool, String> {
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        ca.path(),
        value(&secret(client, "nats-tls").await, "ca.crt"),
    )
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fluo");
    let forward = fluo_core::portforward::PortForward::to_pod(pods, "nats-0".into(), 4222)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("tls://localhost:{}", forward.local_addr().port());
    match async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .require_tls(true)
        .add_root_certificates(ca.path().to_path_buf())
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => Ok(false),
        Err(e) => Err(format!("connecting as {user}: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_users_rotate_under_load_without_a_failed_request_and_the_old_are_refused() {
    let stack = fluo_e2e::process_stack().await;
    let fail = |what: &str, e: String| -> ! {
        panic!(
            "{what}: {e}\n--- kube-emulator log\n{}",
            stack.emulator_log()
        )
    };
    steps::deploy_everything(&stack)
        .await
        .unwrap_or_else(|e| fail("deploy --all", e));
    let client = client(&stack).await;
    let old = secret(&client, "nats-credentials").await;
    let (old_user, old_password) = (value(&old, "bff.user"), value(&old, "bff.password"));
    assert_eq!(old_user, "bff");

    // Without --reason: refused before anything is touched.
    let before = snapshot(&client).await;
    let refused = stack.run("fluo-deploy", &["rotate", "nats", "--yes"]).await;
    if let Err(e) = refused.expect(2) {
        fail("rotate without --reason", e);
    }
    assert!(refused.stderr.contains("needs --reason"), "{refused}");
    assert_eq!(
        snapshot(&client).await,
        before,
        "a refused rotation changed something"
    );

    let traffic = Traffic::start(stack.api(), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = stack
        .run(
            "fluo-deploy",
            &[
                "rotate",
                "nats",
                "--reason",
                "quarterly rotation",
                "--yes",
                "--timeout",
                "90s",
                "-o",
                "json",
            ],
        )
        .await;
    // The last requests go to the new pods only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = traffic.stop().await;
    if let Err(e) = rotated.expect(0) {
        fail("rotate nats", e);
    }
    eprintln!(
        "answers during the rotation: {answers:?}\n{}",
        rotated.stderr
    );
    let total: usize = answers.values().sum();
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        ["202"],
        "every request during the rotation accepted: {answers:?}"
    );
    assert!(
        total >= 50,
        "too little traffic to show anything: {answers:?}"
    );

    let json = rotated.json().unwrap_or_else(|e| fail("rotate -o json", e));
    assert_eq!(
        json["users"],
        serde_json::json!(["bff-2", "worker-2", "monitor-2", "backup-2"])
    );
    assert_eq!(
        json["dropped"],
        serde_json::json!(["bff", "worker", "monitor", "backup"])
    );
    let mut restarted: Vec<String> = json["restarted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    restarted.sort();
    assert_eq!(restarted, ["fluo-bff", "fluo-worker"], "{json}");

    let new = secret(&client, "nats-credentials").await;
    let (new_user, new_password) = (value(&new, "bff.user"), value(&new, "bff.password"));
    assert_eq!(new_user, "bff-2");
    assert_eq!(accepted(&client, &old_user, &old_password).await, Ok(false));
    assert_eq!(accepted(&client, &new_user, &new_password).await, Ok(true));
    for password in [&old_password, &new_password] {
        assert!(
            !rotated.stdout.contains(password.as_str())
                && !rotated.stderr.contains(password.as_str()),
            "a password was printed"
        );
    }
    // The step annotation is gone: the rotation is finished.
    let auth = secret(&client, "nats-auth").await;
    let annotations: BTreeMap<String, String> = auth.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("fluo.dev/nats-rotation"),
        "{annotations:?}"
    );

    let history = stack.run("fluo-deploy", &["history", "nats"]).await;
    if let Err(e) = history.expect(0) {
        fail("history nats", e);
    }
    assert!(
        history
            .stdout
            .contains("rotate NATS users to bff-2, worker-2, monitor-2, backup-2"),
        "{history}"
    );
    // Jobs still flow end to end with the new users (BFF publishes, a worker completes).
    let smoke = steps::smoke_passes(&stack)
        .await
        .unwrap_or_else(|e| fail("fluo-smoke after the rotation", e));
    assert!(smoke.contains("\"worker\":\"fluo-worker-"), "{smoke}");
}
