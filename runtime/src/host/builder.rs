//! The builder: what a host is made of, gathered before `build()` checks
//! it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::config::{HostConfig, JobConfig, Overrides};
use crate::base::clock::Clock;
use crate::base::outcome::{IntoOutcome, Outcome};
use crate::base::queue::TaskQueue;
use crate::lifecycle::{Host, Settings};
use crate::model::extract::{Derivation, FromRef, StateMap};
use crate::model::registry::Job;
use crate::model::scope::{ScopeDef, ScopeFactory};
use crate::model::service::{DynService, HostedService};
use crate::seams::cluster::Coordinator;
use crate::seams::work::WorkSource;

/// The default of [`HostBuilder::shutdown_timeout`]: 30 seconds, as in
/// Microsoft.Extensions.Hosting.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Finished runs a job keeps by default ([`HostBuilder::run_history`]).
pub const DEFAULT_RUN_HISTORY: usize = 50;

/// Finished runs the host keeps over all its jobs by default
/// ([`HostBuilder::run_history_budget`]): about 8 MB.
pub const DEFAULT_RUN_HISTORY_BUDGET: usize = 100_000;

impl Host {
    /// A builder that takes every job registered with `#[every]`, `#[cron]`
    /// and `#[hosted_service]` in this binary, unless told otherwise.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }
}

/// Configures a [`Host`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hosted::Host;
///
/// let host = Host::builder()
///     .state(String::from("shared"))
///     .shutdown_timeout(Duration::from_secs(10))
///     .build()
///     .expect("host configuration");
/// # drop(host);
/// ```
#[must_use]
pub struct HostBuilder {
    pub(super) state: StateMap,
    pub(super) duplicate_state: Vec<&'static str>,
    pub(super) jobs: Vec<Job>,
    pub(super) services: Vec<Box<dyn DynService>>,
    pub(super) scopes: Vec<ScopeDef>,
    pub(super) derivations: Vec<Derivation>,
    pub(super) overrides: Overrides,
    pub(super) queues: Vec<TaskQueue>,
    pub(super) selection: Option<Chosen>,
    pub(crate) seed: Option<u64>,
    pub(super) settings: Settings,
    pub(crate) clock: Clock,
    pub(super) coordinator: Option<Arc<dyn Coordinator>>,
    pub(super) sources: Vec<Arc<dyn WorkSource>>,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            state: StateMap::default(),
            duplicate_state: Vec::new(),
            jobs: Vec::new(),
            services: Vec::new(),
            scopes: Vec::new(),
            derivations: Vec::new(),
            overrides: Overrides::default(),
            queues: Vec::new(),
            selection: None,
            seed: None,
            settings: Settings {
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                startup_timeout: None,
                start_concurrently: false,
                stop_concurrently: false,
                nothing_registered: false,
                run_history: DEFAULT_RUN_HISTORY,
                run_history_budget: DEFAULT_RUN_HISTORY_BUDGET,
                #[cfg(feature = "metrics")]
                metrics_per_job: true,
            },
            clock: Clock::System,
            coordinator: None,
            sources: Vec::new(),
        }
    }
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("jobs", &self.jobs)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The registered jobs a host takes when `only_jobs`, `only_module` or
/// `without_registered` was called; without them it takes all.
#[derive(Default)]
pub(super) struct Chosen {
    pub(super) names: Vec<String>,
    pub(super) modules: Vec<String>,
}

impl HostBuilder {
    /// Coordinates this host with the other instances of the service
    /// through `coordinator` (`hosted_postgres::Cluster`): each tick of a
    /// scheduled job then runs once across every instance that shares it,
    /// services with [`Placement::Singleton`](crate::cluster::Placement::Singleton) run on one instance at a time,
    /// and `every` grids are anchored at the Unix epoch, so that every
    /// instance computes the same instants. Jobs need no change; a job of
    /// [`Placement::Instance`](crate::cluster::Placement::Instance) still runs on every instance.
    ///
    /// The coordinator starts before any service, and a failure to start
    /// it fails the host's startup.
    pub fn cluster(mut self, coordinator: impl Coordinator) -> Self {
        self.coordinator = Some(Arc::new(coordinator));
        self
    }

