//! Where a NATS credential rotation stands, read from the two Secrets alone, so that a rotation
//! that stopped half-way is resumed by running the command again: `nats-credentials` holds each
//! service's current user, `nats-auth`'s `authorization.conf` the users nats-server accepts.
//! While a rotation runs, each service's newest listed user (highest generation) is the one it
//! moves to and every other listed user is dropped at the end.

use std::collections::BTreeMap;

use fluo_secrets::nats_users::{self, SERVICES, User};
use fluo_secrets::rotation;

/// The two Secrets and the key of nats-auth.
pub const AUTH: &str = fluo_secrets::bundle::NATS_AUTH;
pub const CREDENTIALS: &str = fluo_secrets::bundle::NATS_CREDENTIALS;
pub const AUTH_KEY: &str = nats_users::AUTH_CONF;

/// What a run does: move from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Users nats-server accepts now and drops at the end.
    pub old: Vec<User>,
    /// The users the services move to (made now when `starting`).
    pub new: Vec<User>,
    /// No rotation in progress: nats-auth lists only the current users.
    pub starting: bool,
}

fn names(users: &[User]) -> Vec<String> {
    users.iter().map(|u| u.name.clone()).collect()
}

impl Plan {
    pub fn new_names(&self) -> Vec<String> {
        names(&self.new)
    }

    pub fn old_names(&self) -> Vec<String> {
        names(&self.old)
    }

    /// authorization.conf during the rollover: old and new users.
    pub fn both_conf(&self) -> String {
        let both: Vec<User> = self.old.iter().chain(&self.new).cloned().collect();
        nats_users::render(&both)
    }

    /// authorization.conf at the end: the new users only.
    pub fn final_conf(&self) -> String {
        nats_users::render(&self.new)
    }

    /// nats-credentials' data for the new users.
    pub fn credentials(&self) -> BTreeMap<String, String> {
        self.new
            .iter()
            .flat_map(|u| {
                let [user_key, password_key] = nats_users::credential_files(u.service);
                [
                    (user_key, u.name.clone()),
                    (password_key, u.password.clone()),
                ]
            })
            .collect()
    }
}

/// Each service's current user from nats-credentials' data (a service without keys has none
/// yet; a missing `.user` key means its first user). Errors name the key, never a value.
pub fn current_users(data: &BTreeMap<String, String>) -> Result<Vec<User>, String> {
    let mut users = Vec::new();
    for service in SERVICES {
        let [user_key, password_key] = nats_users::credential_files(service);
        let value = |k: &str| {
            data.get(k)
                .map(|v| v.trim_end_matches(['\n', '\r']).to_owned())
        };
        let (name, password) = match (value(&user_key), value(&password_key)) {
            (None, None) => continue,
            (_, None) => {
                return Err(format!(
                    "Secret {CREDENTIALS} has {user_key} but no key {password_key}"
                ));
            }
            (name, Some(password)) => (name.unwrap_or_else(|| service.to_owned()), password),
        };
        if nats_users::generation(service, &name).is_none() {
            return Err(format!(
                "Secret {CREDENTIALS} key {user_key}: {name:?} is not a user of {service} ({service} or {service}-<n>)"
            ));
        }
        if password.is_empty() || password.contains(['"', '\\']) {
            return Err(format!(
                "Secret {CREDENTIALS} key {password_key} is empty or holds a quote or backslash"
            ));
        }
        users.push(User {
            service,
            name,
            password,
        });
    }
    if users.is_empty() {
        return Err(format!(
            "Secret {CREDENTIALS} holds no NATS user (keys <service>.user and <service>.password; make them with fluo-secrets nats-users: docs/security.md)"
        ));
    }
    Ok(users)
}

/// The run's plan from nats-auth's `conf` and the `current` users.
pub fn plan(conf: &str, current: &[User]) -> Result<Plan, String> {
    let listed = nats_users::listed_credentials(conf)
        .map_err(|e| format!("Secret {AUTH} key {AUTH_KEY}: {e}"))?;
    for user in current {
        if !listed.contains(user) {
            return Err(format!(
                "Secret {AUTH} key {AUTH_KEY} does not list {CREDENTIALS}' user {} with its password: the two Secrets do not belong together (the services would be locked out); put back the pair an earlier rotation wrote",
                user.name
            ));
        }
    }
    if listed.len() == current.len() {
        return Ok(Plan {
            old: current.to_vec(),
            new: rotation::next_users(current),
            starting: true,
        });
    }
    let newest = |service: &str| {
        listed
            .iter()
            .filter(|u| u.service == service)
            .max_by_key(|u| nats_users::generation(service, &u.name))
    };
    let new: Vec<User> = SERVICES
        .into_iter()
        .filter_map(|s| newest(s).cloned())
        .collect();
    let old = listed.into_iter().filter(|u| !new.contains(u)).collect();
    Ok(Plan {
        old,
        new,
        starting: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(users: &[User]) -> BTreeMap<String, String> {
        Plan {
            old: Vec::new(),
            new: users.to_vec(),
            starting: false,
        }
        .credentials()
    }

    #[test]
    fn a_rotation_is_planned_then_resumed_from_each_point_the_secrets_can_be_in() {
        let first = nats_users::fresh();
        let conf = nats_users::render(&first);
        let current = current_users(&data(&first)).unwrap();
        assert_eq!(current, first);

        // Nothing in progress: the next generation beside the current one.
        let start = plan(&conf, &current).unwrap();
        assert!(start.starting);
        assert_eq!(start.old_names(), ["bff", "worker", "monitor", "backup"]);
        assert_eq!(
            start.new_names(),
            ["bff-2", "worker-2", "monitor-2", "backup-2"]
        );

        // nats-auth written, nats-credentials not yet: the same new users (their passwords
        // come from nats-auth).
        let both = start.both_conf();
        let resumed = plan(&both, &current).unwrap();
        assert_eq!(
            (resumed.old.clone(), resumed.new.clone()),
            (start.old.clone(), start.new.clone())
        );
        assert!(!resumed.starting);

        // nats-credentials written too: still the same plan.
        let moved = current_users(&start.credentials()).unwrap();
        let resumed = plan(&both, &moved).unwrap();
        assert_eq!(
            (resumed.old, resumed.new),
            (start.old.clone(), start.new.clone())
        );

        // Finished: the next run starts generation 3.
        let next = plan(&start.final_conf(), &moved).unwrap();
        assert!(next.starting);
        assert_eq!(next.new_names()[0], "bff-3");
    }

    #[test]
    fn secrets_that_do_not_belong_together_are_refused_naming_the_key_not_the_value() {
        let users = nats_users::fresh();
        let other = nats_users::fresh();
        let err = plan(&nats_users::render(&other), &users).unwrap_err();
        assert!(
            err.contains("does not list nats-credentials' user bff"),
            "{err}"
        );
        assert!(!err.contains(&users[0].password) && !err.contains(&other[0].password));

        let mut broken = data(&users);
        broken.insert("bff.user".into(), "worker-2".into());
        let err = current_users(&broken).unwrap_err();
        assert!(
            err.contains("key bff.user: \"worker-2\" is not a user of bff"),
            "{err}"
        );
        broken.remove("bff.password");
        assert!(
            current_users(&broken)
                .unwrap_err()
                .contains("no key bff.password")
        );
        let err = current_users(&BTreeMap::new()).unwrap_err();
        assert!(err.contains("holds no NATS user"), "{err}");
    }
}
