//! The seam a cluster plugs into: a [`Coordinator`] asked "may this
//! instance run tick T of job J?", and the options that say, per job, what
//! a cluster guarantees.
//!
//! Without a coordinator (the default) nothing here is consulted: every job
//! runs in this process, and the scheduler's hot path pays one branch. With
//! one ([`HostBuilder::cluster`](crate::HostBuilder::cluster); the crate
//! `hosted-postgres` provides it), each tick of a job of [`Placement::Cluster`]
//! is claimed before it runs, a service of [`Placement::Singleton`] runs only
//! while it holds a lease, and the `every` grid is anchored at the Unix
//! epoch so that every instance computes the same instants.
//!
//! The trait is object safe and takes boxed futures: it is called once per
//! tick, where an allocation is noise beside a database round trip.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::HostSide;
use crate::base::kind::{JobKind, Overlap};
use crate::base::outcome::Outcome;

/// A boxed future, as the [`Coordinator`] trait returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error a coordinator reports at start.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a job runs once a cluster is configured.
///
/// Without a cluster every job runs in this process, whatever its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Scheduled jobs: each tick runs once across every instance that shares
    /// the cluster (the default for `#[every]` and `#[cron]`).
    Cluster,
    /// Every instance runs it, on its own schedule: a local cache refresh
    /// (the default for services).
    Instance,
    /// Services: runs on exactly one instance at a time, while it holds a
    /// renewed lease; another instance takes over when it dies or stops.
    Singleton,
}

/// The old name of [`Placement`], kept for one release.
///
/// ```
/// # #![allow(deprecated)]
/// use hosted::cluster::{Placement, Scope};
/// assert_eq!(Scope::Singleton, Placement::Singleton);
/// ```
#[deprecated(
    since = "0.2.0",
    note = "renamed `Placement`, apart from `Scoped` (the per-run values)"
)]
pub type Scope = Placement;

impl Placement {
    /// `"cluster"`, `"instance"` or `"singleton"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Cluster => "cluster",
            Placement::Instance => "instance",
            Placement::Singleton => "singleton",
        }
    }

    /// The default for a kind of job: [`Cluster`](Placement::Cluster) for
    /// scheduled jobs, [`Instance`](Placement::Instance) for services.
    pub fn default_for(kind: JobKind) -> Placement {
        match kind {
            JobKind::Every | JobKind::Cron => Placement::Cluster,
            JobKind::Service | JobKind::Queued => Placement::Instance,
        }
    }
}

/// What happens to a tick whose run's instance died mid-run (its lease ran
/// out without a completion).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnCrash {
    /// Nothing: the tick ran at most once (the default).
    #[default]
    Skip,
    /// Another instance runs the tick again: at least once.
    Rerun,
}

/// What happens after the whole cluster was down over one or more ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Missed {
    /// The missed ticks pass; the schedule goes on from now (the default).
    #[default]
    Skip,
    /// The last missed tick runs once, as the first instance comes back,
    /// judged from the tick last claimed in the cluster's store: a weekly
    /// job still runs after restarts that keep missing its instant.
    Once,
}

/// A job's cluster options: from the macro's `scope`, `on_crash` and
/// `missed`, or from [`Job`](crate::Job)'s setters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterJobOptions {
    /// Where it runs.
    pub scope: Placement,
    /// After its instance died mid-run.
    pub on_crash: OnCrash,
    /// After the cluster was down.
    pub missed: Missed,
}

/// The old name of [`ClusterJobOptions`], kept for one release.
///
/// ```
/// # #![allow(deprecated)]
/// use hosted::cluster::{ClusterJobOptions, ClusterOptions};
/// use hosted::JobKind;
/// let options: ClusterOptions = ClusterJobOptions::default_for(JobKind::Every);
/// assert_eq!(options, ClusterJobOptions::default_for(JobKind::Every));
/// ```
#[deprecated(
    since = "0.2.0",
    note = "renamed `ClusterJobOptions`, apart from `hosted_postgres::ClusterOptions` (a cluster's connection settings)"
)]
pub type ClusterOptions = ClusterJobOptions;

