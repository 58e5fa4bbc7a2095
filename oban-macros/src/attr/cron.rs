//! Periodic jobs: `cron` and the `timezone` its expressions are read in. The cron grammar is
//! the runtime's own, from the `oban-cron` crate, so what compiles also runs.

use syn::{Expr, ExprLit, Lit};

use crate::ctxt::Ctxt;

use super::lit::strip_groups;

/// `cron = "0 * * * *"` or `cron = ["0 9 * * MON-FRI", "@daily"]`: every expression parses
/// as the runtime will parse it.
pub(super) fn parse_cron(cx: &Ctxt, value: &Expr) -> Vec<String> {
    let literals: Vec<&Expr> = match value {
        Expr::Array(array) if !array.elems.is_empty() => array.elems.iter().collect(),
        Expr::Array(array) => {
            cx.error_spanned_by(
                array,
                "`cron` needs at least one expression: `cron = \"0 * * * *\"`",
            );
            return Vec::new();
        }
        other => vec![other],
    };
    let mut expressions = Vec::new();
    for literal in literals {
        let Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) = strip_groups(literal)
        else {
            cx.error_spanned_by(
                literal,
                "`cron` takes a string such as \"*/15 * * * *\" or \"@hourly\"",
            );
            continue;
        };
        let expression = text.value().trim().to_owned();
        match oban_cron::parse(&expression) {
            Ok(_) => expressions.push(expression),
            Err(reason) => cx.error_spanned_by(
                text,
                format!("invalid cron expression `{expression}`: {reason}"),
            ),
        }
    }
    expressions
}

/// `timezone = "Europe/Paris"`: a name in the IANA time zone database.
pub(super) fn parse_timezone(cx: &Ctxt, value: &Expr) -> Option<String> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(text),
        ..
    }) = value
    else {
        cx.error_spanned_by(value, "`timezone` takes a string such as \"Europe/Paris\"");
        return None;
    };
    let name = text.value();
    match <chrono_tz::Tz as std::str::FromStr>::from_str(&name) {
        Ok(_) => Some(name),
        Err(_) => {
            cx.error_spanned_by(text, format!("unknown time zone `{name}`: use an IANA name such as \"America/New_York\" or \"UTC\""));
            None
        }
    }
}
