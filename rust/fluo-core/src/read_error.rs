//! The error of reading a file or directory, named by its path: one type for the modules that
//! load files (configuration, manifests, the checklist), each wrapping it in its own error enum.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl ReadError {
    /// For `map_err`: the error of reading `path`.
    pub fn of(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReadError {
        let path = path.into();
        move |source| ReadError { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_path_and_the_cause() {
        let err = ReadError::of("/infra/components")(std::io::ErrorKind::NotFound.into());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read /infra/components: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
    }
}
