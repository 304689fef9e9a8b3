//! Reading the attributes: `#[keel(...)]` on the struct, and the serde attributes that decide
//! the fields' names (refusing the ones a validator cannot follow).

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitStr, Path, Token, bracketed, parenthesized};

use crate::rename::Case;

/// Serde attributes that change a document's shape in ways the validator does not follow.
const UNSUPPORTED_SERDE: &[&str] = &[
    "flatten",
    "skip",
    "skip_serializing",
    "skip_deserializing",
    "tag",
    "content",
    "untagged",
    "transparent",
    "with",
    "serialize_with",
    "deserialize_with",
    "into",
    "from",
    "try_from",
    "remote",
    "rename_all_fields",
    "getter",
];

/// What `#[keel(...)]` says.
pub(crate) struct KeelAttrs {
    /// `table = "posts"`.
    pub(crate) table: Option<LitStr>,
    /// `index(name = [field, ...])`, in order.
    pub(crate) indexes: Vec<(Ident, Vec<Ident>)>,
    /// `crate = "path"`.
    pub(crate) krate: Option<Path>,
}

/// Reads every `#[keel(...)]` of the struct.
pub(crate) fn keel(attrs: &[Attribute]) -> syn::Result<KeelAttrs> {
    let mut out = KeelAttrs {
        table: None,
        indexes: Vec::new(),
        krate: None,
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("keel")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                out.table = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("crate") {
                let path: LitStr = meta.value()?.parse()?;
                out.krate = Some(path.parse()?);
            } else if meta.path.is_ident("index") {
                meta.parse_nested_meta(|index| {
                    let name = index.path.require_ident()?.clone();
                    let content;
                    index.value()?;
                    bracketed!(content in index.input);
                    let fields = content.parse_terminated(Ident::parse_any_ident, Token![,])?;
                    out.indexes.push((name, fields.into_iter().collect()));
                    Ok(())
                })?;
            } else {
                return Err(meta.error(
                    "unknown keel attribute; expected `table = \"name\"`, `index(name = [field, ...])` or `crate = \"path\"`",
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

trait ParseAnyIdent {
    fn parse_any_ident(input: syn::parse::ParseStream<'_>) -> syn::Result<Ident>;
}

impl ParseAnyIdent for Ident {
    fn parse_any_ident(input: syn::parse::ParseStream<'_>) -> syn::Result<Ident> {
        input.call(<Ident as syn::ext::IdentExt>::parse_any)
    }
}

/// The container's `#[serde(rename_all = "...")]`, refusing shape-changing attributes.
pub(crate) fn serde_container(attrs: &[Attribute]) -> syn::Result<Option<Case>> {
    let mut case = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                if !meta.input.peek(Token![=]) {
                    return Err(meta.error(
                        "a typed table needs one name per field: use `rename_all = \"...\"`, not separate serialize and deserialize names",
                    ));
                }
                let name: LitStr = meta.value()?.parse()?;
                case = Some(Case::parse(&name.value()).ok_or_else(|| {
                    syn::Error::new(name.span(), "unknown rename_all case")
                })?);
                Ok(())
            } else {
                other_serde(&meta)
            }
        })?;
    }
    Ok(case)
}

/// A field's `#[serde(rename = "...")]`, refusing shape-changing attributes.
pub(crate) fn serde_field(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut rename = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if !meta.input.peek(Token![=]) {
                    return Err(meta.error(
                        "a typed table needs one name per field: use `rename = \"...\"`, not separate serialize and deserialize names",
                    ));
                }
                let name: LitStr = meta.value()?.parse()?;
                rename = Some(name.value());
                Ok(())
            } else {
                other_serde(&meta)
            }
        })?;
    }
    Ok(rename)
}

/// Any other serde attribute: refused when it changes the shape, else skipped.
fn other_serde(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if let Some(name) = UNSUPPORTED_SERDE
        .iter()
        .find(|name| meta.path.is_ident(name))
    {
        return Err(meta.error(format!(
            "#[serde({name})] is not supported in a typed document: its validator could not follow it"
        )));
    }
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in meta.input);
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}
