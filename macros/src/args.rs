//! Parsing of the attribute's arguments into spanned raw values.
//!
//! Only the syntax is checked here: which keys exist, that each is given at
//! most once, and that values are string literals. What the values mean is
//! decided in `validate.rs`.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{LitStr, Token};

use crate::model::Kind;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(initial_delay);
    syn::custom_keyword!(jitter);
    syn::custom_keyword!(overlap);
    syn::custom_keyword!(tz);
    syn::custom_keyword!(on_failure);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(max_restarts);
    syn::custom_keyword!(order);
    syn::custom_keyword!(constructor);
    syn::custom_keyword!(scope);
    syn::custom_keyword!(on_crash);
    syn::custom_keyword!(missed);
    syn::custom_keyword!(queue);
    syn::custom_keyword!(max_attempts);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(priority);
}

/// An option key, kept with the span of the key itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Key {
    Name,
    InitialDelay,
    Jitter,
    Overlap,
    Tz,
    OnFailure,
    Backoff,
    MaxRestarts,
    Order,
    Constructor,
    Scope,
    OnCrash,
    Missed,
    Queue,
    MaxAttempts,
    Timeout,
    Priority,
    Crate,
}

impl Key {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::InitialDelay => "initial_delay",
            Key::Jitter => "jitter",
            Key::Overlap => "overlap",
            Key::Tz => "tz",
            Key::OnFailure => "on_failure",
            Key::Backoff => "backoff",
            Key::MaxRestarts => "max_restarts",
            Key::Order => "order",
            Key::Constructor => "constructor",
            Key::Scope => "scope",
            Key::OnCrash => "on_crash",
            Key::Missed => "missed",
            Key::Queue => "queue",
            Key::MaxAttempts => "max_attempts",
            Key::Timeout => "timeout",
            Key::Priority => "priority",
            Key::Crate => "crate",
        }
    }

    /// Whether the key takes an integer rather than a string.
    fn takes_integer(self) -> bool {
        matches!(
            self,
            Key::MaxRestarts | Key::Order | Key::MaxAttempts | Key::Priority
        )
    }

    /// The keys each macro accepts, in the order its docs list them.
    pub(crate) fn allowed(kind: Kind) -> &'static [Key] {
        match kind {
            Kind::Every => &[
                Key::Name,
                Key::InitialDelay,
                Key::Jitter,
                Key::Overlap,
                Key::Scope,
                Key::OnCrash,
                Key::Missed,
                Key::Crate,
            ],
            Kind::Cron => &[
                Key::Name,
                Key::Tz,
                Key::Overlap,
                Key::Scope,
                Key::OnCrash,
                Key::Missed,
                Key::Crate,
            ],
            Kind::Service => &[
                Key::Name,
                Key::OnFailure,
                Key::Backoff,
                Key::MaxRestarts,
                Key::Scope,
                Key::Crate,
            ],
            Kind::ServiceType => &[Key::Name, Key::Order, Key::Constructor, Key::Crate],
            Kind::Queued => &[
                Key::Name,
                Key::Queue,
                Key::MaxAttempts,
                Key::Timeout,
                Key::Backoff,
                Key::Priority,
                Key::Crate,
            ],
        }
    }
}

/// The raw arguments of one attribute.
pub(crate) struct Args {
    /// The leading literal: the period of `every`, the line of `cron`.
    pub(crate) schedule: Option<LitStr>,
    pub(crate) options: Vec<(Key, Span, Value)>,
}

/// An option's value: a string, or for `order` and `max_restarts` an
/// integer.
#[derive(Clone)]
pub(crate) enum Value {
    Str(LitStr),
    Int { value: i64, span: Span },
}

