//! Where jobs come from: the registrations the macros submit through
//! `inventory`, and [`Job`]s built by hand. Both become one [`JobDef`] at
//! `build()`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::base::kind::{JobKind, Overlap};
use crate::base::outcome::IntoOutcome;
use crate::model::context::RunContext;
use crate::model::extract::{Dependencies, ExtractError, FromRun, RunFuture};
use crate::seams::cluster::{ClusterJobOptions, Missed, OnCrash, Placement};
use crate::seams::work::HandlerOptions;

/// What happens when a background service (`#[hosted_service]` on an
/// `async fn`, or [`Job::service`]) returns `Err` or panics.
///
/// A service that returns `Ok` is simply done, whatever the policy; one
/// that returns [`Cancelled`](crate::Cancelled) after the host's stop began
/// was cancelled, not failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Stop the host; its exit code says a service failed (the default, as
    /// in .NET 6 and later).
    #[default]
    Stop,
    /// Log the failure and carry on without the service.
    Ignore,
    /// Run the service again after a delay that grows exponentially, with
    /// jitter; once the restart budget is spent, stop the host.
    Restart(Backoff),
}

/// Delays and budget of [`FailurePolicy::Restart`].
///
/// The delay before restart `n` (from 1) is `min * 2^(n-1)`, capped at
/// `max`, then scaled by a pseudo-random factor in `[0.5, 1]` so that
/// instances do not restart in lockstep. A run that lasted at least `max`
/// counts as healthy: the next failure starts again from restart 1. More than
/// `max_restarts` failures in a row stop the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart.
    pub min: Duration,
    /// The longest delay, and the run time after which a service counts as
    /// healthy again.
    pub max: Duration,
    /// Failures in a row that are restarted; the next one stops the host.
    pub max_restarts: u32,
}

impl Backoff {
    /// 1 second to 1 minute, 5 restarts.
    pub const DEFAULT: Backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(60),
        max_restarts: 5,
    };

    /// The delay before restart `n` (from 1); `seed` picks the jitter.
    pub(crate) fn delay(&self, n: u32, seed: u64) -> Duration {
        let doubled = self
            .min
            .saturating_mul(1_u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let full = doubled.min(self.max);
        // Equal jitter: half fixed, half pseudo-random.
        let random =
            crate::model::schedule::splitmix64(seed ^ u64::from(n)) as f64 / u64::MAX as f64;
        full.mul_f64(0.5 + 0.5 * random)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// The schedule of a registered job, as the macro wrote it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    Every(EverySpec),
    Cron(CronSpec),
    Service(FailurePolicy),
    Queued(QueuedSpec),
}

/// A queued handler's options, as the macro wrote them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct QueuedSpec {
    pub queue: &'static str,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub priority: i16,
}

impl QueuedSpec {
    /// The options this registration declares.
    pub(crate) fn options(self) -> HandlerOptions {
        HandlerOptions {
            queue: self.queue.to_owned(),
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            priority: self.priority,
        }
    }
}

#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct EverySpec {
    pub source: &'static str,
    pub period: Duration,
    pub initial_delay: Duration,
    pub jitter: Duration,
}

#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct CronSpec {
    pub line: &'static str,
    pub zone: ZoneSpec,
}

#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum ZoneSpec {
    Utc,
    Local,
    Named(&'static str),
}

/// One job registered by a macro. Not public API: built only by the
/// macros' expansion.
#[doc(hidden)]
pub struct Registration {
    pub name: &'static str,
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
    pub trigger: Trigger,
    pub overlap: Overlap,
    pub cluster: ClusterJobOptions,
    pub dependencies: fn(&mut Dependencies),
    pub run: fn(&RunContext<'_>) -> Result<RunFuture, ExtractError>,
}

inventory::collect!(Registration);

/// Every job the macros registered in this binary, in a stable order (by
/// module, then name).
pub(crate) fn registered() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by_key(|r| (r.module, r.name, r.file, r.line));
    all
}

/// A job added by hand with [`HostBuilder::job`](crate::HostBuilder::job),
/// beside the ones the macros register: for embedding apps, for schedules
/// known only at run time, and for tests.
///
/// The handler is any async fn or closure whose arguments implement
/// [`FromRun`] and whose output implements [`IntoOutcome`], like the fns the
/// macros take.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hosted::{Host, Job, Run};
///
/// let host = Host::builder()
///     .without_registered()
///     .job(Job::every("tick", Duration::from_secs(5), |run: Run| async move {
///         println!("tick {}", run.number());
///     }))
///     .job(Job::cron("nightly", "0 3 * * *", || async { Ok::<(), std::io::Error>(()) }).tz("Europe/Berlin"))
///     .build()
///     .expect("valid configuration");
/// # drop(host);
/// ```
pub struct Job {
    pub(crate) name: String,
    pub(crate) schedule: ScheduleSpec,
    pub(crate) overlap: Overlap,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) cluster: ClusterJobOptions,
    pub(crate) dependencies: Dependencies,
    pub(crate) invoke: Invoke,
}

