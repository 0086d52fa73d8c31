//! Typed arguments of jobs: the [`FromRun`] trait and the built-in argument
//! types [`Run`], [`State`], [`CancellationToken`] and [`TaskQueue`] (the
//! host's default queue).
//!
//! The other arguments a job may take are implemented beside their types:
//! [`Scoped<T>`](crate::Scoped) in `scope.rs`, [`Lifetime`](crate::Lifetime)
//! in `lifecycle/lifetime.rs`, [`HostHandle`](crate::HostHandle) in
//! `handle.rs`. What they are built from, the run's [`RunContext`], is in
//! `context.rs`.
//!
//! A job's parameters are resolved by type, the way axum resolves a handler's
//! extractors. Each argument type also declares what it needs from the host
//! ([`FromRun::dependencies`]), so [`HostBuilder::build`](crate::HostBuilder::build)
//! can reject a job whose `State<T>` was never registered, before anything runs.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::base::outcome::Outcome;
use crate::base::queue::{TaskQueue, DEFAULT_QUEUE};
use crate::model::context::{Run, RunContext};
use crate::seams::cluster::Fence;
use crate::seams::work::WorkItem;

/// A type that a job can take as an argument.
///
/// Implemented for [`Run`], [`State<T>`] and [`CancellationToken`]. A job fn
/// may take any number of arguments of such types, in any order.
///
/// # Examples
///
/// An argument type of your own, built from registered state:
///
/// ```
/// use hosted::{Dependencies, ExtractError, FromRun, RunContext};
///
/// #[derive(Clone)]
/// struct Config { region: String }
///
/// struct Region(String);
///
/// impl FromRun for Region {
///     fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
///         let config = cx.state::<Config>().ok_or_else(ExtractError::missing_state::<Config>)?;
///         Ok(Region(config.region))
///     }
///
///     fn dependencies(deps: &mut Dependencies) {
///         deps.state::<Config>();
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a job",
    label = "the host cannot provide this argument",
    note = "a job may take `Run`, `CancellationToken`, `State<T>` (for a `T` given to `HostBuilder::state`), `Scoped<T>` (for a `T` made by a factory given to `HostBuilder::scoped`), `TaskQueue`, `Lifetime`, `HostHandle`, or a type that implements `FromRun`",
    note = "axum's `State<T>` is a job argument only with hosted's `axum` feature; without it, write `hosted::State<T>`"
)]
pub trait FromRun: Sized {
    /// Builds the argument for one run.
    ///
    /// # Errors
    ///
    /// An error fails the run before the job's body starts; it is logged and
    /// counted like any failed run.
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError>;

    /// Declares what this argument needs from the host, so that `build()`
    /// can check it. The default declares nothing.
    fn dependencies(deps: &mut Dependencies) {
        let _ = deps;
    }
}

impl FromRun for Run {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        Ok(cx.run.clone())
    }
}

/// The host's stop, as a child of its token: cancelled when stop begins,
/// and a job that cancels its own copy (to end a loop of its own, say)
/// cancels only that, never the host's token that every other job sees.
/// Only jobs that take a token pay for the child (one lock to make it).
impl FromRun for CancellationToken {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        // A run under a cluster's lease gets the lease's token, cancelled
        // also when the lease is lost; a work item's run, the item's.
        Ok(cx.stop_token().child_token())
    }
}

/// A shared value registered with [`HostBuilder::state`](crate::HostBuilder::state),
/// cloned into each run that asks for it.
///
/// Put shared handles in it (`Arc`s, connection pools, channels): it is
/// cloned per run, like axum's `State`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use hosted::prelude::*;
///
/// #[derive(Clone, Default)]
/// struct Hits(Arc<AtomicU64>);
///
/// #[every("1s")]
/// async fn count(State(hits): State<Hits>) {
///     hits.0.fetch_add(1, Ordering::Relaxed);
/// }
///
/// let host = Host::builder().only_jobs(["count"]).state(Hits::default()).build();
/// assert!(host.is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromRun for State<T> {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        cx.host
            .state
            .get::<T>()
            .map(State)
            .ok_or_else(ExtractError::missing_state::<T>)
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.state::<T>();
    }
}

