//! The scheduler core: one task per host owns the deadline of every `every`
//! and `cron` job in a binary heap and sleeps on a single tokio timer until
//! the earliest. An idle job costs its entry here and nothing else: no task,
//! no timer. A run is spawned only when it is due (`runner.rs`).
//!
//! `every` deadlines live on tokio's monotonic clock. Cron fire times live on
//! the wall clock and are mapped to monotonic deadlines; the mapping is
//! checked when a deadline arrives (a clock that went back never fires a job
//! early), and for steps: the system clock is compared with the monotonic
//! one once a second while cron jobs exist, and a test clock reports each
//! step at once. After a jump ahead the job runs once, late, and the fires
//! it jumped over are counted and logged.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use crate::lifecycle::HostShared;
use crate::runner::{dispatch, JobDef};
use crate::schedule::Schedule;

/// How often the wall clock is compared with the monotonic clock while cron
/// jobs exist.
const WALL_CHECK: Duration = Duration::from_secs(1);

/// A difference between the two clocks' progress larger than this is a step
/// of the wall clock, and every cron deadline is recomputed. Smaller drift
/// (NTP slewing) is absorbed by the check at each fire.
const WALL_STEP: TimeDelta = TimeDelta::milliseconds(100);

/// The most missed fires counted one by one after a wall-clock jump; past
/// this the count is reported as a lower bound.
const MAX_MISSED: u64 = 100_000;

pub(crate) struct Scheduler {
    host: Arc<HostShared>,
    entries: Vec<Entry>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    started: Instant,
    /// Whether the wall clock must be polled for steps: cron jobs exist and
    /// the clock does not report its steps.
    poll_wall: bool,
    steps: Option<tokio::sync::watch::Receiver<u64>>,
    /// The wall time at `started`, as the clocks implied at the last check:
    /// wall time now minus monotonic time since `started`.
    wall_at_start: DateTime<Utc>,
    next_wall_check: Instant,
}

struct Entry {
    job: Arc<JobDef>,
    /// `every`: the index of the next tick. Cron: unused.
    tick: u64,
    /// Cron: the wall time of the next fire.
    next_fire: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub(crate) fn new(host: Arc<HostShared>, jobs: &[Arc<JobDef>]) -> Scheduler {
        let started = Instant::now();
        let wall = host.clock.wall();
        let mut scheduler = Scheduler {
            host,
            entries: Vec::new(),
            heap: BinaryHeap::new(),
            started,
            poll_wall: false,
            steps: None,
            wall_at_start: wall,
            next_wall_check: started + WALL_CHECK,
        };
        for job in jobs.iter().filter(|job| job.enabled) {
            // The first deadline, and for cron the wall time it stands for.
            let first = match &job.schedule {
                Schedule::Every(every) => {
                    let offset = every.offset(0);
                    job.stats
                        .set_next_run(TimeDelta::from_std(offset).ok().map(|o| wall + o));
                    Some((started + offset, None))
                }
                Schedule::Cron(cron) => {
                    if scheduler.steps.is_none() {
                        scheduler.steps = scheduler.host.clock.steps();
                        scheduler.poll_wall = scheduler.steps.is_none();
                    }
                    let next = cron.next_after(wall);
                    job.stats.set_next_run(next);
                    if next.is_none() {
                        tracing::warn!(job = %job.name, "cron line never fires again");
                    }
                    next.map(|next| (deadline_of(next, started, wall), Some(next)))
                }
                Schedule::Service => None,
            };
            if let Some((deadline, next_fire)) = first {
                scheduler
                    .heap
                    .push(Reverse((deadline, scheduler.entries.len())));
                scheduler.entries.push(Entry {
                    job: job.clone(),
                    tick: 0,
                    next_fire,
                });
            }
        }
        scheduler
    }

