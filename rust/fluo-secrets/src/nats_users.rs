//! One NATS user per service, each allowed the subjects its work needs and nothing else
//! (anonymous connections are refused once any user exists):
//! - `bff`: publish jobs to `fluo.jobs.>`, keep the job stream and bucket provisioned, write
//!   and read job records;
//! - `worker`: pull from and ack on the `fluo-workers` consumer, keep the stream, bucket and
//!   consumer provisioned, update job records; it cannot publish jobs;
//! - `monitor`: JetStream information requests only (post-deploy checks, exporters);
//! - `backup`: what `fluo-deploy`'s JetStream backup and `restore` need: read every stream's
//!   configuration, consumers and messages; delete, create and refill the platform's streams.
//!
//! A service's user is `<service>` or, after rotations, `<service>-<generation>` (`bff-2`):
//! nats-server refuses a user listed twice, so old and new password of a rotation belong to
//! two users with the same permissions (see the rotation module). The name is written beside the
//! password (`<service>.user`, `<service>.password`) and the services read both from the
//! mounted Secret. Each user receives replies only on its own inbox prefix `_INBOX_<user>.>`,
//! so no service can read another's replies (fluo_jobs::connect sets the prefix).

use std::path::{Path, PathBuf};

use fluo_jobs::names::{CONSUMER, KV_BUCKET, STREAM, STREAM_SUBJECTS};

use crate::files;

pub const SERVICES: [&str; 4] = ["bff", "worker", "monitor", "backup"];

/// The file with the `authorization { ... }` block that nats.conf includes.
pub const AUTH_CONF: &str = "authorization.conf";

/// A NATS credential file that cannot be used; names the file, never a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Files(#[from] files::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A service and the subjects its users may publish to.
pub struct Permissions {
    pub service: &'static str,
    pub publish: Vec<String>,
}

/// One NATS user of a service.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub service: &'static str,
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User({}, {}, ***)", self.service, self.name)
    }
}

