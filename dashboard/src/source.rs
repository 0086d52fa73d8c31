//! The one interface the dashboard reads: what a host (or a cluster of
//! them) runs, and the actions an operator takes on it. [`HostHandle`]
//! implements it for a host on its own; with the feature `postgres`,
//! `ClusterSource` implements it for a `hosted-postgres` cluster and its
//! durable queue, beside the host's own services and queues.
//!
//! The views are the dashboard's own types, not the runtime's, so that
//! either side can grow a field without the other following.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use hosted::{HandleError, HostHandle};

/// A boxed future, as [`Source`] returns them: one per page, where an
/// allocation is noise beside rendering it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a source could not do: a database out of reach, a query over its
/// time, an action refused. Shown to the operator as it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    message: String,
    refused: bool,
}

impl SourceError {
    /// The source failed (a database error, a timeout): `503`.
    pub fn failed(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            refused: false,
        }
    }

    /// The action was refused as it stands (no such job, already running):
    /// `409`.
    pub fn refused(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            refused: true,
        }
    }

    /// Whether the action was refused rather than failed.
    pub fn is_refused(&self) -> bool {
        self.refused
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

impl From<HandleError> for SourceError {
    fn from(error: HandleError) -> SourceError {
        SourceError::refused(error.to_string())
    }
}

/// Which jobs a page lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Part of the name, matched without regard to ASCII case; empty for
    /// every job.
    pub search: String,
    /// How many matches to pass over.
    pub offset: usize,
    /// How many to list.
    pub limit: usize,
}

/// A page of jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobPage {
    /// Matches on every page.
    pub total: usize,
    /// This page's.
    pub jobs: Vec<JobView>,
}

/// A scheduled job (or a service or queued handler, which the jobs page
/// lists beside them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// `every`, `cron`, `service` or `queued`.
    pub kind: &'static str,
    /// The schedule as written.
    pub schedule: String,
    /// The schedule in words.
    pub description: String,
    /// A cron line's time zone.
    pub time_zone: Option<String>,
    /// When it is due next.
    pub next_run: Option<DateTime<Utc>>,
    /// Its last finished run.
    pub last_run: Option<RunView>,
    /// Whether configuration enabled it.
    pub enabled: bool,
    /// Whether it is paused.
    pub paused: bool,
    /// Runs started (on this instance).
    pub runs: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// Failed, panicked or aborted.
    pub failed: u64,
    /// Ticks skipped.
    pub skipped: u64,
    /// Runs going now.
    pub running: u32,
    /// Where it was defined.
    pub defined_at: String,
    /// When it is due next, up to five times.
    pub next: Vec<NextFire>,
}

impl JobView {
    /// Whether the dashboard offers trigger, pause and resume.
    pub fn is_scheduled(&self) -> bool {
        matches!(self.kind, "every" | "cron")
    }
}

/// One finished (or, in a cluster, running) run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunView {
    /// Its number on its instance, where known.
    pub number: Option<u64>,
    /// When it was due.
    pub scheduled: Option<DateTime<Utc>>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it ran; `None` while it runs.
    pub took: Option<Duration>,
    /// `succeeded`, `failed`, `panicked`, `aborted`, `cancelled`,
    /// `not run`, `running` or `lost`.
    pub outcome: String,
    /// The error of a failed run.
    pub error: Option<String>,
    /// The instance that ran it, with a cluster.
    pub instance: Option<String>,
}

impl RunView {
    /// Whether it ended badly.
    pub fn is_failure(&self) -> bool {
        matches!(
            self.outcome.as_str(),
            "failed" | "panicked" | "aborted" | "lost"
        )
    }
}

/// A job with its history and its next fire times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDetail {
    /// The job.
    pub job: JobView,
    /// Its latest runs, newest first.
    pub runs: Vec<RunView>,
}

/// One instant a job is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextFire {
    /// In the job's zone.
    pub local: DateTime<FixedOffset>,
    /// Whether the zone's offset changes before it (daylight saving time).
    pub offset_changes: bool,
}