impl Args {
    fn value(&self, key: Key) -> Option<&Value> {
        self.options
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| v)
    }

    /// The string given for `key`, if any. Duplicates were rejected while
    /// parsing, so there is at most one.
    pub(crate) fn get(&self, key: Key) -> Option<&LitStr> {
        match self.value(key)? {
            Value::Str(lit) => Some(lit),
            Value::Int { .. } => None,
        }
    }

    /// The integer given for `key`, with its span.
    pub(crate) fn int(&self, key: Key) -> Option<(i64, Span)> {
        match self.value(key)? {
            Value::Int { value, span } => Some((*value, *span)),
            Value::Str(_) => None,
        }
    }

    /// The span of `key` itself, where it was given.
    pub(crate) fn key_span(&self, key: Key) -> Option<Span> {
        self.options
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, span, _)| *span)
    }

    /// Parses the arguments of the attribute `kind`, collecting every error
    /// that does not stop the parse (unknown and duplicated keys).
    pub(crate) fn parse(kind: Kind, input: ParseStream<'_>) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut args = Args {
            schedule: None,
            options: Vec::new(),
        };
        let mut first = true;
        while !input.is_empty() {
            if first && !input.peek2(Token![=]) {
                let lit: syn::Lit = input.parse()?;
                match lit {
                    syn::Lit::Str(s) if !matches!(kind, Kind::Service | Kind::Queued) => {
                        args.schedule = Some(s)
                    }
                    other if kind == Kind::Service => errors.push(syn::Error::new_spanned(
                        other,
                        "`#[hosted_service]` takes no schedule; \
                         use `#[every(\"...\")]` or `#[cron(\"...\")]` for scheduled jobs",
                    )),
                    other if kind == Kind::Queued => errors.push(syn::Error::new_spanned(
                        other,
                        "`#[queued]` takes no schedule: it runs each item enqueued for it; \
                         name its queue with `queue = \"...\"`, delay an item with `.delay(...)` when enqueueing it",
                    )),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        format!("expected a string literal, e.g. {}", kind.example()),
                    )),
                }
            } else {
                let (key, span) = parse_key(kind, input, &mut errors)?;
                input.parse::<Token![=]>()?;
                let minus: Option<Token![-]> = input.parse()?;
                let value: syn::Lit = input.parse()?;
                let value = match (key, minus, value) {
                    (Some(key), None, syn::Lit::Str(lit)) if !key.takes_integer() => {
                        Some(Value::Str(lit))
                    }
                    (Some(key), minus, syn::Lit::Int(lit)) if key.takes_integer() => {
                        let span = lit.span();
                        match lit.base10_parse::<i64>() {
                            Ok(n) => Some(Value::Int {
                                value: if minus.is_some() { -n } else { n },
                                span,
                            }),
                            Err(error) => {
                                errors.push(error);
                                None
                            }
                        }
                    }
                    (Some(key), _, other) => {
                        let expected = if key.takes_integer() {
                            format!("expected an integer, e.g. `{} = 3`", key.as_str())
                        } else {
                            format!(
                                "expected a string literal, e.g. `{} = \"...\"`",
                                key.as_str()
                            )
                        };
                        errors.push(syn::Error::new_spanned(other, expected));
                        None
                    }
                    (None, _, _) => None,
                };
                if let (Some(key), Some(value)) = (key, value) {
                    set_once(&mut args.options, key, span, value, &mut errors);
                }
            }
            first = false;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        errors.finish()?;
        Ok(args)
    }
}

