//! Scoped values: one value per run, made by an async factory before the
//! run and handed to an optional teardown after it, with the run's outcome
//! (the scoped services of ASP.NET Core, without a service locator).

use std::any::{Any, TypeId};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt as _;

use crate::base::outcome::panic_message;
use crate::base::outcome::{IntoOutcome, Outcome};
use crate::model::context::RunContext;
use crate::model::extract::{Dependencies, ExtractError, FromRun};

/// A value made for one run by the factory registered with
/// [`HostBuilder::scoped`](crate::HostBuilder::scoped), and dropped (or
/// handed to its teardown) when the run ends.
///
/// Every run gets a value of its own, even when runs overlap; a run that
/// takes `Scoped<T>` twice gets clones of one value. Put a handle in `T` (a
/// connection, a transaction behind a mutex): it is cloned into each
/// argument that asks for it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hosted::prelude::*;
/// use hosted::Scoped;
///
/// #[derive(Clone)]
/// struct Pool;
///
/// /// A unit of work: one per run.
/// #[derive(Clone)]
/// struct Session { id: Arc<str> }
///
/// #[every("5s")]
/// async fn sweep(Scoped(session): Scoped<Session>) {
///     tracing::info!(session = %session.id, "sweeping");
/// }
///
/// let host = Host::builder()
///     .only_jobs(["sweep"])
///     .state(Pool)
///     .scoped(|State(_pool): State<Pool>, run: Run| async move {
///         Ok::<_, std::io::Error>(Session { id: format!("run-{}", run.number()).into() })
///     })
///     .build();
/// assert!(host.is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Scoped<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromRun for Scoped<T> {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        cx.scope
            .and_then(ScopeMap::get::<T>)
            .map(Scoped)
            .ok_or_else(|| {
                ExtractError::new(format!(
                    "no scoped value of type `{}` in this run; register a factory with `HostBuilder::scoped`",
                    std::any::type_name::<T>()
                ))
            })
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.scoped::<T>();
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type AnyValue = Box<dyn Any + Send + Sync>;

/// An async fn or closure that makes a scoped value of type `T`: its
/// arguments implement [`FromRun`] (but not [`Scoped`]), and it returns
/// `Result<T, E>` with `E: Display`. Implemented for fns of up to 8
/// arguments.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot make scoped values of type `{T}`",
    label = "expected an async fn or closure returning `Result<{T}, E>`",
    note = "a factory's arguments are `State<_>`, `Run`, `CancellationToken` or other `FromRun` types, and it returns `Result<T, E>` with `E: Display`",
    note = "a factory that returns the value itself, and cannot fail, goes to `HostBuilder::scoped_infallible`"
)]
pub trait ScopeFactory<Args, T>: Send + Sync + 'static {
    /// Builds the arguments and starts making the value.
    ///
    /// # Errors
    ///
    /// The first argument that cannot be built.
    fn make(&self, cx: &RunContext<'_>) -> Result<BoxFuture<Result<T, String>>, ExtractError>;

    /// Declares what the arguments need from the host.
    fn dependencies(deps: &mut Dependencies);
}

macro_rules! impl_factory {
    ($($arg:ident),*) => {
        impl<F, Fut, T, E, $($arg,)*> ScopeFactory<($($arg,)*), T> for F
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<T, E>> + Send + 'static,
            E: std::fmt::Display,
            $($arg: FromRun,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn make(&self, cx: &RunContext<'_>) -> Result<BoxFuture<Result<T, String>>, ExtractError> {
                $(let $arg = $arg::from_run(cx)?;)*
                let making = self($($arg),*);
                Ok(Box::pin(async move { making.await.map_err(|e| format!("{e:#}")) }))
            }

            #[allow(unused_variables)]
            fn dependencies(deps: &mut Dependencies) {
                $($arg::dependencies(deps);)*
            }
        }
    };
}

/// A factory that returns its value itself and cannot fail: what
/// [`HostBuilder::scoped_infallible`](crate::HostBuilder::scoped_infallible)
/// wraps its argument in.
#[doc(hidden)]
pub struct Infallible<F>(pub(crate) F);

macro_rules! impl_infallible {
    ($($arg:ident),*) => {
        #[diagnostic::do_not_recommend]
        impl<F, Fut, T, $($arg,)*> ScopeFactory<($($arg,)*), T> for Infallible<F>
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = T> + Send + 'static,
            $($arg: FromRun,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn make(&self, cx: &RunContext<'_>) -> Result<BoxFuture<Result<T, String>>, ExtractError> {
                $(let $arg = $arg::from_run(cx)?;)*
                let making = (self.0)($($arg),*);
                Ok(Box::pin(async move { Ok(making.await) }))
            }

            #[allow(unused_variables)]
            fn dependencies(deps: &mut Dependencies) {
                $($arg::dependencies(deps);)*
            }
        }
    };
}

