//! The set of objects one deploy would apply: every document of every component (and of the
//! cluster-wide pseudo component), each with the namespace it will land in.

use std::borrow::Cow;

use crate::Document;
use crate::schema;

/// The pseudo component holding infra/k8s/manifests (applied first by fluo-deploy).
pub const CLUSTER_COMPONENT: &str = "cluster";

/// One object to be applied.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    /// Borrowed where the caller keeps the documents anyway (a deploy's rendered documents, the
    /// loaded config): a copy of a 2,000-object tree's documents was megabytes.
    pub doc: Cow<'a, Document>,
    pub component: String,
    /// The namespace it lands in: its own `metadata.namespace`, else the environment's
    /// namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
}

impl Object<'_> {
    pub fn is(&self, api_version: &str, kind: &str) -> bool {
        self.doc.api_version() == api_version && self.doc.kind() == kind
    }
}

/// Every object of a deploy, in apply order of the components given.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet<'a> {
    pub objects: Vec<Object<'a>>,
    /// The environment's namespace (where namespaced objects without a namespace land).
    pub app_namespace: String,
}

impl ManifestSet<'static> {
    /// Builds the set from `(component, documents)` pairs it owns.
    pub fn new(app_namespace: &str, components: Vec<(String, Vec<Document>)>) -> Self {
        let components = components
            .into_iter()
            .map(|(component, docs)| (component, docs.into_iter().map(Cow::Owned).collect()))
            .collect();
        ManifestSet::of(app_namespace, components)
    }
}

impl<'a> ManifestSet<'a> {
    /// Builds the set from `(component, documents)` pairs, each document borrowed or owned.
    /// Kinds the gate does not know are treated as namespaced (the schema check reports them
    /// anyway).
    pub fn of(app_namespace: &str, components: Vec<(String, Vec<Cow<'a, Document>>)>) -> Self {
        let objects = components
            .into_iter()
            .flat_map(|(component, docs)| {
                docs.into_iter().map(move |doc| {
                    let namespaced =
                        schema::is_namespaced(doc.api_version(), doc.kind()).unwrap_or(true);
                    let namespace = namespaced.then(|| {
                        doc.object["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or(app_namespace)
                            .to_string()
                    });
                    Object {
                        doc,
                        component: component.clone(),
                        namespace,
                    }
                })
            })
            .collect();
        Self {
            objects,
            app_namespace: app_namespace.to_string(),
        }
    }

    /// Objects of `kind` (any apiVersion) in `namespace`.
    pub fn in_namespace<'s>(
        &'s self,
        kind: &'s str,
        namespace: &'s str,
    ) -> impl Iterator<Item = &'s Object<'a>> + 's {
        self.objects
            .iter()
            .filter(move |o| o.doc.kind() == kind && o.namespace.as_deref() == Some(namespace))
    }

    /// Whether an object of `kind` named `name` exists in `namespace`.
    pub fn has(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.in_namespace(kind, namespace)
            .any(|o| o.doc.name() == name)
    }
}
