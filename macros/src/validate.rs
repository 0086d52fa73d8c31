//! Turns raw arguments and the annotated fn into a [`Job`], checking every
//! option and every combination in one place. All errors are collected, so a
//! single compile shows every mistake.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, LitStr};

use crate::args::{Args, Errors, Key};
use crate::model::{
    Cluster, Job, Kind, OnFailure, Overlap, Queued, Scope, ServiceType, Trigger, Zone,
};
use hosted_spec::{parse_backoff, parse_cron, parse_millis, parse_zone};

/// Builds the model of one annotated fn, or every error found in it.
pub(crate) fn job(kind: Kind, args: Args, func: syn::ItemFn) -> syn::Result<Job> {
    let mut errors = Errors::default();

    check_signature(kind, &func.sig, &mut errors);

    let name = name(&args, "job", &func.sig.ident, &mut errors);
    let default_name = args.get(Key::Name).is_none();

    let krate = if kind == Kind::Queued {
        crate_path_of(
            &args,
            "hosted-postgres",
            syn::parse_quote!(::hosted_postgres),
            &mut errors,
        )
    } else {
        crate_path(&args, &mut errors)
    };

    let overlap = match args.get(Key::Overlap) {
        None => Overlap::Skip,
        Some(lit) => match lit.value().as_str() {
            "skip" => Overlap::Skip,
            "allow" => Overlap::Allow,
            other => {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown overlap policy `{other}`; use `\"skip\"` (the default: a tick that falls during a run is skipped) or `\"allow\"` (runs may overlap)"),
                ));
                Overlap::Skip
            }
        },
    };

    let cluster = cluster(kind, &args, &mut errors);

    let trigger = match kind {
        Kind::Every => every(&args, &mut errors),
        Kind::Cron => cron(&args, &mut errors),
        Kind::Service | Kind::ServiceType => Trigger::Service(on_failure(&args, &mut errors)),
        Kind::Queued => Trigger::Queued(Box::new(queued(&args, &func.sig, &mut errors))),
    };

    errors.finish()?;
    Ok(Job {
        name,
        trigger,
        overlap,
        cluster,
        krate,
        func,
        default_name,
    })
}

/// `#[queued]`: the queue, the attempts and their timing, the priority, and
/// the payload's type, read from the fn's `Payload<T>` argument.
fn queued(args: &Args, sig: &syn::Signature, errors: &mut Errors) -> Queued {
    let queue = match args.get(Key::Queue) {
        None => "default".to_owned(),
        Some(lit) => {
            let queue = lit.value();
            if queue.trim().is_empty() || queue.trim() != queue {
                errors.push(syn::Error::new(
                    lit.span(),
                    "the queue's name must be non-empty, without leading or trailing whitespace",
                ));
            }
            queue
        }
    };
    let max_attempts = match args.int(Key::MaxAttempts) {
        None => 10,
        Some((n, span)) => match u32::try_from(n) {
            Ok(n) if n >= 1 => n,
            _ => {
                errors.push(syn::Error::new(
                    span,
                    "`max_attempts` must be at least 1 (the first attempt counts), e.g. `max_attempts = 10`",
                ));
                1
            }
        },
    };
    let timeout_ms = match args.get(Key::Timeout) {
        None => 30 * 60 * 1000,
        Some(lit) => match duration(lit, errors) {
            Some(0) => {
                errors.push(syn::Error::new(
                    lit.span(),
                    "the timeout must be greater than zero, e.g. `timeout = \"30s\"`",
                ));
                0
            }
            Some(ms) => ms,
            None => 0,
        },
    };
    let (backoff_min_ms, backoff_max_ms) = match args.get(Key::Backoff) {
        Some(lit) => backoff(lit, errors).unwrap_or((1_000, 600_000)),
        None => (1_000, 600_000),
    };
    let priority = match args.int(Key::Priority) {
        None => 0,
        Some((n, span)) => i16::try_from(n).unwrap_or_else(|_| {
            errors.push(syn::Error::new(
                span,
                "`priority` must be between -32768 and 32767 (higher runs first)",
            ));
            0
        }),
    };
    Queued {
        queue,
        max_attempts,
        timeout_ms,
        backoff_min_ms,
        backoff_max_ms,
        priority,
        payload: payload_type(sig, errors),
    }
}

