use super::*;

fn cm(name: &str) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":{"a":"1"}})
}

fn setup() -> (std::sync::Arc<Store>, &'static ResourceDef, WriteOptions) {
    let store = Store::new(64);
    bootstrap(&store);
    (
        store,
        by_kind("", "ConfigMap").unwrap(),
        WriteOptions {
            field_manager: "test".into(),
            ..Default::default()
        },
    )
}

#[test]
fn create_get_conflicts_and_stale_updates() {
    let (store, def, opts) = setup();
    let w = create(&store, def, "default", cm("a"), &opts).unwrap();
    assert_eq!(w.object["metadata"]["namespace"], "default");
    assert!(!meta_str(&w.object, "uid").is_empty());
    assert_eq!(
        create(&store, def, "default", cm("a"), &opts)
            .unwrap_err()
            .code,
        409
    );
    assert_eq!(
        create(&store, def, "nope", cm("b"), &opts)
            .unwrap_err()
            .message,
        "namespaces \"nope\" not found"
    );
    let mut stale = w.object.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"]["a"] = json!("2");
    let e = update(&store, def, "default", "a", stale, Part::Main, &opts).unwrap_err();
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert_eq!(get(&store, def, "default", "a").unwrap()["data"]["a"], "1");
}

#[test]
fn dry_run_and_strict_validation_change_nothing() {
    let (store, def, mut opts) = setup();
    opts.dry_run = true;
    let w = create(&store, def, "default", cm("dry"), &opts).unwrap();
    assert_eq!(w.object["metadata"]["name"], "dry");
    assert_eq!(get(&store, def, "default", "dry").unwrap_err().code, 404);
    opts.dry_run = false;
    opts.field_validation = FieldValidation::Strict;
    let mut bad = cm("bad");
    bad["bogus"] = json!(1);
    let e = create(&store, def, "default", bad, &opts).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(
        e.message.contains("unknown field \"bogus\""),
        "{}",
        e.message
    );
    assert_eq!(get(&store, def, "default", "bad").unwrap_err().code, 404);
}

#[test]
fn list_paginates_with_continue() {
    let (store, def, opts) = setup();
    for n in ["a", "b", "c"] {
        create(&store, def, "default", cm(n), &opts).unwrap();
    }
    let first = list(
        &store,
        def,
        Some("default"),
        &ListOptions {
            limit: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 1);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let rest = list(
        &store,
        def,
        Some("default"),
        &ListOptions {
            continue_token: Some(token),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rest["items"][0]["metadata"]["name"], "c");
}
