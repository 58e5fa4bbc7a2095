//! `unique(..)`: which existing jobs make a new one a duplicate, and for how long.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta};

use crate::ctxt::Ctxt;

use super::lit::{duration_ms, strip_groups};
use super::{did_you_mean, each_setting, list};

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

/// The options of `unique(..)`.
const UNIQUE_OPTIONS: &[&str] = &["period", "keys", "fields", "states", "timestamp"];
/// `unique` or `unique(..)`.
pub(super) fn parse_unique(cx: &Ctxt, meta: &Meta) -> Option<Unique> {
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
    let ok = each_setting(
        cx,
        "unique",
        meta_list,
        UNIQUE_OPTIONS,
        |name, value| match name {
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
        },
    );
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
pub(super) fn parse_keys(cx: &Ctxt, value: &Expr) -> Option<Vec<(String, Span)>> {
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
                    "a key is the name of an argument: `keys = [order_id]`",
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
