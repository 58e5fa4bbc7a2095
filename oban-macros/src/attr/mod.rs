//! The option grammar of `#[worker(..)]`: parsing and validating each option on its own.
//!
//! ```text
//! options   := option ("," option)* ","?
//! option    := "queue" "=" STRING                 non-empty, [a-z0-9_], shorter than 128
//!            | "max_attempts" "=" INT             1..=65535
//!            | "priority" "=" INT                 0 (highest) ..= 9 (lowest)
//!            | "timeout" "=" duration             greater than zero
//!            | "tags" "=" "[" STRING,* "]"        non-empty strings, no duplicates
//!            | "name" "=" STRING                  the stored worker name, non-empty
//!            | "args" "=" IDENT                   the generated struct's name
//!            | "derive" "(" PATH,* ")"            more derives for it, e.g. Debug, Clone
//!            | "backoff" "=" backoff
//!            | "unique" ( "(" unique,* ")" )?
//!            | "sequence" ( "(" sequence,* ")" )?
//!            | "cron" "=" ( STRING | "[" STRING,+ "]" )  five-field expressions or nicknames
//!            | "timezone" "=" STRING              IANA name the cron expressions are read in
//!            | "record_limit" "=" INT             1..; only on a fn returning a value to record
//! backoff   := "default" | "constant" "(" duration ")" | "linear" "(" duration ")"
//!            | "exponential" "(" "base" "=" duration "," "max" "=" duration ")"
//!            | PATH                               a `fn(&Job) -> Duration`
//!            | CLOSURE                            a non-capturing `|job| -> Duration`
//! unique    := "period" "=" ( INT | STRING | "infinity" )      seconds, at least 1
//!            | "keys" "=" "[" ( IDENT | STRING ),* "]"         stored arguments of the fn
//!            | "fields" "=" "[" ( "args" | "queue" | "worker" | "meta" ),+ "]"
//!            | "states" "=" ( "successful" | "incomplete" | "scheduled" | "all" )
//!            | "timestamp" "=" ( "inserted_at" | "scheduled_at" )
//! sequence  := "keys" "=" "[" ( IDENT | STRING ),* "]"         stored arguments of the fn
//!            | "on_failure" "=" ( "release" | "hold" )          as a string or a word
//! duration  := INT (seconds) | STRING of number-unit pairs: "500ms", "30s", "5m", "1h", "1d", "1m30s"
//! ```
//!
//! Checks that need the fn (the unique `keys` must name its stored arguments) live in
//! [`crate::valid`]. An invalid option is reported and left out, so the rest still expands.
//!
//! Each family of options has its own file: [`queue`] (`queue`, `max_attempts`, `priority`,
//! `tags`), [`naming`] (`name`, `args`, `derive`), [`backoff`] (`backoff`, `timeout`),
//! [`unique`] (`unique(..)`), [`sequence`] (`sequence(..)`) and [`cron`] (`cron`, `timezone`); [`lit`] reads the literals they
//! share (strings, integers, durations). This file holds the model ([`Options`]), the loop that
//! dispatches each option to its family, and the help that error messages share.

mod backoff;
mod cron;
mod lit;
mod naming;
mod queue;
mod sequence;
mod unique;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Meta};

use crate::ctxt::Ctxt;

use self::backoff::{parse_backoff, parse_timeout};
use self::cron::{parse_cron, parse_timezone};
use self::lit::strip_groups;
use self::naming::{parse_args, parse_derives, parse_name};
use self::queue::{
    parse_max_attempts, parse_priority, parse_queue, parse_record_limit, parse_tags,
};
use self::sequence::parse_sequence;
use self::unique::parse_unique;

pub(crate) use self::backoff::Backoff;
pub(crate) use self::sequence::Sequence;
pub(crate) use self::unique::{Period, Unique, UniqueField, UniqueStates, UniqueTimestamp};

