//! Running jobs: one run of a scheduled job (the overlap check, building the
//! arguments, the spawned task with its tracing span, panic capture,
//! counters), and the supervision of background services by their
//! [`FailurePolicy`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::cluster::{Claim, Completion, Declined, Lease, Scope, TickClaim};
use crate::context::{Run, RunContext};
use crate::job::JobDef;
use crate::outcome::{panic_message, Outcome};
use crate::registry::{FailurePolicy, JobKind, Overlap};
use crate::schedule::seed_of;
use crate::scope::{self, ScopeDef};
use crate::service::Phase;
use crate::shared::HostShared;
use crate::work::WorkItem;

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
    due_at: Instant,
) -> Result<u64, NotStarted> {
    let stats = &job.stats;
    if host.is_stopping() {
        return Err(NotStarted::Stopping);
    }
    if job.claims() {
        // The cluster decides; the run, if any, starts in a task of its
        // own once the claim is granted.
        claim_tick(host, job, scheduled, false);
        return Ok(0);
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
            skipped_in_overrun(job);
        }
        return Err(NotStarted::Running);
    }
    let number = stats.started.fetch_add(1, Ordering::Relaxed) + 1;
    log_overrun(job);
    // The run starts where the one before it in this batch ended: one
    // clock read a run rather than two.
    let this = This {
        number,
        scheduled,
        began: *cursor,
        late: cursor.saturating_duration_since(due_at),
    };
    let run = run_once(host.clone(), job.clone(), this, None);
    if by_hand || stats.own_task.load(Ordering::Relaxed) {
        spawn(host, job, this, run);
    } else {
        *cursor = poll_inline(host, job, this, Box::pin(run));
    }
    Ok(number)
}

/// Asks the host's coordinator for the tick of `job` at `at`, and runs it
/// in a task of its own if granted; a declined tick is counted by why.
pub(crate) fn claim_tick(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    at: DateTime<Utc>,
    catch_up: bool,
) {
    let stats = &job.stats;
    // A run still going here at the tick holds its lease: skipped without
    // asking. (Ahead of the tick, the store answers, and the claim is sent
    // again at the tick.)
    if job.overlap == Overlap::Skip
        && stats.running.load(Ordering::Acquire) > 0
        && until_wall(host, at).is_none()
    {
        skipped_in_overrun(job);
        return;
    }
    let Some(coordinator) = host.coordinator.clone() else {
        return;
    };
    let index = job.index as usize;
    let ask = move |host: &Arc<HostShared>| {
        coordinator.claim(TickClaim {
            job: index,
            at,
            catch_up,
            token: host.stop.child_token(),
        })
    };
    let claim = ask(host);
    let tracker = host.tracker.clone();
    let (host, job) = (host.clone(), job.clone());
    let task = async move {
        let mut answer = claim.await;
        // Sent ahead of the tick and declined because the previous run
        // still held its lease: ask again at the tick, when that run may be
        // over.
        if matches!(answer, Claim::Declined(Declined::Running)) && until_wall(&host, at).is_some() {
            if !wait_for_wall(&host, at).await {
                return;
            }
            answer = ask(&host).await;
        }
        match answer {
            Claim::Granted(lease) => {
                // Granted ahead of the tick: the run starts at its instant.
                if !wait_for_wall(&host, at).await {
                    if let Some(coordinator) = &host.coordinator {
                        let _ = coordinator
                            .complete(job.index as usize, lease, &Outcome::NotRun)
                            .await;
                    }
                    return;
                }
                let (this, run) = begin_granted(&host, &job, at, lease);
                killable(host.clone(), job.clone(), this, run).await;
            }
            Claim::Declined(Declined::Taken) => {
                job.count_cluster(|c| &c.elsewhere);
            }
            Claim::Declined(Declined::Running) => skipped_in_overrun(&job),
            Claim::Declined(Declined::Unavailable) => {
                job.count_cluster(|c| &c.unclaimed);
            }
            Claim::Declined(Declined::Paused) => {}
        }
    };
    tracker.spawn(task);
}

/// Counts a tick skipped because the job's previous run was still going.
fn skipped_in_overrun(job: &JobDef) {
    job.stats.skipped.fetch_add(1, Ordering::Relaxed);
    job.stats.skipped_in_overrun.fetch_add(1, Ordering::Relaxed);
}

