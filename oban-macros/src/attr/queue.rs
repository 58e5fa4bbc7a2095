//! Where and how often a job runs: `queue`, `max_attempts`, `priority`, and its `tags`; and
//! `record_limit`, how much of its result it keeps.

use syn::{Expr, ExprLit, Lit};

use crate::ctxt::Ctxt;

use super::example;
use super::lit::{integer, string, strip_groups};

/// `queue = "name"`: non-empty, `[a-z0-9_]`, as Oban's queue names.
pub(super) fn parse_queue(cx: &Ctxt, value: &Expr) -> Option<String> {
    let lit = string(cx, value, "queue")?;
    let queue = lit.value();
    if queue.is_empty() {
        cx.error_spanned_by(
            lit,
            "the queue name is empty: name a queue, e.g. `queue = \"default\"`",
        );
        return None;
    }
    if !queue
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        let fixed: String = queue
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        cx.error_spanned_by(
            lit,
            format!(
                "queue name {queue:?} may only contain lowercase letters, digits and `_`: try `queue = {fixed:?}`"
            ),
        );
        return None;
    }
    if queue.len() >= 128 {
        cx.error_spanned_by(
            lit,
            "the queue name is too long: use at most 127 characters",
        );
        return None;
    }
    Some(queue)
}

/// `max_attempts = N`, 1..=65535.
pub(super) fn parse_max_attempts(cx: &Ctxt, value: &Expr) -> Option<u16> {
    let n = integer(cx, value, "max_attempts")?;
    if n < 1 {
        cx.error_spanned_by(
            value,
            format!(
                "`max_attempts` must be at least 1, got {n}: the first run is an attempt; `max_attempts = 1` runs the job once, without retries"
            ),
        );
        return None;
    }
    match u16::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.error_spanned_by(
                value,
                format!("`max_attempts` must be at most 65535, got {n}"),
            );
            None
        }
    }
}

/// `priority = N`, 0..=9.
pub(super) fn parse_priority(cx: &Ctxt, value: &Expr) -> Option<u8> {
    let n = integer(cx, value, "priority")?;
    match u8::try_from(n) {
        Ok(n) if n <= 9 => Some(n),
        _ => {
            cx.error_spanned_by(
                value,
                format!("`priority` must be 0 (highest) to 9 (lowest), got {n}"),
            );
            None
        }
    }
}

/// `tags = ["a", "b"]`: non-empty strings, each once.
pub(super) fn parse_tags(cx: &Ctxt, value: &Expr) -> Option<Vec<String>> {
    let Expr::Array(array) = value else {
        cx.error_spanned_by(
            value,
            format!(
                "`tags` takes a list of strings: `tags = {}`",
                example("tags")
            ),
        );
        return None;
    };
    let mut tags = Vec::new();
    let mut ok = true;
    for element in &array.elems {
        let Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) = strip_groups(element)
        else {
            cx.error_spanned_by(element, "a tag is a string: `tags = [\"billing\"]`");
            ok = false;
            continue;
        };
        let tag = lit.value();
        if tag.trim().is_empty() {
            cx.error_spanned_by(lit, "a tag cannot be empty: remove it or give it a name");
            ok = false;
        } else if tags.contains(&tag) {
            cx.error_spanned_by(lit, format!("tag {tag:?} is listed twice: remove one"));
            ok = false;
        } else {
            tags.push(tag);
        }
    }
    ok.then_some(tags)
}

/// `record_limit = N`: at least 1 character of encoded result.
pub(super) fn parse_record_limit(cx: &Ctxt, value: &Expr) -> Option<u64> {
    let n = integer(cx, value, "record_limit")?;
    match u64::try_from(n) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            cx.error_spanned_by(
                value,
                format!(
                    "`record_limit` must be at least 1 (characters of the encoded result), got {n}"
                ),
            );
            None
        }
    }
}