/// Parses one key; an unknown or misplaced key is reported and yields `None`
/// so that the rest of the arguments are still checked.
fn parse_key(
    kind: Kind,
    input: ParseStream<'_>,
    errors: &mut Errors,
) -> syn::Result<(Option<Key>, Span)> {
    let lookahead = input.lookahead1();
    let (key, span) = if lookahead.peek(kw::name) {
        (Key::Name, input.parse::<kw::name>()?.span)
    } else if lookahead.peek(kw::initial_delay) {
        (Key::InitialDelay, input.parse::<kw::initial_delay>()?.span)
    } else if lookahead.peek(kw::jitter) {
        (Key::Jitter, input.parse::<kw::jitter>()?.span)
    } else if lookahead.peek(kw::overlap) {
        (Key::Overlap, input.parse::<kw::overlap>()?.span)
    } else if lookahead.peek(kw::tz) {
        (Key::Tz, input.parse::<kw::tz>()?.span)
    } else if lookahead.peek(kw::on_failure) {
        (Key::OnFailure, input.parse::<kw::on_failure>()?.span)
    } else if lookahead.peek(kw::backoff) {
        (Key::Backoff, input.parse::<kw::backoff>()?.span)
    } else if lookahead.peek(kw::max_restarts) {
        (Key::MaxRestarts, input.parse::<kw::max_restarts>()?.span)
    } else if lookahead.peek(kw::order) {
        (Key::Order, input.parse::<kw::order>()?.span)
    } else if lookahead.peek(kw::constructor) {
        (Key::Constructor, input.parse::<kw::constructor>()?.span)
    } else if lookahead.peek(kw::scope) {
        (Key::Scope, input.parse::<kw::scope>()?.span)
    } else if lookahead.peek(kw::on_crash) {
        (Key::OnCrash, input.parse::<kw::on_crash>()?.span)
    } else if lookahead.peek(kw::missed) {
        (Key::Missed, input.parse::<kw::missed>()?.span)
    } else if lookahead.peek(kw::queue) {
        (Key::Queue, input.parse::<kw::queue>()?.span)
    } else if lookahead.peek(kw::max_attempts) {
        (Key::MaxAttempts, input.parse::<kw::max_attempts>()?.span)
    } else if lookahead.peek(kw::timeout) {
        (Key::Timeout, input.parse::<kw::timeout>()?.span)
    } else if lookahead.peek(kw::priority) {
        (Key::Priority, input.parse::<kw::priority>()?.span)
    } else if lookahead.peek(Token![crate]) {
        (Key::Crate, input.parse::<Token![crate]>()?.span)
    } else if input.peek(syn::Ident) {
        let ident: syn::Ident = input.parse()?;
        errors.push(syn::Error::new(
            ident.span(),
            format!("unknown option `{ident}`; {}", kind.option_list()),
        ));
        return Ok((None, ident.span()));
    } else {
        return Err(lookahead.error());
    };
    if !Key::allowed(kind).contains(&key) {
        let hint = match key {
            _ if kind == Kind::Queued => {
                " (a queued handler runs once per item, when its queue hands it over)"
            }
            Key::Queue | Key::MaxAttempts | Key::Timeout | Key::Priority => {
                " (it applies to `#[queued]` handlers of durable work)"
            }
            Key::Tz => " (time zones apply to `#[cron]` only)",
            Key::InitialDelay | Key::Jitter => " (it applies to `#[every]` only)",
            Key::Overlap => " (a service runs once, so it cannot overlap)",
            Key::OnFailure | Key::Backoff | Key::MaxRestarts if kind == Kind::ServiceType => {
                " (a failing `start` aborts startup; failure policies apply to `#[hosted_service]` on an `async fn`)"
            }
            Key::OnFailure | Key::Backoff | Key::MaxRestarts => {
                " (a failed run is logged and the schedule goes on; failure policies apply to `#[hosted_service]` on an `async fn`)"
            }
            Key::Order | Key::Constructor => {
                " (it applies to `#[hosted_service]` on a type that implements `HostedService`)"
            }
            Key::Scope if kind == Kind::ServiceType => {
                " (a lifecycle service runs on every instance; `scope = \"singleton\"` applies to `#[hosted_service]` on an `async fn`)"
            }
            Key::OnCrash | Key::Missed => {
                " (it applies to scheduled jobs in a cluster: `#[every]` and `#[cron]`)"
            }
            Key::Name | Key::Crate | Key::Scope => "",
        };
        errors.push(syn::Error::new(
            span,
            format!(
                "`{}` is not an option of {}{hint}; {}",
                key.as_str(),
                kind.what(),
                kind.option_list()
            ),
        ));
        return Ok((None, span));
    }
    Ok((Some(key), span))
}

/// The one place where a repeated key is caught, whatever the key.
fn set_once(
    options: &mut Vec<(Key, Span, Value)>,
    key: Key,
    span: Span,
    value: Value,
    errors: &mut Errors,
) {
    if options.iter().any(|(k, _, _)| *k == key) {
        errors.push(syn::Error::new(
            span,
            format!("duplicate option `{}`; give it once", key.as_str()),
        ));
    } else {
        options.push((key, span, value));
    }
}

/// Collects errors so that one compile reports every mistake at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Kind {
    fn option_list(self) -> String {
        let keys: Vec<String> = Key::allowed(self)
            .iter()
            .map(|k| format!("`{}`", k.as_str()))
            .collect();
        let list = match keys.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => keys.concat(),
        };
        format!("{} takes {list}", self.what())
    }
}

/// Parses `input` as the arguments of `kind` through `syn`'s `Parser`.
pub(crate) struct ParseArgs(pub(crate) Kind);

impl syn::parse::Parser for ParseArgs {
    type Output = Args;

    fn parse2(self, tokens: proc_macro2::TokenStream) -> syn::Result<Args> {
        let kind = self.0;
        (move |input: ParseStream<'_>| Args::parse(kind, input)).parse2(tokens)
    }
}
