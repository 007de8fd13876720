//! How both services connect to NATS: the same retry and reconnect behaviour, and the same
//! credentials, each read from a mounted file (never from a flag value or the environment):
//! a user and its password file, and the CA file that the server's certificate must chain to.
//! The user may come from a file too (`--nats-user-file`): then the user name travels with the
//! password in the mounted Secret, and a credential rotation can move a service to a new user
//! (`bff` -> `bff-2`) without a manifest change (docs/security.md).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

/// The NATS credential flags both services take.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsArgs {
    /// NATS user this service connects as (its password comes from --nats-password-file).
    #[arg(long, env = "NATS_USER", conflicts_with = "nats_user_file")]
    pub nats_user: Option<String>,

    /// File holding the NATS user name (a mounted Secret key, beside the password file), read
    /// at every connect like the password.
    #[arg(long, env = "NATS_USER_FILE")]
    pub nats_user_file: Option<PathBuf>,

    /// File holding the NATS user's password (a mounted Secret key).
    #[arg(long, env = "NATS_PASSWORD_FILE")]
    pub nats_password_file: Option<PathBuf>,

    /// PEM file of the CA that signed the NATS server certificate. When set, the connection
    /// must be TLS and the server certificate is verified against this CA only.
    #[arg(long, env = "NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,

    /// Leave the files out of validation (`--check-config=values`: they are mounted later).
    #[arg(skip)]
    pub skip_files: bool,
}

/// Validated NATS credentials: which user, where its password is, which CA to trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// The user (as read at start when it comes from `user_file`) and its password file.
    pub user: Option<(String, PathBuf)>,
    /// Where the user name is read at every connect, when it is not a fixed value.
    pub user_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// A NATS credential flag that cannot be used; names the flag and the file, never a password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "--nats-user (NATS_USER) or --nats-user-file (NATS_USER_FILE) and --nats-password-file (NATS_PASSWORD_FILE) go together"
    )]
    Half,
    #[error("{flag} {path}: {reason}")]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl TryFrom<NatsArgs> for NatsAuth {
    type Error = AuthError;

    fn try_from(args: NatsArgs) -> Result<Self, AuthError> {
        let name = match (args.nats_user, &args.nats_user_file) {
            (Some(user), _) => Some(user),
            (None, Some(_)) if args.skip_files => Some(String::new()),
            (None, Some(file)) => Some(read_user(file)?),
            (None, None) => None,
        };
        let user = match (name, args.nats_password_file) {
            (Some(user), Some(file)) => {
                if !args.skip_files {
                    read_password(&file)?;
                }
                Some((user, file))
            }
            (None, None) => None,
            _ => return Err(AuthError::Half),
        };
        if let Some(ca) = args.nats_ca_file.as_ref().filter(|_| !args.skip_files) {
            check_ca(ca)?;
        }
        Ok(NatsAuth {
            user,
            user_file: args.nats_user_file,
            ca_file: args.nats_ca_file,
        })
    }
}

fn read_password(path: &PathBuf) -> Result<String, AuthError> {
    let err = |reason: String| AuthError::File {
        flag: "--nats-password-file (NATS_PASSWORD_FILE)",
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(err("is empty".into()));
    }
    Ok(password)
}