/// The jobs counted by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `every` and `cron` jobs.
    pub scheduled: usize,
    /// Background services.
    pub services: usize,
    /// Jobs with a run going now.
    pub running: usize,
    /// Paused jobs.
    pub paused: usize,
    /// Jobs whose last run failed.
    pub failing: usize,
}

/// A service: a background fn (`#[hosted_service]`) or a lifecycle
/// service (a `HostedService`, such as a web server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// `background` or `lifecycle`.
    pub kind: &'static str,
    /// `running`, `restarting`, `failed`, `stopped`, `not started`,
    /// `starting` or `stopping`.
    pub state: &'static str,
    /// Times it was restarted after a failure.
    pub restarts: u64,
    /// The error of its last failure.
    pub last_error: Option<String>,
    /// Where it was defined.
    pub defined_at: String,
}

/// A queue: an in-process [`TaskQueue`](hosted::TaskQueue) or a durable
/// one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueView {
    /// Its name.
    pub name: String,
    /// Whether it lives in the database.
    pub durable: bool,
    /// Items waiting (due, for a durable queue).
    pub depth: u64,
    /// Items running.
    pub in_flight: u64,
    /// Durable: items waiting for a later instant.
    pub scheduled: u64,
    /// Durable: items waiting after a failed attempt.
    pub retrying: u64,
    /// Durable: dead letters kept.
    pub dead: u64,
    /// How long the oldest waiting (due) item has waited; `None` where
    /// the source does not know.
    pub lag: Option<Duration>,
    /// Items finished (in-process queues count them; durable ones keep
    /// them in their `finished` table).
    pub completed: Option<u64>,
    /// Items that failed.
    pub failed: Option<u64>,
    /// Items refused or dropped at shutdown (in-process queues).
    pub refused: Option<u64>,
    /// Whether the durable counts are estimates from a sample of a large
    /// table.
    pub estimated: bool,
}

/// An instance of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceView {
    /// Its id.
    pub id: String,
    /// The machine it runs on.
    pub host_name: String,
    /// Its process id.
    pub pid: i32,
    /// When it joined.
    pub started: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat: Option<DateTime<Utc>>,
    /// When it stopped cleanly.
    pub stopped: Option<DateTime<Utc>>,
    /// Whether it is the instance serving this page.
    pub this: bool,
}

/// Which durable items a page lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemQuery {
    /// Of this queue only.
    pub queue: Option<String>,
    /// Of this handler only.
    pub handler: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// A durable work item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemView {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its handler.
    pub handler: String,
    /// Its payload, as JSON.
    pub payload: String,
    /// Its priority.
    pub priority: i16,
    /// `waiting`, `running`, `succeeded`, `dead`, `cancelled` or
    /// `discarded`.
    pub state: String,
    /// Attempts so far.
    pub attempt: u32,
    /// Attempts it may have.
    pub max_attempts: u32,
    /// Its idempotency key.
    pub key: Option<String>,
    /// When it was enqueued.
    pub enqueued: DateTime<Utc>,
    /// When it is (or was last) due.
    pub run_at: DateTime<Utc>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its failed attempts, as JSON (`[{attempt, at, error, instance}]`).
    pub attempts: String,
}

/// Durable items an action applies to: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemSelector {
    /// The item with this id.
    pub id: Option<i64>,
    /// Items of this queue.
    pub queue: Option<String>,
    /// Items of this handler.
    pub handler: Option<String>,
}

impl fmt::Display for ItemSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(id) = self.id {
            parts.push(format!("item {id}"));
        }
        if let Some(queue) = &self.queue {
            parts.push(format!("queue {queue}"));
        }
        if let Some(handler) = &self.handler {
            parts.push(format!("handler {handler}"));
        }
        if parts.is_empty() {
            f.write_str("every dead letter")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// What an operator does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run a job now.
    Trigger(String),
    /// Pause a job.
    Pause(String),
    /// Resume a paused job.
    Resume(String),
    /// Run dead letters again.
    Retry(ItemSelector),
    /// Discard dead letters.
    Discard(ItemSelector),
}

