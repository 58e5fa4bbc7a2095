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
//!            | "cron" "=" ( STRING | "[" STRING,+ "]" )  five-field expressions or nicknames
//!            | "timezone" "=" STRING              IANA name the cron expressions are read in
//! backoff   := "default" | "constant" "(" duration ")" | "linear" "(" duration ")"
//!            | "exponential" "(" "base" "=" duration "," "max" "=" duration ")"
//!            | PATH                               a `fn(&Job) -> Duration`
//!            | CLOSURE                            a non-capturing `|job| -> Duration`
//! unique    := "period" "=" ( INT | STRING | "infinity" )      seconds, at least 1
//!            | "keys" "=" "[" ( IDENT | STRING ),* "]"         stored arguments of the fn
//!            | "fields" "=" "[" ( "args" | "queue" | "worker" | "meta" ),+ "]"
//!            | "states" "=" ( "successful" | "incomplete" | "scheduled" | "all" )
//!            | "timestamp" "=" ( "inserted_at" | "scheduled_at" )
//! duration  := INT (seconds) | STRING of number-unit pairs: "500ms", "30s", "5m", "1h", "1d", "1m30s"
//! ```
//!
//! Checks that need the fn (the unique `keys` must name its stored arguments) live in
//! [`crate::valid`]. An invalid option is reported and left out, so the rest still expands.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta, Token, UnOp};

use crate::ctxt::Ctxt;

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
    /// `cron = ..`: the expressions, with the span of the `cron` value.
    pub(crate) cron: Vec<String>,
    /// Where the `cron` value is, for errors that involve the fn.
    pub(crate) cron_span: Option<Span>,
    /// `timezone = ".."` (default UTC).
    pub(crate) timezone: Option<String>,
    /// Where the `timezone` value is.
    pub(crate) timezone_span: Option<Span>,
}

/// A retry delay strategy; durations in milliseconds.
pub(crate) enum Backoff {
    /// Oban's default.
    Default,
    /// The same delay every time.
    Constant(u64),
    /// `base * attempt`.
    Linear(u64),
    /// `base * 2^(attempt - 1)`, capped at `max`.
    Exponential {
        /// Delay after the first attempt.
        base: u64,
        /// The cap.
        max: u64,
    },
    /// The user's `fn(&Job) -> Duration`; rustc checks its signature.
    Custom(Expr),
}

/// `unique(..)`: each part `None` when left to the runtime's default.
#[derive(Default)]
pub(crate) struct Unique {
    /// `period = ..`.
    pub(crate) period: Option<Period>,
    /// `keys = [..]`, each with the span of its token (checked against the fn later).
    pub(crate) keys: Option<Vec<(String, Span)>>,
    /// `fields = [..]`.
    pub(crate) fields: Option<Vec<UniqueField>>,
    /// `states = ..`.
    pub(crate) states: Option<UniqueStates>,
    /// `timestamp = ..`.
    pub(crate) timestamp: Option<UniqueTimestamp>,
}

/// How long a job blocks duplicates.
#[derive(Clone, Copy)]
pub(crate) enum Period {
    /// Seconds.
    Seconds(u64),
    /// As long as the job is in a unique state.
    Infinity,
}

/// Declares a keyword enum: its variants, their spelling, and a lookup by spelling.
macro_rules! keywords {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every spelling, in declaration order.
            pub(crate) const NAMES: &'static [&'static str] = &[$($text),+];

            /// The variant spelled `text`.
            fn from_name(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

keywords! {
    /// A part of a job compared by `unique`.
    UniqueField {
        /// The args.
        Args = "args",
        /// The queue.
        Queue = "queue",
        /// The worker name.
        Worker = "worker",
        /// The meta.
        Meta = "meta",
    }
}

keywords! {
    /// A group of states in which an existing job blocks a duplicate.
    UniqueStates {
        /// All but cancelled and discarded.
        Successful = "successful",
        /// Not finished yet.
        Incomplete = "incomplete",
        /// Scheduled only.
        Scheduled = "scheduled",
        /// Every state.
        All = "all",
    }
}

keywords! {
    /// The timestamp a unique period is measured from.
    UniqueTimestamp {
        /// The insert time.
        InsertedAt = "inserted_at",
        /// The scheduled time.
        ScheduledAt = "scheduled_at",
    }
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
    "cron",
    "timezone",
];

/// The options of `unique(..)`.
const UNIQUE_OPTIONS: &[&str] = &["period", "keys", "fields", "states", "timestamp"];

/// The built-in backoff strategies.
const BACKOFFS: &[&str] = &["default", "constant", "linear", "exponential"];

/// What a duration value looks like, for error messages.
const DURATION_HELP: &str =
    "a number of seconds or a string with units, such as `30`, \"500ms\", \"30s\", \"5m\" or \"1h\"";

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
                _ => unreachable!("every option is handled"),
            }
        }
        options
    }
}

