//! Building a host: the builder, the selection of registered jobs, and the
//! checks `build()` makes before anything runs.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::cluster::{Coordinator, Scope};
use crate::config::{self, HostConfig, JobConfig, Overrides};
use crate::extract::{Dependencies, StateMap};
use crate::extract::{Derivation, FromRef};
use crate::handle::HostHandle;
use crate::job::{JobCluster, JobDef, JobStats, RunHistory};
use crate::lifecycle::{ServiceSlot, ServiceStatus};
use crate::outcome::{IntoOutcome, Outcome};
use crate::queue::TaskQueue;
use crate::registry::{registered, Candidate, Job, JobKind, Origin, Registration};
use crate::schedule::Schedule;
use crate::scope::{ScopeDef, ScopeFactory};
use crate::service::{DynService, HostedService, ServiceRegistration};
use crate::shared::{HostShared, Stores};
use crate::work::WorkSource;
use std::future::Future;

/// The default of [`HostBuilder::shutdown_timeout`]: 30 seconds, as in
/// Microsoft.Extensions.Hosting.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A configured host, ready to [`run`](Host::run).
///
/// Built by [`Host::builder`]; every job's schedule and arguments have been
/// checked.
pub struct Host {
    pub(crate) shared: Arc<HostShared>,
    pub(crate) settings: Settings,
    pub(crate) services: Vec<ServiceSlot>,
}

/// How the lifecycle runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) startup_timeout: Option<Duration>,
    pub(crate) start_concurrently: bool,
    pub(crate) stop_concurrently: bool,
    /// The builder took every registered job and service, and the binary
    /// holds none: almost always jobs declared in a library crate that the
    /// linker dropped. Said at start.
    pub(crate) nothing_registered: bool,
    /// Finished runs kept per job, and in all.
    pub(crate) run_history: usize,
    pub(crate) run_history_budget: usize,
    /// Metrics labelled by job (the default), or one set for the host.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_per_job: bool,
}

/// Finished runs a job keeps by default ([`HostBuilder::run_history`]).
pub const DEFAULT_RUN_HISTORY: usize = 50;

