//! `fluo-secrets` subcommands: flags parsed by clap, work done by the library modules, one line
//! per file written on stdout (paths only, never contents).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use fluo_cli::docs::DocsCommand;
use fluo_cli::exit::Exit;
use fluo_jobs::tokens::Scope;

use crate::{api_tokens, files, nats_users, tls};

/// Make the FLUO platform's credentials as files (mode 0600) for Kubernetes Secrets.
/// See docs/security.md for the Secrets they go into and how to rotate them.
///
/// Exit codes (the table all fluo commands share): 0 done; 1 writing or making a certificate
/// failed; 2 usage error or refused input (a file that exists, an unknown token id, a tokens
/// file that does not load, a missing --out directory), nothing written.
#[derive(Debug, Parser)]
#[command(name = "fluo-secrets", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A local CA and the NATS server certificate it signs: ca.crt, ca.key, tls.crt, tls.key.
    Tls {
        /// Directory to write into (must not hold these files already).
        #[arg(long)]
        out: PathBuf,
        /// Namespace of the NATS Service (its DNS names go into the certificate).
        #[arg(long, default_value = "fluo")]
        namespace: String,
        /// More DNS names or IP addresses for the server certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// NATS users bff, worker and monitor: authorization.conf and <user>.password files.
    NatsUsers {
        #[arg(long)]
        out: PathBuf,
    },
    /// BFF API tokens in a tokens file (tokens.toml of the Secret fluo-bff-api-tokens).
    #[command(subcommand)]
    Token(TokenCommand),
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token: its hash goes into --file, the token itself into the new file --token-out.
    Add {
        #[arg(long)]
        file: PathBuf,
        /// Who holds the token (shown in the BFF's logs instead of the token).
        #[arg(long)]
        name: String,
        /// Comma-separated: jobs:submit, jobs:read.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
        #[arg(long)]
        token_out: PathBuf,
    },
    /// Remove the token with this id (from `token list`), e.g. the old one after a rotation.
    Remove {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        id: String,
    },
    /// id, name and scopes of every token in --file.
    List {
        #[arg(long)]
        file: PathBuf,
    },
}

/// Runs one subcommand; the lines to print on success.
pub fn run(command: Command) -> anyhow::Result<Vec<String>> {
    Ok(match command {
        Command::Tls {
            out,
            namespace,
            names,
        } => {
            let mut all = tls::service_names(&namespace);
            all.extend(names);
            let bundle = tls::generate("fluo-local-ca", &all)?;
            tls::write(&out, &bundle)?;
            tls::FILES
                .iter()
                .map(|f| format!("wrote {}", out.join(f).display()))
                .collect()
        }
        Command::NatsUsers { out } => {
            nats_users::write(&out)?;
            vec![format!(
                "wrote {} and {} password files in {}",
                nats_users::AUTH_CONF,
                nats_users::USERS.join(", "),
                out.display()
            )]
        }
        Command::Token(TokenCommand::Add {
            file,
            name,
            scopes,
            token_out,
        }) => {
            let entry = api_tokens::add(&file, &name, &scopes, &token_out)?;
            vec![format!(
                "added token {} ({name}) to {}; the token is in {}",
                entry.id(),
                file.display(),
                token_out.display()
            )]
        }
        Command::Token(TokenCommand::Remove { file, id }) => {
            let entry = api_tokens::remove(&file, &id)?;
            vec![format!(
                "removed token {id} ({}) from {}",
                entry.name,
                file.display()
            )]
        }
        Command::Token(TokenCommand::List { file }) => api_tokens::list(&file)?,
        // Printed by `main` itself: it writes no file.
        Command::Docs(_) => Vec::new(),
    })
}

/// The body of `main`: runs the command, prints its lines (paths, never contents) or the error,
/// and returns the exit status of the shared table.
pub fn main(cli: Cli) -> Exit {
    if let Command::Docs(docs) = &cli.command {
        return docs.print::<Cli>();
    }
    match run(cli.command) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            Exit::Ok
        }
        Err(err) => {
            eprintln!("fluo-secrets: {err:#}");
            exit_of(&err)
        }
    }
}

/// A refusal of the input (the command wrote nothing) is a usage error (2); a write or a
/// certificate that failed is 1.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    let file = |e: &files::Error| match e {
        files::Error::Exists { .. } => Exit::Usage,
        files::Error::Write { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Exit::Usage
        }
        files::Error::Write { .. } => Exit::Failed,
    };
    if let Some(e) = err.downcast_ref::<files::Error>() {
        return file(e);
    }
    if let Some(e) = err.downcast_ref::<tls::Error>() {
        return match e {
            tls::Error::File(e) => file(e),
            tls::Error::Certificate(_) => Exit::Failed,
        };
    }
    match err.downcast_ref::<api_tokens::Error>() {
        Some(api_tokens::Error::File(e)) => file(e),
        Some(_) => Exit::Usage,
        None => Exit::Failed,
    }
}