/// The options of one `#[worker(..)]`, each `None` when absent or invalid.
#[derive(Default)]
pub(crate) struct Options {
    /// `queue = ".."`.
    pub(crate) queue: Option<String>,
    /// `max_attempts = N`.
    pub(crate) max_attempts: Option<u16>,
    /// `priority = N`.
    pub(crate) priority: Option<u8>,
    /// `timeout = ..`, in milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    /// `tags = [..]`.
    pub(crate) tags: Option<Vec<String>>,
    /// `name = ".."`.
    pub(crate) name: Option<String>,
    /// `args = Ident`.
    pub(crate) args: Option<Ident>,
    /// `derive(..)`: more derives for the args struct.
    pub(crate) derives: Vec<syn::Path>,
    /// `backoff = ..`.
    pub(crate) backoff: Option<Backoff>,
    /// `unique(..)`.
    pub(crate) unique: Option<Unique>,
    /// `sequence(..)`.
    pub(crate) sequence: Option<Sequence>,
    /// `cron = ..`: the expressions, with the span of the `cron` value.
    pub(crate) cron: Vec<String>,
    /// Where the `cron` value is, for errors that involve the fn.
    pub(crate) cron_span: Option<Span>,
    /// `timezone = ".."` (default UTC).
    pub(crate) timezone: Option<String>,
    /// Where the `timezone` value is.
    pub(crate) timezone_span: Option<Span>,
    /// `record_limit = N`: the longest recorded result kept, in encoded characters, with the
    /// span of its value.
    pub(crate) record_limit: Option<(u64, Span)>,
}

/// The top-level options, in the order the docs list them.
const OPTIONS: &[&str] = &[
    "queue",
    "max_attempts",
    "priority",
    "timeout",
    "tags",
    "name",
    "args",
    "derive",
    "backoff",
    "unique",
    "sequence",
    "cron",
    "timezone",
    "record_limit",
];

impl Options {
    /// Parses the attribute's arguments, recording every mistake in `cx`.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut options = Self::default();
        let mut seen = HashSet::new();
        for meta in parse_metas(cx, args) {
            let key = meta.path();
            let Some(ident) = key.get_ident() else {
                cx.error_spanned_by(
                    key,
                    format!("unknown option; the options are {}", all(OPTIONS)),
                );
                continue;
            };
            let name = ident.to_string();
            if !OPTIONS.contains(&name.as_str()) {
                cx.error_spanned_by(ident, unknown_option(&name));
                continue;
            }
            if !seen.insert(name.clone()) {
                cx.error_spanned_by(ident, format!("`{name}` set multiple times; keep one"));
                continue;
            }
            if name == "unique" {
                options.unique = parse_unique(cx, &meta);
                continue;
            }
            if name == "sequence" {
                options.sequence = parse_sequence(cx, &meta);
                continue;
            }
            if name == "derive" {
                options.derives = parse_derives(cx, &meta);
                continue;
            }
            let Some(value) = name_value(cx, &meta, &name) else {
                continue;
            };
            match name.as_str() {
                "queue" => options.queue = parse_queue(cx, value),
                "max_attempts" => options.max_attempts = parse_max_attempts(cx, value),
                "priority" => options.priority = parse_priority(cx, value),
                "timeout" => options.timeout_ms = parse_timeout(cx, value),
                "tags" => options.tags = parse_tags(cx, value),
                "name" => options.name = parse_name(cx, value),
                "args" => options.args = parse_args(cx, value),
                "backoff" => options.backoff = parse_backoff(cx, value),
                "cron" => {
                    options.cron_span = Some(value.span());
                    options.cron = parse_cron(cx, value);
                }
                "timezone" => {
                    options.timezone_span = Some(value.span());
                    options.timezone = parse_timezone(cx, value);
                }
                "record_limit" => {
                    options.record_limit = parse_record_limit(cx, value).map(|n| (n, value.span()));
                }
                _ => unreachable!("every option is handled"),
            }
        }
        options
    }
}

/// Splits `a = 1, b(..), c` at its top-level commas and parses each part as a [`Meta`], so a
/// syntax error in one option does not hide the errors in the others.
pub(super) fn parse_metas(cx: &Ctxt, tokens: TokenStream) -> Vec<Meta> {
    let mut metas = Vec::new();
    let mut part = TokenStream::new();
    let mut parse_part = |part: TokenStream, comma: Option<Span>| {
        if part.is_empty() {
            if let Some(comma) = comma {
                cx.error_at(comma, "expected an option before this `,`");
            }
            return;
        }
        let last = part.clone().into_iter().last();
        match syn::parse2::<Meta>(part.clone()) {
            Ok(meta) => metas.push(meta),
            // `key =` with nothing after it: syn blames the end of input, which is the whole
            // attribute; point at the `=` instead and say what goes there.
            Err(_) if matches!(&last, Some(TokenTree::Punct(p)) if p.as_char() == '=') => {
                let key = part
                    .into_iter()
                    .next()
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                cx.error_at(
                    last.map_or_else(Span::call_site, |t| t.span()),
                    format!(
                        "`{key}` needs a value after `=`: `{key} = {}`",
                        example(&key)
                    ),
                );
            }
            Err(error) => cx.syn_error(error),
        }
    };
    for token in tokens {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == ',' => {
                parse_part(std::mem::take(&mut part), Some(punct.span()));
            }
            token => part.extend([token]),
        }
    }
    parse_part(part, None);
    metas
}

