//! One run of a job: the overlap check, building the arguments, the spawned
//! task with its tracing span, panic capture, counters, and what a failure
//! means (logged for scheduled jobs, fatal for services).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::extract::{Outcome, Run, RunContext};
use crate::lifecycle::HostShared;
use crate::registry::{Invoke, JobKind, Origin, Overlap};
use crate::schedule::Schedule;

/// A job as the running host holds it.
pub(crate) struct JobDef {
    pub(crate) name: Arc<str>,
    pub(crate) kind: JobKind,
    pub(crate) origin: Origin,
    pub(crate) schedule: Schedule,
    pub(crate) overlap: Overlap,
    pub(crate) invoke: Invoke,
    pub(crate) stats: JobStats,
}

/// Counters of one job, updated without locks.
#[derive(Default)]
pub(crate) struct JobStats {
    pub(crate) started: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// Ticks skipped since the last run started: logged once, when the next
    /// run starts.
    pub(crate) skipped_in_overrun: AtomicU64,
    pub(crate) running: AtomicU32,
}

/// What [`dispatch`] did with a due tick.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    Started,
    Skipped,
}

/// Starts a run of `job` scheduled for `scheduled`, unless the overlap
/// policy says to skip it.
pub(crate) fn dispatch(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    scheduled: DateTime<Utc>,
) -> Dispatch {
    let stats = &job.stats;
    if job.overlap == Overlap::Skip && stats.running.load(Ordering::Acquire) > 0 {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        stats.skipped_in_overrun.fetch_add(1, Ordering::Relaxed);
        return Dispatch::Skipped;
    }
    stats.running.fetch_add(1, Ordering::AcqRel);
    let number = stats.started.fetch_add(1, Ordering::Relaxed) + 1;
    let skipped = stats.skipped_in_overrun.swap(0, Ordering::Relaxed);
    if skipped > 0 {
        tracing::debug!(
            job = %job.name,
            skipped,
            "skipped {skipped} tick(s) while the previous run was still going"
        );
    }
    host.record_run(&job.name, number, scheduled);

    let span = tracing::info_span!(
        "run",
        job = %job.name,
        kind = %job.kind,
        run = number,
        scheduled = %scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let cx = RunContext {
        run: Run {
            job: job.name.clone(),
            kind: job.kind,
            number,
            scheduled,
        },
        host,
    };
    let body = span.in_scope(|| job.invoke.call(&cx));

    let host = host.clone();
    let job = job.clone();
    let tracker = host.tracker.clone();
    tracker.spawn(
        async move {
            let started = Instant::now();
            let outcome = match body {
                Err(error) => Outcome::Failed(format!("could not build an argument: {error}")),
                Ok(body) => tokio::select! {
                    biased;
                    () = host.kill.cancelled() => Outcome::Aborted,
                    result = AssertUnwindSafe(body).catch_unwind() => {
                        result.unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic)))
                    }
                },
            };
            finish(&host, &job, outcome, started.elapsed());
        }
        .instrument(span),
    );
    Dispatch::Started
}

fn finish(host: &HostShared, job: &JobDef, outcome: Outcome, took: Duration) {
    let stats = &job.stats;
    match &outcome {
        Outcome::Succeeded => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            if job.kind == JobKind::Service {
                tracing::info!(job = %job.name, ?took, "service finished");
            } else {
                tracing::debug!(job = %job.name, ?took, "run succeeded");
            }
        }
        Outcome::Failed(error) | Outcome::Panicked(error) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            let what = if matches!(outcome, Outcome::Panicked(_)) {
                "panicked"
            } else {
                "failed"
            };
            if job.kind == JobKind::Service {
                tracing::error!(job = %job.name, error = %error, "service {what}; stopping the host");
                host.fail(&job.name, &outcome);
            } else {
                tracing::error!(job = %job.name, error = %error, ?took, "run {what}");
            }
        }
        Outcome::Aborted => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = %job.name, ?took, "aborted at the shutdown deadline");
        }
    }
    stats.running.fetch_sub(1, Ordering::AcqRel);
}

/// The text of a panic's payload: its message when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
