//! Shell completions and man pages, generated from a binary's clap definition so they never
//! drift from the flags. The binaries with subcommands have `completions <SHELL>` and `man`
//! ([`DocsCommand`], e.g. `fluo-deploy man`); those without take `--completions <SHELL>` /
//! `--man` ([`DocsFlags`]).

use std::io::Write;

use clap::{Args, CommandFactory, Subcommand};
pub use clap_complete::Shell;

use crate::exit::Exit;

/// Writes the completion script for `shell` of the command `C`.
pub fn completions<C: CommandFactory>(shell: Shell, out: &mut dyn Write) {
    let mut command = C::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, out);
}

/// Writes the man page (roff) of the command `C`; subcommands are listed in it.
pub fn man<C: CommandFactory>(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(C::command()).render(out)
}

/// Prints what was asked for on stdout: the completions of `C` for `shell`, else its man page.
fn print<C: CommandFactory>(shell: Option<Shell>) -> Exit {
    let mut stdout = std::io::stdout().lock();
    if let Some(shell) = shell {
        completions::<C>(shell, &mut stdout);
        return Exit::Ok;
    }
    match man::<C>(&mut stdout) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: writing the man page: {e}");
            Exit::Failed
        }
    }
}

/// `--completions <SHELL>` and `--man` for binaries without subcommands.
#[derive(Debug, Clone, Args)]
pub struct DocsFlags {
    /// Print the shell completion script and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long, conflicts_with = "completions")]
    pub man: bool,
}

impl DocsFlags {
    /// When asked for, prints the completions or the man page of `C` on stdout and returns the
    /// exit status; None when neither was asked for.
    pub fn print<C: CommandFactory>(&self) -> Option<Exit> {
        (self.completions.is_some() || self.man).then(|| print::<C>(self.completions))
    }
}

/// The `completions` and `man` subcommands, flattened into a binary's subcommand enum with
/// `#[command(flatten)] Docs(DocsCommand)`.
#[derive(Debug, Clone, Subcommand)]
pub enum DocsCommand {
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: Shell },
    /// Print the man page (roff), e.g. `<command> man > <command>.1`.
    Man,
}

impl DocsCommand {
    /// Prints the completions or the man page of `C` on stdout; the exit status.
    pub fn print<C: CommandFactory>(&self) -> Exit {
        match self {
            DocsCommand::Completions { shell } => print::<C>(Some(*shell)),
            DocsCommand::Man => print::<C>(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A small command with a global flag and a subcommand.
    #[derive(Parser)]
    #[command(name = "fluo-probe", about = "Probe command")]
    struct Probe {
        /// Kubeconfig file.
        #[arg(long, global = true)]
        kubeconfig: Option<String>,
        /// Namespace.
        #[arg(short = 'n', long, global = true)]
        namespace: Option<String>,
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        /// Deploy things.
        Deploy,
    }

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn completions_name_the_flags_and_subcommands_for_each_shell() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = text(|o| completions::<Probe>(shell, o));
            for needle in ["fluo-probe", "deploy", "kubeconfig", "namespace"] {
                assert!(script.contains(needle), "{shell}: no {needle}:\n{script}");
            }
        }
    }

    #[test]
    fn man_page_is_roff_with_the_flags() {
        let page = text(|o| man::<Probe>(o).expect("renders"));
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains(".TH fluo-probe 1"), "{page}");
        assert!(page.contains("\\-\\-kubeconfig"), "{page}");
        assert!(page.contains("deploy"), "{page}");
    }
}
