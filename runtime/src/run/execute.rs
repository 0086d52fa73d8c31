//! One run, whatever started it: a due tick of this host's, a tick a
//! cluster granted, a background service's start, or a durable item. Its
//! span, its [`Run`] and [`RunContext`], its scoped values, panic capture,
//! the outcome's counters and history, and a claimed tick's completion are
//! here, once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::base::kind::JobKind;
use crate::base::outcome::{panic_message, Outcome};
use crate::model::context::{Run, RunContext};
use crate::model::job::JobDef;
use crate::model::scope::{self, ScopeDef};
use crate::model::shared::HostShared;
use crate::seams::cluster::{Completion, Lease};
use crate::seams::work::WorkItem;

/// What a run was given beside its job.
pub(crate) enum Grant {
    /// Nothing: a tick of this host's own, a trigger, a service.
    Own,
    /// A cluster's lease on the tick (or on a singleton service): the run's
    /// token is the lease's, and its completion is recorded with it.
    Lease(Lease),
    /// A durable item, cut off after `timeout`: the run's token is the
    /// item's.
    Item {
        item: WorkItem,
        timeout: Option<Duration>,
    },
}

impl Grant {
    fn lease(&self) -> Option<&Lease> {
        match self {
            Grant::Lease(lease) => Some(lease),
            _ => None,
        }
    }

    fn item(&self) -> Option<&WorkItem> {
        match self {
            Grant::Item { item, .. } => Some(item),
            _ => None,
        }
    }
}

/// Which run, when it was due, and when it was taken up.
#[derive(Clone, Copy)]
pub(crate) struct This {
    pub(crate) number: u64,
    pub(crate) scheduled: DateTime<Utc>,
    pub(crate) began: Instant,
    /// How long after `scheduled` it began (for its history).
    pub(crate) late: Duration,
}

/// Numbers a run of `job` as started; the caller has counted it as
/// running.
pub(crate) fn number(job: &JobDef) -> u64 {
    job.stats.started.fetch_add(1, Ordering::Relaxed) + 1
}