/// A user name from a file: one line of letters, digits, `-`, `_` or `.` (a subject token,
/// since it names the user's inbox prefix).
pub fn read_user(path: &PathBuf) -> Result<String, AuthError> {
    let err = |reason: String| AuthError::File {
        flag: "--nats-user-file (NATS_USER_FILE)",
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let user = text.trim_end_matches(['\n', '\r']);
    if user.is_empty() {
        return Err(err("is empty".into()));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(format!(
            "{user:?} is not a user name (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(user.to_owned())
}

fn check_ca(path: &PathBuf) -> Result<(), AuthError> {
    let err = |reason: String| AuthError::File {
        flag: "--nats-ca-file (NATS_CA_FILE)",
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(err("holds no PEM certificate".into()));
    }
    Ok(())
}

/// Connects in the background (`retry_on_initial_connect`), so a service serves /health at
/// once and turns ready when NATS is reachable, whatever the start order.
pub async fn connect(
    name: String,
    url: &str,
    auth: &NatsAuth,
) -> Result<Client, async_nats::ConnectError> {
    options(name, auth)?
        .retry_on_initial_connect()
        .connect(url)
        .await
}

/// The options [`connect`] uses without its retry of the first connection: a wrong
/// credential or certificate then fails the connect instead of retrying in the background.
pub fn options(name: String, auth: &NatsAuth) -> Result<ConnectOptions, async_nats::ConnectError> {
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        });
    if let Some((user, file)) = &auth.user {
        let io = |e| async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::Io, e);
        // Re-read at connect so a rotated credential is picked up by a restart.
        let user = match &auth.user_file {
            Some(user_file) => read_user(user_file).map_err(io)?,
            None => user.clone(),
        };
        let password = read_password(file).map_err(io)?;
        // Replies come back on the user's own inbox prefix: the only subjects its NATS
        // permissions let it subscribe to (fluo-secrets nats-users).
        options = options
            .user_and_password(user.clone(), password)
            .custom_inbox_prefix(format!("_INBOX_{user}"));
    }
    if let Some(ca) = &auth.ca_file {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    Ok(options)
}

/// What the service logs about its NATS credentials: the user and whether TLS is on.
pub fn describe(auth: &NatsAuth) -> String {
    let user = auth.user.as_ref().map_or("anonymous", |(user, _)| user);
    let tls = if auth.ca_file.is_some() {
        "TLS verified"
    } else {
        "plaintext"
    };
    format!("user {user}, {tls}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_file_go_together_and_files_must_be_usable() {
        let dir = tempfile::tempdir().unwrap();
        let half = NatsArgs {
            nats_user: Some("bff".into()),
            ..Default::default()
        };
        assert!(matches!(NatsAuth::try_from(half), Err(AuthError::Half)));
        let missing = NatsArgs {
            nats_user: Some("bff".into()),
            nats_password_file: Some(dir.path().join("nope")),
            ..Default::default()
        };
        let err = NatsAuth::try_from(missing).unwrap_err().to_string();
        assert!(
            err.starts_with("--nats-password-file (NATS_PASSWORD_FILE) ") && err.contains("nope"),
            "{err}"
        );
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let err = NatsAuth::try_from(NatsArgs {
            nats_ca_file: Some(not_pem),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.ends_with("holds no PEM certificate"), "{err}");
        // Checking values only (files mounted later): the paths are kept, not read.
        let later = NatsAuth::try_from(NatsArgs {
            nats_user: Some("bff".into()),
            nats_password_file: Some(dir.path().join("nope")),
            nats_ca_file: Some(dir.path().join("ca.pem")),
            skip_files: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(later.ca_file, Some(dir.path().join("ca.pem")));
    }

    #[test]
    fn the_user_may_come_from_a_file_that_holds_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let (user_file, password) = (dir.path().join("user"), dir.path().join("password"));
        std::fs::write(&password, "pw\n").unwrap();
        std::fs::write(&user_file, "bff-2\n").unwrap();
        let args = NatsArgs {
            nats_user_file: Some(user_file.clone()),
            nats_password_file: Some(password.clone()),
            ..Default::default()
        };
        let auth = NatsAuth::try_from(args.clone()).unwrap();
        assert_eq!(auth.user, Some(("bff-2".into(), password.clone())));
        assert_eq!(describe(&auth), "user bff-2, plaintext");
        std::fs::write(&user_file, "bff 2\n").unwrap();
        let err = NatsAuth::try_from(args.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with("--nats-user-file (NATS_USER_FILE) ")
                && err.ends_with("\"bff 2\" is not a user name (letters, digits, '-', '_', '.')"),
            "{err}"
        );
        std::fs::write(&user_file, "bff-2\n").unwrap();
        let no_password = NatsArgs {
            nats_password_file: None,
            ..args
        };
        assert!(matches!(
            NatsAuth::try_from(no_password),
            Err(AuthError::Half)
        ));
    }

    #[test]
    fn the_description_names_the_user_but_not_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let auth = NatsAuth::try_from(NatsArgs {
            nats_user: Some("worker".into()),
            nats_password_file: Some(file),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(describe(&auth), "user worker, plaintext");
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
