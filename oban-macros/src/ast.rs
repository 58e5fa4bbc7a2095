//! The worker fn as the macro sees it: which parameters are stored in the job's args and which
//! are injected from the running job, checked for what a worker can be.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PatIdent, PathArguments, ReturnType,
    Type, TypePath, Visibility,
};

use crate::ctxt::Ctxt;

/// A `#[worker]` fn.
pub(crate) struct WorkerFn<'a> {
    /// The fn as written.
    pub(crate) item: &'a ItemFn,
    /// Its visibility, given to the args struct, its fields and `new`.
    pub(crate) vis: &'a Visibility,
    /// Its name.
    pub(crate) ident: &'a Ident,
    /// Its `///` docs, carried over to the args struct.
    pub(crate) docs: Vec<&'a Attribute>,
    /// Its `#[cfg(..)]`s, carried over to everything generated.
    pub(crate) cfgs: Vec<&'a Attribute>,
    /// Its parameters, in order.
    pub(crate) inputs: Vec<Input<'a>>,
    /// Its return type; `None` for `()`.
    pub(crate) output: Option<&'a Type>,
    /// Whether it takes `self`: it sits in an `impl` block, where no struct can be generated.
    pub(crate) has_receiver: bool,
    /// Whether the signature is one the macro can expand (no error was recorded for it).
    pub(crate) is_valid: bool,
}

/// One parameter of the worker fn.
pub(crate) enum Input<'a> {
    /// Stored in the job's args: a field of the args struct.
    Stored {
        /// The parameter name, which is the field name and the JSON key.
        ident: &'a Ident,
        /// Its type.
        ty: &'a Type,
    },
    /// `&Job`: the running job.
    JobRef,
    /// `Job`: a clone of the running job.
    JobOwned,
    /// `Flow`: the running step's workflow (`oban::workflow::Flow`).
    Flow,
    /// `State<T>`: a value registered on the Oban builder; `ty` is `T`.
    State {
        /// The state's type `T`.
        ty: &'a Type,
    },
    /// A parameter with an error already recorded; its type is kept for the fallback `new`.
    Invalid {
        /// The type as written.
        ty: &'a Type,
        /// Whether it would have been stored (not injected).
        stored: bool,
    },
}

impl<'a> WorkerFn<'a> {
    /// Models `item`, recording in `cx` everything that keeps it from being a worker.
    pub(crate) fn from_syn(cx: &Ctxt, item: &'a ItemFn) -> Self {
        let sig = &item.sig;
        let mut is_valid = true;
        let mut error = |tokens: &dyn ToTokens, message: String| {
            cx.error_spanned_by(tokens.to_token_stream(), message);
            is_valid = false;
        };

        if sig.asyncness.is_none() {
            error(
                &sig.fn_token,
                format!(
                    "a worker must be an `async fn`: write `async fn {}(..)`",
                    sig.ident
                ),
            );
        }
        if let Some(constness) = &sig.constness {
            error(
                constness,
                "a worker fn cannot be `const`: remove `const`".to_owned(),
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            error(
                unsafety,
                "a worker fn cannot be `unsafe`: make it safe and use an `unsafe` block inside"
                    .to_owned(),
            );
        }
        if let Some(abi) = &sig.abi {
            error(
                abi,
                "a worker fn cannot be `extern`: remove the ABI".to_owned(),
            );
        }
        if sig.generics.lifetimes().count() == sig.generics.params.len()
            && !sig.generics.params.is_empty()
        {
            error(
                &sig.generics,
                "a worker fn cannot have lifetime parameters: its arguments are decoded from JSON \
                 and own their data; remove them and use owned types such as `String`"
                    .to_owned(),
            );
        } else if !sig.generics.params.is_empty() {
            error(
                &sig.generics,
                "a worker fn cannot be generic: its arguments are decoded from JSON into one \
                 concrete struct; replace the type parameters with concrete types"
                    .to_owned(),
            );
        } else if let Some(where_clause) = &sig.generics.where_clause {
            error(
                where_clause,
                "a worker fn cannot have a `where` clause: remove it".to_owned(),
            );
        }
        if let Some(variadic) = &sig.variadic {
            error(variadic, "a worker fn cannot be variadic".to_owned());
        }

        let mut has_receiver = false;
        let mut invalid_input = false;
        let mut inputs = Vec::new();
        for arg in &sig.inputs {
            match arg {
                FnArg::Receiver(receiver) => {
                    has_receiver = true;
                    error(
                        receiver,
                        "a worker cannot take `self`: put `#[worker]` on a free `async fn` outside \
                         the `impl` block, and pass what it needs as arguments or as `State<T>`"
                            .to_owned(),
                    );
                }
                FnArg::Typed(typed) => {
                    let input = classify(cx, &typed.pat, &typed.ty);
                    invalid_input |= matches!(input, Input::Invalid { .. });
                    inputs.push(input);
                }
            }
        }

        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };

        WorkerFn {
            item,
            vis: &item.vis,
            ident: &sig.ident,
            docs: item
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .collect(),
            cfgs: item
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .collect(),
            inputs,
            output,
            has_receiver,
            is_valid: is_valid && !invalid_input,
        }
    }