/// One run, from building its arguments to recording its outcome (and, for
/// a claimed tick, its completion); returns the outcome and how long the
/// run took since `this.began`. The caller has counted it as started and
/// running.
pub(crate) async fn execute(
    host: Arc<HostShared>,
    job: Arc<JobDef>,
    this: This,
    grant: Grant,
) -> (Outcome, Duration) {
    let This {
        number,
        scheduled,
        began,
        late,
    } = this;
    host.record_run(&job.name, number, scheduled);
    let span = match (&grant, job.kind) {
        (Grant::Item { item, .. }, _) => tracing::info_span!(
            "item",
            queue = %item.queue(),
            handler = %job.name,
            item = item.id(),
            attempt = item.attempt(),
        ),
        // A service runs once per start: its lines carry its name, and the
        // restart they belong to once it has been restarted.
        (_, JobKind::Service) if number > 1 => {
            tracing::info_span!("service", name = %job.name, restart = number - 1)
        }
        (_, JobKind::Service) => tracing::info_span!("service", name = %job.name),
        _ => tracing::info_span!(
            "run",
            job = %job.name,
            kind = %job.kind,
            run = number,
            scheduled = %scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    };
    // The lines of the run name the job through its span; a line outside
    // one (the span filtered out) names it itself.
    let unnamed = span.is_disabled();
    let run = Run {
        job: job.clone(),
        number,
        scheduled,
    };
    let work = async {
        let mut outcome = match &grant {
            Grant::Item {
                timeout: Some(limit),
                ..
            } => {
                // Boxed: a timer is large, and every scheduled run's future
                // would carry its size; an item already costs round trips.
                Box::pin(tokio::time::timeout(
                    *limit,
                    run_body(&host, &job, run, grant.lease(), grant.item()),
                ))
                .await
                .unwrap_or_else(|_| Outcome::Failed(format!("timed out after {limit:?}")))
            }
            _ if job.scoped.is_empty() => {
                let cx = RunContext {
                    run,
                    host: &host,
                    scope: None,
                    lease: grant.lease(),
                    item: grant.item(),
                };
                body(&job, &cx).await
            }
            // Boxed: it holds much more state than a plain run, and plain
            // runs should not carry its size.
            _ => Box::pin(scoped_body(&host, &job, run, grant.lease(), grant.item())).await,
        };
        if outcome == Outcome::Cancelled {
            outcome = cancelled_or_failed(&host, &grant);
        }
        let took = began.elapsed();
        finish(
            &host,
            &job,
            (number, scheduled, late),
            &outcome,
            took,
            unnamed,
        );
        if let Grant::Lease(lease) = grant {
            complete(&host, &job, lease, &outcome).await;
        }
        (outcome, took)
    };
    // Entering and leaving a span costs even when no subscriber wants it.
    if span.is_disabled() {
        work.await
    } else {
        work.instrument(span).await
    }
}

/// A run's body with its scoped values, if it takes any, as one future:
/// what a timeout wraps (a durable item's). `execute` writes the same two
/// branches inline for every other run, so that a scheduled run's future
/// does not carry this one's state beside its own.
async fn run_body(
    host: &Arc<HostShared>,
    job: &JobDef,
    run: Run,
    lease: Option<&Lease>,
    item: Option<&WorkItem>,
) -> Outcome {
    if job.scoped.is_empty() {
        let cx = RunContext {
            run,
            host,
            scope: None,
            lease,
            item,
        };
        body(job, &cx).await
    } else {
        scoped_body(host, job, run, lease, item).await
    }
}

/// A run that returned `Cancelled`: cancelled if its token was, failed
/// otherwise (the body said it was cancelled when it was not).
fn cancelled_or_failed(host: &HostShared, grant: &Grant) -> Outcome {
    match grant {
        Grant::Item { item, .. } if !item.token().is_cancelled() => {
            Outcome::Failed("returned `Cancelled`, but the item was not cancelled".to_owned())
        }
        Grant::Item { .. } => Outcome::Cancelled,
        Grant::Lease(lease) if lease.token.is_cancelled() => Outcome::Cancelled,
        _ if host.is_stopping() => Outcome::Cancelled,
        _ => Outcome::Failed("returned `Cancelled`, but the host is not stopping".to_owned()),
    }
}

/// Records a claimed tick's end with the coordinator.
async fn complete(host: &HostShared, job: &JobDef, lease: Lease, outcome: &Outcome) {
    let Some(coordinator) = &host.coordinator else {
        return;
    };
    let fence = lease.fence;
    match coordinator
        .complete(job.index as usize, lease, outcome)
        .await
    {
        Completion::Recorded => {}
        Completion::Stale => {
            job.count_cluster(|c| &c.stale);
            tracing::warn!(job = %job.name, fence, "the run's lease had run out before it finished: its completion was rejected (another instance may own the tick now)");
        }
        Completion::Failed => {
            tracing::warn!(job = %job.name, fence, "could not record the run's completion; its lease runs out on its own");
        }
    }
}

/// Runs one work item with its queued handler: counted, logged and traced
/// like a run (in a span `item` with the queue, the handler, the item's id
/// and its attempt), cut off after `timeout`, and dropped as
/// [`Outcome::Aborted`] at the shutdown deadline, so that its durable queue
/// can release the item.
pub(crate) async fn run_item(
    host: Arc<HostShared>,
    job: Arc<JobDef>,
    item: WorkItem,
    timeout: Option<Duration>,
) -> Outcome {
    job.stats.running.fetch_add(1, Ordering::AcqRel);
    let scheduled = item.scheduled();
    let this = This {
        number: number(&job),
        scheduled,
        began: Instant::now(),
        late: (host.wall() - scheduled).to_std().unwrap_or_default(),
    };
    let run = execute(
        host.clone(),
        job.clone(),
        this,
        Grant::Item { item, timeout },
    );
    killable(host, job, this, run).await.0
}

/// A run in a task of its own: dropped, and recorded as aborted, when the
/// shutdown deadline passes first. (Runs that finish on their first poll
/// never get here, and never pay for the kill token's registration.)
pub(crate) async fn killable(
    host: Arc<HostShared>,
    job: Arc<JobDef>,
    this: This,
    run: impl Future<Output = (Outcome, Duration)>,
) -> (Outcome, Duration) {
    tokio::select! {
        biased;
        done = run => done,
        () = host.kill.cancelled() => {
            job.stats.aborted.store(true, Ordering::Release);
            let took = this.began.elapsed();
            finish(&host, &job, (this.number, this.scheduled, this.late), &Outcome::Aborted, took, true);
            (Outcome::Aborted, took)
        }
    }
}

/// A run whose arguments include scoped values: opens them, runs the body,
/// closes them with its outcome.
async fn scoped_body(
    host: &Arc<HostShared>,
    job: &JobDef,
    run: Run,
    lease: Option<&Lease>,
    item: Option<&WorkItem>,
) -> Outcome {
    let defs: Vec<&ScopeDef> = job.scoped.iter().map(|&i| &host.scopes[i]).collect();
    let making = RunContext {
        run: run.clone(),
        host,
        scope: None,
        lease,
        item,
    };
    let scope_map = match scope::open(&defs, &making).await {
        Ok(scope_map) => scope_map,
        Err(failure) => return failure,
    };
    let cx = RunContext {
        run,
        host,
        scope: Some(&scope_map),
        lease,
        item,
    };
    let outcome = body(job, &cx).await;
    drop(cx);
    scope::close(&defs, scope_map, outcome, &job.name).await
}

/// Builds the arguments and runs the job's body, catching a panic.
async fn body(job: &JobDef, cx: &RunContext<'_>) -> Outcome {
    // Building the arguments and calling a closure run user code too.
    let called = std::panic::catch_unwind(AssertUnwindSafe(|| job.invoke.call(cx)));
    match called {
        Err(panic) => Outcome::Panicked(panic_message(&*panic)),
        Ok(Err(error)) => Outcome::Failed(format!("could not build an argument: {error}")),
        Ok(Ok(body)) => AssertUnwindSafe(body)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic))),
    }
}