/// What each service may publish (requests and messages); it may subscribe to its inbox only.
pub fn permissions() -> Vec<Permissions> {
    let kv_stream = format!("KV_{KV_BUCKET}");
    let provision = [
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.INFO.{STREAM}"),
        format!("$JS.API.STREAM.CREATE.{STREAM}"),
        format!("$JS.API.STREAM.INFO.{kv_stream}"),
        format!("$JS.API.STREAM.CREATE.{kv_stream}"),
    ];
    let records = [
        format!("$KV.{KV_BUCKET}.>"),
        format!("$JS.API.DIRECT.GET.{kv_stream}"),
        format!("$JS.API.DIRECT.GET.{kv_stream}.>"),
        format!("$JS.API.STREAM.MSG.GET.{kv_stream}"),
    ];
    let mut bff = vec![STREAM_SUBJECTS.to_owned()];
    bff.extend(provision.iter().cloned());
    bff.extend(records.iter().cloned());
    let mut worker = vec![
        format!("$JS.API.CONSUMER.INFO.{STREAM}.{CONSUMER}"),
        format!("$JS.API.CONSUMER.CREATE.{STREAM}.{CONSUMER}"),
        format!("$JS.API.CONSUMER.CREATE.{STREAM}.{CONSUMER}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{CONSUMER}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{CONSUMER}"),
        format!("$JS.ACK.{STREAM}.{CONSUMER}.>"),
    ];
    worker.extend(provision.iter().cloned());
    worker.extend(records);
    let monitor: Vec<String> = [
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.LIST",
        "$JS.API.STREAM.INFO.*",
        "$JS.API.CONSUMER.NAMES.*",
        "$JS.API.CONSUMER.LIST.*",
        "$JS.API.CONSUMER.INFO.*.*",
    ]
    .map(str::to_owned)
    .to_vec();
    // The backup reads every stream (monitor's requests plus message gets); the restore
    // deletes, creates and refills the platform's two streams only, and gives them their
    // consumers again.
    let mut backup = monitor.clone();
    backup.push("$JS.API.STREAM.MSG.GET.*".to_owned());
    for stream in [STREAM, kv_stream.as_str()] {
        for action in ["STREAM.DELETE", "STREAM.CREATE"] {
            backup.push(format!("$JS.API.{action}.{stream}"));
        }
        backup.push(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        backup.push(format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.*"));
    }
    backup.extend([STREAM_SUBJECTS.to_owned(), format!("$KV.{KV_BUCKET}.>")]);
    vec![
        Permissions {
            service: "bff",
            publish: bff,
        },
        Permissions {
            service: "worker",
            publish: worker,
        },
        Permissions {
            service: "monitor",
            publish: monitor,
        },
        Permissions {
            service: "backup",
            publish: backup,
        },
    ]
}

/// The inbox prefix of `user`'s replies.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The user name of `service`'s `generation`: the service's name first, then `<service>-<n>`.
pub fn user_name(service: &str, generation: u32) -> String {
    if generation <= 1 {
        service.to_owned()
    } else {
        format!("{service}-{generation}")
    }
}

/// The generation of `name` if it is one of `service`'s user names.
pub fn generation(service: &str, name: &str) -> Option<u32> {
    match name.strip_prefix(service)? {
        "" => Some(1),
        rest => rest
            .strip_prefix('-')?
            .parse()
            .ok()
            .filter(|n| *n >= 2 && !rest.starts_with("-0")),
    }
}

/// A random password: two v4 UUIDs as hex (244 random bits), safe inside a quoted string.
pub fn random_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A first user for every service, with fresh passwords.
pub fn fresh() -> Vec<User> {
    SERVICES
        .iter()
        .map(|service| User {
            service,
            name: (*service).to_owned(),
            password: random_password(),
        })
        .collect()
}

fn quoted(items: &[String]) -> String {
    let quoted: Vec<_> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// nats-server's `authorization` block for `users`, each with its service's permissions.
pub fn render(users: &[User]) -> String {
    let mut out = String::from(
        "# Made by `fluo-secrets`: users per FLUO service (two per service while a credential\n\
         # rotation runs). Anonymous clients are refused because users exist and no\n\
         # no_auth_user is set.\nauthorization {\n  users = [\n",
    );
    let permissions = permissions();
    for user in users {
        let perms = permissions
            .iter()
            .find(|p| p.service == user.service)
            .expect("permissions for every service");
        let inbox = format!("{}.>", inbox_prefix(&user.name));
        out.push_str(&format!(
            "    {{\n      user: \"{}\"\n      password: \"{}\"\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n      }}\n    }}\n",
            user.name,
            user.password,
            quoted(&perms.publish),
            quoted(&[inbox]),
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// The user names an `authorization.conf` made by [`render`] lists, in order.
pub fn listed_users(conf: &str) -> Vec<String> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("user: \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(str::to_owned)
        .collect()
}

/// The users an `authorization.conf` made by [`render`] lists, with their passwords and
/// services, in order; Err names the first user name that belongs to no service (never a
/// password).
pub fn listed_credentials(conf: &str) -> Result<Vec<User>, String> {
    let quoted = |line: &str, key: &str| {
        line.trim()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .map(str::to_owned)
    };
    let mut users = Vec::new();
    let mut name: Option<String> = None;
    for line in conf.lines() {
        if let Some(n) = quoted(line, "user") {
            name = Some(n);
        } else if let (Some(password), Some(n)) = (quoted(line, "password"), name.take()) {
            let service = SERVICES
                .into_iter()
                .find(|s| generation(s, &n).is_some())
                .ok_or_else(|| format!("user {n:?} is not a user of any of {SERVICES:?}"))?;
            users.push(User {
                service,
                name: n,
                password,
            });
        }
    }
    Ok(users)
}

/// The files of `service`'s credential: user name and password (the Secret nats-credentials'
/// keys).
pub fn credential_files(service: &str) -> [String; 2] {
    [format!("{service}.user"), format!("{service}.password")]
}

/// Writes `authorization.conf` and `<service>.user`/`<service>.password` for every service
/// into `dir`, all new files (0600); nothing is written when any of them exists.
pub fn write(dir: &Path) -> Result<(), files::Error> {
    let mut names: Vec<String> = SERVICES.iter().flat_map(|s| credential_files(s)).collect();
    names.push(AUTH_CONF.to_owned());
    files::check_free(dir, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
    let users = fresh();
    for user in &users {
        let [user_file, password_file] = credential_files(user.service);
        files::write_new(&dir.join(user_file), &format!("{}\n", user.name))?;
        files::write_new(&dir.join(password_file), &format!("{}\n", user.password))?;
    }
    files::write_new(&dir.join(AUTH_CONF), &render(&users))
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|t| t.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
}

/// The current user of every service, from the files in `dir`. A missing `<service>.user`
/// means the service's first user (files made before rotations existed); a service with
/// neither file has no user yet (`backup` in files made before it existed).
pub fn read_current(dir: &Path) -> Result<Vec<User>, Error> {
    let mut users = Vec::new();
    for service in SERVICES {
        let [user_file, password_file] = credential_files(service);
        let (user_path, password_path) = (dir.join(user_file), dir.join(password_file));
        if !user_path.exists() && !password_path.exists() {
            continue;
        }
        let name = if user_path.exists() {
            read(&user_path)?
        } else {
            service.to_owned()
        };
        if generation(service, &name).is_none() {
            return Err(Error::Invalid {
                path: user_path,
                reason: format!("{name:?} is not a user of {service} ({service} or {service}-<n>)"),
            });
        }
        let password = read(&password_path)?;
        if password.is_empty() || password.contains(['"', '\\']) {
            return Err(Error::Invalid {
                path: password_path,
                reason: "is empty or holds a quote or backslash".into(),
            });
        }
        users.push(User {
            service,
            name,
            password,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publishes(service: &str, subject: &str) -> bool {
        permissions()
            .iter()
            .find(|p| p.service == service)
            .unwrap()
            .publish
            .iter()
            .any(|s| s == subject)
    }

    #[test]
    fn only_the_bff_may_publish_jobs_and_only_the_worker_may_ack() {
        assert!(publishes("bff", "fluo.jobs.>"));
        assert!(!publishes("worker", "fluo.jobs.>"));
        assert!(!publishes("monitor", "fluo.jobs.>"));
        assert!(publishes("worker", "$JS.ACK.FLUO_JOBS.fluo-workers.>"));
        assert!(!publishes("bff", "$JS.ACK.FLUO_JOBS.fluo-workers.>"));
        assert!(!publishes("backup", "$JS.ACK.FLUO_JOBS.fluo-workers.>"));
        // Only the backup user may delete, and only the platform's streams (for a restore).
        for p in permissions() {
            let deletes: Vec<_> = p.publish.iter().filter(|s| s.contains("DELETE")).collect();
            match p.service {
                "backup" => assert_eq!(
                    deletes,
                    [
                        "$JS.API.STREAM.DELETE.FLUO_JOBS",
                        "$JS.API.STREAM.DELETE.KV_fluo-jobs"
                    ]
                ),
                _ => assert!(deletes.is_empty(), "{}: {deletes:?}", p.service),
            }
            assert!(p.publish.iter().all(|s| !s.contains("PURGE")));
        }
    }

    #[test]
    fn listed_credentials_read_back_what_render_wrote() {
        let users = fresh();
        let listed = listed_credentials(&render(&users)).unwrap();
        assert_eq!(listed, users);
        let err = listed_credentials("user: \"eve\"\npassword: \"p\"\n").unwrap_err();
        assert!(
            err.starts_with("user \"eve\" is not a user of any of"),
            "{err}"
        );
        assert!(!err.contains("\"p\""), "{err}");
    }

    #[test]
    fn generations_name_users_and_only_the_services_own() {
        assert_eq!(user_name("bff", 1), "bff");
        assert_eq!(user_name("bff", 2), "bff-2");
        assert_eq!(generation("bff", "bff"), Some(1));
        assert_eq!(generation("bff", "bff-12"), Some(12));
        for not in [
            "bff-1", "bff-02", "bff-", "bffx", "bff-x", "worker", "bff-2-3",
        ] {
            assert_eq!(generation("bff", not), None, "{not}");
        }
    }

    #[test]
    fn written_files_are_new_and_private() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        let conf = std::fs::read_to_string(dir.path().join(AUTH_CONF)).unwrap();
        assert_eq!(listed_users(&conf), SERVICES);
        for service in SERVICES {
            let password =
                std::fs::read_to_string(dir.path().join(format!("{service}.password"))).unwrap();
            let user = std::fs::read_to_string(dir.path().join(format!("{service}.user"))).unwrap();
            assert_eq!(user, format!("{service}\n"));
            assert!(conf.contains(&format!("password: \"{}\"", password.trim())));
            assert!(conf.contains(&format!("\"_INBOX_{service}.>\"")));
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("bff.password"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let before = std::fs::read_to_string(dir.path().join("bff.password")).unwrap();
        std::fs::remove_file(dir.path().join("monitor.password")).unwrap();
        let err = write(dir.path()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bff.password")).unwrap(),
            before
        );
        assert!(!dir.path().join("monitor.password").exists());
    }
}