    /// The parameters stored in the job's args, in order.
    pub(crate) fn stored(&self) -> impl Iterator<Item = (&'a Ident, &'a Type)> + '_ {
        self.inputs.iter().filter_map(|input| match input {
            Input::Stored { ident, ty } => Some((*ident, *ty)),
            _ => None,
        })
    }
}

/// Decides what a parameter is: injected by its type, or stored under its name.
fn classify<'a>(cx: &Ctxt, pat: &'a Pat, ty: &'a Type) -> Input<'a> {
    let Ok(injected) = injected(cx, ty) else {
        return Input::Invalid { ty, stored: false };
    };
    let stored = injected.is_none();
    let Ok(ident) = binding(pat) else {
        let message = if stored {
            format!(
                "a worker argument must be a plain name: it becomes the field of that name in the \
                 job's JSON args; write `name: {}` and destructure it in the body",
                type_text(ty)
            )
        } else {
            format!(
                "an injected argument must be a plain name or `_`: write `name: {}`",
                type_text(ty)
            )
        };
        cx.error_spanned_by(pat, message);
        return Input::Invalid { ty, stored };
    };
    if let Some(injected) = injected {
        // `_: &Job` is fine: an injected value needs no name.
        return injected;
    }
    let Some(ident) = ident else {
        cx.error_spanned_by(
            pat,
            format!(
                "a stored argument needs a name: it becomes the field of that name in the job's \
                 JSON args; write `name: {}`",
                type_text(ty)
            ),
        );
        return Input::Invalid { ty, stored: true };
    };
    if !is_owned(cx, ty) {
        return Input::Invalid { ty, stored: true };
    }
    Input::Stored { ident, ty }
}

/// The name a parameter binds, `Ok(None)` for `_`, or `Err` for any other pattern.
fn binding(pat: &Pat) -> Result<Option<&Ident>, ()> {
    match pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ident,
            attrs,
            ..
        }) if attrs.is_empty() => Ok(Some(ident)),
        Pat::Wild(_) => Ok(None),
        _ => Err(()),
    }
}

/// `Ok(Some(..))` for `&Job`, `Job` and `State<T>`; `Ok(None)` for any other type; `Err` when the
/// type is an injected one written in a way that cannot be injected (recorded in `cx`).
fn injected<'a>(cx: &Ctxt, ty: &'a Type) -> Result<Option<Input<'a>>, ()> {
    match strip(ty) {
        Type::Reference(reference) => match last_segment(&reference.elem) {
            Some(("Job", PathArguments::None)) if reference.mutability.is_some() => {
                cx.error_spanned_by(
                    ty,
                    "the running job cannot be changed from inside a worker: take it as `&Job`",
                );
                Err(())
            }
            Some(("Job", PathArguments::None)) => Ok(Some(Input::JobRef)),
            Some(("Flow", PathArguments::None)) => {
                cx.error_spanned_by(
                    ty,
                    "take the workflow by value, `Flow`: it is a cheap shared handle",
                );
                Err(())
            }
            Some(("State", _)) => {
                cx.error_spanned_by(
                    ty,
                    format!(
                        "take the state by value, `{}`: it is a cheap shared handle",
                        type_text(&reference.elem)
                    ),
                );
                Err(())
            }
            _ => Ok(None),
        },
        inner => match last_segment(inner) {
            Some(("Job", PathArguments::None)) => Ok(Some(Input::JobOwned)),
            Some(("Flow", PathArguments::None)) => Ok(Some(Input::Flow)),
            Some(("State", arguments)) => match state_type(arguments) {
                Some(ty) => Ok(Some(Input::State { ty })),
                None => {
                    cx.error_spanned_by(
                        ty,
                        "`State` takes the type of the value to inject: `State<Mailer>`",
                    );
                    Err(())
                }
            },
            _ => Ok(None),
        },
    }
}

/// `T` of `State<T>`.
fn state_type(arguments: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(arguments) = arguments else {
        return None;
    };
    let mut args = arguments.args.iter();
    match (args.next(), args.next()) {
        (Some(GenericArgument::Type(ty)), None) => Some(ty),
        _ => None,
    }
}

