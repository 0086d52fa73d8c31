//! Running jobs: one run of a scheduled job (the overlap check, building the
//! arguments, the spawned task with its tracing span, panic capture,
//! counters), and the supervision of background services by their
//! [`FailurePolicy`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::extract::{Outcome, Run, RunContext};
use crate::lifecycle::HostShared;
use crate::registry::{FailurePolicy, Invoke, JobKind, Origin, Overlap, Registration};
use crate::schedule::{seed_of, Schedule};
use crate::scope::{self, ScopeDef};
use crate::service::Phase;

/// A job as the running host holds it.
pub(crate) struct JobDef {
    /// Not shared: a run holds the whole `JobDef`.
    pub(crate) name: Box<str>,
    /// Its place in the host's list of jobs.
    pub(crate) index: u32,
    /// `false`: listed, never run (configuration said `enabled = false`).
    pub(crate) enabled: bool,
    pub(crate) kind: JobKind,
    /// The macro's registration; `None` for a job added with
    /// `HostBuilder::job`.
    pub(crate) registration: Option<&'static Registration>,
    /// When it runs; a background fn's carries its failure policy.
    pub(crate) schedule: Schedule,
    pub(crate) overlap: Overlap,
    pub(crate) invoke: Invoke,
    /// The host's scope factories this job's arguments need, by index, in
    /// the order the arguments ask for them.
    pub(crate) scoped: Box<[usize]>,
    pub(crate) stats: JobStats,
}

impl JobDef {
    /// Where the job was defined.
    pub(crate) fn origin(&self) -> Origin {
        self.registration.map_or(Origin::Builder, Origin::Job)
    }

    /// What a failed run of a background fn does; scheduled jobs log it.
    fn on_failure(&self) -> FailurePolicy {
        match &self.schedule {
            Schedule::Service(policy) => **policy,
            Schedule::Every(_) | Schedule::Cron(_) => FailurePolicy::Stop,
        }
    }
}

/// Counters and recent history of one job; counters are updated without
/// locks.
pub(crate) struct JobStats {
    pub(crate) started: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Runs end cancelled only as the host stops: 32 bits are plenty.
    pub(crate) cancelled: AtomicU32,
    pub(crate) skipped: AtomicU64,
    /// Ticks skipped since the last run started: logged once, when the next
    /// run starts.
    pub(crate) skipped_in_overrun: AtomicU32,
    pub(crate) running: AtomicU32,
    pub(crate) paused: AtomicBool,
    /// Set once a run's first step held the scheduler too long: later runs
    /// are spawned at once (see `poll_inline`).
    pub(crate) own_task: AtomicBool,
    /// Set when a run was dropped at the shutdown deadline: the report
    /// names the job from this, not from a count the aborted tasks race to
    /// update on other threads.
    pub(crate) aborted: AtomicBool,
    /// The next fire as Unix milliseconds, `i64::MIN` for none.
    pub(crate) next_run: AtomicI64,
    /// The last finished run, kept compact: a host may hold 100,000 jobs,
    /// and a [`LastRun`] with its `Outcome` takes 72 bytes.
    last_run: Mutex<Last>,
}

/// [`LastRun`] as a job keeps it; `number == 0` before the first finishes.
#[derive(Default)]
struct Last {
    number: u64,
    scheduled_ns: i64,
    took_ns: u64,
    /// The message of `Failed` and `Panicked`; a thin pointer (8 bytes,
    /// not a `String`'s 24), as most runs succeed and most jobs keep one.
    #[allow(clippy::box_collection)]
    message: Option<Box<String>>,
    outcome: u8,
}

const SUCCEEDED: u8 = 0;
const FAILED: u8 = 1;
const PANICKED: u8 = 2;
const ABORTED: u8 = 3;
const CANCELLED: u8 = 4;
const NOT_RUN: u8 = 5;

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            started: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU32::new(0),
            skipped: AtomicU64::new(0),
            skipped_in_overrun: AtomicU32::new(0),
            running: AtomicU32::new(0),
            paused: AtomicBool::new(false),
            own_task: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            next_run: AtomicI64::new(i64::MIN),
            last_run: Mutex::new(Last::default()),
        }
    }
}

impl JobStats {
    pub(crate) fn set_next_run(&self, next: Option<DateTime<Utc>>) {
        self.set_next_run_millis(next.map_or(i64::MIN, |t| t.timestamp_millis()));
    }

