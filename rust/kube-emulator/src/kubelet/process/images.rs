//! The image map of the process runtime: which host executable an image runs.
//!
//! ```toml
//! # patterns: exact `repo:tag`, `repo:*` (any tag), `repo` (any tag), or `*` suffix globs
//! [images."fluo/nats:*"]
//! command = "nats-server"            # resolved on PATH; `./x`, `../x`: relative to this file
//! [images."fluo/fluo-bff:*"]
//! command = "/work/target/release/fluo-bff"
//! args = ["--listen", "0.0.0.0:8080"]   # default args (the image's CMD); container args win
//! ```
//!
//! An image no pattern matches fails like an image that cannot be pulled (`ErrImagePull`, then
//! `ImagePullBackOff`), with a message naming the map file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the image map {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the image map {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("the image map {path}: image {pattern:?} has an empty command")]
    EmptyCommand { path: PathBuf, pattern: String },
}

/// What an image runs: its ENTRYPOINT (`command`) and CMD (`args`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    images: BTreeMap<String, ImageEntry>,
}

/// Patterns to entries, plus where they came from (for messages).
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: Vec<(String, ImageEntry)>,
    source: String,
}

impl ImageMap {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let file: File = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        for (pattern, entry) in &file.images {
            if entry.command.trim().is_empty() {
                return Err(Error::EmptyCommand {
                    path: path.to_path_buf(),
                    pattern: pattern.clone(),
                });
            }
        }
        // `./x` and `../x` are relative to the map file, so a map can ship next to its tools.
        let base = path.parent().unwrap_or(Path::new(""));
        let mut images = file.images;
        for entry in images.values_mut() {
            if entry.command.starts_with("./") || entry.command.starts_with("../") {
                entry.command = base.join(&entry.command).display().to_string();
            }
        }
        Ok(Self {
            entries: images.into_iter().collect(),
            source: path.display().to_string(),
        })
    }

    /// Where the map came from, as messages name it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The entry for `image`: the most specific matching pattern (an exact match beats a glob,
    /// a longer glob beats a shorter one).
    pub fn resolve(&self, image: &str) -> Option<&ImageEntry> {
        self.entries
            .iter()
            .filter_map(|(pattern, entry)| matches(pattern, image).map(|rank| (rank, entry)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, entry)| entry)
    }

    /// The pull failure message for an image the map does not know.
    pub fn unknown_image_message(&self, image: &str) -> String {
        format!(
            "failed to pull image \"{image}\": kube-emulator process runtime: no entry for this image in the image map {} (add [images.\"{}\"] with the host command it runs)",
            self.source,
            repository(image)
        )
    }
}

/// The image without tag or digest.
fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// How well `pattern` matches `image`, if at all (higher is more specific).
fn matches(pattern: &str, image: &str) -> Option<usize> {
    if pattern == image {
        return Some(usize::MAX);
    }
    if !pattern.contains(['*', ':']) && pattern == repository(image) {
        return Some(usize::MAX - 1);
    }
    let prefix = pattern.strip_suffix('*')?;
    image.starts_with(prefix).then_some(prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
[images."fluo/nats:*"]
command = "nats-server"
[images."fluo/nats:2.10"]
command = "/opt/nats-2.10"
[images."busybox"]
command = "sh"
args = ["-c", "sleep 3600"]
"#;

    #[test]
    fn the_most_specific_pattern_wins() {
        let map = ImageMap::parse(MAP, Path::new("map.toml")).unwrap();
        assert_eq!(
            map.resolve("fluo/nats:2.10").unwrap().command,
            "/opt/nats-2.10"
        );
        assert_eq!(
            map.resolve("fluo/nats:2.11").unwrap().command,
            "nats-server"
        );
        assert_eq!(
            map.resolve("busybox:1.36").unwrap().args,
            ["-c", "sleep 3600"]
        );
        assert_eq!(map.resolve("busybox").unwrap().command, "sh");
        assert!(map.resolve("fluo/natsx:1").is_none());
        let rel = ImageMap::parse(
            "[images.a]\ncommand = \"../standins/a.py\"\n",
            Path::new("/maps/infra.toml"),
        )
        .unwrap();
        assert_eq!(
            rel.resolve("a:1").unwrap().command,
            "/maps/../standins/a.py"
        );
        assert!(map.resolve("other/busybox:1").is_none());
        let message = map.unknown_image_message("fluo/grafana:11.3");
        assert!(message.contains("image map map.toml"), "{message}");
        assert!(message.contains("[images.\"fluo/grafana\"]"), "{message}");
    }

    #[test]
    fn the_infra_map_knows_every_image_of_infra() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let map = ImageMap::load(&root.join("image-maps/infra.toml")).unwrap();
        let components = root.join("../../infra/components");
        let mut images = Vec::new();
        for entry in std::fs::read_dir(&components).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path().join("component.toml"));
            for line in text.unwrap_or_default().lines() {
                if let Some(v) = line.trim().strip_prefix("default_ref = ") {
                    images.push(v.trim_matches('"').to_string());
                }
            }
        }
        assert!(images.len() >= 6, "{images:?}");
        for image in images {
            let entry = map
                .resolve(&image)
                .unwrap_or_else(|| panic!("{image} is not mapped"));
            if entry.command.contains("standins") {
                assert!(Path::new(&entry.command).is_file(), "{}", entry.command);
            }
        }
    }

    #[test]
    fn bad_maps_name_the_file_and_the_problem() {
        let err = ImageMap::parse("[images.x]\ncmd = 1\n", Path::new("m.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the image map m.toml is invalid"),
            "{err}"
        );
        let err = ImageMap::parse("[images.\"a:*\"]\ncommand = \" \"\n", Path::new("m.toml"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the image map m.toml: image \"a:*\" has an empty command"
        );
        assert_eq!(
            repository("registry:5000/a/b:1.0@sha256:x"),
            "registry:5000/a/b"
        );
        assert_eq!(repository("registry:5000/a/b"), "registry:5000/a/b");
    }
}
