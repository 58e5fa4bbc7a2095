//! Code generation: the args struct, its `new`, the `Worker` impl and the registration.
//!
//! Everything generated names the runtime by absolute paths (`::oban::..`, `::core::..`), so a
//! user's `Result`, `Ok`, `Vec` or `Box` in scope changes nothing. Impls sit in `const _: () =
//! { .. };` and carry `#[allow(..)]`s so the user's lints stay quiet.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, Item, ItemFn, LitStr, Type};

use crate::ast::{self, Input, WorkerFn};
use crate::attr::{Backoff, Options, Period, UniqueField, UniqueStates, UniqueTimestamp};
use crate::ctxt::Ctxt;
use crate::valid;

/// Expands `#[worker(args)] input`.
pub(crate) fn worker(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let mut options = Options::parse(&cx, args);
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Fn(item)) => item,
        Ok(other) => {
            let kind = other.into_token_stream().into_iter().find(|t| {
                !matches!(t, TokenTree::Punct(p) if p.as_char() == '#')
                    && !matches!(t, TokenTree::Group(_))
                    && !matches!(t, TokenTree::Ident(i) if i == "pub")
            });
            cx.error_at(
                kind.map_or_else(Span::call_site, |t| t.span()),
                "`#[worker]` goes on an `async fn`, e.g. \
                 `#[worker] async fn send_receipt(order_id: i64) {}`",
            );
            let errors = cx.check().err().unwrap_or_default();
            return quote!(#input #errors);
        }
        Err(error) => {
            // Not an item syn understands: rustc reports the syntax error itself.
            cx.syn_error(error);
            let errors = cx.check().err().unwrap_or_default();
            return quote!(#input #errors);
        }
    };
    let worker = WorkerFn::from_syn(&cx, &item);
    valid::check(&cx, &mut options, &worker);
    let struct_ident = struct_ident(&cx, &options, &worker);

    let user_fn = user_fn(&item);
    let generated = match (&struct_ident, worker.is_valid) {
        (Some(ident), true) => expand(&worker, &options, ident),
        (Some(ident), false) if !worker.has_receiver => fallback(&worker, &options, ident),
        _ => TokenStream::new(),
    };
    let errors = cx.check().err().unwrap_or_default();
    quote! {
        #user_fn
        #generated
        #errors
    }
}

/// The user's fn, unchanged but for two allows: the macro is what asks for an `async fn` and for
/// arguments taken by value, so clippy's `unused_async` and `needless_pass_by_value` would blame
/// the user for following it.
fn user_fn(item: &ItemFn) -> TokenStream {
    quote! {
        #[allow(clippy::unused_async, clippy::needless_pass_by_value)]
        #item
    }
}

/// The args struct's name: `args = ..`, or the fn's name in PascalCase.
fn struct_ident(cx: &Ctxt, options: &Options, worker: &WorkerFn<'_>) -> Option<Ident> {
    if let Some(ident) = &options.args {
        return Some(ident.clone());
    }
    let name = pascal_case(&worker.ident.to_string());
    match syn::parse_str::<Ident>(&name) {
        Ok(_) if name != "Self" => Some(Ident::new(&name, worker.ident.span())),
        _ => {
            cx.error_spanned_by(
                worker.ident,
                format!(
                    "`{name}` cannot name the args struct: choose a name with \
                     `args = SendReceiptArgs`"
                ),
            );
            None
        }
    }
}

/// `send_receipt` -> `SendReceipt`.
fn pascal_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::with_capacity(name.len());
    for word in name.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The lints generated items are exempt from, whatever the user's crate denies.
fn allows() -> TokenStream {
    quote! {
        #[allow(
            missing_docs,
            unused_qualifications,
            unreachable_pub,
            non_camel_case_types,
            non_snake_case,
            dead_code,
            unreachable_code,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            clippy::restriction
        )]
    }
}

