//! The trust settings of one command run, settled before it connects: who deploys (identity),
//! with which signing key, which keys the environment trusts, and whether records that fail
//! verification may be used (`--accept-unverified`).

use kube::Client;

use crate::config::Config;
use crate::history::History;
use crate::identity::Identity;
use crate::state::signing::{self, Signer, Trust};

pub struct Session {
    pub identity: Identity,
    signer: Option<Signer>,
    /// The environment file was read (its keys are known).
    environment_read: bool,
    accept_unverified: Option<String>,
    warnings: Vec<String>,
}

impl Session {
    /// `writes_records`: the command writes release records, so it needs the signing key where
    /// the environment accepts only signed records (an error here means nothing changed).
    pub fn open(
        config: &Config,
        writes_records: bool,
        environment_read: bool,
        accept_unverified: Option<String>,
    ) -> Result<Session, signing::Error> {
        let identity = Identity::detect(&config.infra_dir, &config.environment);
        let mut warnings = identity.warnings.clone();
        let signer = if !writes_records {
            None
        } else if environment_read {
            Signer::load(&config.environment)?
        } else {
            warnings
                .push("no environment file: the records this command writes are not signed".into());
            None
        };
        Ok(Session {
            identity,
            signer,
            environment_read,
            accept_unverified,
            warnings,
        })
    }

    /// Every name the deployer goes by: the user and the signing key's id.
    pub fn deployer(&self) -> Vec<String> {
        let mut names = vec![self.identity.user.clone()];
        names.extend(self.signer.as_ref().map(|s| s.key_id().to_string()));
        names
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The identity and the release records as this run reads and writes them.
    pub fn into_parts(self, client: &Client, config: &Config) -> (Identity, History) {
        let mut history = History::for_environment(client, &config.environment, self.signer)
            .accepting_unverified(self.accept_unverified);
        if !self.environment_read {
            history = history.with_trust(Trust::unknown());
        }
        (self.identity, history)
    }
}