    /// The next fire as Unix milliseconds.
    pub(crate) fn set_next_run_millis(&self, millis: i64) {
        self.next_run.store(millis, Ordering::Relaxed);
    }

    pub(crate) fn next_run(&self) -> Option<DateTime<Utc>> {
        match self.next_run.load(Ordering::Relaxed) {
            i64::MIN => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    pub(crate) fn last_run(&self) -> Option<LastRun> {
        let last = self.last_run.lock().unwrap_or_else(PoisonError::into_inner);
        if last.number == 0 {
            return None;
        }
        let message = || last.message.as_deref().cloned().unwrap_or_default();
        Some(LastRun {
            number: last.number,
            scheduled: DateTime::from_timestamp_nanos(last.scheduled_ns),
            took: Duration::from_nanos(last.took_ns),
            outcome: match last.outcome {
                SUCCEEDED => Outcome::Succeeded,
                FAILED => Outcome::Failed(message()),
                PANICKED => Outcome::Panicked(message()),
                ABORTED => Outcome::Aborted,
                CANCELLED => Outcome::Cancelled,
                _ => Outcome::NotRun,
            },
        })
    }

    fn set_last_run(
        &self,
        number: u64,
        scheduled: DateTime<Utc>,
        took: Duration,
        outcome: &Outcome,
    ) {
        let (code, message) = match outcome {
            Outcome::Succeeded => (SUCCEEDED, None),
            Outcome::Failed(m) => (FAILED, Some(Box::new(m.clone()))),
            Outcome::Panicked(m) => (PANICKED, Some(Box::new(m.clone()))),
            Outcome::Aborted => (ABORTED, None),
            Outcome::Cancelled => (CANCELLED, None),
            Outcome::NotRun => (NOT_RUN, None),
        };
        *self.last_run.lock().unwrap_or_else(PoisonError::into_inner) = Last {
            number,
            scheduled_ns: scheduled.timestamp_nanos_opt().unwrap_or(i64::MAX),
            took_ns: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            message,
            outcome: code,
        };
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
    cursor: &mut Instant,
) -> Result<u64, NotStarted> {
    let stats = &job.stats;
    if host.is_stopping() {
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
    // A load first: the swap would write the job's memory on every run.
    let skipped = match stats.skipped_in_overrun.load(Ordering::Relaxed) {
        0 => 0,
        _ => stats.skipped_in_overrun.swap(0, Ordering::Relaxed),
    };
    if skipped > 0 {
        tracing::debug!(
            job = %job.name,
            skipped,
            "skipped {skipped} tick(s) while the previous run was still going"
        );
    }
    // The run starts where the one before it in this batch ended: one
    // clock read a run rather than two.
    let this = This {
        number,
        scheduled,
        began: *cursor,
    };
    let run = run_once(host.clone(), job.clone(), this);
    if by_hand || stats.own_task.load(Ordering::Relaxed) {
        spawn(host, job, this, run);
    } else {
        *cursor = poll_inline(host, job, this, Box::pin(run));
    }
    Ok(number)
}

/// How long a run's first poll may hold the scheduler before the job's
/// later runs go straight to a task of their own.
const INLINE_LIMIT: Duration = Duration::from_millis(1);

/// Polls a due run once on the scheduler's own task, and spawns it only if
/// it has to wait. Most scheduled runs finish without waiting (a counter,
/// a cache refresh from memory, a channel send): those then cost no task, no
/// wake-up of another worker, and no allocation beyond their future. The
/// price is that a run's first step, up to its first `.await` that waits,
/// holds up the scheduler; a job whose first step takes longer than
/// [`INLINE_LIMIT`] is therefore spawned from its next run on, with a
/// warning.
///
/// The first poll uses a waker that does nothing: a future that returns
/// `Pending` has registered that waker, and the spawned task polls it again
/// at once, which registers the task's own (every future must allow a poll
/// it did not ask for).
fn poll_inline<F>(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    this: This,
    mut run: Pin<Box<F>>,
) -> Instant
where
    F: Future<Output = (Outcome, Duration)> + Send + 'static,
{
    let mut cx = Context::from_waker(Waker::noop());
    // `run_once` catches the body's panics; this guards the scheduler
    // against one in the runner's own code.
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(&mut cx)));
    let held = match &polled {
        Ok(Poll::Ready((_, took))) => *took,
        _ => this.began.elapsed(),
    };
    if held > INLINE_LIMIT && !job.stats.own_task.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            job = %job.name,
            ?held,
            "a run held the scheduler for {held:?} before its first await; this job's runs get a task of their own from now on (move blocking work into `tokio::task::spawn_blocking`)"
        );
    }
    match polled {
        Ok(Poll::Ready(_)) => {}
        Ok(Poll::Pending) => spawn(host, job, this, run),
        Err(panic) => {
            tracing::error!(job = %job.name, panic = %panic_message(&*panic), "the runner panicked");
        }
    }
    this.began + held
}

