//! `[backup]`: where the JetStream backup taken before a deploy that changes the NATS
//! StatefulSet goes (SOP-002: "always backup before schema changes"), and how the deployer
//! reaches NATS for it and for `fluo-deploy restore`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[backup]` of an environment file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Directory the backups are written to (one sub-directory per backup); relative to the
    /// current directory.
    pub dir: PathBuf,
    /// NATS client URL the deployer connects to; without it, a port-forward to port 4222 of
    /// the Service `nats` in the app namespace.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// NATS user allowed to use the JetStream API (`$JS.API.>`) and publish to the streams'
    /// subjects; with `nats_password_file`.
    #[serde(default)]
    pub nats_user: Option<String>,
    #[serde(default)]
    pub nats_password_file: Option<PathBuf>,
    /// PEM CA the NATS server certificate must chain to (TLS then required).
    #[serde(default)]
    pub nats_ca_file: Option<PathBuf>,
    /// The secured environments: connect as the NATS user `backup` that `fluo-secrets` makes,
    /// reading its user name and password from the Secret `nats-credentials` (keys
    /// `backup.user`, `backup.password`) and the CA from `nats-tls` (`ca.crt`) in the app
    /// namespace, with the deployer's credentials. Instead of the three fields above.
    #[serde(default)]
    pub credentials_from_secrets: bool,
}

/// The first bad field: `(key, value, reason)`.
pub fn check(backup: &Backup) -> Result<(), (String, String, String)> {
    let bad = |key: &str, value: &dyn std::fmt::Debug, reason: &str| {
        Err((
            format!("backup.{key}"),
            format!("{value:?}"),
            reason.to_string(),
        ))
    };
    if backup.dir.as_os_str().is_empty() {
        return bad("dir", &"", "must name a directory");
    }
    if let Some(url) = &backup.nats_url
        && !(url.starts_with("nats://") || url.starts_with("tls://"))
    {
        return bad("nats_url", url, "must start with nats:// or tls://");
    }
    if backup.credentials_from_secrets {
        for (key, set) in [
            ("nats_user", backup.nats_user.is_some()),
            ("nats_password_file", backup.nats_password_file.is_some()),
            ("nats_ca_file", backup.nats_ca_file.is_some()),
        ] {
            if set {
                return bad(
                    key,
                    &true,
                    "credentials_from_secrets reads the user, password and CA from the Secrets; leave this out",
                );
            }
        }
    }
    match (&backup.nats_user, &backup.nats_password_file) {
        (Some(_), None) | (None, Some(_)) => {
            let value = backup.nats_user.clone().unwrap_or_default();
            return bad(
                "nats_user",
                &value,
                "nats_user and nats_password_file go together",
            );
        }
        _ => {}
    }
    for (key, file) in [
        ("nats_password_file", &backup.nats_password_file),
        ("nats_ca_file", &backup.nats_ca_file),
    ] {
        if let Some(file) = file
            && !readable(file)
        {
            return bad(key, file, "is not a readable file");
        }
    }
    Ok(())
}

fn readable(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| f.metadata().is_ok_and(|m| m.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(toml_text: &str) -> Backup {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        assert_eq!(check(&backup("dir = \"b\"")), Ok(()));
        let err = check(&backup("dir = \"b\"\nnats_url = \"http://n:4222\"")).unwrap_err();
        assert_eq!(err.0, "backup.nats_url");
        assert_eq!(err.1, "\"http://n:4222\"");
        let err = check(&backup("dir = \"b\"\nnats_user = \"backup\"")).unwrap_err();
        assert_eq!(err.0, "backup.nats_user");
        let err = check(&backup(
            "dir = \"b\"\nnats_user = \"u\"\nnats_password_file = \"/nonexistent/pw\"",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            (
                "backup.nats_password_file".into(),
                "\"/nonexistent/pw\"".into(),
                "is not a readable file".into()
            )
        );
        assert_eq!(check(&backup("dir = \"\"")).unwrap_err().0, "backup.dir");
        let secrets = "dir = \"b\"\ncredentials_from_secrets = true";
        assert_eq!(check(&backup(secrets)), Ok(()));
        let both = check(&backup(&format!("{secrets}\nnats_ca_file = \"/ca\""))).unwrap_err();
        assert_eq!(both.0, "backup.nats_ca_file");
        assert!(toml::from_str::<Backup>("dir = \"b\"\nurl = \"x\"").is_err());
    }
}
