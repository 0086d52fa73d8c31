//! A handle on a running host: list its jobs, trigger, pause and resume
//! them, reach its lifetime, request a stop.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::base::kind::JobKind;
use crate::base::queue::{QueueStats, TaskQueue};
use crate::base::report::StopReason;
use crate::lifecycle::Lifetime;
use crate::lifecycle::{Host, RunningHost};
use crate::model::context::RunContext;
use crate::model::extract::{ExtractError, FromRun};
use crate::model::job::{FinishedRun, JobDef};
use crate::model::shared::HostShared;
use crate::run::tick::{dispatch, NotStarted};

/// A cloneable handle on a running host. From [`RunningHost::handle`](crate::RunningHost::handle),
/// or as a job's argument.
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
///
/// #[every("1m")]
/// async fn watchdog(host: HostHandle) {
///     for job in host.jobs() {
///         if job.failed > 10 {
///             tracing::warn!(job = %job.name, "failing often; pausing it");
///             let _ = host.pause(&job.name);
///         }
///     }
/// }
/// ```
#[derive(Clone)]
pub struct HostHandle {
    pub(crate) shared: Arc<HostShared>,
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle").finish_non_exhaustive()
    }
}

impl HostHandle {
    pub(crate) fn new(shared: Arc<HostShared>) -> HostHandle {
        HostHandle { shared }
    }

    /// Begins a graceful stop; asking again changes nothing.
    pub fn request_stop(&self) {
        self.shared.request_stop(StopReason::Requested);
    }