impl ClusterJobOptions {
    /// The defaults for a kind of job.
    pub const fn default_for(kind: JobKind) -> ClusterJobOptions {
        ClusterJobOptions {
            scope: match kind {
                JobKind::Every | JobKind::Cron => Placement::Cluster,
                JobKind::Service | JobKind::Queued => Placement::Instance,
            },
            on_crash: OnCrash::Skip,
            missed: Missed::Skip,
        }
    }
}

/// A job as the coordinator is told of it at start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterJob {
    /// Its name: with the tick's instant, the identity of a tick.
    pub name: String,
    /// Its kind.
    pub kind: JobKind,
    /// Its options; only jobs of scope [`Cluster`](Placement::Cluster) and
    /// [`Singleton`](Placement::Singleton) are ever claimed.
    pub options: ClusterJobOptions,
    /// Whether a tick may start while an earlier run holds its lease.
    pub overlap: Overlap,
}

/// A tick this instance would like to run.
#[derive(Debug)]
#[non_exhaustive]
pub struct TickClaim {
    /// The job, by its index in the list [`ClusterHost::jobs`] gives.
    pub job: usize,
    /// The tick's instant on the wall clock: the same on every instance.
    pub at: DateTime<Utc>,
    /// A catch-up of a tick missed while the cluster was down
    /// ([`Missed::Once`]): granted only if some tick of the job was claimed
    /// before, and none at or after `at`.
    pub catch_up: bool,
    /// The run's token. The coordinator cancels it when it can no longer
    /// renew the run's lease; the host cancels it when it stops.
    pub token: CancellationToken,
}

/// A coordinator's answer to a [`TickClaim`].
#[derive(Debug)]
pub enum Claim {
    /// Run it, under this lease.
    Granted(Lease),
    /// Do not run it.
    Declined(Declined),
}

/// Why a tick was not granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Declined {
    /// Another instance claimed this tick (or a later one).
    Taken,
    /// The job's previous run still holds its lease, on some instance, and
    /// the job does not overlap: skipped and counted, as in one process.
    Running,
    /// The job is paused across the cluster.
    Paused,
    /// This instance cannot reach the cluster's store, or has not reached
    /// it within its trust window: the tick is not run here, and counted.
    Unavailable,
}

/// The right to run one tick (or a singleton service), while the lease
/// lasts.
#[derive(Clone, Debug)]
pub struct Lease {
    /// A number that grows with every claim of the job: a run passes it to
    /// its external writes, which reject a number lower than one they saw
    /// (see [`Fence`]).
    pub fence: i64,
    /// The coordinator's identifier of the run's record.
    pub id: i64,
    /// Cancelled when the lease is lost.
    pub token: CancellationToken,
}

/// How a coordinator took a run's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Recorded.
    Recorded,
    /// Rejected: the lease had run out (the process was paused or cut off
    /// past it), so the tick may already belong to a newer claim.
    Stale,
    /// The store could not be reached; the lease runs out on its own.
    Failed,
}

/// The seam between the host and a cluster's store.
///
/// `hosted-postgres` implements it on PostgreSQL; a test may implement it
/// in memory. Every method but [`start`](Coordinator::start) is called
/// from running jobs and must not block.
pub trait Coordinator: Send + Sync + 'static {
    /// Called once as the host starts, before any service: connects,
    /// prepares the store, registers this instance and its jobs. An error
    /// fails the host's startup: a host never runs with no coordination.
    fn start(&self, host: ClusterHost) -> BoxFuture<'_, Result<(), BoxError>>;

    /// May this instance run this tick? One atomic step in the store that
    /// both checks and records the claim.
    fn claim(&self, claim: TickClaim) -> BoxFuture<'static, Claim>;

    /// Records how a granted run ended, and releases its lease.
    fn complete(
        &self,
        job: usize,
        lease: Lease,
        outcome: &Outcome,
    ) -> BoxFuture<'static, Completion>;

    /// Waits until this instance holds the lease of the singleton service
    /// `job` (an index into [`ClusterHost::jobs`]), or `token` is cancelled
    /// (`None`). The lease's token is cancelled if the lease is lost.
    fn acquire(&self, job: usize, token: CancellationToken) -> BoxFuture<'static, Option<Lease>>;

    /// How long before a tick's instant its claim is sent (zero by
    /// default). A claim granted early waits for the instant, so that the
    /// round trip to the store does not make the run late; one declined
    /// because the previous run still holds its lease is sent again at the
    /// instant, so that a run ending just before the tick does not cost it.
    fn claim_ahead(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// The most recent tick claimed for each job across the cluster, by
    /// index, as recorded in the store at start: what [`Missed::Once`]
    /// judges from.
    fn last_ticks(&self) -> Vec<Option<DateTime<Utc>>>;

    /// Called once as the host stops, after every run ended: releases what
    /// this instance still holds and marks it stopped.
    fn stop(&self) -> BoxFuture<'_, ()>;
}

