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

/// The pipeline on `proc_macro2` tokens: what the UI tests check through
/// rustc, checked here at the stage that decides it.
#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::parse::Parser as _;

    use crate::model::{Kind, Trigger};
    use crate::{args, expand, validate};

    fn job(kind: Kind, attr: proc_macro2::TokenStream) -> syn::Result<crate::model::Job> {
        let func: syn::ItemFn = syn::parse2(quote!(
            async fn tick() {}
        ))
        .unwrap();
        args::ParseArgs(kind)
            .parse2(attr)
            .and_then(|args| validate::job(kind, args, func))
    }

    #[test]
    fn a_duration_is_parsed_into_the_model() {
        let job = job(Kind::Every, quote!("1m30s", jitter = "2s", name = "sweep")).unwrap();
        assert_eq!(job.name, "sweep");
        match job.trigger {
            Trigger::Every {
                period_ms,
                jitter_ms,
                initial_delay_ms,
                ..
            } => assert_eq!((period_ms, jitter_ms, initial_delay_ms), (90_000, 2_000, 0)),
            _ => panic!("not an `every` trigger"),
        }
    }

    #[test]
    fn the_expansion_registers_through_absolute_paths() {
        let expanded = expand::job(job(Kind::Cron, quote!("*/5 * * * *")).unwrap()).to_string();
        assert!(
            expanded.contains(":: hosted :: __private :: inventory :: submit !"),
            "{expanded}"
        );
        assert!(
            expanded.contains("async fn tick"),
            "the fn is kept: {expanded}"
        );
    }

    #[test]
    fn a_bad_literal_is_an_error_that_names_the_fix() {
        let error = job(Kind::Every, quote!("5 seconds")).err().unwrap();
        assert!(
            error.to_string().contains("`ms`, `s`, `m`, `h` or `d`"),
            "{error}"
        );
        let error = job(Kind::Cron, quote!("0 0 31 2 *")).err().unwrap();
        assert!(error.to_string().contains("never"), "{error}");
    }

    #[test]
    fn a_key_given_twice_or_unknown_is_an_error() {
        let twice = job(Kind::Every, quote!("1s", name = "a", name = "b"))
            .err()
            .unwrap();
        assert!(
            twice.to_string().contains("duplicate option `name`"),
            "{twice}"
        );
        let unknown = job(Kind::Every, quote!("1s", colour = "red"))
            .err()
            .unwrap();
        assert!(
            unknown.to_string().contains("option `colour`")
                || unknown.to_string().contains("`colour` is not an option"),
            "{unknown}"
        );
    }
}