    /// Runs until the host's stop token is cancelled.
    pub(crate) async fn run(mut self) {
        let stop = self.host.stop.clone();
        let mut steps = self.steps.take();
        let sleep = tokio::time::sleep_until(self.started);
        tokio::pin!(sleep);
        loop {
            self.fire_due();
            let mut wake = self.heap.peek().map(|Reverse((deadline, _))| *deadline);
            if self.poll_wall {
                wake = Some(wake.map_or(self.next_wall_check, |w| w.min(self.next_wall_check)));
            }
            let timed = wake.is_some();
            if let Some(wake) = wake {
                sleep.as_mut().reset(wake);
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = &mut sleep, if timed => {}
                Ok(()) = changed(&mut steps) => self.check_wall_clock(Instant::now()),
            }
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        if self.poll_wall && now >= self.next_wall_check {
            self.check_wall_clock(now);
        }
        while let Some(&Reverse((deadline, index))) = self.heap.peek() {
            if deadline > now || self.host.stop.is_cancelled() {
                return;
            }
            self.heap.pop();
            if let Some(next) = self.fire(index, deadline, now) {
                self.heap.push(Reverse((next, index)));
            }
        }
    }

    /// Handles one due entry; returns its next deadline.
    fn fire(&mut self, index: usize, deadline: Instant, now: Instant) -> Option<Instant> {
        let entry = &mut self.entries[index];
        let job = &entry.job;
        let wall = self.host.clock.wall();
        match &job.schedule {
            Schedule::Every(every) => {
                let late = TimeDelta::from_std(now - deadline).unwrap_or(TimeDelta::zero());
                if !job.stats.paused.load(Ordering::Relaxed) {
                    let _ = dispatch(&self.host, job, wall - late, false);
                }
                // After a stall, the ticks that came due meanwhile are
                // skipped and counted, not run in a burst.
                let next = every.next_tick(entry.tick, now - self.started);
                let missed = next - entry.tick - 1;
                if missed > 0 {
                    job.stats.skipped.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(
                        job = %job.name,
                        missed,
                        "the scheduler fell behind by {:?}: ran the oldest due tick late and skipped {missed} tick(s)",
                        now - deadline,
                    );
                }
                entry.tick = next;
                let deadline = self.started + every.offset(next);
                job.stats.set_next_run(Some(wall + (deadline - now)));
                Some(deadline)
            }
            Schedule::Cron(cron) => {
                let fire = entry.next_fire?;
                if wall < fire {
                    // Not yet on the wall clock: it went back, or the timer
                    // ran ahead of it. Never early: wait for the wall time.
                    return Some(deadline_of(fire, now, wall));
                }
                if !job.stats.paused.load(Ordering::Relaxed) {
                    let _ = dispatch(&self.host, job, fire, false);
                }
                let mut next = cron.next_after(fire);
                let mut missed = 0_u64;
                while let Some(n) = next.filter(|n| *n <= wall) {
                    missed += 1;
                    if missed == MAX_MISSED {
                        next = cron.next_after(wall);
                        break;
                    }
                    next = cron.next_after(n);
                }
                if missed > 0 {
                    job.stats.skipped.fetch_add(missed, Ordering::Relaxed);
                    let bound = if missed == MAX_MISSED {
                        "at least "
                    } else {
                        ""
                    };
                    tracing::warn!(
                        job = %job.name,
                        missed,
                        ran = %fire,
                        now = %wall,
                        "the wall clock jumped ahead (or the host stalled): ran the fire due at {fire} late, and skipped {bound}{missed} later fire(s) that fell in the gap"
                    );
                }
                entry.next_fire = next;
                job.stats.set_next_run(next);
                next.map(|next| deadline_of(next, now, wall))
            }
            Schedule::Service => None,
        }
    }

    /// Recomputes cron deadlines if the wall clock stepped since the last
    /// check.
    fn check_wall_clock(&mut self, now: Instant) {
        self.next_wall_check = now + WALL_CHECK;
        let wall = self.host.clock.wall();
        let wall_at_start =
            wall - TimeDelta::from_std(now - self.started).unwrap_or(TimeDelta::MAX);
        let step = wall_at_start - self.wall_at_start;
        self.wall_at_start = wall_at_start;
        if step.abs() <= WALL_STEP {
            return;
        }
        tracing::info!(step = %step, "the wall clock stepped; rescheduling cron jobs");
        let entries = &self.entries;
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .map(
                |Reverse((deadline, index))| match entries[index].next_fire {
                    Some(fire) => Reverse((deadline_of(fire, now, wall), index)),
                    None => Reverse((deadline, index)),
                },
            )
            .collect();
    }
}

/// Waits for a step of a clock that reports them; never ends otherwise.
async fn changed(
    steps: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match steps {
        Some(steps) => steps.changed().await,
        None => std::future::pending().await,
    }
}

/// The monotonic deadline of wall time `fire`, given that `now` is `wall`.
fn deadline_of(fire: DateTime<Utc>, now: Instant, wall: DateTime<Utc>) -> Instant {
    now + (fire - wall).to_std().unwrap_or(Duration::ZERO)
}
