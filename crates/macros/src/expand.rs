//! The generated code: `FieldValidator` and `Table` implementations, and one `TableIndex`
//! constant per index.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, Ident, Path, Type};

use crate::attrs;

/// Most fields of a typed index (`_creationTime` comes on top).
const MAX_TYPED_INDEX_FIELDS: usize = 8;

/// A field of the struct: its Rust name, its name in documents and its type.
struct Field {
    ident: Ident,
    name: String,
    ty: Type,
}

/// `#[derive(Table)]`.
pub(crate) fn table(input: &DeriveInput) -> syn::Result<TokenStream> {
    let keel = attrs::keel(&input.attrs)?;
    let krate = crate_path(keel.krate.clone());
    let fields = fields(input)?;
    let ident = &input.ident;
    let vis = &input.vis;
    let Some(table) = &keel.table else {
        return Err(syn::Error::new_spanned(
            ident,
            "a typed table needs its name: #[keel(table = \"...\")]",
        ));
    };
    let validator = validator_impl(ident, &fields, &krate);
    let mut index_entries = Vec::new();
    let mut index_consts = Vec::new();
    for (name, index_fields) in &keel.indexes {
        if index_fields.is_empty() || index_fields.len() > MAX_TYPED_INDEX_FIELDS {
            return Err(syn::Error::new_spanned(
                name,
                format!("a typed index has 1 to {MAX_TYPED_INDEX_FIELDS} fields"),
            ));
        }
        let mut names = Vec::new();
        let mut types = Vec::new();
        for field_ident in index_fields {
            let Some(field) = fields.iter().find(|f| f.ident == *field_ident) else {
                return Err(syn::Error::new_spanned(
                    field_ident,
                    format!("`{ident}` has no field `{field_ident}` to index"),
                ));
            };
            names.push(field.name.clone());
            types.push(field.ty.clone());
        }
        let index_name = name.to_string();
        index_entries.push(quote! { (#index_name, &[#(#names),*]) });
        let doc = format!(
            "The index `{index_name}` of table `{}` over {} (then `_creationTime`), for typed \
             index ranges.",
            table.value(),
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        index_consts.push(quote! {
            #[doc = #doc]
            #[allow(non_upper_case_globals)]
            #vis const #name: #krate::table::TableIndex<#ident, (#(#types,)* f64,)> =
                #krate::table::TableIndex::new(#index_name, &[#(#names,)* "_creationTime"]);
        });
    }
    let consts = if index_consts.is_empty() {
        quote! {}
    } else {
        quote! {
            impl #ident {
                #(#index_consts)*
            }
        }
    };
    Ok(quote! {
        #validator

        impl #krate::table::Table for #ident {
            const NAME: &'static str = #table;
            const INDEXES: &'static [(&'static str, &'static [&'static str])] =
                &[#(#index_entries),*];
        }

        #consts
    })
}

/// `#[derive(FieldValidator)]`.
pub(crate) fn field_validator(input: &DeriveInput) -> syn::Result<TokenStream> {
    let keel = attrs::keel(&input.attrs)?;
    if let Some(table) = &keel.table {
        return Err(syn::Error::new_spanned(
            table,
            "`table` belongs to #[derive(Table)], which implements FieldValidator too",
        ));
    }
    let krate = crate_path(keel.krate);
    let fields = fields(input)?;
    Ok(validator_impl(&input.ident, &fields, &krate))
}

fn crate_path(path: Option<Path>) -> TokenStream {
    match path {
        Some(path) => quote! { #path },
        None => quote! { ::keel::values },
    }
}

fn validator_impl(ident: &Ident, fields: &[Field], krate: &TokenStream) -> TokenStream {
    let entries = fields.iter().map(|field| {
        let name = &field.name;
        let ty = &field.ty;
        quote! { (#name, <#ty as #krate::table::FieldValidator>::field_validator()) }
    });
    quote! {
        impl #krate::table::FieldValidator for #ident {
            fn validator() -> #krate::Validator {
                #krate::Validator::object([#(#entries),*])
            }
        }
    }
}

/// The struct's named fields with their document names.
fn fields(input: &DeriveInput) -> syn::Result<Vec<Field>> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a typed document is a struct without generic parameters",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "a typed document is a struct with named fields",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "a typed document is a struct with named fields",
        ));
    };
    let case = attrs::serde_container(&input.attrs)?;
    let mut out = Vec::new();
    for field in &named.named {
        let Some(ident) = field.ident.clone() else {
            continue;
        };
        let rust_name = ident.to_string();
        let rust_name = rust_name
            .strip_prefix("r#")
            .unwrap_or(&rust_name)
            .to_owned();
        let name = match attrs::serde_field(&field.attrs)? {
            Some(rename) => rename,
            None => case.map_or_else(|| rust_name.clone(), |case| case.apply(&rust_name)),
        };
        if name.starts_with('_') {
            return Err(syn::Error::new_spanned(
                &ident,
                format!("field `{name}`: names starting with `_` are reserved for system fields"),
            ));
        }
        out.push(Field {
            ident,
            name,
            ty: field.ty.clone(),
        });
    }
    Ok(out)
}