    /// Whether stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// The host's lifetime events.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime::new(self.shared.clone())
    }

    /// Every queue's counters.
    pub fn queues(&self) -> Vec<QueueStats> {
        self.shared.queues.iter().map(TaskQueue::stats).collect()
    }

    /// The queue named `name` (`"default"` for the one [`TaskQueue`]
    /// arguments get).
    pub fn queue(&self, name: &str) -> Option<TaskQueue> {
        self.shared.queue(name)
    }

    /// Every job's status, in start order.
    pub fn jobs(&self) -> Vec<JobStatus> {
        self.shared
            .jobs
            .iter()
            .map(|job| JobStatus::of(job))
            .collect()
    }

    /// The jobs counted by state, in one pass that builds no status: what
    /// an overview of a host of 100,000 jobs shows.
    pub fn summary(&self) -> JobSummary {
        let mut summary = JobSummary::default();
        for job in self.shared.jobs.iter() {
            let stats = &job.stats;
            match job.kind {
                JobKind::Service => summary.services += 1,
                JobKind::Queued => summary.handlers += 1,
                JobKind::Every | JobKind::Cron => summary.scheduled += 1,
            }
            if stats.running.load(Ordering::Relaxed) > 0 {
                summary.running += 1;
            }
            if stats.paused.load(Ordering::Relaxed) {
                summary.paused += 1;
            }
            if !job.enabled {
                summary.disabled += 1;
            }
            if stats.last_failed() {
                summary.failing += 1;
            }
        }
        summary
    }

    /// The jobs whose last run failed, with that run, newest first: at
    /// most `limit`.
    pub fn recent_failures(&self, limit: usize) -> Vec<(String, FinishedRun)> {
        let mut failed: Vec<(String, FinishedRun)> = self
            .shared
            .jobs
            .iter()
            .filter(|job| job.stats.last_failed())
            .filter_map(|job| Some((job.name.to_string(), job.stats.last_run()?)))
            .collect();
        failed.sort_by_key(|(_, run)| std::cmp::Reverse(run.started));
        failed.truncate(limit);
        failed
    }

    /// The status of every background service (`#[hosted_service]` fns),
    /// in start order.
    pub fn services(&self) -> Vec<JobStatus> {
        self.shared
            .jobs
            .iter()
            .filter(|job| job.kind == JobKind::Service)
            .map(|job| JobStatus::of(job))
            .collect()
    }

    /// The lifecycle services ([`HostedService`](crate::HostedService)
    /// implementations, such as a [`WebServer`](crate::web::WebServer)), in
    /// start order, with where each stands.
    pub fn lifecycle_services(&self) -> Vec<LifecycleStatus> {
        self.shared
            .lifecycle
            .get()
            .map(|all| {
                all.iter()
                    .map(|status| {
                        let (state, error) = status.get();
                        LifecycleStatus {
                            name: status.name.to_string(),
                            defined_at: status.origin.clone(),
                            state,
                            error,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One page of the jobs whose names contain `filter` (ASCII letters
    /// matched without regard to case; empty matches every job), in start
    /// order: at most `limit` from the `offset`-th match on, with the
    /// number of matches. A host of 100,000 jobs is searched without
    /// building the status of those off the page.
    pub fn jobs_page(&self, filter: &str, offset: usize, limit: usize) -> JobsPage {
        let mut total = 0;
        let mut jobs = Vec::with_capacity(limit.min(1024));
        for job in self.shared.jobs.iter() {
            if !contains_ignoring_case(&job.name, filter) {
                continue;
            }
            if total >= offset && jobs.len() < limit {
                jobs.push(JobStatus::of(job));
            }
            total += 1;
        }
        JobsPage { total, jobs }
    }

    /// When job `name` is due next, up to `n` times, each with the local
    /// time in the job's zone and whether the zone's offset changes before
    /// it (a daylight saving time transition). `None` if there is no such
    /// job; empty for services, queued handlers and jobs disabled by
    /// configuration. A paused job lists the instants its ticks fall on.
    pub fn next_runs(&self, name: &str, n: usize) -> Option<Vec<NextRun>> {
        let job = self.find(name).ok()?;
        if !job.enabled {
            return Some(Vec::new());
        }
        let now = self.shared.wall();
        let mut offset = job.schedule.utc_offset(now);
        let runs = job
            .schedule
            .upcoming(job.stats.next_run(), now, n)
            .into_iter()
            .map(|(at, seconds)| {
                let zone = chrono::FixedOffset::east_opt(seconds)
                    .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
                let run = NextRun {
                    at,
                    local: at.with_timezone(&zone),
                    offset_changes: seconds != offset,
                };
                offset = seconds;
                run
            })
            .collect();
        Some(runs)
    }

    /// The status of the job named `name`.
    pub fn job(&self, name: &str) -> Option<JobStatus> {
        self.find(name).ok().map(|job| JobStatus::of(job))
    }

    /// The finished runs that job `name` keeps, newest first: when each was
    /// due and started, how long it took, how it ended (with the error of
    /// one that failed). `None` if there is no such job. How many are kept
    /// is [`HostBuilder::run_history`](crate::HostBuilder::run_history),
    /// within [`run_history_budget`](crate::HostBuilder::run_history_budget).
    ///
    /// These are this host's runs. With a cluster, the runs of every
    /// instance are in the cluster's own history
    /// (`hosted_postgres::Cluster::runs`).
    pub fn runs(&self, name: &str) -> Option<Vec<FinishedRun>> {
        self.find(name)
            .ok()
            .map(|job| job.stats.runs(&self.shared.history, job.index as usize))
    }

    /// Starts a run of a scheduled job now, beside its schedule, and returns
    /// the run's number. Its overlap policy holds: a job that does not
    /// overlap and is running is not started again.
    ///
    /// # Errors
    ///
    /// No such job, a service (which is not scheduled), a job already running
    /// that does not overlap, a host that has not started yet or is
    /// stopping, or (with a cluster)
    /// a job that runs once per tick across the cluster, which the cluster
    /// triggers.
    pub fn trigger(&self, name: &str) -> Result<u64, HandleError> {
        let job = self.scheduled(name)?;
        if !self.shared.started.is_cancelled() && !self.shared.stop.is_cancelled() {
            return Err(HandleError::NotStarted);
        }
        if job.claims() {
            return Err(HandleError::Clustered(name.to_owned()));
        }
        dispatch(
            &self.shared,
            job,
            self.shared.wall(),
            true,
            &mut Instant::now(),
            Instant::now(),
        )
        .map_err(|why| match why {
            NotStarted::Running => HandleError::AlreadyRunning(name.to_owned()),
            NotStarted::Stopping => HandleError::Stopping,
        })
    }

    /// Pauses a scheduled job: its ticks pass without runs (not counted as
    /// skipped) until [`resume`](Self::resume). A run in progress goes on.
    /// Pausing a paused job changes nothing.
    ///
    /// With a cluster this pauses the job on this instance only (the other
    /// instances claim its ticks); `hosted_postgres::Cluster::pause` pauses
    /// it on every instance.
    ///
    /// # Errors
    ///
    /// No such job, or a service.
    pub fn pause(&self, name: &str) -> Result<(), HandleError> {
        self.scheduled(name)?
            .stats
            .paused
            .store(true, Ordering::Relaxed);
        tracing::info!(job = name, "paused");
        Ok(())
    }

    /// Resumes a paused job at its next tick.
    ///
    /// # Errors
    ///
    /// No such job, or a service.
    pub fn resume(&self, name: &str) -> Result<(), HandleError> {
        self.scheduled(name)?
            .stats
            .paused
            .store(false, Ordering::Relaxed);
        tracing::info!(job = name, "resumed");
        Ok(())
    }

    fn find(&self, name: &str) -> Result<&Arc<JobDef>, HandleError> {
        self.shared
            .job_named(name)
            .ok_or_else(|| HandleError::UnknownJob(name.to_owned()))
    }

    fn scheduled(&self, name: &str) -> Result<&Arc<JobDef>, HandleError> {
        let job = self.find(name)?;
        if matches!(job.kind, JobKind::Service | JobKind::Queued) {
            return Err(HandleError::NotScheduled(name.to_owned()));
        }
        if !job.enabled {
            return Err(HandleError::Disabled(name.to_owned()));
        }
        Ok(job)
    }
}

impl FromRun for HostHandle {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        Ok(HostHandle::new(cx.host.clone()))
    }
}

/// Why a [`HostHandle`] request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleError {
    /// The host has no job of that name.
    UnknownJob(String),
    /// The job is a service or a queued handler; only scheduled jobs can be
    /// triggered or paused.
    NotScheduled(String),
    /// The job does not overlap and its previous run is still going.
    AlreadyRunning(String),
    /// The host is stopping and starts no more runs.
    Stopping,
    /// The host has not finished starting: its jobs run once every
    /// lifecycle service has started.
    NotStarted,
    /// The job is disabled by configuration.
    Disabled(String),
    /// The job runs once per tick across a cluster: trigger it through the
    /// cluster (`hosted_postgres::Cluster::trigger`), which runs it once,
    /// on one instance.
    Clustered(String),
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::UnknownJob(name) => write!(f, "the host has no job named `{name}`"),
            HandleError::NotScheduled(name) => write!(
                f,
                "`{name}` is a service or a queued handler, not a scheduled job: it cannot be triggered or paused (enqueue an item to run a queued handler)"
            ),
            HandleError::AlreadyRunning(name) => write!(
                f,
                "`{name}` is still running and does not overlap (`overlap = \"allow\"` would let it)"
            ),
            HandleError::Stopping => f.write_str("the host is stopping"),
            HandleError::NotStarted => f.write_str(
                "the host has not started yet: its jobs run once its services have started",
            ),
            HandleError::Disabled(name) => {
                write!(f, "`{name}` is disabled by configuration (`enabled = false`)")
            }
            HandleError::Clustered(name) => write!(
                f,
                "`{name}` runs once per tick across the cluster: trigger it through the cluster, which runs it once on one instance (or give it `scope = \"instance\"`)"
            ),
        }
    }
}

impl std::error::Error for HandleError {}

/// A job's status, as [`HostHandle::jobs`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its kind.
    pub kind: JobKind,
    /// Its schedule as written, e.g. `every 5s` or `cron 0 3 * * * (UTC)`.
    pub schedule: String,
    /// Its schedule in words, e.g. `every 5 seconds`.
    pub description: String,
    /// The time zone a cron line is read in (`UTC`, `Local`,
    /// `Europe/Berlin`); `None` for other kinds.
    pub time_zone: Option<String>,
    /// Where it was defined: `file:line` of the annotated fn, or
    /// `HostBuilder::job`.
    pub defined_at: String,
    /// When it is due next, on the wall clock (`None` for services, and for
    /// cron lines that never fire again).
    pub next_run: Option<DateTime<Utc>>,
    /// The last run that finished.
    pub last_run: Option<FinishedRun>,
    /// Whether it runs at all: `false` when configuration disabled it.
    pub enabled: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Runs started.
    pub runs: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed, panicked or were aborted.
    pub failed: u64,
    /// Runs that returned [`Cancelled`](crate::Cancelled) after stop began.
    pub cancelled: u64,
    /// Ticks skipped because the previous run was still going, and fires
    /// passed over after a stall or a jump of the wall clock.
    pub skipped: u64,
    /// Runs going now.
    pub running: u32,
    /// With a cluster: ticks another instance claimed and ran.
    pub claimed_elsewhere: u64,
    /// With a cluster: ticks this instance did not claim because the
    /// cluster's store was out of reach (nothing ran them here).
    pub unclaimed: u64,
    /// With a cluster: completions the store rejected because the run's
    /// lease had run out (the process was paused or cut off past it).
    pub stale_completions: u64,
}

impl JobStatus {
    fn of(job: &JobDef) -> JobStatus {
        let stats = &job.stats;
        let cluster =
            |counter: fn(&crate::model::job::JobCluster) -> &std::sync::atomic::AtomicU64| {
                job.cluster
                    .as_ref()
                    .map_or(0, |c| counter(c).load(Ordering::Relaxed))
            };
        JobStatus {
            name: job.name.to_string(),
            kind: job.kind,
            schedule: job.schedule.describe(),
            description: job.schedule.in_words(),
            time_zone: job.schedule.zone(),
            defined_at: job.origin().to_string(),
            next_run: stats.next_run(),
            last_run: stats.last_run(),
            enabled: job.enabled,
            paused: stats.paused.load(Ordering::Relaxed),
            runs: stats.started.load(Ordering::Relaxed),
            succeeded: stats.succeeded.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            cancelled: u64::from(stats.cancelled.load(Ordering::Relaxed)),
            skipped: stats.skipped.load(Ordering::Relaxed),
            running: stats.running.load(Ordering::Relaxed),
            claimed_elsewhere: cluster(|c| &c.elsewhere),
            unclaimed: cluster(|c| &c.unclaimed),
            stale_completions: cluster(|c| &c.stale),
        }
    }
}

/// The jobs of a host counted by state, as [`HostHandle::summary`] gives
/// them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobSummary {
    /// `every` and `cron` jobs.
    pub scheduled: usize,
    /// Background services.
    pub services: usize,
    /// Handlers of durable work.
    pub handlers: usize,
    /// Jobs with a run going now.
    pub running: usize,
    /// Paused jobs.
    pub paused: usize,
    /// Jobs that configuration disabled.
    pub disabled: usize,
    /// Jobs whose last run failed.
    pub failing: usize,
}

