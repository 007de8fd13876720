//! API errors rendered as `meta.k8s.io/v1` `Status` bodies, as kube-apiserver writes them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::apiserver::resources::ResourceDef;

/// An API error: HTTP code, machine reason and human message, plus optional details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 403 from an admission plugin: `pods "web-5d4f-" is forbidden: <why>`.
    pub fn forbidden(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", def.plural),
        )
        .with_details(json!({"name": name, "kind": def.plural}))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))
    }

    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                def.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per invalid field, like field.ErrorList.
    pub fn invalid(def: &ResourceDef, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = format!(
            "{}.{} \"{name}\" is invalid: {}",
            def.kind,
            if def.group.is_empty() { "" } else { def.group },
            if text.len() == 1 {
                text[0].clone()
            } else {
                format!("[{}]", text.join(", "))
            }
        )
        .replace(". \"", " \"");
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        Self::new(422, "Invalid", message).with_details(
            json!({"name": name, "group": def.group, "kind": def.kind, "causes": causes}),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        )
        .with_details(json!({"retryAfterSeconds": 1}))
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response();
        if self.code == 429 {
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;

    #[test]
    fn invalid_message_matches_apiserver_shape() {
        let d = by_kind("apps", "Deployment").unwrap();
        let e = ApiError::invalid(
            d,
            "web",
            vec![(
                "spec.template.metadata.labels".into(),
                "Invalid value".into(),
            )],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value"
        );
        let core = by_kind("", "ConfigMap").unwrap();
        let e = ApiError::invalid(
            core,
            "c",
            vec![("metadata.name".into(), "Required value".into())],
        );
        assert!(
            e.message.starts_with("ConfigMap \"c\" is invalid"),
            "{}",
            e.message
        );
        assert_eq!(e.to_status()["code"], 422);
    }
}
