//! `#[derive(FromRef)]`: each field of an app state struct becomes a
//! sub-state that jobs can take as `State<Field>`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

pub(crate) fn derive(input: syn::DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "`#[derive(FromRef)]` does not support generic state types; use a concrete type",
        ));
    }
    let syn::Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "`#[derive(FromRef)]` applies to a struct whose fields are the sub-states",
        ));
    };
    let mut items = Vec::new();
    for (i, field) in data.fields.iter().enumerate() {
        if skipped(field)? {
            continue;
        }
        let ty = &field.ty;
        let member = match &field.ident {
            Some(ident) => quote!(#ident),
            None => {
                let index = syn::Index::from(i);
                quote!(#index)
            }
        };
        let derive_fn = format_ident!("__hosted_from_ref_{i}");
        items.push(quote_spanned! {ty.span()=>
            impl ::hosted::FromRef<#name> for #ty {
                fn from_ref(input: &#name) -> Self {
                    ::core::clone::Clone::clone(&input.#member)
                }
            }

            const _: () = {
                fn #derive_fn(
                    input: &(dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync),
                ) -> ::core::option::Option<::hosted::__private::AnyState> {
                    input.downcast_ref::<#name>().map(|state| {
                        ::hosted::__private::any_state(<#ty as ::hosted::FromRef<#name>>::from_ref(state))
                    })
                }

                ::hosted::__private::inventory::submit! {
                    ::hosted::__private::SubState {
                        from: ::core::any::TypeId::of::<#name>,
                        to: ::core::any::TypeId::of::<#ty>,
                        from_name: ::core::any::type_name::<#name>,
                        derive: #derive_fn,
                    }
                }
            };
        });
    }
    Ok(quote!(#(#items)*))
}

/// Whether the field carries `#[from_ref(skip)]`.
fn skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("from_ref")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown option; `#[from_ref(skip)]` is the only one"))
            }
        })?;
    }
    Ok(skip)
}