/// Counts and logs a run's end; `unnamed`: the line is not inside the
/// run's span, so it names the job itself.
fn finish(
    host: &HostShared,
    job: &JobDef,
    (number, scheduled, late): (u64, DateTime<Utc>, Duration),
    outcome: &Outcome,
    took: Duration,
    unnamed: bool,
) {
    let stats = &job.stats;
    let service = job.kind == JobKind::Service;
    // `None` records no field at all.
    let name = unnamed.then_some(&*job.name);
    match outcome {
        Outcome::Succeeded => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            if service {
                tracing::info!(job = name, ?took, "service finished");
            } else {
                tracing::debug!(job = name, ?took, "run succeeded");
            }
        }
        Outcome::Cancelled => {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(job = name, ?took, "cancelled by the host's stop");
        }
        Outcome::Failed(error) | Outcome::Panicked(error) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            if !service {
                let what = if matches!(outcome, Outcome::Panicked(_)) {
                    "panicked"
                } else {
                    "failed"
                };
                tracing::error!(job = name, error = %error, ?took, "run {what}");
            }
        }
        Outcome::Aborted => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = name, ?took, "aborted at the shutdown deadline");
        }
        // Only queue items end without running; a job's run always ran.
        Outcome::NotRun => {}
    }
    #[cfg(feature = "metrics")]
    crate::observe::telemetry::run_ended(host, job.index as usize, took, late);
    stats.set_last_run(
        &host.history,
        job.index as usize,
        number,
        scheduled,
        late,
        took,
        outcome,
    );
    stats.running.fetch_sub(1, Ordering::AcqRel);
}