/// The `T` of the fn's one `Payload<T>` argument, found by the last
/// segment of the argument's type; `()` when it takes none.
fn payload_type(sig: &syn::Signature, errors: &mut Errors) -> syn::Type {
    let mut found: Option<syn::Type> = None;
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        let syn::Type::Path(path) = &*arg.ty else {
            continue;
        };
        let Some(last) = path.path.segments.last() else {
            continue;
        };
        if last.ident != "Payload" {
            continue;
        }
        let syn::PathArguments::AngleBracketed(generic) = &last.arguments else {
            errors.push(syn::Error::new_spanned(
                last,
                "`Payload` needs the payload's type, e.g. `Payload<Welcome>`",
            ));
            continue;
        };
        let types: Vec<&syn::Type> = generic
            .args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect();
        match (types.as_slice(), &found) {
            ([ty], None) => found = Some((*ty).clone()),
            ([_], Some(_)) => errors.push(syn::Error::new_spanned(
                &arg.ty,
                "a queued handler takes one `Payload<T>`; put every field the item needs in one type",
            )),
            _ => errors.push(syn::Error::new_spanned(
                generic,
                "`Payload` takes one type, e.g. `Payload<Welcome>`",
            )),
        }
    }
    found.unwrap_or_else(|| syn::parse_quote!(()))
}

/// `scope`, `on_crash` and `missed`: what a cluster does with the job.
fn cluster(kind: Kind, args: &Args, errors: &mut Errors) -> Cluster {
    let service = kind == Kind::Service;
    let scope = match args.get(Key::Scope) {
        None if service || kind == Kind::Queued => Scope::Instance,
        None => Scope::Cluster,
        Some(lit) => match (lit.value().as_str(), service) {
            ("instance", _) => Scope::Instance,
            ("cluster", false) => Scope::Cluster,
            ("singleton", true) => Scope::Singleton,
            (other, true) => {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown scope `{other}` for a service; use `\"instance\"` (the default: every instance runs it) or `\"singleton\"` (one instance of the cluster at a time)"),
                ));
                Scope::Instance
            }
            (other, false) => {
                let hint = if other == "singleton" {
                    " (`\"singleton\"` is for services)"
                } else {
                    ""
                };
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown scope `{other}`{hint}; use `\"cluster\"` (the default: each tick once across the cluster) or `\"instance\"` (every instance runs every tick)"),
                ));
                Scope::Cluster
            }
        },
    };
    let choice = |key: Key, yes: &str, no: &str, help: &str, errors: &mut Errors| match args
        .get(key)
    {
        None => false,
        Some(lit) => {
            let value = lit.value();
            if scope == Scope::Instance {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!(
                        "`{}` applies to ticks claimed across a cluster; with `scope = \"instance\"` every instance runs every tick, so remove it",
                        key.as_str()
                    ),
                ));
            }
            if value == yes {
                true
            } else if value == no {
                false
            } else {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown `{}` policy `{value}`; {help}", key.as_str()),
                ));
                false
            }
        }
    };
    let rerun = choice(
        Key::OnCrash,
        "rerun",
        "skip",
        "use `\"skip\"` (the default: a tick whose instance died mid-run is not run again, at most once) or `\"rerun\"` (another instance runs it again, at least once)",
        errors,
    );
    let catch_up = choice(
        Key::Missed,
        "once",
        "skip",
        "use `\"skip\"` (the default: ticks missed while the whole cluster was down pass) or `\"once\"` (the last missed tick runs once when the cluster is back)",
        errors,
    );
    Cluster {
        scope,
        rerun,
        catch_up,
    }
}