/// Finished runs the host keeps over all its jobs by default
/// ([`HostBuilder::run_history_budget`]): about 8 MB.
pub const DEFAULT_RUN_HISTORY_BUDGET: usize = 100_000;

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("services", &self.service_names().collect::<Vec<_>>())
            .field("jobs", &self.job_names().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A builder that takes every job registered with `#[every]`, `#[cron]`
    /// and `#[hosted_service]` in this binary, unless told otherwise.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The names of the host's jobs (scheduled jobs and background fns), in
    /// start order.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.shared.jobs.iter().map(|job| &*job.name)
    }

    /// The names of the host's lifecycle services, in start order.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|slot| &*slot.name)
    }

    /// A handle on this host, before it runs: list its jobs, pause and
    /// resume them, request a stop; triggering a job waits for the host to
    /// have started ([`HandleError::NotStarted`](crate::HandleError::NotStarted) before). The same handle
    /// keeps working once the host runs.
    ///
    /// An axum app served by [`WebServer`](crate::web::WebServer) as a
    /// service of the host gets it without asking: the handle is in the
    /// router's extensions, so a route takes `Extension<HostHandle>`.
    pub fn handle(&self) -> HostHandle {
        HostHandle::new(self.shared.clone())
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
    state: StateMap,
    duplicate_state: Vec<&'static str>,
    jobs: Vec<Job>,
    services: Vec<Box<dyn DynService>>,
    scopes: Vec<ScopeDef>,
    derivations: Vec<Derivation>,
    overrides: Overrides,
    queues: Vec<TaskQueue>,
    selection: Option<Chosen>,
    pub(crate) seed: Option<u64>,
    settings: Settings,
    pub(crate) clock: Clock,
    coordinator: Option<Arc<dyn Coordinator>>,
    sources: Vec<Arc<dyn WorkSource>>,
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
struct Chosen {
    names: Vec<String>,
    modules: Vec<String>,
}

impl HostBuilder {
    /// Coordinates this host with the other instances of the service
    /// through `coordinator` (`hosted_postgres::Cluster`): each tick of a
    /// scheduled job then runs once across every instance that shares it,
    /// services with [`Scope::Singleton`] run on one instance at a time,
    /// and `every` grids are anchored at the Unix epoch, so that every
    /// instance computes the same instants. Jobs need no change; a job of
    /// [`Scope::Instance`] still runs on every instance.
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
        crate::scope::Infallible<F>: ScopeFactory<Args, T>,
    {
        self.scopes
            .push(ScopeDef::new(crate::scope::Infallible(factory)));
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

    /// Checks the configuration and builds the host.
    ///
    /// # Errors
    ///
    /// Every problem found, at once: two jobs with one name, a job argument
    /// that needs state nobody registered, an invalid schedule or time zone
    /// of a job added by hand, a name given to `only_jobs` that no job has, a
    /// state type registered twice.
    pub fn build(mut self) -> Result<Host, BuildError> {
        let mut problems = Vec::new();
        let (mut candidates, registered_services) = self.select(&mut problems);
        self.apply_overrides(&mut candidates, &mut problems);

        // Sub-states: derive every state a job or a factory needs and the
        // host lacks, from the states it has.
        let mut derivations = std::mem::take(&mut self.derivations);
        derivations.extend(Derivation::registered());
        // The states declared services' constructors take.
        let service_needs: Vec<Dependencies> = registered_services
            .iter()
            .map(|r| {
                let mut deps = Dependencies::default();
                (r.dependencies)(&mut deps);
                deps
            })
            .collect();
        let needed = candidates
            .iter()
            .flat_map(|c| &c.dependencies.states)
            .chain(self.scopes.iter().flat_map(|s| &s.dependencies.states))
            .chain(service_needs.iter().flat_map(|d| &d.states));
        let mut ambiguous = Vec::new();
        for (type_id, type_name) in needed {
            if self.state.contains(*type_id) || ambiguous.contains(type_id) {
                continue;
            }
            if let Err(sources) = self.state.derive(*type_id, &derivations) {
                ambiguous.push(*type_id);
                problems.push(Problem::AmbiguousState { type_name, sources });
            }
        }

        let mut seen: HashMap<Arc<str>, Origin> = HashMap::new();
        let mut services = Vec::new();
        // Builder services first (order 0, in the order added), then
        // declared ones (by order, module and name); a stable sort by order
        // keeps that tie-break.
        let explicit = self.services.drain(..).map(|service| {
            let name: Arc<str> = Arc::from(service.name().as_ref());
            (0, name, service, Origin::Builder)
        });
        let mut declared = Vec::with_capacity(registered_services.len());
        for (r, needs) in registered_services.into_iter().zip(&service_needs) {
            let missing: Vec<&'static str> = needs
                .states
                .iter()
                .filter(|(type_id, _)| {
                    !self.state.contains(*type_id) && !ambiguous.contains(type_id)
                })
                .map(|(_, type_name)| *type_name)
                .collect();
            if !missing.is_empty() {
                for type_name in missing {
                    problems.push(Problem::ServiceMissingState {
                        service: r.name.to_owned(),
                        type_name,
                    });
                }
                continue;
            }
            match (r.make)(&self.state) {
                Ok(service) => {
                    declared.push((r.order, Arc::from(r.name), service.0, Origin::Service(r)));
                }
                Err(message) => problems.push(Problem::ServiceConstructor {
                    service: r.name.to_owned(),
                    message,
                }),
            }
        }
        let declared = declared.into_iter();
        let mut all: Vec<_> = explicit.chain(declared).collect();
        all.sort_by_key(|(order, ..)| *order);
        for (_, name, service, origin) in all {
            if let Some(first) = seen.get(&name) {
                problems.push(Problem::DuplicateName {
                    name: name.to_string(),
                    first: first.to_string(),
                    second: origin.to_string(),
                });
                continue;
            }
            seen.insert(name.clone(), origin);
            services.push(ServiceSlot {
                index: services.len(),
                status: ServiceStatus::new(
                    name.clone(),
                    match origin {
                        Origin::Builder => "HostBuilder::service".to_owned(),
                        declared => declared.to_string(),
                    },
                ),
                name,
                service,
                started: false,
            });
        }

        // Names are checked by reference first, so that each job's name is
        // then moved into it, never copied: a host may take 100,000 jobs.
        // Only the duplicates are kept, by index, in order.
        let mut duplicates: Vec<(usize, Origin)> = Vec::new();
        {
            let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
            for (i, candidate) in candidates.iter().enumerate() {
                let first = match seen.get(&*candidate.name) {
                    Some(service) => Some(*service),
                    None => match first_of.entry(&candidate.name) {
                        Entry::Occupied(first) => Some(candidates[*first.get()].origin),
                        Entry::Vacant(slot) => {
                            slot.insert(i);
                            None
                        }
                    },
                };
                if let Some(first) = first {
                    duplicates.push((i, first));
                }
            }
        }
        let mut duplicates = duplicates.into_iter().peekable();
        let process_seed = self.seed.unwrap_or_else(|| match self.clock {
            Clock::Manual(_) => 0,
            Clock::System => random_seed(),
        });
        let mut jobs = Vec::with_capacity(candidates.len());
        for (i, candidate) in candidates.into_iter().enumerate() {
            if let Some((_, first)) = duplicates.next_if(|(at, _)| *at == i) {
                problems.push(Problem::DuplicateName {
                    name: candidate.name.to_string(),
                    first: first.to_string(),
                    second: candidate.origin.to_string(),
                });
                continue;
            }
            for (type_id, type_name) in &candidate.dependencies.states {
                if !self.state.contains(*type_id) && !ambiguous.contains(type_id) {
                    problems.push(Problem::MissingState {
                        job: candidate.name.to_string(),
                        type_name,
                    });
                }
            }
            for name in &candidate.dependencies.queues {
                if !self.queues.iter().any(|q| q.name() == *name) {
                    problems.push(Problem::MissingQueue {
                        job: candidate.name.to_string(),
                        queue: name,
                    });
                }
            }
            let mut scoped = Vec::new();
            for (type_id, type_name) in &candidate.dependencies.scoped {
                match self.scopes.iter().position(|def| def.type_id == *type_id) {
                    Some(index) => scoped.push(index),
                    None => problems.push(Problem::MissingScoped {
                        job: candidate.name.to_string(),
                        type_name,
                    }),
                }
            }
            let kind = match candidate.schedule {
                crate::registry::ScheduleSpec::Every { .. } => JobKind::Every,
                crate::registry::ScheduleSpec::Cron { .. } => JobKind::Cron,
                crate::registry::ScheduleSpec::Service => JobKind::Service,
                crate::registry::ScheduleSpec::Queued(_) => JobKind::Queued,
            };
            let scope = candidate.cluster.scope;
            let cluster_problem = match (kind, scope) {
                (JobKind::Service, Scope::Cluster) => Some(
                    "a service cannot have `scope = \"cluster\"`; use `\"singleton\"` (one instance at a time) or `\"instance\"` (every instance)",
                ),
                (JobKind::Every | JobKind::Cron, Scope::Singleton) => Some(
                    "a scheduled job cannot have `scope = \"singleton\"`; use `\"cluster\"` (each tick once across the cluster) or `\"instance\"` (every instance)",
                ),
                (JobKind::Queued, Scope::Cluster | Scope::Singleton) => Some(
                    "a queued handler runs each item once through its durable queue, whatever the scope; remove `scope`",
                ),
                (JobKind::Every | JobKind::Cron | JobKind::Service, _)
                    if candidate.dependencies.item =>
                {
                    Some("it takes the work item (`WorkItem` or `Payload<T>`), which only queued handlers (`#[queued]`) are given; make it a queued handler, or remove the argument")
                }
                (JobKind::Queued, _) => None,
                _ if candidate.dependencies.fence && self.coordinator.is_none() => Some(
                    "it takes `Fence`, which only runs claimed through a cluster have; configure one with `HostBuilder::cluster`",
                ),
                _ if candidate.dependencies.fence && scope == Scope::Instance => Some(
                    "it takes `Fence` but has `scope = \"instance\"`, whose runs are not claimed through the cluster; remove one of the two",
                ),
                _ => None,
            };
            if let Some(message) = cluster_problem {
                problems.push(Problem::InvalidCluster {
                    job: candidate.name.to_string(),
                    message,
                });
            }
            let claims = self.coordinator.is_some()
                && matches!(kind, JobKind::Every | JobKind::Cron)
                && scope == Scope::Cluster;
            // The one place that decides whose jitter a job gets: a claimed
            // tick's instant must be the same on every instance, so it
            // depends on the job and the tick only; any other job's on this
            // process's seed too.
            let seed = if claims { CLUSTER_SEED } else { process_seed };
            match Schedule::from_spec(
                candidate.schedule,
                candidate.on_failure,
                &candidate.name,
                seed,
            ) {
                Ok(schedule) => jobs.push(Arc::new(JobDef {
                    name: candidate.name,
                    index: u32::try_from(jobs.len()).expect("fewer than 4 billion jobs"),
                    enabled: candidate.enabled,
                    kind,
                    registration: match candidate.origin {
                        Origin::Job(r) => Some(r),
                        Origin::Service(_) | Origin::Builder => None,
                    },
                    schedule,
                    overlap: candidate.overlap,
                    invoke: candidate.invoke,
                    scoped: scoped.into_boxed_slice(),
                    cluster: self
                        .coordinator
                        .is_some()
                        .then(|| Box::new(JobCluster::new(candidate.cluster, claims))),
                    stats: JobStats::default(),
                })),
                Err(message) => problems.push(Problem::InvalidSchedule {
                    job: candidate.name.to_string(),
                    message,
                }),
            }
        }
        if self.settings.run_history == 0 {
            problems.push(Problem::InvalidHostConfig {
                key: "run_history",
                message: "it is zero, but every job keeps at least its last run; give 1 to keep only that".to_owned(),
            });
        }
        // The budget's share of each job: the same for all, at least 1.
        let keep = match jobs.len() {
            0 => 1,
            n => (self.settings.run_history_budget / n).clamp(1, self.settings.run_history.max(1)),
        };
        let history = RunHistory::new(jobs.len(), keep);
        for type_name in self.duplicate_state {
            problems.push(Problem::DuplicateState { type_name });
        }
        for (i, queue) in self.queues.iter().enumerate() {
            let options = queue.options();
            let message = if queue.is_attached() {
                Some("it already belongs to another host; give each host its own queue")
            } else if self.queues[..i].iter().any(|q| q.name() == queue.name()) {
                Some("two queues have this name; give each its own with `QueueOptions::named`")
            } else if options.capacity == 0 {
                Some("the capacity is zero; give it room for at least one item")
            } else if options.workers == 0 {
                Some("it has no workers; give it at least one")
            } else {
                None
            };
            if let Some(message) = message {
                problems.push(Problem::InvalidQueue {
                    queue: queue.name().to_owned(),
                    message,
                });
            }
        }
        for (i, def) in self.scopes.iter().enumerate() {
            if self.scopes[..i].iter().any(|d| d.type_id == def.type_id) {
                problems.push(Problem::DuplicateScoped {
                    type_name: def.type_name,
                });
            }
            for (type_id, state) in &def.dependencies.states {
                if !self.state.contains(*type_id) {
                    problems.push(Problem::FactoryMissingState {
                        type_name: def.type_name,
                        state,
                    });
                }
            }
            for (_, inner) in &def.dependencies.scoped {
                problems.push(Problem::ScopedInFactory {
                    type_name: def.type_name,
                    takes: inner,
                });
            }
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        for queue in &self.queues {
            queue.attach();
        }
        let shared = Arc::new(HostShared::new(
            self.state,
            self.clock,
            jobs,
            self.scopes,
            self.queues,
            Stores {
                coordinator: self.coordinator,
                sources: self.sources,
            },
            process_seed,
            history,
        ));
        let _ = shared
            .lifecycle
            .set(services.iter().map(|slot| slot.status.clone()).collect());
        let handle = HostHandle::new(shared.clone());
        for slot in &mut services {
            slot.service.attach(&handle);
        }
        Ok(Host {
            shared,
            settings: self.settings,
            services,
        })
    }

    /// Applies configuration to the jobs it names.
    fn apply_overrides(&mut self, candidates: &mut [Candidate], problems: &mut Vec<Problem>) {
        let overrides = std::mem::take(&mut self.overrides);
        for (key, value) in [
            ("shutdown_timeout", overrides.shutdown_timeout),
            ("startup_timeout", overrides.startup_timeout),
        ] {
            let Some(text) = value else { continue };
            match config::duration(key, &text) {
                Ok(limit) if key == "shutdown_timeout" => self.settings.shutdown_timeout = limit,
                Ok(limit) => self.settings.startup_timeout = Some(limit),
                Err((key, message)) => problems.push(Problem::InvalidHostConfig { key, message }),
            }
        }
        for (name, job_config) in overrides.jobs {
            match candidates.iter_mut().find(|c| *c.name == *name) {
                Some(candidate) => {
                    for (key, message) in config::apply(candidate, job_config) {
                        problems.push(Problem::InvalidConfig {
                            job: name.clone(),
                            key,
                            message,
                        });
                    }
                }
                None if registered().iter().any(|r| r.name == name) => {}
                None => problems.push(Problem::InvalidConfig {
                    job: name,
                    key: "jobs",
                    message: "no job has this name".to_owned(),
                }),
            }
        }
    }

    /// The registered jobs the selection takes followed by the explicit ones,
    /// and the registered service types it takes, in start order.
    fn select(
        &mut self,
        problems: &mut Vec<Problem>,
    ) -> (Vec<Candidate>, Vec<&'static ServiceRegistration>) {
        let jobs = registered();
        let mut services: Vec<&'static ServiceRegistration> =
            inventory::iter::<ServiceRegistration>.into_iter().collect();
        self.settings.nothing_registered =
            self.selection.is_none() && jobs.is_empty() && services.is_empty();
        services.sort_by_key(|r| (r.order, r.module, r.name, r.file, r.line));
        if let Some(Chosen { names, modules }) = &self.selection {
            for name in names {
                let known =
                    jobs.iter().any(|r| r.name == name) || services.iter().any(|r| r.name == name);
                if !known {
                    problems.push(Problem::UnknownJob {
                        name: name.clone(),
                        known: jobs.iter().map(|r| r.name).collect(),
                    });
                }
            }
            let chosen = |name: &str, module: &str| {
                names.iter().any(|n| n == name) || modules.iter().any(|m| in_module(module, m))
            };
            let jobs = jobs
                .into_iter()
                .filter(|r: &&Registration| chosen(r.name, r.module))
                .collect::<Vec<_>>();
            services.retain(|r| chosen(r.name, r.module));
            return (self.candidates(jobs), services);
        }
        (self.candidates(jobs), services)
    }

    fn candidates(&mut self, registered: Vec<&'static Registration>) -> Vec<Candidate> {
        registered
            .into_iter()
            .map(Candidate::from_registration)
            .chain(self.jobs.drain(..).map(Candidate::from_job))
            .collect()
    }
}

/// The seed of claimed ticks' jitter: the same on every instance.
const CLUSTER_SEED: u64 = 0;

/// A seed of this process's own. std's `RandomState` is seeded from the
/// operating system's randomness once per process (and varies per
/// instance), which is all a jitter needs: no random-number crate for one
/// number at build time. The pid and the time are mixed in as well.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

fn in_module(module: &str, prefix: &str) -> bool {
    module == prefix
        || module
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The configuration could not become a host; lists every problem found.
#[derive(Debug)]
pub struct BuildError {
    problems: Vec<Problem>,
}

impl BuildError {
    /// Each problem, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems in the host configuration:", all.len())?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// One problem `build()` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Two jobs have one name.
    DuplicateName {
        /// The name.
        name: String,
        /// Where the first was defined.
        first: String,
        /// Where the second was defined.
        second: String,
    },
    /// A job takes `State<T>` but no `T` was registered.
    MissingState {
        /// The job.
        job: String,
        /// The state's type.
        type_name: &'static str,
    },
    /// A declared service's constructor failed.
    ServiceConstructor {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// A declared service's constructor takes a state nobody registered.
    ServiceMissingState {
        /// The service.
        service: String,
        /// The state's type.
        type_name: &'static str,
    },
    /// A job's schedule or time zone is invalid.
    InvalidSchedule {
        /// The job.
        job: String,
        /// What is wrong, and the fix.
        message: String,
    },
    /// A job's cluster options do not fit it, or it needs a cluster the
    /// host lacks.
    InvalidCluster {
        /// The job.
        job: String,
        /// What is wrong, and the fix.
        message: &'static str,
    },
    /// `only_jobs` named a job that is not registered.
    UnknownJob {
        /// The name given.
        name: String,
        /// The names that are registered.
        known: Vec<&'static str>,
    },
    /// `state` was called twice with one type.
    DuplicateState {
        /// The type.
        type_name: &'static str,
    },
    /// A `State<T>` could be derived from more than one registered state.
    AmbiguousState {
        /// The sub-state's type.
        type_name: &'static str,
        /// The states it could come from.
        sources: Vec<&'static str>,
    },
    /// A job's setting from configuration is invalid.
    InvalidConfig {
        /// The job.
        job: String,
        /// The key, e.g. `every`.
        key: &'static str,
        /// What is wrong, and the fix.
        message: String,
    },
    /// A host setting is invalid.
    InvalidHostConfig {
        /// The key, e.g. `shutdown_timeout`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A job takes a queue the host does not have.
    MissingQueue {
        /// The job.
        job: String,
        /// The queue's name.
        queue: &'static str,
    },
    /// A queue's options are invalid.
    InvalidQueue {
        /// The queue's name.
        queue: String,
        /// What is wrong.
        message: &'static str,
    },
    /// A job takes `Scoped<T>` but no factory makes a `T`.
    MissingScoped {
        /// The job.
        job: String,
        /// The scoped value's type.
        type_name: &'static str,
    },
    /// A scope factory takes `State<T>` but no `T` was registered.
    FactoryMissingState {
        /// The type the factory makes.
        type_name: &'static str,
        /// The state's type.
        state: &'static str,
    },
    /// Two factories make one type.
    DuplicateScoped {
        /// The type.
        type_name: &'static str,
    },
    /// A factory takes a scoped value itself.
    ScopedInFactory {
        /// The type the factory makes.
        type_name: &'static str,
        /// The scoped type it takes.
        takes: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DuplicateName { name, first, second } => write!(
                f,
                "two jobs are named `{name}` ({first} and {second}); job names must be unique per host: rename one with `name = \"...\"`"
            ),
            Problem::FactoryMissingState { type_name, state } => write!(
                f,
                "the `Scoped<{type_name}>` factory takes `State<{state}>`, but the host has no `{state}`; register one with `Host::builder().state(value)`"
            ),
            Problem::MissingState { job, type_name } => write!(
                f,
                "job `{job}` takes `State<{type_name}>`, but the host has no `{type_name}`; register one with `Host::builder().state(value)`"
            ),
            Problem::ServiceConstructor { service, message } => {
                write!(f, "service `{service}` could not be constructed: {message}")
            }
            Problem::ServiceMissingState { service, type_name } => write!(
                f,
                "service `{service}`'s constructor takes `State<{type_name}>`, but the host has no `{type_name}`; register one with `Host::builder().state(value)`"
            ),
            Problem::InvalidSchedule { job, message } => write!(f, "job `{job}`: {message}"),
            Problem::InvalidCluster { job, message } => write!(f, "job `{job}`: {message}"),
            Problem::UnknownJob { name, known } => {
                write!(f, "`only_jobs` names `{name}`, but no registered job has that name")?;
                if known.is_empty() {
                    write!(f, "; no jobs are registered in this binary")
                } else if known.len() <= 12 {
                    write!(f, "; registered jobs: {}", known.join(", "))
                } else {
                    write!(f, "; {} jobs are registered, e.g. {}", known.len(), known[..12].join(", "))
                }
            }
            Problem::MissingScoped { job, type_name } => write!(
                f,
                "job `{job}` takes `Scoped<{type_name}>`, but the host has no factory for `{type_name}`; register one with `Host::builder().scoped(|...| async {{ ... }})`"
            ),
            Problem::AmbiguousState { type_name, sources } => write!(
                f,
                "`State<{type_name}>` could come from {}; register the `{type_name}` itself with `Host::builder().state(value)` to choose",
                sources.join(" or ")
            ),
            Problem::InvalidConfig { job, key, message } => {
                write!(f, "configuration of job `{job}`, key `{key}`: {message}")
            }
            Problem::InvalidHostConfig { key, message } => {
                write!(f, "host configuration, key `{key}`: {message}")
            }
            Problem::MissingQueue { job, queue } => write!(
                f,
                "job `{job}` takes the `{queue}` queue, but the host has none; add it with `Host::builder().queue(QueueOptions::default())`"
            ),
            Problem::InvalidQueue { queue, message } => write!(f, "queue `{queue}`: {message}"),
            Problem::DuplicateScoped { type_name } => write!(
                f,
                "two factories make `Scoped<{type_name}>`; register one per type"
            ),
            Problem::ScopedInFactory { type_name, takes } => write!(
                f,
                "the `Scoped<{type_name}>` factory takes `Scoped<{takes}>`; factories take `State`, `Run` and other arguments, not scoped values"
            ),
            Problem::DuplicateState { type_name } => write!(
                f,
                "state of type `{type_name}` registered twice; register it once (wrap distinct values in distinct types)"
            ),
        }
    }
}