impl_infallible!();
impl_infallible!(A1);
impl_infallible!(A1, A2);
impl_infallible!(A1, A2, A3);
impl_infallible!(A1, A2, A3, A4);
impl_infallible!(A1, A2, A3, A4, A5);
impl_infallible!(A1, A2, A3, A4, A5, A6);
impl_infallible!(A1, A2, A3, A4, A5, A6, A7);
impl_infallible!(A1, A2, A3, A4, A5, A6, A7, A8);

impl_factory!();
impl_factory!(A1);
impl_factory!(A1, A2);
impl_factory!(A1, A2, A3);
impl_factory!(A1, A2, A3, A4);
impl_factory!(A1, A2, A3, A4, A5);
impl_factory!(A1, A2, A3, A4, A5, A6);
impl_factory!(A1, A2, A3, A4, A5, A6, A7);
impl_factory!(A1, A2, A3, A4, A5, A6, A7, A8);

type Make = dyn Fn(&RunContext<'_>) -> Result<BoxFuture<Result<AnyValue, String>>, ExtractError>
    + Send
    + Sync;
type Teardown = dyn Fn(AnyValue, Outcome) -> BoxFuture<Outcome> + Send + Sync;

/// A registered factory, with its teardown, type-erased.
pub(crate) struct ScopeDef {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) dependencies: Dependencies,
    make: Box<Make>,
    teardown: Option<Box<Teardown>>,
}

impl ScopeDef {
    pub(crate) fn new<T, Args, F>(factory: F) -> ScopeDef
    where
        T: Clone + Send + Sync + 'static,
        F: ScopeFactory<Args, T>,
    {
        let mut dependencies = Dependencies::default();
        F::dependencies(&mut dependencies);
        ScopeDef {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            dependencies,
            make: Box::new(move |cx| {
                let making = factory.make(cx)?;
                Ok(Box::pin(async move {
                    making.await.map(|value| Box::new(value) as AnyValue)
                }))
            }),
            teardown: None,
        }
    }

    pub(crate) fn with_teardown<T, D, Fut, R>(mut self, teardown: D) -> ScopeDef
    where
        T: Send + Sync + 'static,
        D: Fn(T, Outcome) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        self.teardown = Some(Box::new(move |value: AnyValue, outcome| {
            match value.downcast::<T>() {
                Ok(value) => {
                    let done = teardown(*value, outcome);
                    Box::pin(async move { done.await.into_outcome() })
                }
                Err(_) => {
                    Box::pin(async { Outcome::Failed("scoped value of the wrong type".into()) })
                }
            }
        }));
        self
    }
}

/// The scoped values of one run.
#[derive(Default)]
pub(crate) struct ScopeMap {
    values: Vec<(TypeId, AnyValue)>,
}

impl ScopeMap {
    fn get<T: Clone + 'static>(&self) -> Option<T> {
        let id = TypeId::of::<T>();
        self.values
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, value)| value.downcast_ref::<T>())
            .cloned()
    }
}

/// Makes the run's scoped values in order; on the first failure, tears
/// down what was made and returns the failure.
pub(crate) async fn open(defs: &[&ScopeDef], cx: &RunContext<'_>) -> Result<ScopeMap, Outcome> {
    let mut scope = ScopeMap::default();
    for def in defs {
        let made = match (def.make)(cx) {
            Ok(making) => AssertUnwindSafe(making)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic)))),
            Err(error) => Err(format!("could not build its argument: {error}")),
        };
        match made {
            Ok(value) => scope.values.push((def.type_id, value)),
            Err(error) => {
                let failure = Outcome::Failed(format!(
                    "the `Scoped<{}>` factory failed for job `{}`: {error}",
                    def.type_name,
                    cx.run().job()
                ));
                close(defs, scope, failure.clone(), cx.run().job()).await;
                return Err(failure);
            }
        }
    }
    Ok(scope)
}

/// Hands each value to its teardown, last made first, with the run's
/// outcome. A teardown that fails turns a success into a failure; after a
/// failure it is logged.
pub(crate) async fn close(
    defs: &[&ScopeDef],
    scope: ScopeMap,
    mut outcome: Outcome,
    job: &str,
) -> Outcome {
    for (type_id, value) in scope.values.into_iter().rev() {
        let Some(def) = defs.iter().find(|d| d.type_id == type_id) else {
            continue;
        };
        let Some(teardown) = &def.teardown else {
            continue;
        };
        let done = AssertUnwindSafe(teardown(value, outcome.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic)));
        if done.is_success() {
            continue;
        }
        let message = format!("the `Scoped<{}>` teardown {done}", def.type_name);
        if outcome.is_success() {
            outcome = Outcome::Failed(message);
        } else {
            tracing::error!(job, error = %message, "teardown failed after a failed run");
        }
    }
    outcome
}
