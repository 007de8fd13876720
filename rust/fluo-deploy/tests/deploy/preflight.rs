//! What a deploy will need is checked before the first apply, and the local environment's
//! Grafana admin Secret is made when missing.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::harness::{LOCAL_ENV, World, workload};
use crate::{assert_untouched, records};

#[tokio::test(flavor = "multi_thread")]
async fn an_access_url_the_post_checks_need_is_missing_exit_2_before_anything_is_applied() {
    let w = World::start().await;
    let env = LOCAL_ENV
        .replace("post_deploy_checks = false", "post_deploy_checks = true")
        .replace(", grafana = \"http://127.0.0.1:9\"", "");
    w.infra.write("environments/local.toml", &env);
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has("the post-deploy checks cannot run as configured (nothing changed")
        .stderr_has("access.urls.grafana is not set in");
    assert_untouched(&w.client).await;
    // Without post checks the same deploy needs no URL.
    w.cmd(["deploy", "nats", "--no-post-checks"])
        .run()
        .await
        .code(0);
    assert_eq!(records(&w.client).await, ["fluo.release.nats.v1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_analysis_without_a_prometheus_url_exit_2_before_anything_is_applied() {
    let w = World::start().await;
    // Post-deploy checks off (they would check every URL): the analysis still needs Prometheus.
    let env = format!(
        "{}\n[strategy.components.bff]\nkind = \"canary\"\nsteps = [50, 100]\n\
         [strategy.components.bff.analysis]\ninterval = \"1s\"\nsamples = 1\n\
         [[strategy.components.bff.analysis.checks]]\nmetric = \"http-5xx-ratio\"\nmax = 0.05\n",
        LOCAL_ENV.replace(", prometheus = \"http://127.0.0.1:9\"", "")
    );
    w.infra.write("environments/local.toml", &env);
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has("the analysis of bff's canary rollout cannot reach Prometheus as configured (nothing changed")
        .stderr_has("access.urls.prometheus is not set in");
    assert_untouched(&w.client).await;
    // A rolling deploy of the same environment needs no Prometheus.
    w.cmd(["deploy", "nats"]).run().await.code(0);
    assert_eq!(records(&w.client).await, ["fluo.release.nats.v1"]);
}

/// prometheus's Deployment declares the external Secret grafana-admin (as grafana's does).
fn declare_grafana_admin(w: &World) {
    let manifest = workload("prometheus", "fluo/prometheus:2.53").replace(
        "metadata:\n  name: prometheus\nspec:\n  replicas",
        "metadata:\n  name: prometheus\n  annotations:\n    fluo.dev/external-secrets: grafana-admin\nspec:\n  replicas",
    );
    assert!(manifest.contains("fluo.dev/external-secrets"), "{manifest}");
    w.infra
        .write("components/prometheus/manifests/prometheus.yaml", &manifest);
}

async fn admin_password(w: &World) -> Option<Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "fluo");
    let secret = secrets
        .get_opt("grafana-admin")
        .await
        .expect("reading Secret fluo/grafana-admin")?;
    Some(secret.data.expect("data")["admin-password"].0.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn local_grafana_admin_secret_is_created_once_with_a_random_password_and_reused() {
    let w = World::start().await;
    declare_grafana_admin(&w);
    let first = w.cmd(["deploy", "prometheus"]).run().await;
    first
        .code(0)
        .stderr_has("created a random admin password in Secret fluo/grafana-admin")
        .stderr_has(
            "read the password with: kubectl -n fluo get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d",
        );
    let password = admin_password(&w).await.expect("the Secret was created");
    assert_eq!(password.len(), 64);
    let text = String::from_utf8(password.clone()).unwrap();
    assert!(
        !first.stderr.contains(&text) && !first.stdout.contains(&text),
        "the password was printed"
    );
    w.cmd(["deploy", "prometheus"])
        .run()
        .await
        .code(0)
        .stderr_has("using the existing Secret fluo/grafana-admin");
    assert_eq!(
        admin_password(&w).await,
        Some(password),
        "reused, not replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_environments_never_create_the_grafana_admin_secret() {
    let w = World::start().await;
    declare_grafana_admin(&w);
    w.infra.write(
        "environments/staging.toml",
        &LOCAL_ENV.replace("name = \"local\"", "name = \"staging\""),
    );
    let run = w
        .cmd(["--env", "staging", "deploy", "prometheus"])
        .run()
        .await;
    run.code(0);
    assert!(!run.stderr.contains("grafana-admin"), "{}", run.stderr);
    assert_eq!(admin_password(&w).await, None);
    assert_eq!(records(&w.client).await, ["fluo.release.prometheus.v1"]);
}