/// Splits `a = 1, b(..), c` at its top-level commas and parses each part as a [`Meta`], so a
/// syntax error in one option does not hide the errors in the others.
fn parse_metas(cx: &Ctxt, tokens: TokenStream) -> Vec<Meta> {
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

/// The value of `key = value`, or an error saying the option needs one.
fn name_value<'a>(cx: &Ctxt, meta: &'a Meta, name: &str) -> Option<&'a Expr> {
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
fn example(option: &str) -> &'static str {
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
        "period" => "300",
        "keys" => "[order_id]",
        "fields" => "[args, queue, worker]",
        "states" => "incomplete",
        "timestamp" => "scheduled_at",
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
fn did_you_mean(name: &str, candidates: &[&str]) -> String {
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
fn all(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Looks through the invisible groups a `macro_rules!` caller may wrap values in.
fn strip_groups(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

/// A string literal, or an error saying how to write one.
fn string<'a>(cx: &Ctxt, value: &'a Expr, option: &str) -> Option<&'a LitStr> {
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
fn integer(cx: &Ctxt, value: &Expr, option: &str) -> Option<i128> {
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
fn duration_ms(cx: &Ctxt, value: &Expr, option: &str) -> Option<u64> {
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

/// `queue = "name"`: non-empty, `[a-z0-9_]`, as Oban's queue names.
fn parse_queue(cx: &Ctxt, value: &Expr) -> Option<String> {
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
fn parse_max_attempts(cx: &Ctxt, value: &Expr) -> Option<u16> {
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
fn parse_priority(cx: &Ctxt, value: &Expr) -> Option<u8> {
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

/// `cron = "0 * * * *"` or `cron = ["0 9 * * MON-FRI", "@daily"]`: every expression parses
/// as the runtime will parse it.
fn parse_cron(cx: &Ctxt, value: &Expr) -> Vec<String> {
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
        match check_cron(&expression) {
            Ok(()) => expressions.push(expression),
            Err(reason) => cx.error_spanned_by(
                text,
                format!("invalid cron expression `{expression}`: {reason}"),
            ),
        }
    }
    expressions
}

/// The runtime's cron grammar: five fields, or a nickname.
fn check_cron(expression: &str) -> Result<(), String> {
    let expanded = match expression {
        "@reboot" => return Ok(()),
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.split_whitespace().count() != 5 => {
            return Err("use five fields (minute hour day-of-month month day-of-week) or a nickname: @yearly, @monthly, @weekly, @daily, @midnight, @hourly, @reboot".to_owned())
        }
        other => other,
    };
    <croner::Cron as std::str::FromStr>::from_str(expanded)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `timezone = "Europe/Paris"`: a name in the IANA time zone database.
fn parse_timezone(cx: &Ctxt, value: &Expr) -> Option<String> {
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

/// `timeout = 30` or `timeout = "500ms"`: greater than zero.
fn parse_timeout(cx: &Ctxt, value: &Expr) -> Option<u64> {
    let ms = duration_ms(cx, value, "timeout")?;
    if ms == 0 {
        cx.error_spanned_by(
            value,
            "`timeout` must be greater than zero; leave it out to let attempts run without a time limit",
        );
        return None;
    }
    Some(ms)
}

/// `tags = ["a", "b"]`: non-empty strings, each once.
fn parse_tags(cx: &Ctxt, value: &Expr) -> Option<Vec<String>> {
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

/// `name = "Stored.Name"`: non-empty, no surrounding whitespace.
fn parse_name(cx: &Ctxt, value: &Expr) -> Option<String> {
    let lit = string(cx, value, "name")?;
    let name = lit.value();
    if name.trim().is_empty() {
        cx.error_spanned_by(
            lit,
            "the worker name is empty: it is stored with every job, e.g. `name = \"MyApp.Workers.SendReceipt\"`",
        );
        return None;
    }
    if name.trim() != name {
        cx.error_spanned_by(
            lit,
            format!(
                "the worker name has spaces around it: write `name = {:?}`",
                name.trim()
            ),
        );
        return None;
    }
    Some(name)
}

/// `args = StructName`.
fn parse_args(cx: &Ctxt, value: &Expr) -> Option<Ident> {
    if let Expr::Path(path) = value {
        if path.qself.is_none() && path.attrs.is_empty() {
            if let Some(ident) = path.path.get_ident() {
                return Some(ident.clone());
            }
        }
    }
    cx.error_spanned_by(
        value,
        "`args` is the name of the struct to generate, an identifier: `args = SendReceiptArgs`",
    );
    None
}

/// `derive(Debug, Clone, ..)`: derives added to the args struct's serde ones.
fn parse_derives(cx: &Ctxt, meta: &Meta) -> Vec<syn::Path> {
    let usage =
        "`derive` takes a list of traits, as `#[derive]` does: `derive(Debug, Clone, PartialEq)`";
    let Meta::List(meta_list) = meta else {
        cx.error_spanned_by(meta, usage);
        return Vec::new();
    };
    let paths =
        match meta_list.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated) {
            Ok(paths) => paths,
            Err(error) => {
                cx.error_at(error.span(), format!("{error}; {usage}"));
                return Vec::new();
            }
        };
    let mut derives: Vec<syn::Path> = Vec::new();
    for path in paths {
        let name = path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        if name == "Serialize" || name == "Deserialize" {
            cx.error_spanned_by(
                &path,
                format!("`{name}` is always derived for the args struct: remove it"),
            );
        } else if derives
            .iter()
            .any(|d| d.segments.last().is_some_and(|s| s.ident == name))
        {
            cx.error_spanned_by(&path, format!("`{name}` is listed twice: remove one"));
        } else {
            derives.push(path);
        }
    }
    derives
}

/// `backoff = default | constant(D) | linear(D) | exponential(base = D, max = D) | path | closure`.
fn parse_backoff(cx: &Ctxt, value: &Expr) -> Option<Backoff> {
    let usage = "`backoff` takes `default`, `constant(SECS)`, `linear(SECS)`, \
                 `exponential(base = SECS, max = SECS)` or the path of your own `fn(&Job) -> Duration`";
    match value {
        Expr::Path(path) if path.qself.is_none() => {
            match path.path.get_ident().map(ToString::to_string).as_deref() {
                Some("default") => Some(Backoff::Default),
                Some(strategy @ ("constant" | "linear")) => {
                    cx.error_spanned_by(
                        value,
                        format!("`{strategy}` needs its delay: `backoff = {strategy}(10)`"),
                    );
                    None
                }
                Some("exponential") => {
                    cx.error_spanned_by(
                        value,
                        "`exponential` needs its base and max delays: `backoff = exponential(base = 1, max = 3600)`",
                    );
                    None
                }
                _ => Some(Backoff::Custom(value.clone())),
            }
        }
        Expr::Closure(_) => Some(Backoff::Custom(value.clone())),
        Expr::Call(call) => {
            let strategy = match strip_groups(&call.func) {
                Expr::Path(path) if path.qself.is_none() => {
                    path.path.get_ident().map(ToString::to_string)
                }
                _ => None,
            };
            let Some(strategy) = strategy else {
                cx.error_spanned_by(
                    value,
                    "a custom backoff is the path of a `fn(&Job) -> Duration`, not a call: write `backoff = my_backoff`",
                );
                return None;
            };
            let args: Vec<&Expr> = call.args.iter().map(strip_groups).collect();
            match (strategy.as_str(), args.as_slice()) {
                ("constant", [delay]) => duration_ms(cx, delay, "constant").map(Backoff::Constant),
                ("linear", [base]) => {
                    let base_ms = duration_ms(cx, base, "linear")?;
                    if base_ms == 0 {
                        cx.error_spanned_by(
                            base,
                            "a linear backoff's base must be greater than zero",
                        );
                        return None;
                    }
                    Some(Backoff::Linear(base_ms))
                }
                ("constant" | "linear", _) => {
                    cx.error_spanned_by(
                        &call.args,
                        format!("`{strategy}` takes one delay: `backoff = {strategy}(10)`"),
                    );
                    None
                }
                ("exponential", _) => parse_exponential(cx, call),
                ("default", _) => {
                    cx.error_spanned_by(
                        value,
                        "the default backoff takes no arguments: `backoff = default`",
                    );
                    None
                }
                (other, _) => {
                    cx.error_spanned_by(
                        &call.func,
                        format!(
                            "unknown backoff `{other}`{}; {usage}",
                            did_you_mean(other, BACKOFFS)
                        ),
                    );
                    None
                }
            }
        }
        _ => {
            cx.error_spanned_by(value, usage);
            None
        }
    }
}

/// `exponential(base = D, max = D)`, with `max >= base > 0`.
fn parse_exponential(cx: &Ctxt, call: &syn::ExprCall) -> Option<Backoff> {
    let usage = "`exponential(base = 1, max = 3600)`";
    let (mut base, mut max) = (None, None);
    let mut ok = true;
    for arg in &call.args {
        let Expr::Assign(assign) = strip_groups(arg) else {
            cx.error_spanned_by(arg, format!("name the delays: {usage}"));
            ok = false;
            continue;
        };
        let key = match strip_groups(&assign.left) {
            Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
            _ => None,
        };
        let value = strip_groups(&assign.right);
        let slot = match key.as_deref() {
            Some("base") => &mut base,
            Some("max") => &mut max,
            Some(other) => {
                cx.error_spanned_by(
                    &assign.left,
                    format!("unknown exponential backoff setting `{other}`{}: expected `base` and `max`", did_you_mean(other, &["base", "max"])),
                );
                ok = false;
                continue;
            }
            None => {
                cx.error_spanned_by(&assign.left, format!("expected `base` or `max`: {usage}"));
                ok = false;
                continue;
            }
        };
        if slot.is_some() {
            cx.error_spanned_by(
                &assign.left,
                format!("`{}` set multiple times; keep one", key.unwrap_or_default()),
            );
            ok = false;
            continue;
        }
        match duration_ms(cx, value, key.as_deref().unwrap_or_default()) {
            Some(ms) => *slot = Some((ms, value.span())),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let (Some((base, base_span)), Some((max, max_span))) = (base, max) else {
        let missing = if base.is_none() { "base" } else { "max" };
        cx.error_spanned_by(call, format!("`exponential` needs `{missing}`: {usage}"));
        return None;
    };
    if base == 0 {
        cx.error_at(base_span, "the base delay must be greater than zero");
        return None;
    }
    if max < base {
        cx.error_at(
            max_span,
            "`max` is smaller than `base`: the cap must be at least the first delay",
        );
        return None;
    }
    Some(Backoff::Exponential { base, max })
}

/// `unique` or `unique(..)`.
fn parse_unique(cx: &Ctxt, meta: &Meta) -> Option<Unique> {
    let meta_list = match meta {
        Meta::Path(_) => return Some(Unique::default()),
        Meta::List(meta_list) => meta_list,
        Meta::NameValue(name_value) => {
            cx.error_spanned_by(
                name_value,
                "`unique` takes its settings in parentheses: `unique(period = 300, keys = [order_id])`, or just `unique` for Oban's defaults",
            );
            return None;
        }
    };
    let mut unique = Unique::default();
    let mut seen = HashSet::new();
    let mut ok = true;
    for meta in parse_metas(cx, meta_list.tokens.clone()) {
        let key = meta.path();
        let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
        if !UNIQUE_OPTIONS.contains(&name.as_str()) {
            cx.error_spanned_by(
                key,
                format!(
                    "unknown `unique` setting `{name}`{}; the settings are {}",
                    did_you_mean(&name, UNIQUE_OPTIONS),
                    all(UNIQUE_OPTIONS)
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
        let parsed = match name.as_str() {
            "period" => parse_period(cx, value).map(|p| unique.period = Some(p)),
            "keys" => parse_keys(cx, value).map(|k| unique.keys = Some(k)),
            "fields" => parse_fields(cx, value).map(|f| unique.fields = Some(f)),
            "states" => keyword::<UniqueStates>(
                cx,
                value,
                "states",
                UniqueStates::from_name,
                UniqueStates::NAMES,
            )
            .map(|s| unique.states = Some(s)),
            "timestamp" => keyword::<UniqueTimestamp>(
                cx,
                value,
                "timestamp",
                UniqueTimestamp::from_name,
                UniqueTimestamp::NAMES,
            )
            .map(|t| unique.timestamp = Some(t)),
            _ => unreachable!("every unique setting is handled"),
        };
        ok &= parsed.is_some();
    }
    // A half-valid `unique` would make different jobs duplicates of each other: drop it whole.
    ok.then_some(unique)
}

/// `period = 300 | "5m" | infinity`.
fn parse_period(cx: &Ctxt, value: &Expr) -> Option<Period> {
    if let Expr::Path(path) = value {
        return match path.path.get_ident().map(ToString::to_string).as_deref() {
            Some("infinity") => Some(Period::Infinity),
            Some(other) => {
                cx.error_spanned_by(
                    value,
                    format!(
                        "`period` takes seconds or `infinity`, not `{other}`{}: `period = 300`",
                        did_you_mean(other, &["infinity"])
                    ),
                );
                None
            }
            None => {
                cx.error_spanned_by(
                    value,
                    "`period` takes seconds or `infinity`: `period = 300`",
                );
                None
            }
        };
    }
    let ms = duration_ms(cx, value, "period")?;
    if ms == 0 {
        cx.error_spanned_by(
            value,
            "`period` must be at least 1 second; use `period = infinity` to block duplicates for as long as the job exists",
        );
        return None;
    }
    if ms % 1000 != 0 {
        cx.error_spanned_by(value, "`period` is counted in whole seconds");
        return None;
    }
    Some(Period::Seconds(ms / 1000))
}

/// `keys = [a, "b"]`: names, checked against the fn's arguments later.
fn parse_keys(cx: &Ctxt, value: &Expr) -> Option<Vec<(String, Span)>> {
    let Expr::Array(array) = value else {
        let hint = match value {
            Expr::Path(path) => path.path.get_ident().map(|i| format!("`keys = [{i}]`")),
            _ => None,
        };
        cx.error_spanned_by(
            value,
            format!(
                "`keys` takes a list of argument names: {}",
                hint.unwrap_or_else(|| "`keys = [order_id]`".into())
            ),
        );
        return None;
    };
    let mut keys: Vec<(String, Span)> = Vec::new();
    let mut ok = true;
    for element in &array.elems {
        let key = match strip_groups(element) {
            Expr::Path(path) if path.qself.is_none() => path.path.get_ident().map(|i| {
                let name = i.to_string();
                name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
            }),
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => Some(lit.value()),
            _ => None,
        };
        match key {
            Some(key) if keys.iter().any(|(k, _)| *k == key) => {
                cx.error_spanned_by(element, format!("key `{key}` is listed twice: remove one"));
                ok = false;
            }
            Some(key) => keys.push((key, element.span())),
            None => {
                cx.error_spanned_by(
                    element,
                    "a unique key is the name of an argument: `keys = [order_id]`",
                );
                ok = false;
            }
        }
    }
    ok.then_some(keys)
}

/// `fields = [args, queue, worker, meta]`: at least one, each once.
fn parse_fields(cx: &Ctxt, value: &Expr) -> Option<Vec<UniqueField>> {
    let Expr::Array(array) = value else {
        cx.error_spanned_by(
            value,
            format!(
                "`fields` takes a list of {}: `fields = [args, queue, worker]`",
                list(UniqueField::NAMES)
            ),
        );
        return None;
    };
    if array.elems.is_empty() {
        cx.error_spanned_by(
            value,
            format!("`fields` needs at least one of {}; leave it out for Oban's default `[args, queue, worker]`", list(UniqueField::NAMES)),
        );
        return None;
    }
    let mut fields = Vec::new();
    let mut ok = true;
    for element in &array.elems {
        let Some(field) = keyword(
            cx,
            strip_groups(element),
            "fields",
            UniqueField::from_name,
            UniqueField::NAMES,
        ) else {
            ok = false;
            continue;
        };
        if fields.contains(&field) {
            cx.error_spanned_by(element, "this field is listed twice: remove one");
            ok = false;
        } else {
            fields.push(field);
        }
    }
    ok.then_some(fields)
}

/// One keyword out of `names`, e.g. `states = incomplete`.
fn keyword<T>(
    cx: &Ctxt,
    value: &Expr,
    setting: &str,
    from_name: fn(&str) -> Option<T>,
    names: &[&str],
) -> Option<T> {
    let word = match value {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().map(ToString::to_string),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit.value()),
        _ => None,
    };
    if let Some(parsed) = word.as_deref().and_then(from_name) {
        return Some(parsed);
    }
    const JOB_STATES: &[&str] = &[
        "available",
        "scheduled",
        "suspended",
        "executing",
        "retryable",
        "completed",
        "discarded",
        "cancelled",
    ];
    let groups = "`successful` (every state but cancelled and discarded: Oban's default), \
                  `incomplete` (not finished yet), `scheduled` or `all`";
    let message = match (word, value) {
        (_, Expr::Array(_)) if setting == "states" => {
            format!("`states` takes one group of states, not a list: {groups}")
        }
        (Some(word), _) if setting == "states" && JOB_STATES.contains(&word.as_str()) => {
            format!("`states` takes a group of states, not the job state `{word}`: {groups}")
        }
        (Some(word), _) if setting == "states" => {
            format!(
                "unknown states `{word}`{}: expected {groups}",
                did_you_mean(&word, names)
            )
        }
        (Some(word), _) => format!(
            "unknown {} `{word}`{}: expected {}",
            if setting == "fields" {
                "unique field"
            } else {
                setting
            },
            did_you_mean(&word, names),
            list(names)
        ),
        (None, _) => format!("expected {}", list(names)),
    };
    cx.error_spanned_by(value, message);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> (Options, Vec<String>) {
        let cx = Ctxt::new();
        let options = Options::parse(&cx, args.parse().unwrap());
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(tokens) => tokens
                .to_string()
                .split("compile_error !")
                .skip(1)
                .map(|e| e.trim().to_owned())
                .collect(),
        };
        (options, errors)
    }

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

    #[test]
    fn suggestions() {
        assert_eq!(closest("queu", OPTIONS), Some("queue"));
        assert_eq!(closest("max_attempt", OPTIONS), Some("max_attempts"));
        assert_eq!(closest("Priority", OPTIONS), Some("priority"));
        assert_eq!(closest("uniq", OPTIONS), Some("unique"));
        assert_eq!(
            closest("order", &["order_id", "recipient"]),
            Some("order_id")
        );
        assert_eq!(closest("colour", OPTIONS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn every_option_parses() {
        let (options, errors) = parse(
            r#"queue = "mailers", max_attempts = 10, priority = 3, timeout = "1m",
               tags = ["a", "b"], name = "App.Send", args = SendArgs, derive(Debug),
               backoff = exponential(base = 2, max = "1h"),
               unique(period = infinity, keys = [order_id], fields = [args, queue],
                      states = incomplete, timestamp = scheduled_at)"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(options.queue.as_deref(), Some("mailers"));
        assert_eq!(options.max_attempts, Some(10));
        assert_eq!(options.priority, Some(3));
        assert_eq!(options.timeout_ms, Some(60_000));
        assert_eq!(options.tags, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(options.name.as_deref(), Some("App.Send"));
        assert_eq!(
            options.args.map(|a| a.to_string()).as_deref(),
            Some("SendArgs")
        );
        assert_eq!(options.derives.len(), 1);
        assert!(matches!(
            options.backoff,
            Some(Backoff::Exponential {
                base: 2_000,
                max: 3_600_000
            })
        ));
        let unique = options.unique.expect("unique");
        assert!(matches!(unique.period, Some(Period::Infinity)));
        assert_eq!(unique.keys.map(|k| k.len()), Some(1));
        assert!(unique.fields == Some(vec![UniqueField::Args, UniqueField::Queue]));
        assert!(unique.states == Some(UniqueStates::Incomplete));
        assert!(unique.timestamp == Some(UniqueTimestamp::ScheduledAt));
    }

    #[test]
    fn every_mistake_is_reported_and_the_rest_is_kept() {
        let (options, errors) = parse(
            r#"queue = "Bad Queue", priority = 10, queue = "x", colour = 1, max_attempts = 5"#,
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].contains("try `queue = \\\"bad_queue\\\"`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[2].contains("`queue` set multiple times"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].contains("unknown option `colour`"),
            "{}",
            errors[3]
        );
        assert_eq!(options.max_attempts, Some(5));
        assert_eq!(options.queue, None);
    }

    #[test]
    fn a_missing_value_is_reported_on_its_option() {
        let (_, errors) = parse("queue = , priority = 1");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("`queue` needs a value"), "{}", errors[0]);
    }

    #[test]
    fn half_valid_unique_is_dropped_whole() {
        let (options, errors) = parse("unique(period = 60, states = finished)");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(options.unique.is_none());
    }
}
