//! Routing: a kube-apiserver path parsed into what it addresses.

use crate::apiserver::resources::{self, ResourceDef};
use crate::apiserver::status::{ApiError, Result};

/// A parsed resource path.
pub struct Target {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiIndex,
    OpenApiDoc(String, String),
    /// POST authorization.k8s.io/v1 selfsubjectrulesreviews (`rules_review`).
    RulesReview,
    Resource(Target),
}

pub fn parse_route(path: &str) -> Result<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => return Ok(Route::Health),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] => return Ok(Route::Group((*g).to_string())),
        ["openapi", "v3"] => return Ok(Route::OpenApiIndex),
        ["openapi", "v3", "api", v] => {
            return Ok(Route::OpenApiDoc(String::new(), (*v).to_string()));
        }
        ["openapi", "v3", "apis", g, v] => {
            return Ok(Route::OpenApiDoc((*g).to_string(), (*v).to_string()));
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ] => {
            return Ok(Route::RulesReview);
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return Ok(Route::ResourceList(group.to_string(), version.to_string()));
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some((*ns).to_string()), [&[*plural][..], more].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let def = resources::by_plural(group, version, rest[0]).ok_or_else(ApiError::no_route)?;
    if namespace.is_some() && !def.namespaced {
        return Err(ApiError::no_route());
    }
    let name = rest.get(1).map(|s| (*s).to_string());
    let sub = rest.get(2).map(|s| (*s).to_string());
    if rest.len() > 3
        || sub
            .as_deref()
            .is_some_and(|s| !def.subresources.contains(&s))
    {
        return Err(ApiError::no_route());
    }
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    Ok(Route::Resource(Target {
        def,
        namespace,
        name,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse_route(path) {
            Ok(Route::Resource(t)) => t,
            _ => panic!("{path} is not a resource route"),
        }
    }

    #[test]
    fn routes_respect_scope() {
        let t = target("/apis/apps/v1/namespaces/ns/deployments/web/status");
        assert_eq!(
            (
                t.def.kind,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("Deployment", Some("ns"), Some("web"), Some("status"))
        );
        let t = target("/api/v1/namespaces/ns");
        assert_eq!((t.def.kind, t.name.as_deref()), ("Namespace", Some("ns")));
        let t = target("/api/v1/namespaces/ns/status");
        assert_eq!(t.sub.as_deref(), Some("status"));
        assert!(target("/apis/apps/v1/deployments").namespace.is_none());
        // Cluster-scoped resource under a namespace, named namespaced object without namespace,
        // unknown resources and unknown subresources are all 404.
        for bad in [
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/clusterroles",
            "/apis/apps/v1/deployments/web",
            "/api/v1/namespaces/ns/widgets",
            "/api/v1/namespaces/ns/configmaps/x/status",
        ] {
            assert_eq!(parse_route(bad).err().map(|e| e.code), Some(404), "{bad}");
        }
    }
}
