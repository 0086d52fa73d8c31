//! Services with a full lifecycle, the `IHostedService` of
//! Microsoft.Extensions.Hosting: [`HostedService::start`] returns once the
//! service is up, [`HostedService::stop`] gets the stop deadline, and four
//! optional hooks run around them.
//!
//! Register one with [`HostBuilder::service`](crate::HostBuilder::service),
//! or declare it with `#[hosted_service]` on its type.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::base::report::Phase;
use crate::model::extract::{Dependencies, State, StateMap};

/// A service the host starts before any background job and stops after
/// them, in a deterministic order (see [the crate docs](crate#lifecycle)).
///
/// Every method has access to `&mut self`: the host owns the value and
/// calls one method at a time. The hooks (`starting`, `started`, `stopping`,
/// `stopped`) do nothing unless overridden.
///
/// # Examples
///
/// ```
/// use hosted::{CancellationToken, HostedService};
///
/// #[derive(Default)]
/// struct Cache { warmed: bool }
///
/// impl HostedService for Cache {
///     type Error = std::io::Error;
///
///     async fn start(&mut self, _cancel: CancellationToken) -> Result<(), Self::Error> {
///         self.warmed = true; // load from disk, connect, ...
///         Ok(())
///     }
///
///     async fn stop(&mut self, _deadline: CancellationToken) -> Result<(), Self::Error> {
///         Ok(()) // flush, before `_deadline` fires
///     }
/// }
///
/// let host = hosted::Host::builder().without_registered().service(Cache::default()).build();
/// assert!(host.is_ok());
/// ```
///
/// Or declared, built with `Default` (or `constructor = "path::to::fn"`):
///
/// ```
/// # use hosted::{CancellationToken, HostedService};
/// #[hosted::hosted_service(order = -10)]
/// #[derive(Default)]
/// struct Metrics;
///
/// impl HostedService for Metrics {
///     type Error = std::convert::Infallible;
///     async fn start(&mut self, _: CancellationToken) -> Result<(), Self::Error> { Ok(()) }
///     async fn stop(&mut self, _: CancellationToken) -> Result<(), Self::Error> { Ok(()) }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hosted service",
    label = "`#[hosted_service]` on a type needs `impl HostedService for {Self}`",
    note = "implement `hosted::HostedService` (`start` and `stop`), or put `#[hosted_service]` on an `async fn` for a long-running background fn"
)]
pub trait HostedService: Send + 'static {
    /// The error of every method; anything that displays.
    type Error: fmt::Display + Send + 'static;

    /// The service's name in logs, errors and the [`Report`](crate::Report).
    /// Defaults to the type's name without its path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name(std::any::type_name::<Self>()))
    }

    /// Starts the service and returns once it is up. `cancel` fires if
    /// startup is abandoned (the startup timeout ran out, another service
    /// failed to start, or stop was requested during startup), and
    /// otherwise when the host stops: work spawned with it in `start` lives
    /// as long as the host.
    ///
    /// # Errors
    ///
    /// An error aborts startup: services after this one never start, the
    /// ones already started are stopped in reverse order, and `run()`
    /// returns the error.
    fn start(
        &mut self,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stops the service. `deadline` fires when the host's shutdown timeout
    /// runs out; after that, the host stops waiting.
    ///
    /// # Errors
    ///
    /// An error is collected into the [`Report`](crate::Report); the rest
    /// of the stop sequence still runs.
    fn stop(
        &mut self,
        deadline: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Runs before any service's `start` (in start order).
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start).
    fn starting(
        &mut self,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = cancel;
        async { Ok(()) }
    }

    /// Runs after every service's `start` returned, before background jobs
    /// start (in start order).
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start).
    fn started(
        &mut self,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = cancel;
        async { Ok(()) }
    }

    /// Runs when stop begins, after every job's token was cancelled (in
    /// stop order).
    ///
    /// # Errors
    ///
    /// As for [`stop`](Self::stop).
    fn stopping(
        &mut self,
        deadline: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = deadline;
        async { Ok(()) }
    }

    /// Runs after every service's `stop` (in stop order).
    ///
    /// # Errors
    ///
    /// As for [`stop`](Self::stop).
    fn stopped(
        &mut self,
        deadline: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = deadline;
        async { Ok(()) }
    }
}