impl Job {
    /// A job that runs every `period`, like `#[every]`.
    pub fn every<H, Args>(name: impl Into<String>, period: Duration, handler: H) -> Job
    where
        H: Handler<Args>,
    {
        Job::new(
            name,
            ScheduleSpec::Every {
                source: None,
                period,
                initial_delay: Duration::ZERO,
                jitter: Duration::ZERO,
            },
            handler,
        )
    }

    /// A job that runs on the cron `line`, like `#[cron]`. The line is checked
    /// by `build()`.
    pub fn cron<H, Args>(name: impl Into<String>, line: impl Into<String>, handler: H) -> Job
    where
        H: Handler<Args>,
    {
        Job::new(
            name,
            ScheduleSpec::Cron {
                line: line.into(),
                zone: None,
            },
            handler,
        )
    }

    /// A long-running service, like `#[hosted_service]`.
    pub fn service<H, Args>(name: impl Into<String>, handler: H) -> Job
    where
        H: Handler<Args>,
    {
        Job::new(name, ScheduleSpec::Service, handler)
    }

    fn new<H: Handler<Args>, Args>(
        name: impl Into<String>,
        schedule: ScheduleSpec,
        handler: H,
    ) -> Job {
        let mut dependencies = Dependencies::default();
        H::dependencies(&mut dependencies);
        let kind = schedule.kind();
        Job {
            name: name.into(),
            schedule,
            overlap: Overlap::Skip,
            on_failure: FailurePolicy::Stop,
            cluster: ClusterJobOptions::default_for(kind),
            dependencies,
            invoke: Invoke::Dyn(Box::new(move |cx: &RunContext<'_>| handler.call(cx))),
        }
    }

    /// Delays the first tick of an `every` job; ignored by other kinds.
    pub fn initial_delay(mut self, delay: Duration) -> Job {
        if let ScheduleSpec::Every { initial_delay, .. } = &mut self.schedule {
            *initial_delay = delay;
        }
        self
    }

    /// Moves each tick of an `every` job later by up to `jitter`; ignored by
    /// other kinds. `build()` requires it to be shorter than the period.
    pub fn jitter(mut self, jitter: Duration) -> Job {
        if let ScheduleSpec::Every { jitter: j, .. } = &mut self.schedule {
            *j = jitter;
        }
        self
    }

    /// The time zone of a cron job, by IANA name, or `"local"`; UTC by
    /// default. Checked by `build()`; ignored by other kinds.
    pub fn tz(mut self, zone: impl Into<String>) -> Job {
        if let ScheduleSpec::Cron { zone: z, .. } = &mut self.schedule {
            *z = Some(zone.into());
        }
        self
    }

    /// Where the job runs once the host has a cluster: each tick once
    /// across the cluster ([`Placement::Cluster`], the default for scheduled
    /// jobs), on every instance ([`Placement::Instance`], the default for
    /// services), or, for a service, on one instance at a time
    /// ([`Placement::Singleton`]). `build()` rejects a scope the job's kind
    /// cannot have.
    pub fn scope(mut self, scope: Placement) -> Job {
        self.cluster.scope = scope;
        self
    }

    /// With a cluster: what happens to a tick whose instance died mid-run.
    pub fn on_crash(mut self, on_crash: OnCrash) -> Job {
        self.cluster.on_crash = on_crash;
        self
    }

    /// With a cluster: what happens to ticks missed while the whole cluster
    /// was down.
    pub fn missed(mut self, missed: Missed) -> Job {
        self.cluster.missed = missed;
        self
    }

    /// What to do with a tick that falls during a run.
    pub fn overlap(mut self, overlap: Overlap) -> Job {
        self.overlap = overlap;
        self
    }

    /// What to do when a service fails; ignored by scheduled jobs, whose
    /// failed runs are logged and counted while the schedule goes on.
    pub fn on_failure(mut self, policy: FailurePolicy) -> Job {
        self.on_failure = policy;
        self
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

/// Builds a run's arguments, then returns the run's future.
type StartRun = dyn Fn(&RunContext<'_>) -> Result<RunFuture, ExtractError> + Send + Sync;

/// Starts one run: a registration's fn pointer (no allocation per job), or
/// the closure around a [`Handler`].
pub(crate) enum Invoke {
    Static(fn(&RunContext<'_>) -> Result<RunFuture, ExtractError>),
    /// Boxed, not shared: a closure that captures nothing then costs no
    /// allocation.
    Dyn(Box<StartRun>),
}

impl Invoke {
    pub(crate) fn call(&self, cx: &RunContext<'_>) -> Result<RunFuture, ExtractError> {
        match self {
            Invoke::Static(run) => run(cx),
            Invoke::Dyn(run) => run(cx),
        }
    }
}

/// An async fn or closure that can be a [`Job`]'s body: its arguments
/// implement [`FromRun`], its output [`IntoOutcome`]. Implemented for fns of
/// up to 12 arguments.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the body of a job",
    label = "expected an async fn or closure whose arguments implement `FromRun`",
    note = "each argument must be `Run`, `CancellationToken`, `State<T>` or another `FromRun` type, and the output `()` or `Result<(), E>` with `E: Display`"
)]
pub trait Handler<Args>: Send + Sync + 'static {
    /// Builds the arguments and starts the body.
    ///
    /// # Errors
    ///
    /// The first argument that cannot be built.
    fn call(&self, cx: &RunContext<'_>) -> Result<RunFuture, ExtractError>;

    /// Declares what the arguments need from the host.
    fn dependencies(deps: &mut Dependencies);
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, Out, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Out> + Send + 'static,
            Out: IntoOutcome,
            $($arg: FromRun,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, cx: &RunContext<'_>) -> Result<RunFuture, ExtractError> {
                $(let $arg = $arg::from_run(cx)?;)*
                let body = self($($arg),*);
                Ok(Box::pin(async move { body.await.into_outcome() }))
            }

            #[allow(unused_variables)]
            fn dependencies(deps: &mut Dependencies) {
                $($arg::dependencies(deps);)*
            }
        }
    };
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);
impl_handler!(A1, A2, A3, A4, A5);
impl_handler!(A1, A2, A3, A4, A5, A6);
impl_handler!(A1, A2, A3, A4, A5, A6, A7);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

/// Where a job was defined, for error messages.
#[derive(Clone, Copy)]
pub(crate) enum Origin {
    Job(&'static Registration),
    Service(&'static crate::model::service::ServiceRegistration),
    Builder,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Job(r) => write!(f, "{}:{}", r.file, r.line),
            Origin::Service(r) => write!(f, "{}:{}", r.file, r.line),
            Origin::Builder => f.write_str("HostBuilder::job"),
        }
    }
}

/// A job the builder took, before its schedule is checked.
pub(crate) struct Candidate {
    pub(crate) name: Box<str>,
    pub(crate) enabled: bool,
    pub(crate) origin: Origin,
    pub(crate) schedule: ScheduleSpec,
    pub(crate) overlap: Overlap,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) cluster: ClusterJobOptions,
    pub(crate) dependencies: Dependencies,
    pub(crate) invoke: Invoke,
}

/// A schedule as given, before `build()` checks it.
pub(crate) enum ScheduleSpec {
    Every {
        /// As written in the macro or the configuration; `None` shows the
        /// period.
        source: Option<Box<str>>,
        period: Duration,
        initial_delay: Duration,
        jitter: Duration,
    },
    Cron {
        line: String,
        zone: Option<String>,
    },
    Service,
    Queued(crate::seams::work::HandlerOptions),
}

impl ScheduleSpec {
    /// The kind of job this schedule makes.
    pub(crate) fn kind(&self) -> JobKind {
        match self {
            ScheduleSpec::Every { .. } => JobKind::Every,
            ScheduleSpec::Cron { .. } => JobKind::Cron,
            ScheduleSpec::Service => JobKind::Service,
            ScheduleSpec::Queued(_) => JobKind::Queued,
        }
    }
}

impl Candidate {
    pub(crate) fn from_registration(r: &'static Registration) -> Candidate {
        let mut dependencies = Dependencies::default();
        (r.dependencies)(&mut dependencies);
        let schedule = match &r.trigger {
            Trigger::Every(spec) => ScheduleSpec::Every {
                source: Some(Box::from(spec.source)),
                period: spec.period,
                initial_delay: spec.initial_delay,
                jitter: spec.jitter,
            },
            &Trigger::Cron(spec) => ScheduleSpec::Cron {
                line: spec.line.to_owned(),
                zone: match spec.zone {
                    ZoneSpec::Utc => None,
                    ZoneSpec::Local => Some("local".to_owned()),
                    ZoneSpec::Named(name) => Some(name.to_owned()),
                },
            },
            Trigger::Service(_) => ScheduleSpec::Service,
            &Trigger::Queued(spec) => ScheduleSpec::Queued(spec.options()),
        };
        let on_failure = match r.trigger {
            Trigger::Service(policy) => policy,
            Trigger::Every(_) | Trigger::Cron(_) | Trigger::Queued(_) => FailurePolicy::Stop,
        };
        Candidate {
            name: Box::from(r.name),
            enabled: true,
            origin: Origin::Job(r),
            schedule,
            overlap: r.overlap,
            on_failure,
            cluster: r.cluster,
            dependencies,
            invoke: Invoke::Static(r.run),
        }
    }

    pub(crate) fn from_job(job: Job) -> Candidate {
        Candidate {
            name: job.name.into_boxed_str(),
            enabled: true,
            origin: Origin::Builder,
            schedule: job.schedule,
            overlap: job.overlap,
            on_failure: job.on_failure,
            cluster: job.cluster,
            dependencies: job.dependencies,
            invoke: job.invoke,
        }
    }
}