/// With the `axum` feature, axum's own `State<T>` is a job argument too,
/// the same as [`State<T>`]: a module that serves routes and declares jobs
/// can keep `use axum::extract::State;`.
#[cfg(feature = "axum")]
impl<T: Clone + Send + Sync + 'static> FromRun for axum::extract::State<T> {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        State::<T>::from_run(cx).map(|State(value)| axum::extract::State(value))
    }

    fn dependencies(deps: &mut Dependencies) {
        State::<T>::dependencies(deps);
    }
}

/// Derives a sub-state `Self` from a registered state `S`, like axum's
/// `FromRef`: a job takes `State<Pool>` while the host was given one
/// `AppState` that holds the pool.
///
/// `#[derive(FromRef)]` on the app state implements it for each field (skip
/// one with `#[from_ref(skip)]`) and registers the derivations, so
/// `build()` finds them. For a hand-written impl, tell the builder with
/// [`HostBuilder::substate`](crate::HostBuilder::substate). Sub-states are
/// derived once, at `build()`, and cloned into each run like any state.
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
/// use hosted::FromRef;
///
/// #[derive(Clone)]
/// struct Pool;
///
/// #[derive(Clone, FromRef)]
/// struct AppState {
///     pool: Pool,
///     #[from_ref(skip)]
///     api_key: String,
/// }
///
/// #[every("1m")]
/// async fn vacuum(State(_pool): State<Pool>) {}
///
/// let host = Host::builder()
///     .only_jobs(["vacuum"])
///     .state(AppState { pool: Pool, api_key: "secret".into() })
///     .build();
/// assert!(host.is_ok());
/// ```
pub trait FromRef<S> {
    /// Derives the sub-state.
    fn from_ref(input: &S) -> Self;
}

/// A state value, type-erased. Not public API.
#[doc(hidden)]
pub type AnyState = Box<dyn Any + Send + Sync>;

/// Erases a state value. Not public API.
#[doc(hidden)]
pub fn any_state<T: Send + Sync + 'static>(value: T) -> AnyState {
    Box::new(value)
}

/// A derivation of one sub-state from one state, registered by
/// `#[derive(FromRef)]`. Not public API.
#[doc(hidden)]
pub struct SubState {
    pub from: fn() -> TypeId,
    pub to: fn() -> TypeId,
    pub from_name: fn() -> &'static str,
    pub derive: fn(&(dyn Any + Send + Sync)) -> Option<AnyState>,
}

inventory::collect!(SubState);

/// Derives one state from another, type-erased.
type Derive = dyn Fn(&(dyn Any + Send + Sync)) -> Option<AnyState> + Send;

/// A derivation the builder was told of, or one registered by a derive.
pub(crate) struct Derivation {
    pub(crate) from: TypeId,
    pub(crate) to: TypeId,
    pub(crate) from_name: &'static str,
    pub(crate) derive: Box<Derive>,
}

impl Derivation {
    pub(crate) fn of<S: Send + Sync + 'static, T: FromRef<S> + Send + Sync + 'static>() -> Derivation
    {
        Derivation {
            from: TypeId::of::<S>(),
            to: TypeId::of::<T>(),
            from_name: std::any::type_name::<S>(),
            derive: Box::new(|input| {
                input
                    .downcast_ref::<S>()
                    .map(|state| any_state(T::from_ref(state)))
            }),
        }
    }

    pub(crate) fn registered() -> impl Iterator<Item = Derivation> {
        inventory::iter::<SubState>
            .into_iter()
            .map(|sub| Derivation {
                from: (sub.from)(),
                to: (sub.to)(),
                from_name: (sub.from_name)(),
                derive: Box::new(sub.derive),
            })
    }
}