/// The failure policy of a service fn: `on_failure`, with `backoff` and
/// `max_restarts` for `"restart"`.
fn on_failure(args: &Args, errors: &mut Errors) -> OnFailure {
    let restart_only = |key: Key, errors: &mut Errors| {
        if let Some(span) = args.key_span(key) {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{}` applies only with `on_failure = \"restart\"`; add that, or remove `{}`",
                    key.as_str(),
                    key.as_str()
                ),
            ));
        }
    };
    let policy = args.get(Key::OnFailure).map(LitStr::value);
    match policy.as_deref() {
        None | Some("stop") | Some("ignore") => {
            restart_only(Key::Backoff, errors);
            restart_only(Key::MaxRestarts, errors);
            if policy.as_deref() == Some("ignore") {
                OnFailure::Ignore
            } else {
                OnFailure::Stop
            }
        }
        Some("restart") => {
            let (min_ms, max_ms) = match args.get(Key::Backoff) {
                Some(lit) => backoff(lit, errors).unwrap_or((1_000, 60_000)),
                None => (1_000, 60_000),
            };
            let max_restarts = match args.int(Key::MaxRestarts) {
                None => 5,
                Some((n, span)) => u32::try_from(n).unwrap_or_else(|_| {
                    errors.push(syn::Error::new(
                        span,
                        "`max_restarts` must be between 0 and 4294967295",
                    ));
                    0
                }),
            };
            OnFailure::Restart {
                min_ms,
                max_ms,
                max_restarts,
            }
        }
        Some(other) => {
            if let Some(lit) = args.get(Key::OnFailure) {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown failure policy `{other}`; use `\"stop\"` (the default: stop the host), `\"ignore\"` (log and carry on) or `\"restart\"` (with `backoff = \"1s..1m\"` and `max_restarts = 5`)"),
                ));
            }
            OnFailure::Stop
        }
    }
}

/// `"1s..5m"`: the first and the longest restart delay.
fn backoff(lit: &LitStr, errors: &mut Errors) -> Option<(u64, u64)> {
    parse_backoff(&lit.value())
        .map_err(|message| errors.push(syn::Error::new(lit.span(), message)))
        .ok()
}

/// Checks `#[hosted_service]` on a type.
pub(crate) fn service_type(args: Args, item: syn::Item) -> syn::Result<ServiceType> {
    let mut errors = Errors::default();
    let (ident, generics) = match &item {
        syn::Item::Struct(s) => (s.ident.clone(), &s.generics),
        syn::Item::Enum(e) => (e.ident.clone(), &e.generics),
        syn::Item::Union(u) => (u.ident.clone(), &u.generics),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`#[hosted_service]` applies to an `async fn` or to a struct or enum that implements `HostedService`",
            ))
        }
    };
    if !generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            generics,
            "a service registered with `#[hosted_service]` cannot be generic; register a concrete instance with `Host::builder().service(value)` instead",
        ));
    }
    let name = name(&args, "service", &ident, &mut errors);
    let order = match args.int(Key::Order) {
        None => 0,
        Some((n, span)) => i32::try_from(n).unwrap_or_else(|_| {
            errors.push(syn::Error::new(span, "`order` must fit in an `i32`"));
            0
        }),
    };
    let constructor = args.get(Key::Constructor).and_then(|lit| match lit.parse::<syn::Path>() {
        Ok(path) => Some((path, lit.span())),
        Err(_) => {
            errors.push(syn::Error::new(
                lit.span(),
                "expected the path of a fn that returns the service, e.g. `constructor = \"Cache::new\"`",
            ));
            None
        }
    });
    let krate = crate_path(&args, &mut errors);
    errors.finish()?;
    Ok(ServiceType {
        name,
        order,
        constructor,
        krate,
        ident,
        item,
    })
}

/// The `name` option, else the item's own name.
fn name(args: &Args, what: &str, ident: &syn::Ident, errors: &mut Errors) -> String {
    let Some(lit) = args.get(Key::Name) else {
        return ident.to_string();
    };
    let name = lit.value();
    if name.trim().is_empty() || name.trim() != name {
        errors.push(syn::Error::new(
            lit.span(),
            format!("{what} name must be non-empty, without leading or trailing whitespace"),
        ));
    }
    name
}

fn crate_path(args: &Args, errors: &mut Errors) -> syn::Path {
    crate_path_of(args, "hosted", syn::parse_quote!(::hosted), errors)
}

/// The `crate` option: the path to `krate`, else `default`.
fn crate_path_of(args: &Args, krate: &str, default: syn::Path, errors: &mut Errors) -> syn::Path {
    match args.get(Key::Crate) {
        Some(lit) => lit.parse::<syn::Path>().unwrap_or_else(|_| {
            let snake = krate.replace('-', "_");
            errors.push(syn::Error::new(
                lit.span(),
                format!("expected a path to the `{krate}` crate, e.g. `crate = \"::my_reexport::{snake}\"`"),
            ));
            default
        }),
        None => default,
    }
}