impl Action {
    /// `trigger`, `pause`, `resume`, `retry` or `discard`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Trigger(_) => "trigger",
            Action::Pause(_) => "pause",
            Action::Resume(_) => "resume",
            Action::Retry(_) => "retry",
            Action::Discard(_) => "discard",
        }
    }

    /// What it acts on: a job's name, or the items selected.
    pub fn target(&self) -> String {
        match self {
            Action::Trigger(job) | Action::Pause(job) | Action::Resume(job) => job.clone(),
            Action::Retry(items) | Action::Discard(items) => items.to_string(),
        }
    }
}

/// An action taken through the dashboard, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who, as the authorizer named them.
    pub who: String,
    /// `trigger`, `pause`, `resume`, `retry` or `discard`.
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// What came of it: `ok: …` or the error.
    pub result: String,
}

/// What the dashboard shows and acts on. Implemented by [`HostHandle`] for
/// a host on its own and, with the feature `postgres`, by
/// `ClusterSource` for a cluster; a test or an application may implement
/// it for anything else that runs jobs.
///
/// Each method is called per request; an implementation that reads a
/// database bounds what it reads (limits, timeouts, cached counts).
pub trait Source: Send + Sync + 'static {
    /// Called with the host's handle on each request that carries one (a
    /// router served by [`WebServer`](hosted::web::WebServer) as a service
    /// of the host): a source built before its host keeps it.
    fn attach(&self, host: &HostHandle) {
        let _ = host;
    }

    /// The jobs counted by state.
    fn summary(&self) -> BoxFuture<'_, Result<Summary, SourceError>>;

    /// A page of jobs, each with its next five fire times.
    fn jobs<'a>(&'a self, query: &'a JobQuery) -> BoxFuture<'a, Result<JobPage, SourceError>>;

    /// One job, with up to `runs` of its latest runs; `None` if there is
    /// no such job.
    fn job<'a>(
        &'a self,
        name: &'a str,
        runs: usize,
    ) -> BoxFuture<'a, Result<Option<JobDetail>, SourceError>>;

    /// Jobs whose last run failed, newest first, at most `limit`.
    fn failures(&self, limit: usize) -> BoxFuture<'_, Result<Vec<(String, RunView)>, SourceError>>;

    /// The background services.
    fn services(&self) -> BoxFuture<'_, Result<Vec<ServiceView>, SourceError>>;

    /// The queues, in-process and durable.
    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueView>, SourceError>>;

    /// The cluster's instances; empty for a host on its own.
    fn instances(&self) -> BoxFuture<'_, Result<Vec<InstanceView>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether durable items exist to list (the queue pages then offer
    /// them).
    fn has_items(&self) -> bool {
        false
    }

    /// Dead letters, newest first.
    fn dead_letters<'a>(
        &'a self,
        query: &'a ItemQuery,
    ) -> BoxFuture<'a, Result<Vec<ItemView>, SourceError>> {
        let _ = query;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// One durable item.
    fn item(&self, id: i64) -> BoxFuture<'_, Result<Option<ItemView>, SourceError>> {
        let _ = id;
        Box::pin(async { Ok(None) })
    }

    /// Carries out `action`; returns what came of it, in words.
    fn act<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, SourceError>>;

    /// Keeps an action in a durable audit log (a cluster's `audit` table);
    /// `Ok(false)` if this source keeps none, and the dashboard's own
    /// in-memory log is all there is.
    fn record<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<bool, SourceError>> {
        let _ = entry;
        Box::pin(async { Ok(false) })
    }

    /// The durable audit log, newest first; `None` if this source keeps
    /// none.
    fn audit_log(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Option<Vec<AuditEntry>>, SourceError>> {
        let _ = limit;
        Box::pin(async { Ok(None) })
    }
}
