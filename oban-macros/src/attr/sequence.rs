//! `sequence(..)`: the worker's jobs run one at a time, in insertion order, per key.

use proc_macro2::Span;
use syn::{Expr, ExprLit, Lit, Meta};

use crate::ctxt::Ctxt;

use super::unique::parse_keys;
use super::{did_you_mean, each_setting};

/// `sequence(..)`.
#[derive(Default)]
pub(crate) struct Sequence {
    /// `keys = [..]`, each with the span of its token (checked against the fn later); empty:
    /// one sequence for all of the worker's jobs.
    pub(crate) keys: Vec<(String, Span)>,
    /// `on_failure = "hold"`.
    pub(crate) hold: bool,
}

/// The settings of `sequence(..)`.
const SEQUENCE_OPTIONS: &[&str] = &["keys", "on_failure"];
/// The spellings of `on_failure`.
const ON_FAILURE: &[&str] = &["release", "hold"];

/// `sequence` or `sequence(..)`.
pub(super) fn parse_sequence(cx: &Ctxt, meta: &Meta) -> Option<Sequence> {
    let meta_list = match meta {
        Meta::Path(_) => return Some(Sequence::default()),
        Meta::List(meta_list) => meta_list,
        Meta::NameValue(name_value) => {
            cx.error_spanned_by(
                name_value,
                "`sequence` takes its settings in parentheses: `sequence(keys = [account_id])`, or just `sequence` for one sequence of all the worker's jobs",
            );
            return None;
        }
    };
    let mut sequence = Sequence::default();
    let ok = each_setting(
        cx,
        "sequence",
        meta_list,
        SEQUENCE_OPTIONS,
        |name, value| match name {
            "keys" => parse_keys(cx, value).map(|k| sequence.keys = k),
            "on_failure" => parse_on_failure(cx, value).map(|hold| sequence.hold = hold),
            _ => unreachable!("every sequence setting is handled"),
        },
    );
    // A half-valid `sequence` would put unrelated jobs in one sequence: drop it whole.
    ok.then_some(sequence)
}

/// `on_failure = "release" | "hold"`: whether a discarded or cancelled job holds its sequence.
fn parse_on_failure(cx: &Ctxt, value: &Expr) -> Option<bool> {
    let word = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit.value()),
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().map(ToString::to_string),
        _ => None,
    };
    match word.as_deref() {
        Some("release") => Some(false),
        Some("hold") => Some(true),
        other => {
            let hint = other
                .map(|w| did_you_mean(w, ON_FAILURE))
                .unwrap_or_default();
            cx.error_spanned_by(
                value,
                format!(
                    "`on_failure` is \"release\" (a discarded or cancelled job lets the next one run, the default) or \"hold\" (the next ones wait until it is retried or deleted){hint}"
                ),
            );
            None
        }
    }
}
