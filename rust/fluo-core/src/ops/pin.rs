//! Pinning a deploy's images to digests (`[images.resolve]`): every tag reference of the
//! rendered objects is resolved through its registry (`crate::registry`) and replaced by
//! `name@sha256:...` in the objects, the documents the gate checks and the images the record
//! keeps, so what runs is what was checked and recorded. Runs after `deploy::prepare` and
//! before anything is checked against the cluster or applied, and in `diff`, so that it
//! compares the references a deploy would apply.
//!
//! An unknown tag is refused everywhere. A registry that cannot be reached is refused where the
//! environment requires digests; elsewhere the tag is deployed and recorded as unresolved.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Error, Result};
use crate::config::Config;
use crate::image_ref::{self, ImageRef};
use crate::registry::{self, Resolver};
use crate::render::{self, Rendered};
use crate::report::{Level, Reporter};

/// Resolves and pins the images of rendered components (a deploy's `Prepared::rendered`, or
/// what `diff` compares); nothing to do where resolution is off.
pub async fn pin_images(
    config: &Config,
    components: &mut BTreeMap<String, Rendered>,
    reporter: &Reporter,
) -> Result<()> {
    let policy = &config.environment.images;
    if !policy.resolve.enabled {
        return Ok(());
    }
    let environment = &config.environment.environment.name;
    let tags: BTreeSet<String> = components
        .values()
        .flat_map(|r| image_ref::images_of(r.objects()))
        .map(|(_, image)| image)
        .filter(|image| ImageRef::parse(image).is_ok_and(|r| r.digest.is_none()))
        .collect();
    let resolver = &Resolver::new(&policy.resolve).map_err(Error::Failed)?;
    let answers = futures::future::join_all(
        tags.iter()
            .map(|tag| async move { (tag, resolver.pin(tag).await) }),
    )
    .await;
    let mut pins = BTreeMap::new();
    let mut unresolved = BTreeMap::new();
    for (tag, answer) in answers {
        match answer {
            Ok(pinned) => {
                reporter.progress("", Level::Info, &format!("image {tag} resolved: {pinned}"));
                pins.insert(tag.clone(), pinned);
            }
            Err(e @ registry::Error::Unreachable { .. }) if policy.require_digest => {
                return Err(Error::Refused(format!(
                    "{e}; environment `{environment}` requires digests (images.require_digest = true), so nothing is deployed until it resolves"
                )));
            }
            Err(e @ registry::Error::Unreachable { .. }) => {
                reporter.progress(
                    "",
                    Level::Warn,
                    &format!("{e}: deploying it by tag, recorded as digest unresolved"),
                );
                unresolved.insert(tag.clone(), e.to_string());
            }
            Err(e) => return Err(Error::Refused(e.to_string())),
        }
    }
    for rendered in components.values_mut() {
        pin_rendered(rendered, &pins, &unresolved);
        // The digest rule, deferred by render while tags were unresolved, on the final refs.
        for (object, image) in image_ref::images_of(rendered.objects()) {
            policy
                .check_pinned(&image, environment)
                .map_err(|source| render::Error::Image {
                    component: rendered.component.clone(),
                    object,
                    source,
                })?;
        }
    }
    Ok(())
}

/// Replaces the resolved tags of one component (its documents and images) and notes its
/// unresolved ones.
fn pin_rendered(
    rendered: &mut Rendered,
    pins: &BTreeMap<String, String>,
    unresolved: &BTreeMap<String, String>,
) {
    let pin = |image: &str| pins.get(image).cloned();
    for document in &mut rendered.documents {
        image_ref::replace_images(&mut document.object, pin);
    }
    for reference in rendered.images.values_mut() {
        if let Some(pinned) = pin(reference) {
            *reference = pinned;
        }
    }
    rendered.unresolved_digests = image_ref::images_of(rendered.objects())
        .into_iter()
        .filter_map(|(_, image)| unresolved.get(&image).map(|why| (image, why)))
        .map(|(image, why)| format!("{image}: {why}"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pinning_rewrites_objects_documents_and_images_and_notes_the_unresolved() {
        let object = json!({
            "kind": "Deployment",
            "metadata": {"name": "bff"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "r.example/a:1"}],
                "containers": [
                    {"name": "bff", "image": "r.example/a:1"},
                    {"name": "sidecar", "image": "r.example/b:2"},
                ],
            }}},
        });
        let mut rendered = Rendered {
            component: "bff".into(),
            images: BTreeMap::from([("a".into(), "r.example/a:1".into())]),
            documents: vec![crate::manifest::Document {
                file: "bff.yaml".into(),
                line: 1,
                text: "".into(),
                object,
            }],
            unresolved_digests: vec![],
        };
        let pinned = format!("r.example/a@sha256:{}", "1".repeat(64));
        let pins = BTreeMap::from([("r.example/a:1".to_string(), pinned.clone())]);
        let unresolved = BTreeMap::from([("r.example/b:2".to_string(), "unreachable".to_string())]);
        pin_rendered(&mut rendered, &pins, &unresolved);
        let images: Vec<String> = image_ref::images_of(rendered.objects())
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        assert_eq!(images, [pinned.as_str(), pinned.as_str(), "r.example/b:2"]);
        assert_eq!(rendered.images["a"], pinned);
        assert_eq!(rendered.unresolved_digests, ["r.example/b:2: unreachable"]);
    }
}
