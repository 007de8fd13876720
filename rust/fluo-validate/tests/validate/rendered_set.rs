//! The gate's set of a deploy's rendered objects: the selected components' documents are
//! borrowed from the deploy (a copy of a 2,000-object tree was megabytes of its peak), the
//! others rendered as the environment renders them, all in the run's namespace.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fluo_core::config::Config;
use fluo_core::render::{self, ImageOverrides};
use fluo_validate::gate::rendered_set_in;

use super::support::repo_infra;

#[test]
fn the_rendered_set_borrows_the_selected_components_and_renders_the_others() {
    let config = Config::load(&repo_infra(), "rehearsal").expect("repository infra/ loads");
    let bff = config.component("bff").expect("infra/ has bff");
    let selected = BTreeMap::from([(
        "bff".to_string(),
        render::render(bff, &config.environment, &ImageOverrides::default()).unwrap(),
    )]);
    let cluster = render::render_cluster(&config.cluster_manifests).unwrap();
    let set = rendered_set_in(&config, "bench-ns", &cluster, &selected).unwrap();

    let of = |c: &'static str| set.objects.iter().filter(move |o| o.component == c);
    let bff_docs = &selected["bff"].documents;
    assert_eq!(of("bff").count(), bff_docs.len());
    for (object, rendered) in of("bff").zip(bff_docs) {
        assert!(
            matches!(&object.doc, Cow::Borrowed(d) if std::ptr::eq(*d, rendered)),
            "{} is a copy, not the deploy's document",
            object.doc.display_name()
        );
    }
    // The cluster-wide objects are borrowed too; other components are rendered (owned).
    assert!(of("cluster").count() > 0);
    assert!(of("cluster").all(|o| matches!(o.doc, Cow::Borrowed(_))));
    let nats = of("nats").collect::<Vec<_>>();
    assert!(!nats.is_empty());
    assert!(nats.iter().all(|o| matches!(o.doc, Cow::Owned(_))));
    let namespaced = set.objects.iter().filter(|o| o.component != "cluster");
    for object in namespaced.filter(|o| o.doc.object["metadata"]["namespace"].is_null()) {
        assert_eq!(object.namespace.as_deref(), Some("bench-ns"));
    }
}