/// What a job's arguments need from the host, collected by
/// [`FromRun::dependencies`] and checked by `build()`.
#[derive(Debug, Default)]
pub struct Dependencies {
    pub(crate) states: Vec<(TypeId, &'static str)>,
    pub(crate) scoped: Vec<(TypeId, &'static str)>,
    pub(crate) queues: Vec<&'static str>,
    /// Takes the run's [`Fence`](crate::seams::cluster::Fence): needs a cluster.
    pub(crate) fence: bool,
    /// Takes the run's work item: only queued handlers have one.
    pub(crate) item: bool,
}

impl Dependencies {
    /// Declares that the job needs a value of type `T` registered with
    /// [`HostBuilder::state`](crate::HostBuilder::state).
    pub fn state<T: 'static>(&mut self) {
        self.states
            .push((TypeId::of::<T>(), std::any::type_name::<T>()));
    }

    /// Declares that the job needs the queue named `name`.
    pub fn queue(&mut self, name: &'static str) {
        if !self.queues.contains(&name) {
            self.queues.push(name);
        }
    }

    /// Declares that the argument is built from the run's work item
    /// ([`WorkItem`](crate::seams::work::WorkItem)): only a queued handler may
    /// take it, and `build()` rejects any other job that does.
    pub fn work_item(&mut self) {
        self.item = true;
    }

    /// Declares that the job needs a scoped value of type `T`, made by a
    /// factory registered with
    /// [`HostBuilder::scoped`](crate::HostBuilder::scoped).
    pub fn scoped<T: 'static>(&mut self) {
        let entry = (TypeId::of::<T>(), std::any::type_name::<T>());
        if !self.scoped.contains(&entry) {
            self.scoped.push(entry);
        }
    }
}

/// Why an argument could not be built; fails the run before its body starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractError {
    message: String,
}

impl ExtractError {
    /// An error with a message of your own.
    pub fn new(message: impl Into<String>) -> Self {
        ExtractError {
            message: message.into(),
        }
    }

    /// The error for a `State<T>` whose `T` the host does not have.
    pub fn missing_state<T>() -> Self {
        let name = std::any::type_name::<T>();
        ExtractError::new(format!(
            "no state of type `{name}`; register one with `HostBuilder::state`"
        ))
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExtractError {}

/// Shared values by type. Not public API (a declared service's
/// constructor reads it).
#[doc(hidden)]
#[derive(Default)]
pub struct StateMap {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl StateMap {
    /// Inserts `value`; returns `false` if a value of that type was there.
    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> bool {
        self.values
            .insert(TypeId::of::<T>(), Box::new(value))
            .is_none()
    }

    pub(crate) fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// Derives the value of type `to` from a registered state, if exactly
    /// one derivation applies; returns the names of the states it could
    /// come from when several do.
    pub(crate) fn derive(
        &mut self,
        to: TypeId,
        derivations: &[Derivation],
    ) -> Result<bool, Vec<&'static str>> {
        let applicable: Vec<&Derivation> = derivations
            .iter()
            .filter(|d| d.to == to && self.values.contains_key(&d.from))
            .collect();
        match applicable.as_slice() {
            [] => Ok(false),
            [one] => {
                let derived = self
                    .values
                    .get(&one.from)
                    .and_then(|from| (one.derive)(&**from));
                match derived {
                    Some(value) => {
                        self.values.insert(to, value);
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            several => Err(several.iter().map(|d| d.from_name).collect()),
        }
    }

    pub(crate) fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }
}

/// The host's default queue (see [`TaskQueue`]).
impl FromRun for TaskQueue {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        cx.host
            .queue(DEFAULT_QUEUE)
            .ok_or_else(|| ExtractError::new("the host has no default queue; add one with `HostBuilder::queue(QueueOptions::default())`"))
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.queue(DEFAULT_QUEUE);
    }
}

/// The future of one run, as the runtime drives it.
pub type RunFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

impl FromRun for Fence {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        if let Some(item) = cx.item() {
            return Ok(Fence(item.fence()));
        }
        match cx.lease {
            Some(lease) => Ok(Fence(lease.fence)),
            None => Err(ExtractError::new(
                "`Fence` is given only to runs claimed through a cluster and to queued handlers; this run has neither",
            )),
        }
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.fence = true;
    }
}

impl FromRun for WorkItem {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        cx.item().cloned().ok_or_else(|| {
            ExtractError::new("`WorkItem` is given only to queued handlers, and this run has none")
        })
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.work_item();
    }
}
