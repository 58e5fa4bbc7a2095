//! How long a failed job waits and how long an attempt may run: `backoff` and `timeout`.

use syn::spanned::Spanned;
use syn::Expr;

use crate::ctxt::Ctxt;

use super::did_you_mean;
use super::lit::{duration_ms, strip_groups};

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

/// The built-in backoff strategies.
const BACKOFFS: &[&str] = &["default", "constant", "linear", "exponential"];
/// `backoff = default | constant(D) | linear(D) | exponential(base = D, max = D) | path | closure`.
pub(super) fn parse_backoff(cx: &Ctxt, value: &Expr) -> Option<Backoff> {
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

/// `timeout = 30` or `timeout = "500ms"`: greater than zero.
pub(super) fn parse_timeout(cx: &Ctxt, value: &Expr) -> Option<u64> {
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
