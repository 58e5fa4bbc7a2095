//! Checks that need both the options and the fn: the unique and sequence `keys` must name stored
//! arguments of the fn, and only make sense when the args (or meta) are compared.

use crate::ast::{Input, WorkerFn};
use crate::attr::{closest, list, Options, UniqueField};
use crate::ctxt::Ctxt;
use proc_macro2::Span;

/// Records what is wrong between `options` and `worker`, and drops the options that are.
pub(crate) fn check(cx: &Ctxt, options: &mut Options, worker: &WorkerFn<'_>) {
    check_unique_keys(cx, options, worker);
    check_sequence_keys(cx, options, worker);
    check_cron_args(cx, options, worker);
    check_record_limit(cx, options, worker);
}

/// `record_limit` only means something for a fn that returns a value to record.
fn check_record_limit(cx: &Ctxt, options: &mut Options, worker: &WorkerFn<'_>) {
    if let Some((_, span)) = options.record_limit {
        if !crate::ast::records(worker) {
            cx.error_at(
                span,
                format!(
                    "`record_limit` applies to a worker that records its result, but `{}` returns none; return `Result<T, E>` with a serializable `T`, or remove it",
                    worker.ident
                ),
            );
            options.record_limit = None;
        }
    }
}

/// Cron jobs are inserted with empty args, so a cron worker may not have stored arguments;
/// `timezone` only means something with `cron`.
fn check_cron_args(cx: &Ctxt, options: &mut Options, worker: &WorkerFn<'_>) {
    if options.cron.is_empty() {
        if let (None, Some(span)) = (options.cron_span, options.timezone_span) {
            cx.error_at(
                span,
                "`timezone` applies to `cron` expressions; add `cron = \"..\"` or remove it",
            );
        }
        return;
    }
    let stored = worker.inputs.iter().any(|input| {
        matches!(
            input,
            Input::Stored { .. } | Input::Invalid { stored: true, .. }
        )
    });
    if stored {
        cx.error_at(
            options.cron_span.unwrap_or_else(proc_macro2::Span::call_site),
            format!(
                "cron inserts `{}` jobs with empty args, but the fn has stored arguments; remove them (inject `&Job` or `State<T>` instead) or schedule the job on the builder with `.cron(expression, job)`",
                worker.ident
            ),
        );
        options.cron.clear();
    }
}

/// Every unique key must be a stored argument of the fn: that is a key of the job's args.
fn check_unique_keys(cx: &Ctxt, options: &mut Options, worker: &WorkerFn<'_>) {
    let Some(unique) = &options.unique else {
        return;
    };
    let Some(keys) = &unique.keys else { return };
    let mut ok = check_keys(cx, keys, worker, "unique");
    if ok && !keys.is_empty() {
        if let Some(fields) = &unique.fields {
            if !fields.contains(&UniqueField::Args) && !fields.contains(&UniqueField::Meta) {
                ok = false;
                cx.error_at(
                    keys[0].1,
                    "unique `keys` select keys of the args or meta, but `fields` compares neither: \
                     add `args` to `fields`",
                );
            }
        }
    }
    if !ok {
        options.unique = None;
    }
}

/// Every sequence key must be a stored argument of the fn, as for unique keys.
fn check_sequence_keys(cx: &Ctxt, options: &mut Options, worker: &WorkerFn<'_>) {
    let Some(sequence) = &options.sequence else {
        return;
    };
    if !check_keys(cx, &sequence.keys, worker, "sequence") {
        options.sequence = None;
    }
}

/// Whether every key of `keys` (of `what`: unique, sequence) names a stored argument of the fn;
/// records an error for each that does not.
fn check_keys(cx: &Ctxt, keys: &[(String, Span)], worker: &WorkerFn<'_>, what: &str) -> bool {
    // Names of the parameters, by kind; a parameter with an error of its own still counts as the
    // kind it was meant to be, so a key naming it adds no second error.
    let names = worker.item.sig.inputs.iter().filter_map(|arg| match arg {
        syn::FnArg::Typed(typed) => match &*typed.pat {
            syn::Pat::Ident(pat) => Some(Some(unraw(&pat.ident.to_string()))),
            _ => Some(None),
        },
        syn::FnArg::Receiver(_) => None,
    });
    let (mut stored, mut injected) = (Vec::new(), Vec::new());
    for (name, input) in names.zip(&worker.inputs) {
        let Some(name) = name else { continue };
        match input {
            Input::Stored { .. } | Input::Invalid { stored: true, .. } => stored.push(name),
            _ => injected.push(name),
        }
    }
    let stored_refs: Vec<&str> = stored.iter().map(String::as_str).collect();

    let mut ok = true;
    for (key, span) in keys {
        if stored.contains(key) {
            continue;
        }
        ok = false;
        let fn_name = worker.ident;
        let message = if injected.contains(key) {
            format!(
                "`{key}` is injected when the job runs, not stored in its args: {what} keys name \
                 stored arguments of `{fn_name}`{}",
                available(&stored_refs)
            )
        } else if stored.is_empty() {
            format!(
                "`{key}` is not an argument of `{fn_name}`, which stores no arguments: remove \
                 `keys`"
            )
        } else {
            let hint = closest(key, &stored_refs)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            format!(
                "`{key}` is not an argument of `{fn_name}`: {hint}{what} keys name its stored \
                 arguments{}",
                available(&stored_refs)
            )
        };
        cx.error_at(*span, message);
    }
    ok
}

/// `" (`a` or `b`)"`.
fn available(stored: &[&str]) -> String {
    if stored.is_empty() {
        String::new()
    } else {
        format!(" ({})", list(stored))
    }
}

/// `type` for `r#type`: the field name serde writes.
fn unraw(name: &str) -> String {
    name.strip_prefix("r#").unwrap_or(name).to_owned()
}