/// Logs, once, the ticks skipped since the job's last run began, as the
/// next one begins.
fn log_overrun(job: &JobDef) {
    let stats = &job.stats;
    // A load first: the swap would write the job's memory on every run.
    if stats.skipped_in_overrun.load(Ordering::Relaxed) == 0 {
        return;
    }
    let skipped = stats.skipped_in_overrun.swap(0, Ordering::Relaxed);
    tracing::debug!(
        job = %job.name,
        skipped,
        "skipped {skipped} tick(s) while the previous run was still going"
    );
}

/// How long until the host's wall clock shows `at`, if it does not yet.
fn until_wall(host: &HostShared, at: DateTime<Utc>) -> Option<Duration> {
    (at - host.wall()).to_std().ok().filter(|d| !d.is_zero())
}

/// Waits until the host's wall clock shows `at`; `false` if the host began
/// to stop first.
async fn wait_for_wall(host: &HostShared, at: DateTime<Utc>) -> bool {
    if let Some(wait) = until_wall(host, at) {
        tokio::select! {
            biased;
            () = host.stop.cancelled() => return false,
            () = tokio::time::sleep(wait) => {}
        }
    }
    !host.is_stopping()
}

/// Runs a tick the coordinator granted, in a task of its own.
pub(crate) fn run_granted(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    at: DateTime<Utc>,
    lease: Lease,
) {
    let (this, run) = begin_granted(host, job, at, lease);
    spawn(host, job, this, run);
}

/// Counts a granted run as started and returns it. The cluster's claim
/// already decided about overlap: the store is the authority there.
fn begin_granted(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    at: DateTime<Utc>,
    lease: Lease,
) -> (
    This,
    impl Future<Output = (Outcome, Duration)> + Send + 'static,
) {
    let stats = &job.stats;
    stats.running.fetch_add(1, Ordering::AcqRel);
    let number = stats.started.fetch_add(1, Ordering::Relaxed) + 1;
    log_overrun(job);
    let this = This {
        number,
        scheduled: at,
        began: Instant::now(),
        late: (host.wall() - at).to_std().unwrap_or_default(),
    };
    (this, run_once(host.clone(), job.clone(), this, Some(lease)))
}

/// How long a run's first poll may hold the scheduler.
const INLINE_LIMIT: Duration = Duration::from_millis(1);

/// Runs in a row of one job past [`INLINE_LIMIT`] before its later runs go
/// straight to a task of their own. The limit is on real time, so one run
/// past it proves little: the thread may have been preempted (a loaded
/// machine), or the run took a first-time code path (a connection's first
/// statement). A job whose first step really blocks is past it every time.
const SLOW_IN_A_ROW: u8 = 3;

