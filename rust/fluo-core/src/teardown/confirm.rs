//! Typed confirmation of a destructive command: on a terminal the operator types the
//! environment's name; elsewhere (CI, scripts) `--yes` is required.

use std::io::{BufRead, IsTerminal, Write};

use crate::ops::{Error, Result};

/// Asks on the terminal, or requires `yes` when stdin is not one.
pub fn confirm(environment: &str, what: &str, yes: bool) -> Result<()> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    confirm_with(
        environment,
        what,
        yes,
        tty,
        &mut stdin.lock(),
        &mut std::io::stderr(),
    )
}

/// [`confirm`] with its terminal passed in.
pub fn confirm_with(
    environment: &str,
    what: &str,
    yes: bool,
    tty: bool,
    input: &mut dyn BufRead,
    prompt: &mut dyn Write,
) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !tty {
        return Err(Error::Refused(format!(
            "{what}: not confirmed (stdin is not a terminal; pass --yes to confirm); nothing changed"
        )));
    }
    let _ = write!(
        prompt,
        "About to {what}. Type the environment name ({environment}) to confirm: "
    );
    let _ = prompt.flush();
    let mut answer = String::new();
    let _ = input.read_line(&mut answer);
    if answer.trim() == environment {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "{what}: confirmation {:?} does not match `{environment}`; nothing changed",
            answer.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(yes: bool, tty: bool, typed: &str) -> (Result<()>, String) {
        let mut prompt = Vec::new();
        let result = confirm_with(
            "production",
            "delete bff",
            yes,
            tty,
            &mut typed.as_bytes(),
            &mut prompt,
        );
        (result, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn a_terminal_must_type_the_environment() {
        let (ok, prompt) = ask(false, true, "production\n");
        assert!(ok.is_ok());
        assert!(
            prompt.contains("Type the environment name (production)"),
            "{prompt}"
        );
        let (refused, _) = ask(false, true, "prod\n");
        assert!(refused.unwrap_err().to_string().contains("does not match"));
    }

    #[test]
    fn without_a_terminal_only_yes_confirms() {
        let (refused, prompt) = ask(false, false, "production\n");
        assert!(refused.unwrap_err().to_string().contains("pass --yes"));
        assert!(prompt.is_empty(), "no prompt without a terminal");
        assert!(ask(true, false, "").0.is_ok());
    }
}