/// `a::b::Cache<x::Y>` → `Cache<x::Y>`.
fn short_type_name(full: &str) -> &str {
    let generic = full.find('<').unwrap_or(full.len());
    let start = full[..generic].rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

pub(crate) type PhaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// [`HostedService`] with its futures boxed, so the host can hold services
/// of different types.
pub(crate) trait DynService: Send {
    fn name(&self) -> Cow<'static, str>;
    fn call(&mut self, phase: Phase, token: CancellationToken) -> PhaseFuture<'_>;
    /// The service as `Any`, for the host to give a service it knows
    /// (a `WebServer`) what only that type takes.
    #[cfg(feature = "axum")]
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<S: HostedService> DynService for S {
    fn name(&self) -> Cow<'static, str> {
        HostedService::name(self)
    }

    #[cfg(feature = "axum")]
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn call(&mut self, phase: Phase, token: CancellationToken) -> PhaseFuture<'_> {
        fn boxed<'a, E: fmt::Display>(
            future: impl Future<Output = Result<(), E>> + Send + 'a,
        ) -> PhaseFuture<'a> {
            Box::pin(async move { future.await.map_err(|e| format!("{e:#}")) })
        }
        match phase {
            Phase::Starting => boxed(self.starting(token)),
            Phase::Start => boxed(self.start(token)),
            Phase::Started => boxed(self.started(token)),
            Phase::Stopping => boxed(self.stopping(token)),
            Phase::Stop => boxed(self.stop(token)),
            Phase::Stopped => boxed(self.stopped(token)),
            // `Phase` also labels a background fn's run in the report; no
            // lifecycle step is ever `Run`, so there is nothing to call.
            Phase::Run => Box::pin(async { Ok(()) }),
        }
    }
}

/// A service type registered by `#[hosted_service]`. Not public API.
#[doc(hidden)]
pub struct ServiceRegistration {
    /// The attribute's `name`, else the type's name.
    pub name: &'static str,
    pub order: i32,
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
    /// Builds the service from the host's states.
    pub make: fn(&StateMap) -> Result<ErasedService, String>,
    /// The states its constructor takes.
    pub dependencies: fn(&mut Dependencies),
}

inventory::collect!(ServiceRegistration);

/// A boxed service, as the macros' expansion makes one. Not public API.
#[doc(hidden)]
pub struct ErasedService(pub(crate) Box<dyn DynService>);

/// Boxes a service for a registration. Not public API.
#[doc(hidden)]
pub fn erase<S: HostedService>(service: S) -> ErasedService {
    ErasedService(Box::new(service))
}

/// The constructor of a declared service type
/// (`#[hosted_service(constructor = "path")]`): a fn whose arguments are
/// [`State<T>`]s of the host, returning the service. Implemented for fns of
/// up to 8 arguments.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot construct the service `{S}`",
    label = "expected a fn that takes `State<T>` arguments and returns the service",
    note = "a declared service's constructor takes the host's states, `State<T>` for each `T` given to `HostBuilder::state`, and returns the service itself"
)]
pub trait Constructor<Args, S>: Copy {
    /// Builds the service.
    ///
    /// # Errors
    ///
    /// A state the host lacks (which `build()` reports first).
    fn construct(self, state: &StateMap) -> Result<S, String>;

    /// Declares the states it takes.
    fn dependencies(deps: &mut Dependencies);
}

macro_rules! impl_constructor {
    ($($arg:ident),*) => {
        impl<F, S, $($arg,)*> Constructor<($(State<$arg>,)*), S> for F
        where
            F: Fn($(State<$arg>),*) -> S + Copy,
            $($arg: Clone + Send + Sync + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn construct(self, state: &StateMap) -> Result<S, String> {
                $(
                    let $arg = state.get::<$arg>().map(State).ok_or_else(|| {
                        format!("the host has no `{}`", std::any::type_name::<$arg>())
                    })?;
                )*
                Ok(self($($arg),*))
            }

            #[allow(unused_variables)]
            fn dependencies(deps: &mut Dependencies) {
                $(deps.state::<$arg>();)*
            }
        }
    };
}

impl_constructor!();
impl_constructor!(A1);
impl_constructor!(A1, A2);
impl_constructor!(A1, A2, A3);
impl_constructor!(A1, A2, A3, A4);
impl_constructor!(A1, A2, A3, A4, A5);
impl_constructor!(A1, A2, A3, A4, A5, A6);
impl_constructor!(A1, A2, A3, A4, A5, A6, A7);
impl_constructor!(A1, A2, A3, A4, A5, A6, A7, A8);

/// Builds and boxes a declared service with its constructor. Not public API.
#[doc(hidden)]
pub fn construct<S: HostedService, Args, F: Constructor<Args, S>>(
    constructor: F,
    state: &StateMap,
) -> Result<ErasedService, String> {
    constructor.construct(state).map(erase)
}

/// The states a declared service's constructor takes. Not public API.
#[doc(hidden)]
pub fn constructor_dependencies<S, Args, F: Constructor<Args, S>>(_: F, deps: &mut Dependencies) {
    F::dependencies(deps);
}

/// Where a lifecycle service stands: its last step and how it ended.
pub(crate) struct ServiceStatus {
    pub(crate) name: Arc<str>,
    /// Where it was added or declared.
    pub(crate) origin: String,
    state: std::sync::Mutex<(&'static str, Option<String>)>,
}

impl ServiceStatus {
    pub(crate) fn new(name: Arc<str>, origin: String) -> Arc<ServiceStatus> {
        Arc::new(ServiceStatus {
            name,
            origin,
            state: std::sync::Mutex::new(("not started", None)),
        })
    }

    pub(crate) fn set(&self, state: &'static str, error: Option<String>) {
        let mut slot = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A failure stays shown through the steps that follow it.
        if slot.0 == "failed" && error.is_none() {
            return;
        }
        *slot = (state, error);
    }

    pub(crate) fn get(&self) -> (&'static str, Option<String>) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
