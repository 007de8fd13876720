//! The kubeconfig clients use to reach an emulator (plain http, no credentials).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing kubeconfig {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders a kubeconfig with one cluster, user and context, all named `context`.
pub fn render(server: &str, context: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\n\
         users:\n- name: {context}\n  user: {{}}\n\
         contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\n\
         current-context: {context}\npreferences: {{}}\n"
    )
}

pub fn write(path: &Path, server: &str, context: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, render(server, context)).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_as_kube_config() {
        let text = render("http://127.0.0.1:1234", "emu");
        let cfg = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(cfg.current_context.as_deref(), Some("emu"));
        assert_eq!(
            cfg.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