/// The full expansion of a valid worker fn.
fn expand(worker: &WorkerFn<'_>, options: &Options, ident: &Ident) -> TokenStream {
    let vis = worker.vis;
    let cfgs = &worker.cfgs;
    let fn_ident = worker.ident;
    let allows = allows();
    let stored_name = stored_name(options, ident);
    let derives = &options.derives;

    let docs = struct_docs(worker);
    let fields = worker.stored().map(|(field, ty)| {
        let doc = format!(" The `{}` argument of `{fn_ident}`.", unraw(field));
        let serde = field_serde_attrs(ty);
        quote!(#[doc = #doc] #serde #vis #field: #ty)
    });
    let params = worker.stored().map(|(field, ty)| quote!(#field: #ty));
    let field_names: Vec<&Ident> = worker.stored().map(|(field, _)| field).collect();
    let new_doc = format!(
        " A `{fn_ident}` job with these arguments: set per-job options on the builder, then \
         `.insert(..)` it."
    );

    let options_fn = options_fn(options, ast::records(worker));
    let cron_const = cron_const(options);
    let required_state = required_state(worker);
    let perform = perform(worker);
    let produces = match ast::recorded_type(worker) {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };

    quote! {
        #(#cfgs)*
        #(#docs)*
        #[derive(
            ::oban::__private::serde::Serialize,
            ::oban::__private::serde::Deserialize,
            #(#derives,)*
        )]
        #[serde(crate = "::oban::__private::serde")]
        #allows
        #vis struct #ident {
            #(#fields,)*
        }

        #(#cfgs)*
        #allows
        const _: () = {
            impl #ident {
                #[doc = #new_doc]
                #vis fn new(#(#params),*) -> ::oban::JobBuilder<Self> {
                    ::oban::JobBuilder::new(Self { #(#field_names),* })
                }
            }

            #[automatically_derived]
            impl ::oban::Worker for #ident {
                const NAME: &'static str = #stored_name;
                #cron_const
                #options_fn
                #required_state
                #perform
            }


            #[automatically_derived]
            impl ::oban::workflow::Produces for #ident {
                type Output = #produces;
            }

            ::oban::__private::inventory::submit! {
                ::oban::__private::WorkerRegistration::of::<#ident>()
            }
        };
    }
}

/// What stands in for the generated items when the fn has an error, so that uses of the args
/// struct (`SendReceipt::new(..).insert(..)`) do not add errors of their own.
fn fallback(worker: &WorkerFn<'_>, options: &Options, ident: &Ident) -> TokenStream {
    let vis = worker.vis;
    let cfgs = &worker.cfgs;
    let allows = allows();
    let stored_name = stored_name(options, ident);
    let derives = &options.derives;
    let (impl_generics, _, where_clause) = worker.item.sig.generics.split_for_impl();
    let params = worker.inputs.iter().filter_map(|input| match input {
        Input::Stored { ty, .. } | Input::Invalid { ty, stored: true } => Some(quote!(_: #ty)),
        _ => None,
    });
    quote! {
        #(#cfgs)*
        #[derive(
            ::oban::__private::serde::Serialize,
            ::oban::__private::serde::Deserialize,
            #(#derives,)*
        )]
        #[serde(crate = "::oban::__private::serde")]
        #allows
        #vis struct #ident {}

        #(#cfgs)*
        #allows
        const _: () = {
            impl #ident {
                #vis fn new #impl_generics (#(#params),*) -> ::oban::JobBuilder<Self> #where_clause {
                    ::oban::JobBuilder::new(Self {})
                }
            }

            impl ::oban::Worker for #ident {
                const NAME: &'static str = #stored_name;
                fn perform(self, _: ::oban::JobContext) -> impl ::core::future::Future<
                    Output = ::core::result::Result<::oban::Outcome, ::oban::JobError>,
                > + ::core::marker::Send {
                    async {
                        let output: ::core::result::Result<::oban::Outcome, ::oban::JobError> =
                            ::core::unreachable!("this worker did not compile");
                        output
                    }
                }
            }
        };
    }
}

/// The stored worker name: `name = ".."` or the struct's name.
fn stored_name(options: &Options, ident: &Ident) -> LitStr {
    let name = options.name.clone().unwrap_or_else(|| unraw(ident));
    LitStr::new(&name, ident.span())
}

