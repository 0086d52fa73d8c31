//! The job as the running host keeps it: its definition, and its counters
//! and last run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::base::kind::{JobKind, Overlap};
use crate::base::outcome::Outcome;
use crate::model::registry::{FailurePolicy, Invoke, Origin, Registration};
use crate::model::schedule::Schedule;
use crate::seams::cluster::ClusterJobOptions;

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
    /// With a cluster: where it runs, and its cluster counters. `None`
    /// without one: a host of 100,000 jobs pays one pointer a job.
    pub(crate) cluster: Option<Box<JobCluster>>,
    pub(crate) stats: JobStats,
}

/// A job's part in a cluster.
pub(crate) struct JobCluster {
    pub(crate) options: ClusterJobOptions,
    /// Whether each tick is claimed from the host's coordinator: the job
    /// is scheduled with [`Placement::Cluster`](crate::seams::cluster::Placement::Cluster).
    pub(crate) claims: bool,
    /// Ticks another instance claimed (and ran).
    pub(crate) elsewhere: AtomicU64,
    /// Ticks not claimed because the store was out of reach.
    pub(crate) unclaimed: AtomicU64,
    /// Completions the store rejected because the run's lease had run out.
    pub(crate) stale: AtomicU64,
}

impl JobCluster {
    pub(crate) fn new(options: ClusterJobOptions, claims: bool) -> JobCluster {
        JobCluster {
            options,
            claims,
            elsewhere: AtomicU64::new(0),
            unclaimed: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }
}

impl JobDef {
    /// Where the job was defined.
    pub(crate) fn origin(&self) -> Origin {
        self.registration.map_or(Origin::Builder, Origin::Job)
    }

    /// Whether each tick is claimed through the host's cluster.
    #[inline]
    pub(crate) fn claims(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.claims)
    }

    /// Where the job runs in a cluster (the kind's default without one).
    pub(crate) fn scope(&self) -> crate::seams::cluster::Placement {
        self.cluster.as_ref().map_or_else(
            || crate::seams::cluster::Placement::default_for(self.kind),
            |c| c.options.scope,
        )
    }