    /// Feeds this host's queued handlers (`#[queued]`) from `source`
    /// (`hosted_postgres::DurableQueue`): it starts with the host, claims
    /// items once every service has started, runs each with its handler's
    /// typed arguments, and at stop stops claiming, gives running items the
    /// shutdown timeout and hands back what did not finish.
    ///
    /// A host without one runs no queued handler; it may still enqueue.
    pub fn durable(mut self, source: impl WorkSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Registers a shared value, handed to jobs that take `State<T>`. One
    /// value per type; registering a type twice is a `build()` error.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        if !self.state.insert(value) {
            self.duplicate_state.push(std::any::type_name::<T>());
        }
        self
    }

    /// Registers the factory of [`Scoped<T>`](crate::Scoped): an async fn or
    /// closure that takes [`FromRun`](crate::FromRun) arguments (`State<_>`,
    /// `Run`, the stop token, ...) and returns `Result<T, E>`. It runs before
    /// each run of a job that takes `Scoped<T>`, once per run; if it fails,
    /// the run fails with an error naming the factory and the job, and the
    /// job's body does not run. One factory per type.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(Clone)] struct Pool; #[derive(Clone)] struct Session;
    /// # impl Pool { async fn session(&self) -> Result<Session, std::io::Error> { Ok(Session) } }
    /// use hosted::{Host, State};
    ///
    /// let builder = Host::builder()
    ///     .state(Pool)
    ///     .scoped(|State(pool): State<Pool>| async move { pool.session().await });
    /// # drop(builder);
    /// ```
    pub fn scoped<T, Args, F>(mut self, factory: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: ScopeFactory<Args, T>,
    {
        self.scopes.push(ScopeDef::new(factory));
        self
    }

    /// Like [`scoped`](Self::scoped), for a factory that returns the value
    /// itself and cannot fail: no `Ok::<_, Infallible>` to write.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(Clone)] struct Clock;
    /// # #[derive(Clone)] struct RequestId(u64);
    /// use hosted::{Host, Run};
    ///
    /// let builder = Host::builder().scoped_infallible(|run: Run| async move { RequestId(run.number()) });
    /// # drop(builder);
    /// ```
    pub fn scoped_infallible<T, Args, F>(mut self, factory: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        crate::model::scope::Infallible<F>: ScopeFactory<Args, T>,
    {
        self.scopes
            .push(ScopeDef::new(crate::model::scope::Infallible(factory)));
        self
    }

    /// Like [`scoped`](Self::scoped), with a teardown that gets the value
    /// back after each run, with the run's [`Outcome`]: commit a transaction
    /// on success, roll it back on an error or a panic. A teardown that
    /// fails turns a successful run into a failed one. Values of aborted runs
    /// are dropped without teardown.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(Clone)] struct Tx;
    /// # impl Tx { async fn begin() -> Result<Tx, std::io::Error> { Ok(Tx) }
    /// #   async fn commit(self) -> Result<(), std::io::Error> { Ok(()) }
    /// #   async fn rollback(self) -> Result<(), std::io::Error> { Ok(()) } }
    /// use hosted::{Host, Outcome};
    ///
    /// let builder = Host::builder().scoped_with_teardown(
    ///     || Tx::begin(),
    ///     |tx: Tx, outcome: Outcome| async move {
    ///         if outcome.is_success() { tx.commit().await } else { tx.rollback().await }
    ///     },
    /// );
    /// # drop(builder);
    /// ```
    pub fn scoped_with_teardown<T, Args, F, D, Fut, R>(mut self, factory: F, teardown: D) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: ScopeFactory<Args, T>,
        D: Fn(T, Outcome) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOutcome,
    {
        self.scopes
            .push(ScopeDef::new(factory).with_teardown(teardown));
        self
    }

    /// Lets jobs take `State<T>` derived from a registered `S` through a
    /// hand-written `impl FromRef<S> for T`. (`#[derive(FromRef)]` needs no
    /// such call.)
    pub fn substate<S, T>(mut self) -> Self
    where
        S: Send + Sync + 'static,
        T: FromRef<S> + Clone + Send + Sync + 'static,
    {
        self.derivations.push(Derivation::of::<S, T>());
        self
    }

    /// Applies settings from configuration: timeouts, and per job its
    /// schedule, options and enabled flag (see [`HostConfig`]). Later calls
    /// and [`configure`](Self::configure) override earlier ones key by key.
    /// A job named in it but not registered anywhere is a `build()` error; a
    /// registered job this host does not take is ignored.
    pub fn config(mut self, config: HostConfig) -> Self {
        self.overrides.add(config);
        self
    }

    /// Overrides the settings of the job named `name`, as configuration
    /// does.
    ///
    /// # Examples
    ///
    /// ```
    /// use hosted::Host;
    ///
    /// #[hosted::every("30s")]
    /// async fn grace_period() {}
    ///
    /// let host = Host::builder()
    ///     .only_jobs(["grace_period"])
    ///     .configure("grace_period", |job| {
    ///         job.every = Some("5m".into());
    ///         job.enabled = Some(false);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(host);
    /// ```
    pub fn configure(mut self, name: impl Into<String>, edit: impl FnOnce(&mut JobConfig)) -> Self {
        edit(self.overrides.job(name.into()));
        self
    }

    /// Adds a work queue: [`QueueOptions::default()`](crate::QueueOptions::default) for the one that
    /// [`TaskQueue`] arguments get, [`QueueOptions::named`](crate::QueueOptions::named) for others, or a
    /// [`TaskQueue`] made with [`TaskQueue::new`] whose handle you keep. Its
    /// workers run as a background service of the host and drain it at
    /// shutdown.
    pub fn queue(mut self, queue: impl Into<TaskQueue>) -> Self {
        self.queues.push(queue.into());
        self
    }

    /// Adds a job built by hand, beside the registered ones.
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds a lifecycle service. Services start by `order`, lowest first:
    /// those added here have order 0 and start in the order added, before
    /// declared ones of the same order (`#[hosted_service]` on a type, by
    /// module and name). They stop in reverse.
    pub fn service<S: HostedService>(mut self, service: S) -> Self {
        self.services.push(Box::new(service));
        self
    }

    /// Gives startup at most `timeout` in total: a `starting`, `start` or
    /// `started` step still running then fails startup. No limit by
    /// default.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.settings.startup_timeout = Some(timeout);
        self
    }

    /// Runs each startup phase (`starting` hooks, `start`s, `started` hooks)
    /// on every service at once instead of one after another. A failure no
    /// longer prevents the others in its phase from starting, but still
    /// aborts startup after it.
    pub fn start_concurrently(mut self, yes: bool) -> Self {
        self.settings.start_concurrently = yes;
        self
    }

    /// Runs each stop phase (`stopping` hooks, `stop`s, `stopped` hooks) on
    /// every service at once instead of one after another.
    pub fn stop_concurrently(mut self, yes: bool) -> Self {
        self.settings.stop_concurrently = yes;
        self
    }

    /// Takes only the registered jobs and service types with these names
    /// (and those chosen by [`only_module`](Self::only_module)). A name that
    /// matches nothing registered is a `build()` error.
    pub fn only_jobs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.selection_mut()
            .names
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Takes only the registered jobs and service types defined in module
    /// `path` or below it,
    /// e.g. `"my_app::billing"` (and those chosen by
    /// [`only_jobs`](Self::only_jobs)).
    pub fn only_module(mut self, path: impl Into<String>) -> Self {
        self.selection_mut().modules.push(path.into());
        self
    }

    /// Seeds the host's pseudo-random choices: the jitter of `every` jobs
    /// and the jitter of restart backoff. By default each process draws its
    /// own seed, so that replicas started together (or restarted together
    /// after an outage) spread out instead of firing in lockstep; a host on
    /// a [`TestClock`](crate::testing::TestClock) uses seed 0 unless given
    /// one, so that a test's schedule is the same on every run.
    ///
    /// Ticks claimed through a [cluster](Self::cluster) ignore the seed:
    /// every instance must agree on a tick's instant, so their jitter is a
    /// function of the job's name and the tick alone.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Takes none of the registered jobs and service types: only those
    /// added with [`job`](Self::job) and [`service`](Self::service).
    pub fn without_registered(mut self) -> Self {
        self.selection_mut();
        self
    }

    fn selection_mut(&mut self) -> &mut Chosen {
        self.selection.get_or_insert_with(Chosen::default)
    }

    /// How many finished runs each job keeps, newest first, for
    /// [`HostHandle::runs`](crate::HostHandle::runs) (default
    /// [`DEFAULT_RUN_HISTORY`], 50; at least 1, the last run, which
    /// [`JobStatus::last_run`](crate::JobStatus::last_run) shows). The
    /// [budget](Self::run_history_budget) over all jobs may leave each
    /// fewer.
    pub fn run_history(mut self, runs_per_job: usize) -> Self {
        self.settings.run_history = runs_per_job;
        self
    }

    /// How many finished runs the host keeps over all its jobs (default
    /// [`DEFAULT_RUN_HISTORY_BUDGET`], 100,000, about 8 MB): with more jobs
    /// than the budget divided by [`run_history`](Self::run_history), each
    /// job keeps the budget divided by the number of jobs, and at least its
    /// last run. A host of 100,000 jobs thus keeps one run a job, as many as
    /// it has jobs, rather than five million.
    pub fn run_history_budget(mut self, runs: usize) -> Self {
        self.settings.run_history_budget = runs;
        self
    }

    /// Whether the jobs' metrics carry a `job` label (the default), or the
    /// host publishes one set for all its jobs: the runs by outcome, the
    /// skipped ticks and the running runs summed, and one duration and one
    /// lateness histogram. Seven series a job are what a host of 100,000
    /// jobs should not ask of its exporter: with the Prometheus exporter,
    /// they cost more CPU than the jobs themselves (see BENCHMARKS.md).
    /// Queues keep their `queue` label either way.
    #[cfg(feature = "metrics")]
    pub fn metrics_per_job(mut self, per_job: bool) -> Self {
        self.settings.metrics_per_job = per_job;
        self
    }

    /// How long a stop may take in total before what is still running is
    /// aborted (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout;
        self
    }
}
