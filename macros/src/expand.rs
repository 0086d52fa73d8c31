//! Code generation: the user's fn, unchanged, followed by one const
//! registration submitted through `inventory`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ReturnType};

use crate::model::{Cluster, Job, OnFailure, Overlap, Queued, Scope, ServiceType, Trigger, Zone};

pub(crate) fn job(job: Job) -> TokenStream {
    let Job {
        name,
        trigger,
        overlap,
        cluster,
        krate,
        func,
        default_name,
    } = job;
    let ident = &func.sig.ident;
    // A queued handler's expansion names `hosted-postgres`, which carries
    // the runtime's private paths for it.
    let (private, durable) = match &trigger {
        Trigger::Queued(queued) => (
            quote!(#krate::__private::hosted::__private),
            Some(durable_items(
                &krate,
                ident,
                &func.vis,
                queued,
                &name,
                default_name,
            )),
        ),
        _ => (quote!(#krate::__private), None),
    };
    let name = match (&trigger, default_name) {
        (Trigger::Queued(_), true) => {
            let fn_name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
        _ => quote!(#name),
    };

    let trigger = match trigger {
        Trigger::Every {
            source,
            period_ms,
            initial_delay_ms,
            jitter_ms,
        } => quote! {
            #private::Trigger::Every(#private::EverySpec {
                source: #source,
                period: ::core::time::Duration::from_millis(#period_ms),
                initial_delay: ::core::time::Duration::from_millis(#initial_delay_ms),
                jitter: ::core::time::Duration::from_millis(#jitter_ms),
            })
        },
        Trigger::Cron { line, zone } => {
            let zone = match zone {
                Zone::Utc => quote!(#private::ZoneSpec::Utc),
                Zone::Local => quote!(#private::ZoneSpec::Local),
                Zone::Named(name) => quote!(#private::ZoneSpec::Named(#name)),
            };
            quote! {
                #private::Trigger::Cron(#private::CronSpec { line: #line, zone: #zone })
            }
        }
        Trigger::Service(policy) => {
            let policy = match policy {
                OnFailure::Stop => quote!(#private::FailurePolicy::Stop),
                OnFailure::Ignore => quote!(#private::FailurePolicy::Ignore),
                OnFailure::Restart {
                    min_ms,
                    max_ms,
                    max_restarts,
                } => quote! {
                    #private::FailurePolicy::Restart(#private::Backoff {
                        min: ::core::time::Duration::from_millis(#min_ms),
                        max: ::core::time::Duration::from_millis(#max_ms),
                        max_restarts: #max_restarts,
                    })
                },
            };
            quote!(#private::Trigger::Service(#policy))
        }
        Trigger::Queued(queued) => {
            let Queued {
                queue,
                max_attempts,
                timeout_ms,
                backoff_min_ms,
                backoff_max_ms,
                priority,
                ..
            } = *queued;
            quote! {
                #private::Trigger::Queued(#private::QueuedSpec {
                    queue: #queue,
                    max_attempts: #max_attempts,
                    timeout: ::core::time::Duration::from_millis(#timeout_ms),
                    backoff_min: ::core::time::Duration::from_millis(#backoff_min_ms),
                    backoff_max: ::core::time::Duration::from_millis(#backoff_max_ms),
                    priority: #priority,
                })
            }
        }
    };
    let overlap = match overlap {
        Overlap::Skip => quote!(#private::Overlap::Skip),
        Overlap::Allow => quote!(#private::Overlap::Allow),
    };
    let Cluster {
        scope,
        rerun,
        catch_up,
    } = cluster;
    let scope = match scope {
        Scope::Cluster => quote!(#private::Placement::Cluster),
        Scope::Instance => quote!(#private::Placement::Instance),
        Scope::Singleton => quote!(#private::Placement::Singleton),
    };
    let on_crash = if rerun {
        quote!(#private::OnCrash::Rerun)
    } else {
        quote!(#private::OnCrash::Skip)
    };
    let missed = if catch_up {
        quote!(#private::Missed::Once)
    } else {
        quote!(#private::Missed::Skip)
    };

    // Each argument is extracted by its type; a type that cannot be is an
    // error spanned on that type.
    let types: Vec<&syn::Type> = func
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => Some(&*arg.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let vars: Vec<syn::Ident> = (0..types.len()).map(|i| format_ident!("arg{i}")).collect();
    let extract = types.iter().zip(&vars).map(|(ty, var)| {
        quote_spanned! {ty.span()=>
            let #var = <#ty as #private::FromRun>::from_run(cx)?;
        }
    });
    let dependencies = types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            <#ty as #private::FromRun>::dependencies(deps);
        }
    });
    let outcome_span = match &func.sig.output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // Spanned on the return type, so an unsupported one is underlined there.
    let outcome = quote_spanned! {outcome_span=>
        #private::IntoOutcome::into_outcome(output)
    };
    let future = quote_spanned! {ident.span()=>
        ::std::boxed::Box::pin(async move {
            let output = #ident(#(#vars),*).await;
            #outcome
        })
    };
    let line = quote_spanned!(ident.span()=> ::core::line!());
    // A fn without arguments leaves the closures' parameters unused.
    let (deps, cx) = if types.is_empty() {
        (quote!(_), quote!(_))
    } else {
        (quote!(deps), quote!(cx))
    };

    quote! {
        #func

        #durable

        const _: () = {
            #private::inventory::submit! {
                #private::Registration {
                    name: #name,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: #line,
                    trigger: #trigger,
                    overlap: #overlap,
                    cluster: #private::ClusterJobOptions {
                        scope: #scope,
                        on_crash: #on_crash,
                        missed: #missed,
                    },
                    dependencies: |#deps: &mut #private::Dependencies| {
                        #(#dependencies)*
                    },
                    run: |#cx: &#private::RunContext| -> ::core::result::Result<
                        #private::RunFuture,
                        #private::ExtractError,
                    > {
                        #(#extract)*
                        ::core::result::Result::Ok(#future)
                    },
                }
            }
        };
    }
}

/// The type a queued handler's items are enqueued through: a struct named
/// like the fn (types and values live in separate namespaces, so the fn
/// stays callable), which implements `Durable` with the payload's type, and
/// whose `enqueue` takes only that type.
fn durable_items(
    krate: &syn::Path,
    ident: &syn::Ident,
    vis: &syn::Visibility,
    queued: &Queued,
    name: &str,
    default_name: bool,
) -> TokenStream {
    let Queued {
        queue,
        max_attempts,
        priority,
        payload,
        ..
    } = queued;
    let fn_name = ident.to_string();
    let name = if default_name {
        quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
    } else {
        quote!(#name)
    };
    let doc = format!(
        "The durable work items of [`{fn_name}()`]: enqueue one with [`{fn_name}::enqueue`](Self::enqueue)."
    );
    let payload_span = payload.span();
    let enqueue = quote_spanned! {payload_span=>
        #vis fn enqueue(
            queue: &#krate::DurableQueue,
            payload: #payload,
        ) -> #krate::Enqueue<'_, #ident> {
            #krate::Enqueue::new(queue, payload)
        }
    };
    let enqueue_many = quote_spanned! {payload_span=>
        #vis fn enqueue_many(
            queue: &#krate::DurableQueue,
            payloads: impl ::core::iter::IntoIterator<Item = #payload>,
        ) -> #krate::EnqueueMany<'_, #ident> {
            #krate::EnqueueMany::new(queue, payloads)
        }
    };
    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}

        impl #krate::Durable for #ident {
            type Payload = #payload;
            const NAME: &'static str = #name;
            const QUEUE: &'static str = #queue;
            const PRIORITY: i16 = #priority;
            const MAX_ATTEMPTS: u32 = #max_attempts;
        }

        #[allow(dead_code)]
        impl #ident {
            /// Enqueues one item with `payload`; await the returned builder
            /// (after setting a key, a delay, a priority or a transaction)
            /// to write it.
            #enqueue

            /// Enqueues one item per payload, in one statement; await the
            /// returned builder to write them.
            #enqueue_many
        }
    }
}

/// `#[hosted_service]` on a type: the type unchanged, plus a registration
/// whose constructor builds and boxes the service.
pub(crate) fn service_type(service: ServiceType) -> TokenStream {
    let ServiceType {
        name,
        order,
        constructor,
        krate,
        ident,
        item,
    } = service;
    let private = quote!(#krate::__private);
    // Spanned on the type, so a missing `HostedService` or `Default` impl is
    // reported there; a bad constructor is reported on its literal.
    let (make, dependencies) = match constructor {
        Some((path, span)) => (
            quote_spanned!(span=> |state| #private::construct::<#ident, _, _>(#path, state)),
            quote_spanned!(span=> |deps| #private::constructor_dependencies::<#ident, _, _>(#path, deps)),
        ),
        None => (
            quote_spanned!(ident.span()=> |_| ::core::result::Result::Ok(#private::erase::<#ident>(<#ident as ::core::default::Default>::default()))),
            quote!(|_| {}),
        ),
    };
    let line = quote_spanned!(ident.span()=> ::core::line!());
    quote! {
        #item

        const _: () = {
            #private::inventory::submit! {
                #private::ServiceRegistration {
                    name: #name,
                    order: #order,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: #line,
                    make: #make,
                    dependencies: #dependencies,
                }
            }
        };
    }
}

/// On error: the user's fn as written, so the IDE keeps working, plus every
/// error as `compile_error!`.
pub(crate) fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote! {
        #item
        #errors
    }
}