    /// Counts on the job's cluster counters, if it has them.
    pub(crate) fn count_cluster(&self, counter: impl Fn(&JobCluster) -> &AtomicU64) {
        if let Some(cluster) = &self.cluster {
            counter(cluster).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What a failed run of a background fn does; scheduled jobs log it.
    pub(crate) fn on_failure(&self) -> FailurePolicy {
        match &self.schedule {
            Schedule::Service(policy) => **policy,
            Schedule::Every(_) | Schedule::Cron(_) | Schedule::Queued(_) => FailurePolicy::Stop,
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
    /// Set once runs' first steps held the scheduler too long: later runs
    /// are spawned at once (see `poll_inline`).
    pub(crate) own_task: AtomicBool,
    /// Runs in a row whose first step held the scheduler too long.
    pub(crate) slow_first_steps: AtomicU8,
    /// Set when a run was dropped at the shutdown deadline: the report
    /// names the job from this, not from a count the aborted tasks race to
    /// update on other threads.
    pub(crate) aborted: AtomicBool,
    /// The next fire as Unix milliseconds, `i64::MIN` for none.
    pub(crate) next_run: AtomicI64,
    /// The last finished run, kept compact: a host may hold 100,000 jobs,
    /// and a [`FinishedRun`] with its `Outcome` takes 80 bytes. The runs
    /// before it, if the host keeps any, are in its [`RunHistory`].
    last_run: Mutex<Last>,
}

/// [`FinishedRun`] as a job keeps it, in 40 bytes; `number == 0` before
/// the first finishes.
#[derive(Default)]
pub(crate) struct Last {
    number: u64,
    scheduled_ns: i64,
    took_ns: u64,
    /// The message of `Failed` and `Panicked`; a thin pointer (8 bytes,
    /// not a `String`'s 24), as most runs succeed and most jobs keep one.
    #[allow(clippy::box_collection)]
    message: Option<Box<String>>,
    /// How long after it was due it started, in seconds: 4 bytes that fit
    /// where `outcome` leaves padding, to the microsecond for any delay
    /// under 8 seconds and to the millisecond for a day.
    start_delay_s: f32,
    outcome: u8,
}

/// The runs before each job's last, newest first, for a host that keeps
/// more than one a job: one ring per job, apart from the job's own
/// allocation, so that a host that keeps only the last run (100,000 jobs
/// within the default budget) pays nothing for them.
#[derive(Default)]
pub(crate) struct RunHistory {
    /// By job index; empty when `older` is 0.
    rings: Box<[Mutex<VecDeque<Last>>]>,
    /// How many runs each job keeps before its last.
    older: usize,
}

impl RunHistory {
    /// A history that keeps `keep` runs (at least the last) of each of
    /// `jobs` jobs.
    pub(crate) fn new(jobs: usize, keep: usize) -> RunHistory {
        let older = keep.saturating_sub(1);
        RunHistory {
            rings: if older == 0 {
                Box::default()
            } else {
                (0..jobs).map(|_| Mutex::default()).collect()
            },
            older,
        }
    }

    /// Keeps `previous`, the run that was job `index`'s last until now.
    fn keep(&self, index: usize, previous: Last) {
        let Some(ring) = self.rings.get(index) else {
            return;
        };
        if previous.number == 0 {
            return;
        }
        let mut ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == self.older {
            ring.pop_back();
        }
        ring.push_front(previous);
    }
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
            slow_first_steps: AtomicU8::new(0),
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
    #[inline]
    pub(crate) fn set_next_run_millis(&self, millis: i64) {
        self.next_run.store(millis, Ordering::Relaxed);
    }

    pub(crate) fn next_run(&self) -> Option<DateTime<Utc>> {
        match self.next_run.load(Ordering::Relaxed) {
            i64::MIN => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    pub(crate) fn last_run(&self) -> Option<FinishedRun> {
        self.last_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read()
    }

    /// Whether the last finished run failed, read without copying it.
    pub(crate) fn last_failed(&self) -> bool {
        let last = self.last_run.lock().unwrap_or_else(PoisonError::into_inner);
        last.number != 0 && matches!(last.outcome, FAILED | PANICKED | ABORTED)
    }

    /// The finished runs job `index` keeps in `history`, newest first.
    pub(crate) fn runs(&self, history: &RunHistory, index: usize) -> Vec<FinishedRun> {
        let mut runs: Vec<FinishedRun> = self.last_run().into_iter().collect();
        if let Some(ring) = history.rings.get(index) {
            let ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
            runs.extend(ring.iter().filter_map(Last::read));
        }
        runs
    }

    /// Records job `index`'s run that just finished as its last, and keeps
    /// the one before in `history`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn set_last_run(
        &self,
        history: &RunHistory,
        index: usize,
        number: u64,
        scheduled: DateTime<Utc>,
        start_delay: Duration,
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
        let last = Last {
            number,
            scheduled_ns: scheduled.timestamp_nanos_opt().unwrap_or(i64::MAX),
            took_ns: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            message,
            start_delay_s: start_delay.as_secs_f32(),
            outcome: code,
        };
        let previous = std::mem::replace(
            &mut *self.last_run.lock().unwrap_or_else(PoisonError::into_inner),
            last,
        );
        history.keep(index, previous);
    }
}

impl Last {
    fn read(&self) -> Option<FinishedRun> {
        if self.number == 0 {
            return None;
        }
        let message = || self.message.as_deref().cloned().unwrap_or_default();
        Some(FinishedRun {
            number: self.number,
            scheduled: DateTime::from_timestamp_nanos(self.scheduled_ns),
            started: DateTime::from_timestamp_nanos(self.scheduled_ns)
                + chrono::TimeDelta::nanoseconds((f64::from(self.start_delay_s) * 1e9) as i64),
            took: Duration::from_nanos(self.took_ns),
            outcome: match self.outcome {
                SUCCEEDED => Outcome::Succeeded,
                FAILED => Outcome::Failed(message()),
                PANICKED => Outcome::Panicked(message()),
                ABORTED => Outcome::Aborted,
                CANCELLED => Outcome::Cancelled,
                _ => Outcome::NotRun,
            },
        })
    }
}

/// A finished run of a job: the last one
/// ([`JobStatus::last_run`](crate::JobStatus::last_run)), or one of those
/// the host keeps ([`HostHandle::runs`](crate::HostHandle::runs)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishedRun {
    /// The run's number.
    pub number: u64,
    /// When it was due, on the wall clock.
    pub scheduled: DateTime<Utc>,
    /// When it started, on the wall clock: to the microsecond for a run
    /// that started within 8 seconds of when it was due, to the millisecond
    /// for one that waited a day.
    pub started: DateTime<Utc>,
    /// How long it ran.
    pub took: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// The old name of [`FinishedRun`] where it was a job's last run; kept for
/// one release.
///
/// ```
/// # #![allow(deprecated)]
/// fn last(run: hosted::LastRun) -> hosted::FinishedRun { run }
/// ```
#[deprecated(since = "0.2.0", note = "use `FinishedRun`, the same type")]
pub type LastRun = FinishedRun;

#[cfg(test)]
mod tests {
    use super::*;

    /// A host may hold 100,000 jobs: a job's last run stays 40 bytes, and
    /// the runs before it cost nothing unless the host keeps them.
    #[test]
    fn a_jobs_last_run_takes_40_bytes_and_a_history_of_one_allocates_nothing() {
        assert_eq!(std::mem::size_of::<Last>(), 40);
        let history = RunHistory::new(100_000, 1);
        assert!(history.rings.is_empty());
        let history = RunHistory::new(3, 4);
        assert_eq!((history.rings.len(), history.older), (3, 3));
    }
}
