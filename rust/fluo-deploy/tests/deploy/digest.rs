//! Digest resolution (issue 13, `[images.resolve]`) against a real registry: Debian's
//! `docker-registry` on loopback, images pushed through its HTTP API. A resolved tag is applied
//! and recorded as `name@sha256:...` (the registry's digest); an unknown tag is refused; a
//! registry that is down is refused where digests are required and recorded as unresolved
//! elsewhere. Refusals change nothing (objects, records and anchors compared).

use fluo_teststack::Registry;

use crate::harness::World;
use crate::image_of;
use crate::trust::{env, payload, unchanged};

/// The fixture environment with images from `addr` and resolution on; `extra` goes in [images].
fn resolving(addr: &str, name: &str, extra: &str) -> String {
    env(&[(
        "registry = \"\"",
        &format!("registry = \"{addr}/fluo\"\n{extra}\n[images.resolve]\nenabled = true\ntimeout = \"5s\""),
    )])
    .replace("name = \"local\"", &format!("name = \"{name}\""))
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_pinned_to_the_registry_digest_and_refused_or_recorded_when_unresolvable() {
    let registry = Registry::start().await.unwrap_or_else(|e| panic!("{e}"));
    let addr = registry.addr().to_string();
    let mut digests = Vec::new();
    for (deployment, repository, tag) in [
        ("nats", "fluo/nats", "2.10"),
        ("prometheus", "fluo/prometheus", "2.53"),
        ("bff", "fluo/fluo-bff", "dev"),
        ("workers", "fluo/fluo-worker", "dev"),
    ] {
        let digest = registry.push_image(repository, tag).await.expect("push");
        digests.push((deployment, format!("{addr}/{repository}@{digest}")));
    }
    let w = World::start().await;
    w.infra
        .write("environments/local.toml", &resolving(&addr, "local", ""));
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(0)
        .stderr_has(&format!(
            "image {addr}/fluo/fluo-bff:dev resolved: {}",
            digests[2].1
        ));
    for (deployment, pinned) in &digests {
        assert_eq!(image_of(&w.client, deployment).await.as_ref(), Some(pinned));
        let record = payload(&w, &format!("fluo.release.{deployment}.v1")).await;
        let images: Vec<&str> = record["images"]
            .as_object()
            .expect("images")
            .values()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(images, [pinned.as_str()], "record of {deployment}");
        assert!(record.get("unresolved_digests").is_none(), "{record}");
    }
    // `diff` compares what a deploy would apply: the pinned reference, so nothing changes.
    w.cmd(["diff", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("bff: Deployment/bff (unchanged)");

    // A tag the registry does not have: refused, nothing changed.
    unchanged(&w, async {
        w.cmd([
            "deploy",
            "bff",
            "--image",
            &format!("fluo-bff={addr}/fluo/fluo-bff:9.9"),
        ])
        .run()
        .await
        .code(2)
        .stderr_has("tag `9.9` is not in repository `fluo/fluo-bff`")
        .stderr_has(&addr)
        .stderr_has("nothing changed");
    })
    .await;

    // The tag exists: only the registry being down stands in the way below.
    registry
        .push_image("fluo/fluo-bff", "1.1")
        .await
        .expect("push");
    drop(registry);
    let wanted = format!("{addr}/fluo/fluo-bff:1.1");

    // Down, in an environment that requires digests: refused, naming image and registry.
    w.infra.write(
        "environments/production.toml",
        &resolving(&addr, "production", "require_digest = true"),
    );
    unchanged(&w, async {
        w.cmd([
            "--env",
            "production",
            "deploy",
            "bff",
            "--image",
            &format!("fluo-bff={wanted}"),
        ])
        .run()
        .await
        .code(2)
        .stderr_has(&format!(
            "image \"{wanted}\": registry {addr} cannot be reached"
        ))
        .stderr_has("environment `production` requires digests")
        .stderr_has("nothing changed");
    })
    .await;

    // Down, where digests are not required: deployed by tag, said and recorded as unresolved.
    w.cmd(["deploy", "bff", "--image", &format!("fluo-bff={wanted}")])
        .run()
        .await
        .code(0)
        .stderr_has("recorded as digest unresolved");
    assert_eq!(image_of(&w.client, "bff").await, Some(wanted.clone()));
    let record = payload(&w, "fluo.release.bff.v2").await;
    assert_eq!(record["images"]["fluo-bff"], wanted.as_str());
    let unresolved = record["unresolved_digests"].as_array().expect("recorded");
    assert_eq!(unresolved.len(), 1, "{record}");
    let note = unresolved[0].as_str().unwrap_or_default();
    assert!(
        note.starts_with(&format!("{wanted}: ")) && note.contains("cannot be reached"),
        "{note}"
    );
}