/// Polls a due run once on the scheduler's own task, and spawns it only if
/// it has to wait. Most scheduled runs finish without waiting (a counter,
/// a cache refresh from memory, a channel send): those then cost no task, no
/// wake-up of another worker, and no allocation beyond their future. The
/// price is that a run's first step, up to its first `.await` that waits,
/// holds up the scheduler; a job whose first step takes longer than
/// [`INLINE_LIMIT`] in [`SLOW_IN_A_ROW`] runs in a row is therefore
/// spawned from its next run on, with a warning. The time held is this
/// run's own: it counts from the end of the previous inline run in the
/// batch (or the batch's start), and the scheduler writes its own lines
/// (about falling behind) after the batch, not between two runs.
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
    let slow = &job.stats.slow_first_steps;
    if held <= INLINE_LIMIT {
        if slow.load(Ordering::Relaxed) != 0 {
            slow.store(0, Ordering::Relaxed);
        }
    } else if slow.fetch_add(1, Ordering::Relaxed) + 1 >= SLOW_IN_A_ROW
        && !job.stats.own_task.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            job = %job.name,
            "{SLOW_IN_A_ROW} runs in a row held the scheduler for more than {INLINE_LIMIT:?} before their first await (the last one {held:?}); this job's runs get a task of their own from now on (move blocking work into `tokio::task::spawn_blocking`)"
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
    let seed = seed_of(&job.name) ^ host.seed;
    let singleton = match &host.coordinator {
        Some(coordinator) if job.scope() == Scope::Singleton => Some(coordinator.clone()),
        _ => None,
    };
    loop {
        // A singleton waits for its lease: until then another instance
        // runs it.
        let lease = match &singleton {
            Some(coordinator) => {
                match coordinator
                    .acquire(job.index as usize, host.stop.clone())
                    .await
                {
                    Some(lease) => Some(lease),
                    None => return,
                }
            }
            None => None,
        };
        if let Some(lease) = &lease {
            tracing::info!(job = %job.name, fence = lease.fence, "holds the singleton lease; starting");
        }
        let lost = lease.as_ref().map(|lease| lease.token.clone());
        job.stats.running.fetch_add(1, Ordering::AcqRel);
        let number = job.stats.started.fetch_add(1, Ordering::Relaxed) + 1;
        let this = This {
            number,
            scheduled: host.wall(),
            began: Instant::now(),
            late: Duration::ZERO,
        };
        let run = run_once(host.clone(), job.clone(), this, lease);
        let (outcome, _) = killable(host.clone(), job.clone(), this, run).await;
        if lost.is_some_and(|lost| lost.is_cancelled()) && !host.is_stopping() {
            tracing::warn!(job = %job.name, outcome = %outcome, "lost the singleton lease; waiting to take it again");
            continue;
        }
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
async fn run_once(
    host: Arc<HostShared>,
    job: Arc<JobDef>,
    this: This,
    lease: Option<Lease>,
) -> (Outcome, Duration) {
    let This {
        number,
        scheduled,
        began: started,
        late,
    } = this;
    host.record_run(&job.name, number, scheduled);
    // A service runs once per start: its lines carry its name, and the
    // restart they belong to once it has been restarted.
    let span = match job.kind {
        JobKind::Service if number > 1 => {
            tracing::info_span!("service", name = %job.name, restart = number - 1)
        }
        JobKind::Service => tracing::info_span!("service", name = %job.name),
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
        let mut outcome = if job.scoped.is_empty() {
            let cx = RunContext {
                run,
                host: &host,
                scope: None,
                lease: lease.as_ref(),
                item: None,
            };
            body(&job, &cx).await
        } else {
            // Boxed: it holds much more state than a plain run, and
            // plain runs should not carry its size.
            Box::pin(scoped_body(&host, &job, run, lease.as_ref(), None)).await
        };
        let lease_lost = lease.as_ref().is_some_and(|l| l.token.is_cancelled());
        if outcome == Outcome::Cancelled && !host.is_stopping() && !lease_lost {
            outcome =
                Outcome::Failed("returned `Cancelled`, but the host is not stopping".to_owned());
        }
        let took = started.elapsed();
        finish(
            &host,
            &job,
            (number, scheduled, late),
            &outcome,
            took,
            unnamed,
        );
        if let (Some(lease), Some(coordinator)) = (lease, &host.coordinator) {
            let fence = lease.fence;
            match coordinator
                .complete(job.index as usize, lease, &outcome)
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
        (outcome, took)
    };
    // Entering and leaving a span costs even when no subscriber wants it.
    if span.is_disabled() {
        work.await
    } else {
        work.instrument(span).await
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
    let stats = &job.stats;
    stats.running.fetch_add(1, Ordering::AcqRel);
    let number = stats.started.fetch_add(1, Ordering::Relaxed) + 1;
    let scheduled = item.scheduled();
    let began = Instant::now();
    let late = (host.wall() - scheduled).to_std().unwrap_or_default();
    host.record_run(&job.name, number, scheduled);
    let span = tracing::info_span!(
        "item",
        queue = %item.queue(),
        handler = %job.name,
        item = item.id(),
        attempt = item.attempt(),
    );
    let unnamed = span.is_disabled();
    let run = Run {
        job: job.clone(),
        number,
        scheduled,
    };
    let work = async {
        if job.scoped.is_empty() {
            let cx = RunContext {
                run,
                host: &host,
                scope: None,
                lease: None,
                item: Some(&item),
            };
            body(&job, &cx).await
        } else {
            Box::pin(scoped_body(&host, &job, run, None, Some(&item))).await
        }
    };
    let limited = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Outcome::Failed(format!("timed out after {limit:?}"))),
            None => work.await,
        }
    };
    let mut outcome = tokio::select! {
        biased;
        outcome = limited.instrument(span) => outcome,
        () = host.kill.cancelled() => {
            stats.aborted.store(true, Ordering::Release);
            Outcome::Aborted
        }
    };
    if outcome == Outcome::Cancelled && !item.token().is_cancelled() {
        outcome =
            Outcome::Failed("returned `Cancelled`, but the item was not cancelled".to_owned());
    }
    finish(
        &host,
        &job,
        (number, scheduled, late),
        &outcome,
        began.elapsed(),
        unnamed,
    );
    outcome
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
            finish(&host, &job, (this.number, this.scheduled, this.late), &Outcome::Aborted, took, true);
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
    /// How long after `scheduled` it began (for its history).
    late: Duration,
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
    crate::telemetry::run_ended(host, job.index as usize, took, late);
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
