//! How a due tick becomes a run: the overlap check, the run polled once on
//! the scheduler's task (or spawned), and, for a job claimed through a
//! cluster, the claim and the granted run.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::execute::{execute, killable, number, Grant, This};
use crate::base::kind::Overlap;
use crate::base::outcome::{panic_message, Outcome};
use crate::model::job::JobDef;
use crate::model::shared::HostShared;
use crate::seams::cluster::{Claim, Declined, Lease, TickClaim};

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
    let number = number(job);
    log_overrun(job);
    // The run starts where the one before it in this batch ended: one
    // clock read a run rather than two.
    let this = This {
        number,
        scheduled,
        began: *cursor,
        late: cursor.saturating_duration_since(due_at),
    };
    let run = execute(host.clone(), job.clone(), this, Grant::Own);
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
pub(crate) fn log_overrun(job: &JobDef) {
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
    let number = number(job);
    log_overrun(job);
    let this = This {
        number,
        scheduled: at,
        began: Instant::now(),
        late: (host.wall() - at).to_std().unwrap_or_default(),
    };
    (
        this,
        execute(host.clone(), job.clone(), this, Grant::Lease(lease)),
    )
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
    // `execute` catches the body's panics; this guards the scheduler
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

/// Continues a run in a task of the host's.
fn spawn<F>(host: &Arc<HostShared>, job: &Arc<JobDef>, this: This, run: F)
where
    F: Future<Output = (Outcome, Duration)> + Send + 'static,
{
    host.tracker
        .spawn(killable(host.clone(), job.clone(), this, run));
}
