//! Asking before a change: how many jobs match, then yes or no.

use std::io::{BufRead, IsTerminal, Write};

use crate::exit::{Error, Result};

/// What the operator said, or why they were not asked.
pub(crate) fn ask(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::new(format!(
            "{question} Refusing without --yes: standard input is not a terminal to answer on"
        )));
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ").map_err(io)?;
    stderr.flush().map_err(io)?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).map_err(io)?;
    Ok(is_yes(&answer))
}

/// `y` or `yes`, any case.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn io(err: std::io::Error) -> Error {
    Error::new(format!("cannot ask for confirmation: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for answer in ["y\n", "Y", "yes", " YES \n"] {
            assert!(is_yes(answer), "{answer:?}");
        }
        for answer in ["", "\n", "n", "no", "yep", "sure"] {
            assert!(!is_yes(answer), "{answer:?}");
        }
    }

    #[test]
    fn yes_skips_the_question() {
        assert!(ask("Retry 3 jobs?", true).expect("no question"));
    }
}
