//! One NATS user per service, each allowed the subjects its work needs and nothing else
//! (anonymous connections are refused once any user exists):
//! - `bff`: publish jobs to `fluo.jobs.>`, keep the job stream and bucket provisioned, write
//!   and read job records;
//! - `worker`: pull from and ack on the `fluo-workers` consumer, keep the stream, bucket and
//!   consumer provisioned, update job records; it cannot publish jobs;
//! - `monitor`: JetStream information requests only (post-deploy checks, exporters).
//!
//! Each user receives replies only on its own inbox prefix `_INBOX_<user>.>`, so no service
//! can read another's replies (fluo_jobs::connect sets the prefix).

use std::path::Path;

use fluo_jobs::names::{CONSUMER, KV_BUCKET, STREAM, STREAM_SUBJECTS};

use crate::files;

pub const USERS: [&str; 3] = ["bff", "worker", "monitor"];

/// The file with the `authorization { ... }` block that nats.conf includes.
pub const AUTH_CONF: &str = "authorization.conf";

/// A user and the subjects it may publish to.
pub struct Permissions {
    pub user: &'static str,
    pub publish: Vec<String>,
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
    let monitor = vec![
        "$JS.API.INFO".to_owned(),
        "$JS.API.STREAM.NAMES".to_owned(),
        "$JS.API.STREAM.LIST".to_owned(),
        "$JS.API.STREAM.INFO.*".to_owned(),
        "$JS.API.CONSUMER.NAMES.*".to_owned(),
        "$JS.API.CONSUMER.LIST.*".to_owned(),
        "$JS.API.CONSUMER.INFO.*.*".to_owned(),
    ];
    vec![
        Permissions {
            user: "bff",
            publish: bff,
        },
        Permissions {
            user: "worker",
            publish: worker,
        },
        Permissions {
            user: "monitor",
            publish: monitor,
        },
    ]
}

/// The inbox prefix of `user`'s replies.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// A random password: two v4 UUIDs as hex (244 random bits), safe inside a quoted string.
pub fn random_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn quoted(items: &[String]) -> String {
    let quoted: Vec<_> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// nats-server's `authorization` block for `passwords` (one per user of [`USERS`], in order).
pub fn render(passwords: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Made by `fluo-secrets nats-users`: one user per FLUO service. Anonymous clients are\n\
         # refused because users exist and no no_auth_user is set.\nauthorization {\n  users = [\n",
    );
    for perms in permissions() {
        let password = &passwords
            .iter()
            .find(|(user, _)| user == perms.user)
            .expect("a password for every user")
            .1;
        let inbox = format!("{}.>", inbox_prefix(perms.user));
        out.push_str(&format!(
            "    {{\n      user: \"{}\"\n      password: \"{password}\"\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n      }}\n    }}\n",
            perms.user,
            quoted(&perms.publish),
            quoted(&[inbox]),
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// Writes `authorization.conf` and `<user>.password` for every user into `dir`, all new files
/// (0600); nothing is written when any of them exists.
pub fn write(dir: &Path) -> Result<(), files::Error> {
    let password_files: Vec<String> = USERS.iter().map(|u| format!("{u}.password")).collect();
    let mut names: Vec<&str> = password_files.iter().map(String::as_str).collect();
    names.push(AUTH_CONF);
    files::check_free(dir, &names)?;
    let passwords: Vec<(String, String)> = USERS
        .iter()
        .map(|user| ((*user).to_owned(), random_password()))
        .collect();
    for (user, password) in &passwords {
        files::write_new(
            &dir.join(format!("{user}.password")),
            &format!("{password}\n"),
        )?;
    }
    files::write_new(&dir.join(AUTH_CONF), &render(&passwords))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bff_may_publish_jobs_and_only_the_worker_may_ack() {
        let perms = permissions();
        let publishes = |user: &str, subject: &str| {
            perms
                .iter()
                .find(|p| p.user == user)
                .unwrap()
                .publish
                .iter()
                .any(|s| s == subject)
        };
        assert!(publishes("bff", "fluo.jobs.>"));
        assert!(!publishes("worker", "fluo.jobs.>"));
        assert!(!publishes("monitor", "fluo.jobs.>"));
        assert!(publishes("worker", "$JS.ACK.FLUO_JOBS.fluo-workers.>"));
        assert!(!publishes("bff", "$JS.ACK.FLUO_JOBS.fluo-workers.>"));
        assert!(
            perms
                .iter()
                .all(|p| p.publish.iter().all(|s| !s.contains("DELETE")))
        );
    }

    #[test]
    fn written_files_are_new_and_private() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        let conf = std::fs::read_to_string(dir.path().join(AUTH_CONF)).unwrap();
        for user in USERS {
            let password =
                std::fs::read_to_string(dir.path().join(format!("{user}.password"))).unwrap();
            assert!(conf.contains(&format!("password: \"{}\"", password.trim())));
            assert!(conf.contains(&format!("\"_INBOX_{user}.>\"")));
        }
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