/// The settings of `family(..)` (`unique`, `sequence`): each `name = value` whose name is one
/// of `options`, once, handed to `apply`, which reports its own errors and returns `None` on
/// one; an unknown or repeated name, or one without a value, is an error here. Returns whether
/// every setting was valid.
pub(super) fn each_setting(
    cx: &Ctxt,
    family: &str,
    meta_list: &syn::MetaList,
    options: &[&str],
    mut apply: impl FnMut(&str, &Expr) -> Option<()>,
) -> bool {
    let mut seen = HashSet::new();
    let mut ok = true;
    for meta in parse_metas(cx, meta_list.tokens.clone()) {
        let key = meta.path();
        let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
        if !options.contains(&name.as_str()) {
            cx.error_spanned_by(
                key,
                format!(
                    "unknown `{family}` setting `{name}`{}; the settings are {}",
                    did_you_mean(&name, options),
                    all(options)
                ),
            );
            ok = false;
            continue;
        }
        if !seen.insert(name.clone()) {
            cx.error_spanned_by(key, format!("`{name}` set multiple times; keep one"));
            ok = false;
            continue;
        }
        let Some(value) = name_value(cx, &meta, &name) else {
            ok = false;
            continue;
        };
        ok &= apply(&name, value).is_some();
    }
    ok
}

/// The value of `key = value`, or an error saying the option needs one.
pub(super) fn name_value<'a>(cx: &Ctxt, meta: &'a Meta, name: &str) -> Option<&'a Expr> {
    match meta {
        Meta::NameValue(name_value) => Some(strip_groups(&name_value.value)),
        _ => {
            cx.error_spanned_by(
                meta,
                format!("`{name}` takes a value: `{name} = {}`", example(name)),
            );
            None
        }
    }
}

/// An example value of each option, for messages.
pub(super) fn example(option: &str) -> &'static str {
    match option {
        "queue" => "\"mailers\"",
        "max_attempts" => "10",
        "priority" => "1",
        "timeout" => "30",
        "tags" => "[\"billing\", \"email\"]",
        "name" => "\"MyApp.Workers.SendReceipt\"",
        "args" => "SendReceiptArgs",
        "backoff" => "exponential(base = 1, max = 3600)",
        "cron" => "\"0 * * * *\"",
        "timezone" => "\"Europe/Paris\"",
        "record_limit" => "256000",
        "period" => "300",
        "keys" => "[order_id]",
        "fields" => "[args, queue, worker]",
        "states" => "incomplete",
        "timestamp" => "scheduled_at",
        "on_failure" => "\"hold\"",
        _ => "..",
    }
}

/// The message for an unknown top-level option: the closest valid one, and all of them.
fn unknown_option(name: &str) -> String {
    let hint = match name {
        "attempts" | "max_attempt" | "retries" | "max_retries" | "retry" => {
            " (Oban calls it `max_attempts`; it counts the first run)".to_owned()
        }
        "worker" | "worker_name" | "rename" => " (did you mean `name`?)".to_owned(),
        "period" | "keys" | "fields" | "states" | "timestamp" => {
            format!(
                " (`{name}` goes inside `unique(..)`: `unique({name} = {})`)",
                example(name)
            )
        }
        _ => did_you_mean(name, OPTIONS),
    };
    format!(
        "unknown option `{name}`{hint}; the options are {}",
        all(OPTIONS)
    )
}

/// `" (did you mean `x`?)"` when a candidate is close to `name`, else nothing.
pub(super) fn did_you_mean(name: &str, candidates: &[&str]) -> String {
    closest(name, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate closest to `name` by edit distance, when it is close enough to be a typo.
pub(crate) fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .iter()
        .map(|candidate| (edit_distance(&name, candidate), *candidate))
        .filter(|(distance, candidate)| {
            *distance <= 2
                || *distance * 3 <= candidate.len()
                || (name.len() >= 3
                    && (candidate.starts_with(&name) || name.starts_with(candidate)))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// `` `a`, `b` or `c` ``.
pub(crate) fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|n| format!("`{n}`")).collect();
            format!("{} or `{last}`", init.join(", "))
        }
    }
}

/// `` `a`, `b`, `c` ``.
pub(super) fn all(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
