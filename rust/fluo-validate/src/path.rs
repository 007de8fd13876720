//! Field paths inside a manifest document (`spec.template.spec.containers[0].image`) and
//! locating them on a source line, so every finding points at the field it is about.

use std::fmt;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses the dotted form used in code: `spec.containers[0].image`.
    pub fn parse(dotted: &str) -> Self {
        let mut segments = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                let key = &rest[..open];
                if !key.is_empty() {
                    segments.push(Segment::Key(key.to_string()));
                }
                rest = &rest[open..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let close = stripped.find(']').unwrap_or(stripped.len());
                    if let Ok(i) = stripped[..close].parse() {
                        segments.push(Segment::Index(i));
                    }
                    rest = stripped.get(close + 1..).unwrap_or("");
                }
            } else {
                segments.push(Segment::Key(rest.to_string()));
            }
        }
        Self(segments)
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// Appends a dotted relative path (`securityContext.runAsNonRoot`).
    pub fn join(&self, dotted: &str) -> Self {
        let mut next = self.clone();
        next.0.extend(Self::parse(dotted).0);
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                // Annotation and label keys contain dots and slashes: quote them.
                Segment::Key(k) if k.contains(['.', '/']) => write!(f, "[{k:?}]")?,
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One significant (non-blank, non-comment) source line, pre-digested for block-style YAML.
struct Line {
    /// Index of the line in the document text.
    number: usize,
    /// Column of the first character.
    first_col: usize,
    /// Whether the line starts with a sequence dash.
    is_dash: bool,
    /// Column of the content after all leading `- ` markers.
    key_col: usize,
    /// The mapping key at `key_col`, if the content is `key: ...`.
    key: Option<String>,
    /// Whether the value follows on the same line (`key: value`).
    inline_value: bool,
}

fn digest(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter_map(|(number, raw)| {
            let trimmed = raw.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                return None;
            }
            let first_col = raw.len() - trimmed.len();
            let mut content = trimmed;
            let mut key_col = first_col;
            while content == "-" || content.starts_with("- ") {
                let after = content[1..].trim_start_matches(' ');
                key_col += content.len() - after.len();
                content = after;
            }
            let (key, inline_value) = split_key(content);
            Some(Line {
                number,
                first_col,
                is_dash: key_col != first_col || content.is_empty(),
                key_col,
                key,
                inline_value,
            })
        })
        .collect()
}

/// `name: x` -> (Some("name"), true); `"a.b/c":` -> (Some("a.b/c"), false).
fn split_key(content: &str) -> (Option<String>, bool) {
    let (key, rest) = if let Some(quote @ ('"' | '\'')) = content.chars().next() {
        match content[1..].find(quote) {
            Some(end) => (&content[1..=end], &content[end + 2..]),
            None => return (None, false),
        }
    } else {
        match content
            .find(": ")
            .or_else(|| content.strip_suffix(':').map(|s| s.len()))
        {
            Some(end) => (&content[..end], &content[end..]),
            None => return (None, false),
        }
    };
    let Some(value) = rest.strip_prefix(':') else {
        return (None, false);
    };
    let value = value.trim();
    (
        Some(key.to_string()),
        !value.is_empty() && !value.starts_with('#'),
    )
}

/// The 0-based line (relative to `text`) of the deepest part of `path` that can be found, or
/// `None` when not even the first segment is found. Block-style YAML only; a flow-style value
/// (`{...}`, `[...]`) resolves to the line of its key.
pub fn locate(text: &str, path: &FieldPath) -> Option<usize> {
    let lines = digest(text);
    let mut lo = 0;
    let mut hi = lines.len();
    let mut col = lines.first()?.key_col;
    let mut found = None;
    for segment in path.segments() {
        if lo >= hi {
            break;
        }
        match segment {
            Segment::Key(key) => {
                let Some(at) = (lo..hi)
                    .find(|&i| lines[i].key_col == col && lines[i].key.as_deref() == Some(key))
                else {
                    break;
                };
                found = Some(lines[at].number);
                if lines[at].inline_value {
                    break;
                }
                lo = at + 1;
                hi = (lo..hi)
                    .find(|&i| {
                        lines[i].first_col < col || (lines[i].first_col == col && !lines[i].is_dash)
                    })
                    .unwrap_or(hi);
                col = lines.get(lo).map_or(col, |l| l.first_col);
            }
            Segment::Index(n) => {
                let dash_col = lines[lo].first_col;
                let items: Vec<usize> = (lo..hi)
                    .filter(|&i| lines[i].first_col == dash_col && lines[i].is_dash)
                    .collect();
                let Some(&at) = items.get(*n) else {
                    break;
                };
                found = Some(lines[at].number);
                hi = items.get(n + 1).copied().unwrap_or(hi);
                lo = at;
                // The item's mapping starts after the dash, on the same line.
                col = lines[at].key_col;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    fluo.dev/note: hi
spec:
  template:
    spec:
      containers:
      - name: a
        image: a:1
        ports:
        - containerPort: 80
          name: http
      - name: b

        # comment
        image: b:2
        securityContext:
          runAsNonRoot: true
";

    fn line(dotted: &str) -> Option<usize> {
        locate(DEPLOYMENT, &FieldPath::parse(dotted)).map(|l| l + 1)
    }

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        assert_eq!(line("kind"), Some(2));
        assert_eq!(line("spec.template.spec.containers[0].image"), Some(12));
        assert_eq!(
            line("spec.template.spec.containers[0].ports[0].name"),
            Some(15)
        );
        assert_eq!(line("spec.template.spec.containers[1]"), Some(16));
        assert_eq!(line("spec.template.spec.containers[1].image"), Some(19));
        assert_eq!(
            line("spec.template.spec.containers[1].securityContext.runAsNonRoot"),
            Some(21)
        );
    }

    #[test]
    fn missing_leaf_resolves_to_deepest_existing_parent() {
        assert_eq!(line("spec.template.spec.containers[1].resources"), Some(16));
        assert_eq!(line("spec.template.spec.containers[7].image"), Some(10));
        assert_eq!(line("status"), None);
    }

    #[test]
    fn quoted_and_dotted_keys() {
        let path = FieldPath::root()
            .key("metadata")
            .key("annotations")
            .key("fluo.dev/note");
        assert_eq!(locate(DEPLOYMENT, &path), Some(5));
        assert_eq!(path.to_string(), "metadata.annotations[\"fluo.dev/note\"]");
        let quoted = "data:\n  \"a.b\": x\n";
        assert_eq!(
            locate(quoted, &FieldPath::root().key("data").key("a.b")),
            Some(1)
        );
    }

    #[test]
    fn sequence_at_the_parent_key_column() {
        let text = "rules:\n- apiGroups: [\"\"]\n  verbs:\n  - get\n- verbs: [\"*\"]\n";
        assert_eq!(locate(text, &FieldPath::parse("rules[1].verbs")), Some(4));
        assert_eq!(
            locate(text, &FieldPath::parse("rules[0].verbs[0]")),
            Some(3)
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        let p = FieldPath::parse("spec.containers[2].env[0].value");
        assert_eq!(p.to_string(), "spec.containers[2].env[0].value");
        assert_eq!(FieldPath::root().join("a.b").index(1).to_string(), "a.b[1]");
    }
}
