//! Validation of a job submission body: `{"type": "<job type>", "data": {...}}`.

use serde_json::{Map, Value};

use crate::model::JobType;

/// The largest submission body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A submission that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_type: JobType,
    /// Always a JSON object (`{}` when the submission had no `data`).
    pub data: Value,
}

/// Why a submission was refused. Every message names the field or limit at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("request body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("field \"type\" is missing")]
    MissingType,
    #[error("field \"type\" must be a string, got {0}")]
    TypeNotAString(&'static str),
    #[error("field \"type\": {0}")]
    UnknownType(String),
    #[error("field \"data\" must be a JSON object, got {0}")]
    DataNotAnObject(&'static str),
    #[error("unknown field {0:?} (allowed: \"type\", \"data\")")]
    UnknownField(String),
}

/// Parses and validates a submission body.
pub fn parse(body: &[u8]) -> Result<NewJob, SubmissionError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SubmissionError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| SubmissionError::InvalidJson(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(SubmissionError::NotAnObject(kind(&value)));
    };
    let job_type = match fields.remove("type") {
        None => return Err(SubmissionError::MissingType),
        Some(Value::String(name)) => name
            .parse::<JobType>()
            .map_err(SubmissionError::UnknownType)?,
        Some(other) => return Err(SubmissionError::TypeNotAString(kind(&other))),
    };
    let data = match fields.remove("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(data @ Value::Object(_)) => data,
        Some(other) => return Err(SubmissionError::DataNotAnObject(kind(&other))),
    };
    if let Some(extra) = fields.keys().next() {
        return Err(SubmissionError::UnknownField(extra.clone()));
    }
    Ok(NewJob { job_type, data })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_submission_parses() {
        let job = parse(br#"{"type": "test", "data": {"validation": true}}"#).unwrap();
        assert_eq!(job.job_type, JobType::Test);
        assert_eq!(job.data, json!({"validation": true}));
    }

    #[test]
    fn missing_or_null_data_becomes_an_empty_object() {
        assert_eq!(parse(br#"{"type": "echo"}"#).unwrap().data, json!({}));
        assert_eq!(
            parse(br#"{"type": "echo", "data": null}"#).unwrap().data,
            json!({})
        );
    }

    #[test]
    fn every_bad_submission_is_refused_with_its_reason() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "request body is not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
            (
                b"{\"type\": ",
                "request body is not valid JSON: EOF while parsing a value at line 1 column 9",
            ),
            (b"[1]", "request body must be a JSON object, got an array"),
            (b"{}", "field \"type\" is missing"),
            (
                br#"{"type": 3}"#,
                "field \"type\" must be a string, got a number",
            ),
            (
                br#"{"type": "build"}"#,
                "field \"type\": unknown job type \"build\" (known: test, echo)",
            ),
            (
                br#"{"type": "echo", "data": [1]}"#,
                "field \"data\" must be a JSON object, got an array",
            ),
            (
                br#"{"type": "echo", "priority": 1}"#,
                "unknown field \"priority\" (allowed: \"type\", \"data\")",
            ),
        ];
        for (body, message) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(
                &err.to_string(),
                message,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bodies_over_the_limit_are_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse(&body).unwrap_err(),
            SubmissionError::TooLarge {
                size: MAX_BODY_BYTES + 1,
                limit: MAX_BODY_BYTES
            }
        );
    }
}
