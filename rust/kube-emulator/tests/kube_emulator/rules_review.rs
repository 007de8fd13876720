//! SelfSubjectRulesReview through the real kubectl (`auth can-i --list`, which posts one) and
//! kube-rs: the rules of the impersonated identity's bindings, everything for the admin.

use kube::api::{Api, PostParams};

use super::kubectl_cli::*;
use super::support::*;

const RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deployer}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: deployer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "fluo:deployers"}
"#;

#[tokio::test]
async fn kubectl_auth_can_i_list_shows_the_impersonated_groups_rules() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.write("rbac.yaml", RBAC);
    k.run(&["apply", "-f", &k.path("rbac.yaml")])
        .await
        .success();
    let listed = k
        .run(&[
            "auth",
            "can-i",
            "--list",
            "-n",
            "default",
            "--as",
            "alice",
            "--as-group",
            "fluo:deployers",
        ])
        .await
        .success();
    let line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("deployments.apps"))
        .unwrap_or_else(|| panic!("no deployments.apps rule in {}", listed.stdout));
    assert!(line.contains("[get patch]"), "{line}");
    assert!(!listed.stdout.contains("secrets"), "{}", listed.stdout);

    // Another namespace: nothing bound there.
    let other = k
        .run(&[
            "auth",
            "can-i",
            "--list",
            "-n",
            "kube-system",
            "--as",
            "alice",
            "--as-group",
            "fluo:deployers",
        ])
        .await
        .success();
    assert!(
        !other.stdout.contains("deployments.apps"),
        "{}",
        other.stdout
    );
}

#[tokio::test]
async fn kube_rs_gets_everything_for_the_admin_and_a_namespace_is_required() {
    use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
    let emu = emulator().await;
    let api: Api<SelfSubjectRulesReview> = Api::all(emu.client().await);
    let review = |ns: Option<&str>| SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: ns.map(str::to_owned),
        },
        ..Default::default()
    };
    let answered = api
        .create(&PostParams::default(), &review(Some("default")))
        .await
        .expect("the review is answered");
    let rules = answered.status.expect("a status").resource_rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].verbs, ["*"]);
    assert_eq!(rules[0].resources.as_deref(), Some(&["*".to_owned()][..]));

    let err = api
        .create(&PostParams::default(), &review(None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.namespace"), "{err}");
}
