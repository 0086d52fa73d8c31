//! Attribute macros of [`hosted`](https://docs.rs/hosted): `#[every]`,
//! `#[cron]` and `#[hosted_service]`, and `#[queued]` of
//! [`hosted-postgres`](https://docs.rs/hosted-postgres).
//!
//! Use them through `hosted`, which re-exports them and documents each
//! option with examples; this crate holds only the compile-time half.
//!
//! Each macro runs the same pipeline, one file per stage: `args.rs` parses the
//! attribute, `validate.rs` checks it with the fn into the typed model of
//! `model.rs`, and `expand.rs` emits the fn unchanged plus a const
//! registration submitted through `inventory`.

mod args;
mod expand;
mod from_ref;
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

/// Runs an async fn for the host's whole life, or registers a type that
/// implements `HostedService`. See `hosted::hosted_service`.
#[proc_macro_attribute]
pub fn hosted_service(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Service, attr, item)
}

/// Handles durable work items: one run per item a durable queue hands it.
/// See `hosted_postgres::queued`.
#[proc_macro_attribute]
pub fn queued(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Queued, attr, item)
}

/// Makes each field of an app state struct a sub-state that jobs can take
/// as `State<Field>`. See `hosted::FromRef`.
#[proc_macro_derive(FromRef, attributes(from_ref))]
pub fn derive_from_ref(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    from_ref::derive(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn entry(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return expand::with_errors(item, error).into(),
    };
    let result = match parsed {
        syn::Item::Fn(func) => syn::parse::Parser::parse2(args::ParseArgs(kind), attr.into())
            .and_then(|args| validate::job(kind, args, func))
            .map(expand::job),
        type_item @ (syn::Item::Struct(_) | syn::Item::Enum(_) | syn::Item::Union(_))
            if kind == Kind::Service =>
        {
            syn::parse::Parser::parse2(args::ParseArgs(Kind::ServiceType), attr.into())
                .and_then(|args| validate::service_type(args, type_item))
                .map(expand::service_type)
        }
        other => Err(syn::Error::new_spanned(
            other,
            match kind {
                Kind::Service | Kind::ServiceType => "`#[hosted_service]` applies to an `async fn` or to a struct or enum that implements `HostedService`",
                Kind::Every => "`#[every]` applies to an `async fn`",
                Kind::Cron => "`#[cron]` applies to an `async fn`",
                Kind::Queued => "`#[queued]` applies to an `async fn`",
            },
        )),
    };
    result
        .unwrap_or_else(|error| expand::with_errors(item, error))
        .into()
}