/// A lifecycle service, as [`HostHandle::lifecycle_services`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleStatus {
    /// Its name.
    pub name: String,
    /// Where it came from: `HostBuilder::service`, or the `file:line` of
    /// its `#[hosted_service]` type.
    pub defined_at: String,
    /// `not started`, `starting`, `running`, `stopping`, `stopped` or
    /// `failed`.
    pub state: &'static str,
    /// The step that failed and its error, once one has.
    pub error: Option<String>,
}

/// A page of [`HostHandle::jobs_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobsPage {
    /// How many jobs match the filter, on every page.
    pub total: usize,
    /// The matches on this page.
    pub jobs: Vec<JobStatus>,
}

/// One instant a job is due, as [`HostHandle::next_runs`] gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NextRun {
    /// When, in UTC.
    pub at: DateTime<Utc>,
    /// The same instant in the job's zone (UTC for `every` jobs).
    pub local: DateTime<chrono::FixedOffset>,
    /// Whether the zone's offset from UTC changes before this run: since
    /// the previous run listed, or since now for the first one.
    pub offset_changes: bool,
}

/// Whether `haystack` contains `needle`, ASCII letters compared without
/// regard to case, without allocating.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

impl Host {
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

impl RunningHost {
    /// A handle on this host, for inspecting it and stopping it from
    /// anywhere.
    pub fn handle(&self) -> HostHandle {
        HostHandle::new(self.shared.clone())
    }
}
