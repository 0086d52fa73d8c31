//! Turns raw arguments and the annotated fn into a [`Job`], checking every
//! option and every combination in one place. All errors are collected, so a
//! single compile shows every mistake.

use std::str::FromStr;

use chrono::TimeZone as _;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, LitStr};

use crate::args::{Args, Errors, Key};
use crate::duration::parse_millis;
use crate::model::{Job, Kind, OnFailure, Overlap, ServiceType, Trigger, Zone};

/// Builds the model of one annotated fn, or every error found in it.
pub(crate) fn job(kind: Kind, args: Args, func: syn::ItemFn) -> syn::Result<Job> {
    let mut errors = Errors::default();

    check_signature(kind, &func.sig, &mut errors);

    let name = match args.get(Key::Name) {
        Some(lit) => {
            let name = lit.value();
            if name.trim().is_empty() || name.trim() != name {
                errors.push(syn::Error::new(
                    lit.span(),
                    "job name must be non-empty, without leading or trailing whitespace",
                ));
            }
            name
        }
        None => func.sig.ident.to_string(),
    };

    let krate = crate_path(&args, &mut errors);

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

    let trigger = match kind {
        Kind::Every => every(&args, &mut errors),
        Kind::Cron => cron(&args, &mut errors),
        Kind::Service | Kind::ServiceType => Trigger::Service(on_failure(&args, &mut errors)),
    };

    errors.finish()?;
    Ok(Job {
        name,
        trigger,
        overlap,
        krate,
        func,
    })
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
    let text = lit.value();
    let Some((min, max)) = text.split_once("..") else {
        errors.push(syn::Error::new(
            lit.span(),
            format!(
                "invalid backoff `{text}`; write the first and the longest delay as `\"1s..5m\"`"
            ),
        ));
        return None;
    };
    let parse = |part: &str, errors: &mut Errors| {
        parse_millis(part)
            .map_err(|message| {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("in backoff `{text}`: {message}"),
                ))
            })
            .ok()
    };
    let (min, max) = (parse(min, errors)?, parse(max, errors)?);
    if min == 0 || min > max {
        errors.push(syn::Error::new(
            lit.span(),
            format!("invalid backoff `{text}`: the first delay must be above zero and at most the longest, e.g. `\"1s..5m\"`"),
        ));
        return None;
    }
    Some((min, max))
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
    let name = match args.get(Key::Name) {
        Some(lit) => {
            let name = lit.value();
            if name.trim().is_empty() || name.trim() != name {
                errors.push(syn::Error::new(
                    lit.span(),
                    "service name must be non-empty, without leading or trailing whitespace",
                ));
            }
            name
        }
        None => ident.to_string(),
    };
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

fn crate_path(args: &Args, errors: &mut Errors) -> syn::Path {
    match args.get(Key::Crate) {
        Some(lit) => lit.parse::<syn::Path>().unwrap_or_else(|_| {
            errors.push(syn::Error::new(
                lit.span(),
                "expected a path to the `hosted` crate, e.g. `crate = \"::my_reexport::hosted\"`",
            ));
            syn::parse_quote!(::hosted)
        }),
        None => syn::parse_quote!(::hosted),
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
    if let Err(message) = check_cron(&line) {
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

/// Parses the line with the same `croner` settings the runtime uses, and
/// rejects lines that can never fire. Errors name the offending field.
fn check_cron(line: &str) -> Result<(), String> {
    const FORMS: &str = "write 5 fields (minute, hour, day of month, month, day of week), \
         6 with seconds first, or an alias such as `@hourly`";
    let trimmed = line.trim();
    if trimmed.eq_ignore_ascii_case("@reboot") {
        return Err(
            "`@reboot` is not a schedule; use `#[hosted_service]` for work that starts with the host"
                .into(),
        );
    }
    if trimmed.starts_with('@') {
        parse_cron(trimmed).map_err(|_| {
            format!("unknown cron alias `{trimmed}`; use `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily` or `@hourly`")
        })?;
        return Ok(());
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let names: &[(&str, &str)] = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS,
        n => return Err(format!("cron line `{line}` has {n} field(s); {FORMS}")),
    };
    let cron = parse_cron(trimmed).map_err(|error| {
        // The culprit is the first field whose replacement by `*` parses.
        let culprit = (0..fields.len()).find(|&i| {
            let mut fixed = fields.clone();
            fixed[i] = "*";
            parse_cron(&fixed.join(" ")).is_ok()
        });
        match culprit {
            Some(i) => format!(
                "invalid {} field `{}` in cron line `{line}`; {}",
                names[i].0, fields[i], names[i].1
            ),
            None => format!(
                "invalid cron line `{line}` ({}); {FORMS}",
                lowercase_message(&error)
            ),
        }
    })?;
    // A leap day is the rarest real date, so a line that fires at all fires
    // within the eight years from 2000 (a leap year) on.
    let Some(start) = chrono::Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single() else {
        return Ok(());
    };
    let mut from = start;
    for _ in 0..8 {
        match cron.find_next_occurrence(&from, true) {
            Ok(_) => return Ok(()),
            Err(_) => from += chrono::Duration::days(366),
        }
    }
    Err(format!(
        "cron line `{line}` never fires: no month has that day; check the day-of-month and month fields"
    ))
}

/// Each field's name and what it accepts, seconds first.
const CRON_FIELDS: [(&str, &str); 6] = [
    (
        "second",
        "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    ),
    (
        "minute",
        "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    ),
    ("hour", "use 0-23, `*`, lists, ranges or steps"),
    (
        "day-of-month",
        "use 1-31, `*`, `L` (last day), lists, ranges or steps",
    ),
    (
        "month",
        "use 1-12 or `JAN`-`DEC`, `*`, lists, ranges or steps",
    ),
    (
        "day-of-week",
        "use 0-7 (0 and 7 are Sunday, 1 is Monday) or `SUN`-`SAT`, `*`, lists, ranges or steps",
    ),
];

fn parse_cron(line: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(line)
}

/// croner's message in rustc's voice: lowercase, no final period.
fn lowercase_message(error: &croner::errors::CronError) -> String {
    let text = error.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn zone(lit: &LitStr) -> syn::Result<Zone> {
    let name = lit.value();
    match name.as_str() {
        "local" => return Ok(Zone::Local),
        "UTC" | "utc" | "Etc/UTC" => return Ok(Zone::Utc),
        _ => {}
    }
    match chrono_tz::Tz::from_str(&name) {
        Ok(_) => Ok(Zone::Named(name)),
        Err(_) => {
            let hint = match chrono_tz::Tz::from_str_insensitive(&name) {
                Ok(tz) => format!("did you mean `{}`?", tz.name()),
                Err(_) => "use an IANA name such as `\"Europe/Berlin\"`, `\"UTC\"`, or `\"local\"` for the machine's zone".into(),
            };
            Err(syn::Error::new(
                lit.span(),
                format!("unknown time zone `{name}`; {hint}"),
            ))
        }
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
