//! Rotating the NATS credentials without downtime, on the files of a credentials directory
//! (`fluo-secrets nats-users`' `--out`, or the Secrets' keys fetched back into one):
//! 1. [`begin`]: every service gets a new user (next generation: `bff` -> `bff-2`) with a new
//!    password, beside its current one: `authorization.conf` lists both (nats-server accepts
//!    either once reloaded) and `<service>.user`/`.password` now hold the new credential.
//! 2. The services move to the new credential (a rolling restart reads the Secret again).
//! 3. [`finish`]: `authorization.conf` lists only the new users; after a reload nats-server
//!    refuses the old ones.
//!
//! Both steps write every file or none (each is checked before the first write).

use std::path::Path;

use crate::files;
use crate::nats_users::{self, AUTH_CONF, Error, SERVICES, User};

/// Users of one service before and after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: &'static str,
    pub old: Option<String>,
    pub new: String,
}

fn listed(dir: &Path) -> Result<Vec<String>, Error> {
    let path = dir.join(AUTH_CONF);
    std::fs::read_to_string(&path)
        .map(|conf| nats_users::listed_users(&conf))
        .map_err(|source| Error::Read { path, source })
}

fn invalid(dir: &Path, reason: String) -> Error {
    Error::Invalid {
        path: dir.join(AUTH_CONF),
        reason,
    }
}

/// Step 1: adds a new user per service beside the current one.
pub fn begin(dir: &Path) -> Result<Vec<Change>, Error> {
    let current = nats_users::read_current(dir)?;
    let names: Vec<&str> = current.iter().map(|u| u.name.as_str()).collect();
    let others: Vec<String> = listed(dir)?
        .into_iter()
        .filter(|l| !names.contains(&l.as_str()))
        .collect();
    if !others.is_empty() {
        return Err(invalid(
            dir,
            format!(
                "a rotation is in progress (it also lists {}); finish it first: fluo-secrets nats-rotate --finish",
                others.join(", ")
            ),
        ));
    }
    let fresh = next_users(&current);
    let changes = fresh
        .iter()
        .map(|new| Change {
            service: new.service,
            old: current
                .iter()
                .find(|u| u.service == new.service)
                .map(|u| u.name.clone()),
            new: new.name.clone(),
        })
        .collect();
    let users: Vec<User> = current.iter().chain(&fresh).cloned().collect();
    files::replace(&dir.join(AUTH_CONF), &nats_users::render(&users))?;
    for user in &fresh {
        let [user_file, password_file] = nats_users::credential_files(user.service);
        files::replace(&dir.join(user_file), &format!("{}\n", user.name))?;
        files::replace(&dir.join(password_file), &format!("{}\n", user.password))?;
    }
    Ok(changes)
}

/// Every service's next user: the generation after its current user's (`bff` -> `bff-2`), or
/// its first user when it has none, each with a fresh password.
pub fn next_users(current: &[User]) -> Vec<User> {
    SERVICES
        .into_iter()
        .map(|service| {
            let generation = current
                .iter()
                .find(|u| u.service == service)
                .map_or(1, |u| {
                    nats_users::generation(service, &u.name).unwrap_or(1) + 1
                });
            User {
                service,
                name: nats_users::user_name(service, generation),
                password: nats_users::random_password(),
            }
        })
        .collect()
}

/// Step 3: only the current users stay in `authorization.conf`.
pub fn finish(dir: &Path) -> Result<Vec<Change>, Error> {
    let current = nats_users::read_current(dir)?;
    let listed = listed(dir)?;
    let missing: Vec<&str> = current
        .iter()
        .map(|u| u.name.as_str())
        .filter(|n| !listed.iter().any(|l| l == n))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(
            dir,
            format!(
                "does not list the current user(s) {}: removing the others would lock every service out",
                missing.join(", ")
            ),
        ));
    }
    if listed.len() == current.len() {
        return Err(invalid(
            dir,
            "lists only the current users: no rotation is in progress".into(),
        ));
    }
    let changes = current
        .iter()
        .map(|u| Change {
            service: u.service,
            old: listed
                .iter()
                .find(|l| *l != &u.name && nats_users::generation(u.service, l).is_some())
                .cloned(),
            new: u.name.clone(),
        })
        .collect();
    files::replace(&dir.join(AUTH_CONF), &nats_users::render(&current))?;
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(dir: &Path) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_rotation_adds_the_next_user_beside_the_current_and_finish_drops_the_old() {
        let dir = tempfile::tempdir().unwrap();
        nats_users::write(dir.path()).unwrap();
        let first = nats_users::read_current(dir.path()).unwrap();
        let changes = begin(dir.path()).unwrap();
        assert_eq!(changes[0].old.as_deref(), Some("bff"));
        assert_eq!(changes[0].new, "bff-2");
        let conf = std::fs::read_to_string(dir.path().join(AUTH_CONF)).unwrap();
        let both = nats_users::listed_users(&conf);
        assert_eq!(
            both,
            [
                "bff",
                "worker",
                "monitor",
                "backup",
                "bff-2",
                "worker-2",
                "monitor-2",
                "backup-2"
            ]
        );
        let second = nats_users::read_current(dir.path()).unwrap();
        for (old, new) in first.iter().zip(&second) {
            assert_ne!(old.password, new.password);
            // Both passwords are accepted during the rollover.
            assert!(conf.contains(&format!("password: \"{}\"", old.password)));
            assert!(conf.contains(&format!("password: \"{}\"", new.password)));
        }

        // A second rotation before the first is finished changes nothing.
        let before = snapshot(dir.path());
        let err = begin(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("a rotation is in progress (it also lists bff, worker, monitor, backup); finish it first: fluo-secrets nats-rotate --finish"),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before);

        let done = finish(dir.path()).unwrap();
        assert_eq!(done[1].old.as_deref(), Some("worker"));
        let conf = std::fs::read_to_string(dir.path().join(AUTH_CONF)).unwrap();
        assert_eq!(
            nats_users::listed_users(&conf),
            ["bff-2", "worker-2", "monitor-2", "backup-2"]
        );
        assert!(!conf.contains(&first[0].password));
        let err = finish(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("no rotation is in progress"), "{err}");

        begin(dir.path()).unwrap();
        assert_eq!(
            nats_users::read_current(dir.path()).unwrap()[0].name,
            "bff-3"
        );
    }

    #[test]
    fn files_from_before_rotations_rotate_and_a_conf_without_the_current_users_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        nats_users::write(dir.path()).unwrap();
        // As `nats-users` made them before user files and the backup user existed.
        for f in [
            "bff.user",
            "worker.user",
            "monitor.user",
            "backup.user",
            "backup.password",
        ] {
            std::fs::remove_file(dir.path().join(f)).unwrap();
        }
        let old = nats_users::read_current(dir.path()).unwrap();
        assert_eq!(old.len(), 3);
        std::fs::write(dir.path().join(AUTH_CONF), nats_users::render(&old)).unwrap();
        let changes = begin(dir.path()).unwrap();
        assert_eq!(changes[3].old, None);
        assert_eq!(changes[3].new, "backup");
        assert_eq!(changes[0].new, "bff-2");

        // Finishing against a conf that lost the new users would lock everyone out.
        let conf = dir.path().join(AUTH_CONF);
        let old_only = nats_users::render(&[]);
        std::fs::write(&conf, old_only).unwrap();
        let before = snapshot(dir.path());
        let err = finish(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("does not list the current user(s) bff-2, worker-2, monitor-2, backup"),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }
}
