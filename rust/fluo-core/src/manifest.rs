//! Loading Kubernetes manifests: every YAML document of every file, with the file and line it
//! came from, so that every later error (schema, policy, apply) can point at the source.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::read_error::ReadError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}:{line}: invalid YAML: {message}")]
    Yaml {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Document {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub file: PathBuf,
    /// 1-based line where the document's content starts in `file`.
    pub line: usize,
    /// The document's source text (for locating fields by line); shared, not copied, by the
    /// rendered documents.
    pub text: std::sync::Arc<str>,
    /// The parsed object; always a mapping with apiVersion, kind and metadata.name.
    pub object: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `Kind/name`, the way kubectl names objects in messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    /// `file:line`, for error messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The 1-based line in `file` of the first occurrence of `key:` at or after the document's
    /// start, best effort (used to point findings at a field).
    pub fn line_of_key(&self, key: &str) -> usize {
        let needle = format!("{key}:");
        self.text
            .lines()
            .position(|l| {
                let t = l.trim_start().trim_start_matches("- ");
                t.starts_with(&needle)
            })
            .map_or(self.line, |i| self.line + i)
    }
}

/// Every document of every `*.yaml`/`*.yml` file directly in `dir`, files in name order.
/// A missing directory is an empty list (a component may have no manifests yet is valid).
pub fn load_dir(dir: &Path) -> Result<Vec<Document>> {
    let mut files = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReadError::of(dir)(source).into());
        }
    };
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        docs.extend(load_file(&file)?);
    }
    Ok(docs)
}

/// Every document of one file.
pub fn load_file(path: &Path) -> Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).map_err(ReadError::of(path))?;
    parse_str(path, &text)
}

/// Parses multi-document YAML text; `path` is only used for locations.
pub fn parse_str(path: &Path, text: &str) -> Result<Vec<Document>> {
    split_documents(text)
        .into_iter()
        .filter(|chunk| !is_blank(&chunk.text))
        .map(|chunk| parse_document(path, chunk))
        .collect()
}

struct Chunk {
    line: usize,
    text: String,
}

/// Splits on `---` document markers at column 0, remembering where each document starts.
/// (A `---` at column 0 always ends a document in YAML: block scalars must be indented.)
fn split_documents(text: &str) -> Vec<Chunk> {
    let mut chunks = vec![Chunk {
        line: 1,
        text: String::new(),
    }];
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker {
            chunks.push(Chunk {
                line: i + 2,
                text: String::new(),
            });
            continue;
        }
        if line == "..." {
            continue;
        }
        let current = chunks.last_mut().expect("chunks starts non-empty");
        current.text.push_str(line);
        current.text.push('\n');
    }
    chunks
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

fn parse_document(path: &Path, chunk: Chunk) -> Result<Document> {
    let object: Value = serde_yaml::from_str(&chunk.text).map_err(|e| Error::Yaml {
        path: path.to_path_buf(),
        line: chunk.line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
        message: strip_location(&e.to_string()),
    })?;
    let fail = |message: String| Error::Document {
        path: path.to_path_buf(),
        line: chunk.line,
        message,
    };
    if !object.is_object() {
        return Err(fail(format!(
            "a manifest document must be a mapping, found {}",
            json_type(&object)
        )));
    }
    for field in ["apiVersion", "kind"] {
        match &object[field] {
            Value::String(s) if !s.is_empty() => {}
            Value::Null => return Err(fail(format!("missing required field `{field}`"))),
            other => {
                return Err(fail(format!(
                    "`{field}` must be a non-empty string, found {}",
                    json_type(other)
                )));
            }
        }
    }
    match &object["metadata"]["name"] {
        Value::String(s) if !s.is_empty() => {}
        _ => return Err(fail("missing required field `metadata.name`".to_string())),
    }
    Ok(Document {
        file: path.to_path_buf(),
        line: chunk.line,
        text: chunk.text.into(),
        object,
    })
}

/// serde_yaml appends " at line X column Y" relative to the chunk; we report our own line.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>> {
        parse_str(Path::new("m.yaml"), text)
    }

    #[test]
    fn documents_keep_their_start_line() {
        let docs = parse(
            "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\
             apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            (docs[0].line, docs[0].display_name()),
            (1, "ConfigMap/a".into())
        );
        assert_eq!(
            (docs[1].line, docs[1].display_name()),
            (7, "Service/b".into())
        );
        assert_eq!(docs[1].location(), "m.yaml:7");
    }

    #[test]
    fn empty_and_comment_only_documents_are_skipped() {
        let docs =
            parse("---\n# nothing\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n")
                .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].line, 4);
    }

    #[test]
    fn yaml_error_names_file_and_absolute_line() {
        let err = parse(
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("m.yaml:"), "{msg}");
        let Error::Yaml { line, .. } = err else {
            panic!("{msg}")
        };
        assert!(
            (5..=7).contains(&line),
            "line {line} should point into the second document"
        );
    }

    #[test]
    fn missing_kind_or_name_is_an_error_with_location() {
        let err = parse("apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(err.to_string(), "m.yaml:1: missing required field `kind`");
        let err = parse("---\napiVersion: v1\nkind: A\nmetadata: {}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.yaml:2: missing required field `metadata.name`"
        );
        let err = parse("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("must be a mapping, found a list"));
    }

    #[test]
    fn line_of_key_points_into_the_document() {
        let docs = parse(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostNetwork: true\n",
        )
        .unwrap();
        assert_eq!(docs[0].line_of_key("hostNetwork"), 7);
        assert_eq!(docs[0].line_of_key("absent"), 2);
    }

    #[test]
    fn load_dir_reads_yaml_files_in_name_order_and_tolerates_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: B\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let docs = load_dir(dir.path()).unwrap();
        let kinds: Vec<_> = docs.iter().map(Document::kind).collect();
        assert_eq!(kinds, ["A", "B"]);
        assert!(load_dir(&dir.path().join("missing")).unwrap().is_empty());
    }
}
