//! Bad requests get the apiserver's kind of error and change nothing.

use kube_emulator::Emulator;

use super::support::*;

/// Sends a request that must fail with `code`, and checks the store did not move.
#[allow(clippy::too_many_arguments)]
async fn rejected(
    emu: &Emulator,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
    code: u16,
    reason: &str,
    text: &str,
) {
    let before = emu.store().lock().current_rv();
    let r = raw(emu, method, path, content_type, "", body).await;
    assert_eq!(r.status, code, "{method} {path}: {}", r.body);
    let s = r.json();
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["status"], "Failure");
    assert_eq!(s["reason"], reason, "{}", r.body);
    assert_eq!(s["code"], code);
    assert!(
        s["message"].as_str().unwrap().contains(text),
        "message {:?} lacks {text:?}",
        s["message"]
    );
    assert_eq!(
        emu.store().lock().current_rv(),
        before,
        "{method} {path} changed the store"
    );
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn malformed_bodies() {
    let emu = emulator().await;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        "{\"kind\": ",
        400,
        "BadRequest",
        "unrecognized",
    )
    .await;
    rejected(
        &emu,
        "POST",
        CM,
        "application/yaml",
        "kind: [unclosed",
        400,
        "BadRequest",
        "unrecognized",
    )
    .await;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        "[1,2]",
        400,
        "BadRequest",
        "cannot be handled",
    )
    .await;
    rejected(
        &emu,
        "PATCH",
        &format!("{CM}/x"),
        "application/merge-patch+json",
        "{}",
        404,
        "NotFound",
        "configmaps \"x\" not found",
    )
    .await;
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"typed"},"data":{"k":5}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        body,
        400,
        "BadRequest",
        "cannot be handled as a ConfigMap",
    )
    .await;
    rejected(
        &emu,
        "PATCH",
        &format!("{CM}/x"),
        "text/plain",
        "{}",
        415,
        "UnsupportedMediaType",
        "unknown format",
    )
    .await;
}

#[tokio::test]
async fn unknown_kinds_and_mismatched_types() {
    let emu = emulator().await;
    let widget = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}"#;
    rejected(
        &emu,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json",
        widget,
        404,
        "NotFound",
        "could not find the requested resource",
    )
    .await;
    let wrong_kind = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        wrong_kind,
        400,
        "BadRequest",
        "does not match the expected kind",
    )
    .await;
    let no_kind = r#"{"apiVersion":"v1","metadata":{"name":"s"}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        no_kind,
        400,
        "BadRequest",
        "Object 'Kind' is missing",
    )
    .await;
    let wrong_version =
        r#"{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"d"}}"#;
    rejected(
        &emu,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        wrong_version,
        400,
        "BadRequest",
        "does not match the expected API version",
    )
    .await;
}

#[tokio::test]
async fn missing_names_and_invalid_values() {
    let emu = emulator().await;
    let no_name = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        no_name,
        422,
        "Invalid",
        "metadata.name: Required value",
    )
    .await;
    let bad_name = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_Valid"}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        bad_name,
        422,
        "Invalid",
        "metadata.name: Invalid value",
    )
    .await;
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"selector":{"a":"b"}}}"#;
    rejected(
        &emu,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        svc,
        422,
        "Invalid",
        "spec.ports: Required value",
    )
    .await;
    let with_rv =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"r","resourceVersion":"5"}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        with_rv,
        400,
        "BadRequest",
        "resourceVersion should not be set",
    )
    .await;
}

#[tokio::test]
async fn wrong_namespace_scope() {
    let emu = emulator().await;
    let other_ns = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"kube-system"}}"#;
    rejected(
        &emu,
        "POST",
        CM,
        "application/json",
        other_ns,
        400,
        "BadRequest",
        "does not match the namespace",
    )
    .await;
    let cr = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"}}"#;
    rejected(
        &emu,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/clusterroles",
        "application/json",
        cr,
        404,
        "NotFound",
        "could not find",
    )
    .await;
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#;
    rejected(
        &emu,
        "POST",
        "/api/v1/configmaps",
        "application/json",
        cm,
        405,
        "MethodNotAllowed",
        "does not allow",
    )
    .await;
    rejected(
        &emu,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        "application/json",
        cm,
        404,
        "NotFound",
        "namespaces \"nowhere\" not found",
    )
    .await;
    rejected(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b",
        "",
        "",
        400,
        "BadRequest",
        "unable to parse requirement",
    )
    .await;
    rejected(
        &emu,
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3D1",
        "",
        "",
        400,
        "BadRequest",
        "field label not supported",
    )
    .await;
}