/// The fn's docs, or a line naming the fn when it has none.
fn struct_docs(worker: &WorkerFn<'_>) -> Vec<TokenStream> {
    if worker.docs.is_empty() {
        let doc = format!(" The arguments of the `{}` worker.", worker.ident);
        vec![quote!(#[doc = #doc])]
    } else {
        worker.docs.iter().map(|doc| quote!(#doc)).collect()
    }
}

/// `const CRON`, when the worker has cron expressions.
fn cron_const(options: &Options) -> TokenStream {
    if options.cron.is_empty() {
        return TokenStream::new();
    }
    let timezone = options.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    let entries = options
        .cron
        .iter()
        .map(|expression| quote!((#expression, #timezone)));
    quote! {
        const CRON: &'static [(&'static str, &'static str)] = &[#(#entries),*];
    }
}

/// `fn options()`, unless every option is left to the default.
fn options_fn(options: &Options, records: bool) -> TokenStream {
    let mut calls = Vec::new();
    if records {
        calls.push(quote!(.recorded()));
    }
    if let Some((limit, _)) = options.record_limit {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        calls.push(quote!(.record_limit(#limit)));
    }
    if let Some(queue) = &options.queue {
        calls.push(quote!(.queue(#queue)));
    }
    if let Some(max_attempts) = options.max_attempts {
        calls.push(quote!(.max_attempts(#max_attempts)));
    }
    if let Some(priority) = options.priority {
        calls.push(quote!(.priority(#priority)));
    }
    if let Some(tags) = &options.tags {
        calls.push(quote!(.tags(&[#(#tags),*])));
    }
    if let Some(ms) = options.timeout_ms {
        let duration = duration(ms);
        calls.push(quote!(.timeout(#duration)));
    }
    if let Some(backoff) = &options.backoff {
        let backoff = backoff_expr(backoff);
        calls.push(quote!(.backoff(#backoff)));
    }
    if let Some(unique) = &options.unique {
        let mut unique_calls = Vec::new();
        match unique.period {
            Some(Period::Seconds(seconds)) => unique_calls.push(quote!(.period(#seconds))),
            Some(Period::Infinity) => unique_calls.push(quote!(.infinite())),
            None => {}
        }
        if let Some(fields) = &unique.fields {
            let fields = fields.iter().map(|field| match field {
                UniqueField::Args => quote!(::oban::UniqueField::Args),
                UniqueField::Queue => quote!(::oban::UniqueField::Queue),
                UniqueField::Worker => quote!(::oban::UniqueField::Worker),
                UniqueField::Meta => quote!(::oban::UniqueField::Meta),
            });
            unique_calls.push(quote!(.fields(&[#(#fields),*])));
        }
        if let Some(keys) = &unique.keys {
            let keys = keys.iter().map(|(key, _)| key);
            unique_calls.push(quote!(.keys(&[#(#keys),*])));
        }
        if let Some(states) = unique.states {
            let states = match states {
                UniqueStates::Successful => quote!(Successful),
                UniqueStates::Incomplete => quote!(Incomplete),
                UniqueStates::Scheduled => quote!(Scheduled),
                UniqueStates::All => quote!(All),
            };
            unique_calls.push(quote!(.states(::oban::UniqueStates::#states)));
        }
        if let Some(timestamp) = unique.timestamp {
            let timestamp = match timestamp {
                UniqueTimestamp::InsertedAt => quote!(InsertedAt),
                UniqueTimestamp::ScheduledAt => quote!(ScheduledAt),
            };
            unique_calls.push(quote!(.timestamp(::oban::UniqueTimestamp::#timestamp)));
        }
        calls.push(quote!(.unique(::oban::UniqueOptions::new() #(#unique_calls)*)));
    }
    if let Some(sequence) = &options.sequence {
        let keys = sequence.keys.iter().map(|(key, _)| key);
        let on_failure = if sequence.hold {
            quote!(Hold)
        } else {
            quote!(Release)
        };
        calls.push(quote!(.sequence(
            ::oban::SequenceOptions::new()
                .keys(&[#(#keys),*])
                .on_failure(::oban::sequence::OnFailure::#on_failure)
        )));
    }
    if calls.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn options() -> ::oban::WorkerOptions {
            ::oban::WorkerOptions::new() #(#calls)*
        }
    }
}

/// A `Duration` of `ms` milliseconds, in whole seconds when it is.
fn duration(ms: u64) -> TokenStream {
    if ms % 1000 == 0 {
        let seconds = ms / 1000;
        quote!(::core::time::Duration::from_secs(#seconds))
    } else {
        quote!(::core::time::Duration::from_millis(#ms))
    }
}

/// The `Backoff` value; a custom fn is coerced at its own span, so a wrong signature is reported
/// on the path the user wrote.
fn backoff_expr(backoff: &Backoff) -> TokenStream {
    match backoff {
        Backoff::Default => quote!(::oban::Backoff::Default),
        Backoff::Constant(ms) => {
            let delay = duration(*ms);
            quote!(::oban::Backoff::Constant(#delay))
        }
        Backoff::Linear(ms) => {
            let base = duration(*ms);
            quote!(::oban::Backoff::Linear { base: #base })
        }
        Backoff::Exponential { base, max } => {
            let (base, max) = (duration(*base), duration(*max));
            quote!(::oban::Backoff::Exponential { base: #base, max: #max })
        }
        Backoff::Custom(path) => {
            let f = Ident::new("__oban_backoff", Span::mixed_site());
            quote_spanned! {path.span()=>
                ::oban::Backoff::Custom({
                    let #f: fn(&::oban::Job) -> ::core::time::Duration = #path;
                    #f
                })
            }
        }
    }
}

/// `fn required_state()`: the `State<T>` types, each asserted `Send + Sync + 'static` at `T`.
fn required_state(worker: &WorkerFn<'_>) -> TokenStream {
    let keys: Vec<TokenStream> = worker
        .inputs
        .iter()
        .filter_map(|input| match input {
            Input::State { ty } => Some(quote_spanned! {ty.span()=>
                ::oban::__private::StateKey::of::<#ty>()
            }),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn required_state() -> ::std::vec::Vec<::oban::__private::StateKey> {
            ::std::vec![#(#keys),*]
        }
    }
}

/// `fn perform`: take the args apart, inject the rest, call the user's fn, map its output.
fn perform(worker: &WorkerFn<'_>) -> TokenStream {
    // Locals the user's code cannot see or shadow.
    let ctx = Ident::new("__oban_ctx", Span::mixed_site());
    let fn_ident = worker.ident;

    let mut bindings = Vec::new();
    let mut call_args = Vec::new();
    let mut flow = None;
    for (index, input) in worker.inputs.iter().enumerate() {
        match input {
            Input::Stored { ident, .. } => {
                let local = format_ident!("__oban_arg{}", index, span = Span::mixed_site());
                bindings.push(quote!(#ident: #local));
                call_args.push(quote!(#local));
            }
            Input::JobRef => call_args.push(quote!(#ctx.job())),
            Input::JobOwned => call_args.push(quote!(::core::clone::Clone::clone(#ctx.job()))),
            Input::State { ty } => call_args.push(quote_spanned! {ty.span()=>
                ::oban::JobContext::state::<#ty>(&#ctx)
            }),
            Input::Flow => {
                let local = Ident::new("__oban_flow", Span::mixed_site());
                flow = Some(quote! {
                    let #local = match ::oban::JobContext::flow(&#ctx) {
                        ::core::result::Result::Ok(flow) => flow,
                        ::core::result::Result::Err(error) => {
                            return ::core::result::Result::Ok(::oban::Outcome::Discard(
                                ::std::string::ToString::to_string(&error).into(),
                            ));
                        }
                    };
                });
                call_args.push(quote!(#local));
            }
            Input::Invalid { .. } => unreachable!("only valid fns are expanded"),
        }
    }
    // Spanned at the return type, so that an unsupported one is reported there with the message
    // of `IntoJobResult`'s `#[diagnostic::on_unimplemented]`. (rustc reports a macro-made span at
    // the macro's call site, so this local takes the span of the user's type, not a hygienic
    // one; nothing of the user's can refer to it, as only types and the fn's name are spliced
    // into this block.)
    let output_span = ast::output_span(worker);
    let output = Ident::new("__oban_output", output_span);
    let into_result = if ast::records(worker) {
        quote_spanned! {output_span=> ::oban::__private::record(#output) }
    } else {
        quote_spanned! {output_span=>
            ::oban::__private::IntoJobResult::into_job_result(#output)
        }
    };
    let body = quote! {
        #flow
        let Self { #(#bindings),* } = self;
        let #output = #fn_ident(#(#call_args),*).await;
        #into_result
    };
    // At the fn's `async`: a future that is not `Send` is reported on the worker fn, with rustc's
    // note on the value held across an `.await`.
    let async_span = worker
        .item
        .sig
        .asyncness
        .map_or_else(Span::call_site, |a| a.span);
    let future = quote_spanned!(async_span=> async move { #body });
    let future_type = quote_spanned! {async_span=>
        impl ::core::future::Future<
            Output = ::core::result::Result<::oban::Outcome, ::oban::JobError>,
        > + ::core::marker::Send
    };
    quote! {
        fn perform(self, #ctx: ::oban::JobContext) -> #future_type {
            #future
        }
    }
}

/// Serializes and deserializes a field through its type's own impls, named by a path spanned at
/// the argument's type: a type that is not `Serialize` / `Deserialize` is reported there, once
/// for each trait, instead of several times inside the derived code.
///
/// With `deserialize_with`, serde no longer turns a missing `Option` field into `None` by itself,
/// so `Option` fields get `#[serde(default)]`, which does the same.
fn field_serde_attrs(ty: &Type) -> TokenStream {
    let text = quote!(#ty).to_string();
    if text.contains('$') {
        // A `$crate` path from a `macro_rules!` caller cannot go through a string: keep the plain
        // derive for this field.
        return TokenStream::new();
    }
    let serde = "::oban::__private::serde";
    let serialize = LitStr::new(
        &format!("<{text} as {serde}::Serialize>::serialize"),
        ty.span(),
    );
    let deserialize = LitStr::new(
        &format!("<{text} as {serde}::Deserialize>::deserialize"),
        ty.span(),
    );
    let default = ast::is_option(ty).then(|| quote!(#[serde(default)]));
    quote! {
        #[serde(serialize_with = #serialize, deserialize_with = #deserialize)]
        #default
    }
}

/// `type` for `r#type`.
fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> String {
        worker(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn pascal_case_of_fn_names() {
        assert_eq!(pascal_case("send_receipt"), "SendReceipt");
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(pascal_case("resize_2x"), "Resize2x");
        assert_eq!(pascal_case("__private_job_"), "PrivateJob");
    }

    #[test]
    fn a_valid_worker_gets_struct_constructor_impl_and_registration() {
        let out = expand_str(
            "queue = \"mailers\", unique(period = 300, keys = [order_id])",
            "/// Sends the receipt.\npub async fn send_receipt(order_id: i64, job: &Job, \
             mailer: State<Mailer>) -> Result<Outcome, MailError> { todo!() }",
        );
        for expected in [
            "pub async fn send_receipt",
            "# [doc = \" Sends the receipt.\"] # [derive",
            "pub struct SendReceipt { # [doc = \" The `order_id` argument of `send_receipt`.\"]",
            "pub order_id : i64 ,",
            "pub fn new (order_id : i64) -> :: oban :: JobBuilder < Self >",
            "impl :: oban :: Worker for SendReceipt",
            "const NAME : & 'static str = \"SendReceipt\"",
            ". queue (\"mailers\")",
            ". period (300u64) . keys (& [\"order_id\"])",
            ":: oban :: __private :: StateKey :: of :: < Mailer > ()",
            ":: oban :: __private :: inventory :: submit !",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn an_invalid_fn_keeps_the_fn_and_gets_a_fallback_struct() {
        let out = expand_str("", "fn send_receipt(order_id: i64) {}");
        assert!(
            out.contains("fn send_receipt (order_id : i64) { }"),
            "{out}"
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("struct SendReceipt { }"), "{out}");
        assert!(out.contains("fn new (_ : i64)"), "{out}");
        assert!(!out.contains("inventory"), "{out}");
    }

    #[test]
    fn a_method_gets_no_struct() {
        let out = expand_str("", "async fn send(&self, order_id: i64) {}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("struct"), "{out}");
    }

    #[test]
    fn bad_options_are_dropped_and_the_rest_expands() {
        let out = expand_str(
            "queue = \"Bad\", priority = 2",
            "async fn send(order_id: i64) {}",
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("impl :: oban :: Worker for Send"), "{out}");
        assert!(out.contains(". priority (2u8)"), "{out}");
        assert!(!out.contains(". queue ("), "{out}");
    }
}
