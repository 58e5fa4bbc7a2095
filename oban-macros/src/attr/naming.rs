//! What the worker and its args are called: `name`, `args`, and the args struct's `derive(..)`.

use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Meta, Token};

use crate::ctxt::Ctxt;

use super::lit::string;

/// `name = "Stored.Name"`: non-empty, no surrounding whitespace.
pub(super) fn parse_name(cx: &Ctxt, value: &Expr) -> Option<String> {
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
pub(super) fn parse_args(cx: &Ctxt, value: &Expr) -> Option<Ident> {
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
pub(super) fn parse_derives(cx: &Ctxt, meta: &Meta) -> Vec<syn::Path> {
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