/// Runs a background service (`#[hosted_service]` on an `async fn`) and
/// applies its failure policy.
pub(crate) async fn supervise(host: Arc<HostShared>, job: Arc<JobDef>) {
    let mut failures_in_row = 0_u32;
    let seed = seed_of(&job.name);
    loop {
        job.stats.running.fetch_add(1, Ordering::AcqRel);
        let number = job.stats.started.fetch_add(1, Ordering::Relaxed) + 1;
        let this = This {
            number,
            scheduled: host.clock.wall(),
            began: Instant::now(),
        };
        let run = run_once(host.clone(), job.clone(), this);
        let (outcome, _) = killable(host.clone(), job.clone(), this, run).await;
        let (Outcome::Failed(_) | Outcome::Panicked(_)) = &outcome else {
            return;
        };
        match job.on_failure() {
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
                if this.began.elapsed() >= backoff.max {
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

/// One run, from building its arguments to recording its outcome; returns
/// the outcome and how long the run took since `this.began`. The caller has
/// counted it as started and running.
async fn run_once(host: Arc<HostShared>, job: Arc<JobDef>, this: This) -> (Outcome, Duration) {
    let This {
        number,
        scheduled,
        began: started,
    } = this;
    host.record_run(&job.name, number, scheduled);
    let span = tracing::info_span!(
        "run",
        job = %job.name,
        kind = %job.kind,
        run = number,
        scheduled = %scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let run = Run {
        job: job.clone(),
        number,
        scheduled,
    };
    let work = async {
        let mut outcome = if job.scoped.is_empty() {
            let cx = RunContext {
                run,
                host: &host,
                scope: None,
            };
            body(&job, &cx).await
        } else {
            // Boxed: it holds much more state than a plain run, and
            // plain runs should not carry its size.
            Box::pin(scoped_body(&host, &job, run)).await
        };
        if outcome == Outcome::Cancelled && !host.is_stopping() {
            outcome =
                Outcome::Failed("returned `Cancelled`, but the host is not stopping".to_owned());
        }
        let took = started.elapsed();
        finish(&job, number, scheduled, &outcome, took);
        (outcome, took)
    };
    // Entering and leaving a span costs even when no subscriber wants it.
    if span.is_disabled() {
        work.await
    } else {
        work.instrument(span).await
    }
}

/// A run in a task of its own: dropped, and recorded as aborted, when the
/// shutdown deadline passes first. (Runs that finish on their first poll
/// never get here, and never pay for the kill token's registration.)
async fn killable(
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
            finish(&job, this.number, this.scheduled, &Outcome::Aborted, took);
            (Outcome::Aborted, took)
        }
    }
}

/// Continues a run in a task of the host's.
fn spawn<F>(host: &Arc<HostShared>, job: &Arc<JobDef>, this: This, run: F)
where
    F: Future<Output = (Outcome, Duration)> + Send + 'static,
{
    host.tracker
        .spawn(killable(host.clone(), job.clone(), this, run));
}

/// Which run, when it was due, and when it was taken up.
#[derive(Clone, Copy)]
struct This {
    number: u64,
    scheduled: DateTime<Utc>,
    began: Instant,
}

/// A run whose arguments include scoped values: opens them, runs the body,
/// closes them with its outcome.
async fn scoped_body(host: &Arc<HostShared>, job: &JobDef, run: Run) -> Outcome {
    let defs: Vec<&ScopeDef> = job.scoped.iter().map(|&i| &host.scopes[i]).collect();
    let making = RunContext {
        run: run.clone(),
        host,
        scope: None,
    };
    let scope_map = match scope::open(&defs, &making).await {
        Ok(scope_map) => scope_map,
        Err(failure) => return failure,
    };
    let cx = RunContext {
        run,
        host,
        scope: Some(&scope_map),
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
    stats.set_last_run(number, scheduled, took, outcome);
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
