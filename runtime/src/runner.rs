//! Running jobs: one run of a scheduled job (the overlap check, building the
//! arguments, the spawned task with its tracing span, panic capture,
//! counters), and the supervision of background services by their
//! [`FailurePolicy`].

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::extract::{Outcome, Run, RunContext};
use crate::lifecycle::HostShared;
use crate::registry::{FailurePolicy, Invoke, JobKind, Origin, Overlap};
use crate::schedule::{seed_of, Schedule};
use crate::scope::{self, ScopeDef};
use crate::service::Phase;

/// A job as the running host holds it.
pub(crate) struct JobDef {
    pub(crate) name: Arc<str>,
    /// `false`: listed, never run (configuration said `enabled = false`).
    pub(crate) enabled: bool,
    pub(crate) kind: JobKind,
    pub(crate) origin: Origin,
    pub(crate) schedule: Schedule,
    pub(crate) overlap: Overlap,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) invoke: Invoke,
    /// The host's scope factories this job's arguments need, by index, in
    /// the order the arguments ask for them.
    pub(crate) scoped: Vec<usize>,
    pub(crate) stats: JobStats,
}

/// Counters and recent history of one job; counters are updated without
/// locks.
pub(crate) struct JobStats {
    pub(crate) started: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// Ticks skipped since the last run started: logged once, when the next
    /// run starts.
    pub(crate) skipped_in_overrun: AtomicU64,
    pub(crate) running: AtomicU32,
    pub(crate) paused: AtomicBool,
    /// The next fire as Unix milliseconds, `i64::MIN` for none.
    pub(crate) next_run: AtomicI64,
    pub(crate) last_run: Mutex<Option<LastRun>>,
}

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            started: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            skipped_in_overrun: AtomicU64::new(0),
            running: AtomicU32::new(0),
            paused: AtomicBool::new(false),
            next_run: AtomicI64::new(i64::MIN),
            last_run: Mutex::new(None),
        }
    }
}

impl JobStats {
    pub(crate) fn set_next_run(&self, next: Option<DateTime<Utc>>) {
        let millis = next.map_or(i64::MIN, |t| t.timestamp_millis());
        self.next_run.store(millis, Ordering::Relaxed);
    }