fn every(args: &Args, errors: &mut Errors) -> Trigger {
    let Some(period_lit) = &args.schedule else {
        errors.push(syn::Error::new(
            Span::call_site(),
            "`#[every]` needs a period, e.g. `#[every(\"5s\")]` or `#[every(\"1m30s\")]`",
        ));
        return Trigger::Service(OnFailure::Stop);
    };
    let period_ms = duration(period_lit, errors).unwrap_or(1);
    if period_ms == 0 {
        errors.push(syn::Error::new(
            period_lit.span(),
            "the period must be greater than zero, e.g. `\"100ms\"` or `\"5s\"`",
        ));
    }
    let initial_delay_ms = args
        .get(Key::InitialDelay)
        .and_then(|lit| duration(lit, errors))
        .unwrap_or(0);
    let jitter_ms = match args.get(Key::Jitter) {
        Some(lit) => {
            let jitter = duration(lit, errors).unwrap_or(0);
            if period_ms > 0 && jitter >= period_ms {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!(
                        "jitter must be shorter than the period `{}`, or ticks could swap places",
                        period_lit.value()
                    ),
                ));
            }
            jitter
        }
        None => 0,
    };
    Trigger::Every {
        source: period_lit.value(),
        period_ms,
        initial_delay_ms,
        jitter_ms,
    }
}

fn duration(lit: &LitStr, errors: &mut Errors) -> Option<u64> {
    parse_millis(&lit.value())
        .map_err(|message| errors.push(syn::Error::new(lit.span(), message)))
        .ok()
}

fn cron(args: &Args, errors: &mut Errors) -> Trigger {
    let Some(line_lit) = &args.schedule else {
        errors.push(syn::Error::new(
            Span::call_site(),
            "`#[cron]` needs a cron line, e.g. `#[cron(\"*/5 * * * *\")]` or `#[cron(\"@hourly\")]`",
        ));
        return Trigger::Service(OnFailure::Stop);
    };
    let line = line_lit.value();
    if let Err(message) = parse_cron(&line) {
        errors.push(syn::Error::new(line_lit.span(), message));
    }
    let zone = match args.get(Key::Tz) {
        None => Zone::Utc,
        Some(lit) => zone(lit).unwrap_or_else(|error| {
            errors.push(error);
            Zone::Utc
        }),
    };
    Trigger::Cron { line, zone }
}

fn zone(lit: &LitStr) -> syn::Result<Zone> {
    let name = lit.value();
    match parse_zone(&name) {
        Ok(hosted_spec::Zone::Utc) => Ok(Zone::Utc),
        Ok(hosted_spec::Zone::Local) => Ok(Zone::Local),
        Ok(hosted_spec::Zone::Named(_)) => Ok(Zone::Named(name)),
        Err(message) => Err(syn::Error::new(lit.span(), message)),
    }
}

fn check_signature(kind: Kind, sig: &syn::Signature, errors: &mut Errors) {
    let attr = kind.attr_name();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("`#[{attr}]` needs an `async fn`; add `async` before `fn`"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("`#[{attr}]` cannot be used on a `const fn`; remove `const`"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("`#[{attr}]` cannot call an `unsafe fn`; make it safe and keep the `unsafe` block inside"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let span = if sig.generics.params.is_empty() {
            sig.generics.where_clause.span()
        } else {
            sig.generics.span()
        };
        errors.push(syn::Error::new(
            span,
            format!("`#[{attr}]` fns cannot be generic: the host calls them with one concrete set of arguments; use concrete types such as `State<MyType>`"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "variadic fns cannot be jobs",
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                receiver.span(),
                format!("`#[{attr}]` cannot be used on a method; make it a free fn and pass shared values as `State<T>`"),
            )),
            FnArg::Typed(arg) => {
                if let syn::Type::ImplTrait(impl_trait) = &*arg.ty {
                    errors.push(syn::Error::new(
                        impl_trait.span(),
                        format!("`#[{attr}]` fns cannot take `impl Trait`; use a concrete type such as `State<MyType>`"),
                    ));
                }
            }
        }
    }
}
