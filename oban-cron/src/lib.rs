//! The cron grammar of Oban for Rust, in one place.
//!
//! An expression has five fields, `minute hour day-of-month month day-of-week`, with ranges
//! (`1-5`), steps (`*/15`), lists (`1,15`) and names (`JAN`, `MON`), or is a nickname:
//!
//! | nickname | means |
//! | --- | --- |
//! | `@yearly`, `@annually` | `0 0 1 1 *` |
//! | `@monthly` | `0 0 1 * *` |
//! | `@weekly` | `0 0 * * 0` |
//! | `@daily`, `@midnight` | `0 0 * * *` |
//! | `@hourly` | `0 * * * *` |
//! | `@reboot` | once, when the node that schedules starts |
//!
//! The runtime (`oban-core`) reads its cron entries with [`parse`], and the `#[worker(cron = ..)]`
//! attribute checks its expressions with the same function at compile time. A proc-macro crate
//! cannot share code with the runtime it expands to (the runtime does not depend on it, and it
//! must not depend on the runtime), so the grammar lives in this small crate that both use.
//!
//! ```
//! use oban_cron::{parse, CronError, Schedule};
//!
//! assert!(matches!(parse("*/15 9-17 * * MON-FRI"), Ok(Schedule::Cron(_))));
//! assert!(matches!(parse("@daily"), Ok(Schedule::Cron(_))));
//! assert!(matches!(parse("@reboot"), Ok(Schedule::Reboot)));
//!
//! let error = parse("every day").unwrap_err();
//! assert!(matches!(error, CronError::FieldCount));
//! assert!(error.to_string().starts_with("use five fields"));
//! assert!(matches!(parse("61 * * * *"), Err(CronError::Invalid(_))));
//! ```

use std::fmt;
use std::str::FromStr;

/// The parser this crate reads fields with, re-exported so users name the same version.
pub use croner;

/// When a cron entry runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A five-field expression, nicknames expanded; match times with
    /// [`croner::Cron::is_time_matching`].
    Cron(Box<croner::Cron>),
    /// Once when the scheduler starts (`@reboot`).
    Reboot,
}

/// Why an expression is not a cron schedule.
#[derive(Debug)]
#[non_exhaustive]
pub enum CronError {
    /// Neither five fields nor a nickname.
    FieldCount,
    /// Five fields, one of which does not parse; the parser's reason is the message.
    Invalid(croner::errors::CronError),
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The text `#[worker(cron = ..)]` has always shown (its UI tests pin it): it leaves out
            // `@annually`, the alias of `@yearly`.
            Self::FieldCount => f.write_str(
                "use five fields (minute hour day-of-month month day-of-week) or a nickname: @yearly, @monthly, @weekly, @daily, @midnight, @hourly, @reboot",
            ),
            Self::Invalid(error) => fmt::Display::fmt(error, f),
        }
    }
}

/// No `source`: the parser's reason is already the message of [`CronError::Invalid`].
impl std::error::Error for CronError {}

/// Reads a cron expression: five fields or a nickname (see the [crate] docs). Surrounding
/// whitespace is ignored.
///
/// # Errors
/// [`CronError::FieldCount`] when the expression is neither five fields nor a nickname, and
/// [`CronError::Invalid`] when a field is out of range or unreadable.
pub fn parse(expression: &str) -> Result<Schedule, CronError> {
    let expanded = match expression.trim() {
        "@reboot" => return Ok(Schedule::Reboot),
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.split_whitespace().count() != 5 => return Err(CronError::FieldCount),
        other => other,
    };
    croner::Cron::from_str(expanded)
        .map(|cron| Schedule::Cron(Box::new(cron)))
        .map_err(CronError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expands_to(nickname: &str, fields: &str) {
        let (Ok(Schedule::Cron(nickname_cron)), Ok(Schedule::Cron(fields_cron))) =
            (parse(nickname), parse(fields))
        else {
            panic!("{nickname} and {fields} both parse");
        };
        assert_eq!(nickname_cron.pattern, fields_cron.pattern, "{nickname}");
    }

    #[test]
    fn nicknames_expand_to_five_fields() {
        expands_to("@yearly", "0 0 1 1 *");
        expands_to("@annually", "0 0 1 1 *");
        expands_to("@monthly", "0 0 1 * *");
        expands_to("@weekly", "0 0 * * 0");
        expands_to("@daily", "0 0 * * *");
        expands_to("@midnight", "0 0 * * *");
        expands_to("@hourly", "0 * * * *");
        assert!(matches!(parse("@reboot"), Ok(Schedule::Reboot)));
        assert!(matches!(parse("  @hourly "), Ok(Schedule::Cron(_))));
    }

    #[test]
    fn every_nickname_the_error_names_parses() {
        let message = CronError::FieldCount.to_string();
        let named: Vec<&str> = message
            .split([' ', ','])
            .filter(|word| word.starts_with('@'))
            .collect();
        assert_eq!(named.len(), 7, "{message}");
        for nickname in named {
            assert!(parse(nickname).is_ok(), "{nickname}");
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in ["* * *", "* * * * * * *", "@sometimes", "", "every day"] {
            assert!(matches!(parse(bad), Err(CronError::FieldCount)), "{bad}");
        }
        for bad in ["61 * * * *", "*/0 * * * *", "* 25 * * *", "* * * FOO *"] {
            let error = parse(bad).unwrap_err();
            assert!(matches!(error, CronError::Invalid(_)), "{bad}");
        }
        assert_eq!(
            parse("61 * * * *").unwrap_err().to_string(),
            "Component error: Number out of bounds."
        );
    }
}
