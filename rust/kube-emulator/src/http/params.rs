//! Query parameters of a request.

use serde_json::Value;

use crate::apiserver::status::{ApiError, Result};

/// Query parameters as (key, value) pairs; later duplicates are kept for multi-valued keys.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// The `container` parameter of a pod subresource (logs, exec) for pod `name`: one of its
    /// containers, or the pod's only one when not given; otherwise the apiserver's message.
    pub fn container(&self, pod: &Value, name: &str) -> Result<String> {
        let names: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        match self.get("container") {
            Some(c) if names.contains(&c) => Ok(c.to_string()),
            Some(c) => Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            ))),
            None if names.len() == 1 => Ok(names[0].to_string()),
            None => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(container: Option<&str>) -> Params {
        Params::from_pairs(
            container
                .map(|c| vec![("container".to_string(), c.to_string())])
                .unwrap_or_default(),
        )
    }

    #[test]
    fn the_container_is_named_and_valid_or_the_pods_only_one() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(params(None).container(&one, "p").unwrap(), "app");
        assert_eq!(params(Some("b")).container(&two, "p").unwrap(), "b");
        let unknown = params(Some("nope")).container(&two, "p").unwrap_err();
        assert_eq!(unknown.message, "container nope is not valid for pod p");
        let unnamed = params(None).container(&two, "p").unwrap_err();
        assert!(
            unnamed.message.contains("choose one of: [a b]"),
            "{}",
            unnamed.message
        );
    }
}
