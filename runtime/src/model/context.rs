//! What one run knows: the [`RunContext`] its arguments are built from, and
//! [`Run`], the facts about it a job can take.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::base::kind::JobKind;
use crate::model::job::JobDef;
use crate::model::scope::ScopeMap;
use crate::model::shared::HostShared;
use crate::seams::cluster::Lease;
use crate::seams::work::WorkItem;

/// Everything a job's arguments can be built from, for one run.
///
/// Handed to [`FromRun::from_run`](crate::FromRun::from_run); implement that trait to add an argument
/// type of your own.
pub struct RunContext<'a> {
    pub(crate) run: Run,
    pub(crate) host: &'a Arc<HostShared>,
    /// The run's scoped values; `None` while they are being made.
    pub(crate) scope: Option<&'a ScopeMap>,
    /// The run's lease, when a cluster granted it.
    pub(crate) lease: Option<&'a Lease>,
    /// The work item a queued handler runs.
    pub(crate) item: Option<&'a WorkItem>,
}

impl RunContext<'_> {
    /// Facts about this run.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The host's stop token: cancelled when the host begins to stop.
    ///
    /// A run under a cluster's lease gets the lease's token instead, which
    /// is also cancelled when the lease is lost.
    ///
    /// A queued handler's run gets its item's token: cancelled as the host
    /// stops, when the item's lease is lost, or when the item is cancelled.
    pub fn stop_token(&self) -> &CancellationToken {
        match (self.item, self.lease) {
            (Some(item), _) => item.token(),
            (None, Some(lease)) => &lease.token,
            (None, None) => &self.host.stop,
        }
    }

    /// The work item this run handles; `None` unless the job is a queued
    /// handler.
    pub fn item(&self) -> Option<&WorkItem> {
        self.item
    }

    /// A clone of the shared value of type `T` registered with
    /// [`HostBuilder::state`](crate::HostBuilder::state), if any.
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.host.state.get::<T>()
    }
}

/// Facts about one run of a job: its name, its kind, its run number and the
/// time it was scheduled for.
///
/// # Examples
///
/// ```
/// use hosted::prelude::*;
///
/// #[every("5s")]
/// async fn heartbeat(run: Run) {
///     tracing::info!(job = run.job(), n = run.number(), at = %run.scheduled(), "alive");
/// }
/// ```
#[derive(Clone)]
pub struct Run {
    /// The job itself, not a copy of its name: a run then touches no
    /// memory of the job's beyond what the scheduler already has in cache.
    pub(crate) job: Arc<JobDef>,
    pub(crate) number: u64,
    pub(crate) scheduled: DateTime<Utc>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("job", &self.job())
            .field("kind", &self.kind())
            .field("number", &self.number)
            .field("scheduled", &self.scheduled)
            .finish()
    }
}

impl Run {
    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job.name
    }

    /// Whether the job is an `every`, a `cron` job or a service.
    pub fn kind(&self) -> JobKind {
        self.job.kind
    }

    /// The run's number: 1 for the job's first run, counting every run the
    /// host started (skipped ticks are not runs).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The wall-clock time this run was due. For a cron job this is the
    /// exact fire time; for an `every` job, the grid tick seen on the host's
    /// wall clock; for a service, the time the host started it.
    pub fn scheduled(&self) -> DateTime<Utc> {
        self.scheduled
    }
}