/// The name and arguments of a path type's last segment.
fn last_segment(ty: &Type) -> Option<(&'static str, &PathArguments)> {
    let Type::Path(TypePath { qself: None, path }) = strip(ty) else {
        return None;
    };
    let segment = path.segments.last()?;
    let name = if segment.ident == "Job" {
        "Job"
    } else if segment.ident == "Flow" {
        "Flow"
    } else if segment.ident == "State" {
        "State"
    } else {
        return None;
    };
    Some((name, &segment.arguments))
}

/// Looks through parentheses and invisible groups.
fn strip(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

/// Whether a stored argument's type owns its data, as JSON decoding needs; records an error
/// saying which owned type to use when it does not.
fn is_owned(cx: &Ctxt, ty: &Type) -> bool {
    let message = match strip(ty) {
        Type::Reference(reference) => {
            let owned = match strip(&reference.elem) {
                Type::Path(path) if path.path.is_ident("str") => "String".to_owned(),
                Type::Path(path) if path.path.is_ident("Path") => "PathBuf".to_owned(),
                Type::Slice(slice) => format!("Vec<{}>", type_text(&slice.elem)),
                elem => type_text(elem),
            };
            format!("arguments are stored as JSON; use an owned type such as `{owned}`")
        }
        Type::ImplTrait(_) => "arguments are decoded from JSON into one concrete type: replace \
                               `impl Trait` with a concrete type"
            .to_owned(),
        Type::TraitObject(_) => "arguments are decoded from JSON into one concrete type: replace \
                                 the trait object with a concrete type"
            .to_owned(),
        _ if borrows(ty.to_token_stream()) => "arguments are stored as JSON; use an owned type \
                                               such as `String` instead of one that borrows"
            .to_owned(),
        _ => return true,
    };
    cx.error_spanned_by(ty, message);
    false
}

/// Whether a type's tokens hold a reference or a lifetime other than `'static`.
fn borrows(tokens: TokenStream) -> bool {
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == '&' => return true,
            TokenTree::Punct(punct)
                if punct.as_char() == '\''
                    && !matches!(tokens.peek(), Some(TokenTree::Ident(i)) if i == "static") =>
            {
                return true;
            }
            TokenTree::Group(group) if borrows(group.stream()) => return true,
            _ => {}
        }
    }
    false
}

/// A type as a user would write it, for messages: `Vec<String>`, not `Vec < String >`.
pub(crate) fn type_text(ty: &Type) -> String {
    let text = quote!(#ty).to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let previous = out.chars().last();
            let next = chars.peek().copied();
            let glue_before = matches!(next, Some('<' | '>' | ',' | ':' | ')' | ']' | ';'));
            let glue_after = matches!(previous, Some('<' | '&' | ':' | '(' | '['));
            if glue_before || glue_after {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Whether the fn returns `Result<T, E>` with a `T` other than `()` and `Outcome`: a value to
/// record (see `oban::recorded`).
pub(crate) fn records(worker: &WorkerFn<'_>) -> bool {
    recorded_type(worker).is_some()
}

/// The `T` of a fn returning `Result<T, E>` that records it (see [`records`]).
pub(crate) fn recorded_type<'a>(worker: &WorkerFn<'a>) -> Option<&'a Type> {
    let Type::Path(TypePath { qself: None, path }) = strip(worker.output?) else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let Some(GenericArgument::Type(ok)) = args.args.first() else {
        return None;
    };
    match strip(ok) {
        Type::Tuple(unit) if unit.elems.is_empty() => None,
        Type::Path(TypePath { path, .. })
            if path.segments.last().is_some_and(|s| s.ident == "Outcome") =>
        {
            None
        }
        _ => Some(ok),
    }
}

/// The span of the fn's return type, or of its name when it returns `()`.
pub(crate) fn output_span(worker: &WorkerFn<'_>) -> Span {
    worker
        .output
        .map_or_else(|| worker.ident.span(), Spanned::span)
}

/// Whether a type is spelled `Option<..>`, the way serde recognises optional fields.
pub(crate) fn is_option(ty: &Type) -> bool {
    let Type::Path(TypePath { qself: None, path }) = strip(ty) else {
        return false;
    };
    path.segments.last().is_some_and(|segment| {
        segment.ident == "Option" && matches!(segment.arguments, PathArguments::AngleBracketed(_))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_written() {
        for text in [
            "Vec<String>",
            "(u32, u32)",
            "&'a str",
            "[u8; 4]",
            "std::borrow::Cow<'_, str>",
        ] {
            let ty: Type = syn::parse_str(text).unwrap();
            assert_eq!(type_text(&ty), text);
        }
    }
}
