//! Attribute macros of [`hosted`](https://docs.rs/hosted): `#[every]`,
//! `#[cron]` and `#[hosted_service]`.
//!
//! Use them through `hosted`, which re-exports them and documents each
//! option with examples; this crate holds only the compile-time half.
//!
//! Each macro runs the same pipeline, one file per stage: `args.rs` parses the
//! attribute, `validate.rs` checks it with the fn into the typed model of
//! `model.rs`, and `expand.rs` emits the fn unchanged plus a const
//! registration submitted through `inventory`.

mod args;
mod duration;
mod expand;
mod model;
mod validate;

use proc_macro::TokenStream;

use crate::model::Kind;

/// Runs an async fn at a fixed rate. See `hosted::every`.
#[proc_macro_attribute]
pub fn every(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Every, attr, item)
}

/// Runs an async fn on a cron schedule. See `hosted::cron`.
#[proc_macro_attribute]
pub fn cron(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Cron, attr, item)
}

/// Runs an async fn for the host's whole life. See `hosted::hosted_service`.
#[proc_macro_attribute]
pub fn hosted_service(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Service, attr, item)
}

fn entry(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let func = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                format!("`#[{}]` applies to an `async fn`", kind.attr_name()),
            );
            return expand::with_errors(item, error).into();
        }
    };
    let args = syn::parse::Parser::parse2(args::ParseArgs(kind), attr.into());
    args.and_then(|args| validate::job(kind, args, func))
        .map(expand::job)
        .unwrap_or_else(|error| expand::with_errors(item, error))
        .into()
}