/// What a coordinator may ask of the host it serves. Holds the host weakly:
/// a coordinator that outlives its host gets `false` and empty answers.
#[derive(Clone)]
pub struct ClusterHost {
    host: Weak<dyn HostSide>,
    jobs: Arc<[ClusterJob]>,
}

impl fmt::Debug for ClusterHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterHost")
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl ClusterHost {
    pub(crate) fn new(host: Weak<dyn HostSide>, jobs: Arc<[ClusterJob]>) -> ClusterHost {
        ClusterHost { host, jobs }
    }

    /// Every job of the host, in the order claims refer to them.
    pub fn jobs(&self) -> &[ClusterJob] {
        &self.jobs
    }

    /// Runs a tick the coordinator claimed on its own (a rerun after a
    /// crash, or a trigger sent from another instance) on this instance,
    /// under `lease`; its completion comes back through
    /// [`Coordinator::complete`]. `false` if the host is stopping or gone,
    /// or the job is unknown or disabled: the lease is then the
    /// coordinator's to release.
    pub fn run_claimed(&self, job: usize, at: DateTime<Utc>, lease: Lease) -> bool {
        self.host
            .upgrade()
            .is_some_and(|host| host.run_claimed(job, at, lease))
    }

    /// Mirrors the cluster's pause flag of a job into this host's view
    /// ([`JobStatus::paused`](crate::JobStatus::paused)).
    pub fn set_paused(&self, job: usize, paused: bool) {
        if let Some(host) = self.host.upgrade() {
            host.set_paused(job, paused);
        }
    }

    /// Whether the host still exists: a host dropped without a stop
    /// leaves its leases to run out, and the coordinator stops renewing
    /// them.
    pub fn is_alive(&self) -> bool {
        self.host.strong_count() > 0
    }

    /// The host's clock, uncorrected.
    pub fn own_clock(&self) -> Option<DateTime<Utc>> {
        self.host.upgrade().map(|host| host.own_clock())
    }

    /// Makes the host follow the cluster's clock: `offset` is the cluster's
    /// time minus the host's own clock, and is added to every reading of
    /// the wall clock that schedules ticks. A coordinator measures it at
    /// start (before the scheduler computes its first instants) and may
    /// refine it later; the scheduler takes a later change as a step of
    /// the wall clock.
    pub fn set_clock_offset(&self, offset: chrono::TimeDelta) {
        if let Some(host) = self.host.upgrade() {
            host.set_clock_offset(offset);
        }
    }

    /// The host's stop token: cancelled when the host begins to stop.
    pub fn stop_token(&self) -> CancellationToken {
        super::stop_token_of(&self.host)
    }
}

/// The fencing number of the run's lease: grows with every claim of the
/// job across the cluster. Pass it along with the run's external writes,
/// and have the other side reject a number lower than the highest it has
/// seen: a run whose instance was paused past its lease then cannot
/// overwrite the work of the newer run that took its place.
///
/// Only a job of a host with a cluster has one; `build()` rejects a job that
/// takes it on a host without.
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
/// use hosted::cluster::Fence;
///
/// #[every("1m")]
/// async fn export(Fence(fence): Fence) {
///     // UPDATE exports SET ..., fence = $1 WHERE fence < $1
///     tracing::info!(fence, "exporting");
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(pub i64);
