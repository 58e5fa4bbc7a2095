//! Readers of the literals the option families share: strings, integers and durations, each
//! reporting a mistake in the words of the option it was read for.

use syn::{Expr, ExprLit, Lit, LitStr, UnOp};

use crate::ctxt::Ctxt;

use super::example;

/// What a duration value looks like, for error messages.
const DURATION_HELP: &str =
    "a number of seconds or a string with units, such as `30`, \"500ms\", \"30s\", \"5m\" or \"1h\"";

/// Looks through the invisible groups a `macro_rules!` caller may wrap values in.
pub(super) fn strip_groups(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

/// A string literal, or an error saying how to write one.
pub(super) fn string<'a>(cx: &Ctxt, value: &'a Expr, option: &str) -> Option<&'a LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => {
            cx.error_spanned_by(
                value,
                format!(
                    "`{option}` takes a string: `{option} = {}`",
                    example(option)
                ),
            );
            None
        }
    }
}

/// An integer literal, possibly negative, or an error saying the option takes one.
pub(super) fn integer(cx: &Ctxt, value: &Expr, option: &str) -> Option<i128> {
    let (negative, literal) = match value {
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => (true, strip_groups(&unary.expr)),
        other => (false, other),
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = literal
    else {
        cx.error_spanned_by(
            value,
            format!(
                "`{option}` takes a whole number: `{option} = {}`",
                example(option)
            ),
        );
        return None;
    };
    match int.base10_parse::<i128>() {
        Ok(n) if negative => Some(-n),
        Ok(n) => Some(n),
        Err(error) => {
            cx.error_spanned_by(value, format!("`{option}`: {error}"));
            None
        }
    }
}

/// A duration in milliseconds: whole seconds, or a string such as `"1m30s"`. Zero is allowed
/// here; each option says whether it accepts it.
pub(super) fn duration_ms(cx: &Ctxt, value: &Expr, option: &str) -> Option<u64> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    {
        return match parse_duration(&lit.value()) {
            Some(ms) => Some(ms),
            None => {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "`{option}`: cannot read {:?} as a duration; write {DURATION_HELP}",
                        lit.value()
                    ),
                );
                None
            }
        };
    }
    if !matches!(
        value,
        Expr::Lit(ExprLit {
            lit: Lit::Int(_),
            ..
        }) | Expr::Unary(_)
    ) {
        cx.error_spanned_by(value, format!("`{option}` takes {DURATION_HELP}"));
        return None;
    }
    let seconds = integer(cx, value, option)?;
    match u64::try_from(seconds)
        .ok()
        .and_then(|s| s.checked_mul(1000))
    {
        Some(ms) => Some(ms),
        None if seconds < 0 => {
            cx.error_spanned_by(value, format!("`{option}` cannot be negative"));
            None
        }
        None => {
            cx.error_spanned_by(value, format!("`{option}` is too large"));
            None
        }
    }
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"` and sums like `"1h30m"` into milliseconds.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match rest[..unit_len].trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(number.checked_mul(factor)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration(" 2 s "), Some(2_000));
        for bad in [
            "",
            "s",
            "30",
            "30 minutes",
            "1.5s",
            "-1s",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