    pub(crate) fn next_run(&self) -> Option<DateTime<Utc>> {
        match self.next_run.load(Ordering::Relaxed) {
            i64::MIN => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    pub(crate) fn last_run(&self) -> Option<LastRun> {
        self.last_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The last finished run of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastRun {
    /// The run's number.
    pub number: u64,
    /// When it was due, on the wall clock.
    pub scheduled: DateTime<Utc>,
    /// How long it ran.
    pub took: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a due tick or a trigger started no run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotStarted {
    /// The previous run is still going and the job does not overlap.
    Running,
    /// The host is stopping.
    Stopping,
}

/// Starts a run of a scheduled job due at `scheduled`, unless its overlap
/// policy or the host's stop says no. Returns the run's number. A tick
/// skipped for overlap is counted unless the run was asked for by hand.
pub(crate) fn dispatch(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    scheduled: DateTime<Utc>,
    by_hand: bool,
) -> Result<u64, NotStarted> {
    let stats = &job.stats;
    if host.stop.is_cancelled() {
        return Err(NotStarted::Stopping);
    }
    let claimed = match job.overlap {
        Overlap::Skip => stats
            .running
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok(),
        Overlap::Allow => {
            stats.running.fetch_add(1, Ordering::AcqRel);
            true
        }
    };
    if !claimed {
        if !by_hand {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            stats.skipped_in_overrun.fetch_add(1, Ordering::Relaxed);
        }
        return Err(NotStarted::Running);
    }
    let number = stats.started.fetch_add(1, Ordering::Relaxed) + 1;
    let skipped = stats.skipped_in_overrun.swap(0, Ordering::Relaxed);
    if skipped > 0 {
        tracing::debug!(
            job = %job.name,
            skipped,
            "skipped {skipped} tick(s) while the previous run was still going"
        );
    }
    let run = run_once(host.clone(), job.clone(), number, scheduled);
    host.tracker.spawn(run);
    Ok(number)
}

/// Runs a background service (`#[hosted_service]` on an `async fn`) and
/// applies its failure policy.
pub(crate) async fn supervise(host: Arc<HostShared>, job: Arc<JobDef>) {
    let mut failures_in_row = 0_u32;
    let seed = seed_of(&job.name);
    loop {
        job.stats.running.fetch_add(1, Ordering::AcqRel);
        let number = job.stats.started.fetch_add(1, Ordering::Relaxed) + 1;
        let began = Instant::now();
        let outcome = run_once(host.clone(), job.clone(), number, host.clock.wall()).await;
        let (Outcome::Failed(_) | Outcome::Panicked(_)) = &outcome else {
            return;
        };
        match job.on_failure {
            FailurePolicy::Stop => {
                tracing::error!(job = %job.name, error = %outcome, "service failed; stopping the host");
                host.fail(&job.name, Phase::Run, outcome);
                return;
            }
            FailurePolicy::Ignore => {
                tracing::error!(job = %job.name, error = %outcome, "service failed; carrying on without it (on_failure = \"ignore\")");
                return;
            }
            FailurePolicy::Restart(backoff) => {
                if began.elapsed() >= backoff.max {
                    failures_in_row = 0;
                }
                failures_in_row += 1;
                if failures_in_row > backoff.max_restarts {
                    tracing::error!(
                        job = %job.name,
                        error = %outcome,
                        "service failed {failures_in_row} time(s) in a row, past its budget of {} restart(s); stopping the host",
                        backoff.max_restarts
                    );
                    host.fail(&job.name, Phase::Run, outcome);
                    return;
                }
                let delay = backoff.delay(failures_in_row, seed);
                tracing::warn!(
                    job = %job.name,
                    error = %outcome,
                    ?delay,
                    "service failed; restart {failures_in_row} of {} in {delay:?}",
                    backoff.max_restarts
                );
                tokio::select! {
                    () = host.stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One run, from building its arguments to recording its outcome. The
/// caller has counted it as started and running.
async fn run_once(
    host: Arc<HostShared>,
    job: Arc<JobDef>,
    number: u64,
    scheduled: DateTime<Utc>,
) -> Outcome {
    host.record_run(&job.name, number, scheduled);
    let span = tracing::info_span!(
        "run",
        job = %job.name,
        kind = %job.kind,
        run = number,
        scheduled = %scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let run = Run {
        job: job.name.clone(),
        kind: job.kind,
        number,
        scheduled,
    };
    async {
        let started = Instant::now();
        let work = async {
            if job.scoped.is_empty() {
                let cx = RunContext {
                    run,
                    host: &host,
                    scope: None,
                };
                return body(&job, &cx).await;
            }
            let defs: Vec<&ScopeDef> = job.scoped.iter().map(|&i| &host.scopes[i]).collect();
            let making = RunContext {
                run: run.clone(),
                host: &host,
                scope: None,
            };
            let scope_map = match scope::open(&defs, &making).await {
                Ok(scope_map) => scope_map,
                Err(failure) => return failure,
            };
            let cx = RunContext {
                run,
                host: &host,
                scope: Some(&scope_map),
            };
            let outcome = body(&job, &cx).await;
            drop(cx);
            scope::close(&defs, scope_map, outcome, &job.name).await
        };
        let mut outcome = tokio::select! {
            biased;
            () = host.kill.cancelled() => Outcome::Aborted,
            outcome = work => outcome,
        };
        if outcome == Outcome::Cancelled && !host.stop.is_cancelled() {
            outcome =
                Outcome::Failed("returned `Cancelled`, but the host is not stopping".to_owned());
        }
        finish(&job, number, scheduled, &outcome, started.elapsed());
        outcome
    }
    .instrument(span)
    .await
}

/// Builds the arguments and runs the job's body, catching a panic.
async fn body(job: &JobDef, cx: &RunContext<'_>) -> Outcome {
    match job.invoke.call(cx) {
        Err(error) => Outcome::Failed(format!("could not build an argument: {error}")),
        Ok(body) => AssertUnwindSafe(body)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Outcome::Panicked(panic_message(&*panic))),
    }
}

fn finish(job: &JobDef, number: u64, scheduled: DateTime<Utc>, outcome: &Outcome, took: Duration) {
    let stats = &job.stats;
    let service = job.kind == JobKind::Service;
    match outcome {
        Outcome::Succeeded => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            if service {
                tracing::info!(job = %job.name, ?took, "service finished");
            } else {
                tracing::debug!(job = %job.name, ?took, "run succeeded");
            }
        }
        Outcome::Cancelled => {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(job = %job.name, ?took, "cancelled by the host's stop");
        }
        Outcome::Failed(error) | Outcome::Panicked(error) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            if !service {
                let what = if matches!(outcome, Outcome::Panicked(_)) {
                    "panicked"
                } else {
                    "failed"
                };
                tracing::error!(job = %job.name, error = %error, ?took, "run {what}");
            }
        }
        Outcome::Aborted => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = %job.name, ?took, "aborted at the shutdown deadline");
        }
        // Only queue items end without running; a job's run always ran.
        Outcome::NotRun => {}
    }
    *stats
        .last_run
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(LastRun {
        number,
        scheduled,
        took,
        outcome: outcome.clone(),
    });
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
