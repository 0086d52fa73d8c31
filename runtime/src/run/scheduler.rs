//! The scheduler core: one task per host owns the deadline of every `every`
//! and `cron` job and sleeps on a single timer (`base/timer.rs`) until the
//! earliest. `every` jobs without jitter that share a period wait in a
//! first-in, first-out lane; cron and jittered jobs wait in a binary heap,
//! where each lane also stands by its front. An idle job costs its entry
//! here and nothing else: no task, no timer. A due run is polled once on
//! this task and gets a task of its own only if it waits (`tick.rs`).
//!
//! `every` deadlines live on tokio's monotonic clock. Cron fire times live on
//! the wall clock and are mapped to monotonic deadlines; the mapping is
//! checked when a deadline arrives (a clock that went back never fires a job
//! early), and for steps: the system clock is compared with the monotonic
//! one once a second while cron jobs exist, and a test clock reports each
//! step at once. After a jump ahead the job runs once, late, and the fires
//! it jumped over are counted and logged.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use crate::base::clock::Clock;
use crate::base::timer::{earliest_next, few_gap, Timer, FEW_GAP};
use crate::model::job::JobDef;
use crate::model::schedule::{CronSchedule, Fire, Schedule};
use crate::model::shared::HostShared;
use crate::run::tick::dispatch;

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
    /// Per job of `host.jobs`, by index: `every`, the index of its next
    /// tick; cron, the Unix second of its next fire ([`NONE`] for none).
    state: Vec<u64>,
    /// (deadline in nanoseconds since `started`, key): the key is a job's
    /// index, or `LANE | n` for lane `n`, which stands in the heap by its
    /// front. 16 bytes an entry: a host may hold 100,000 jobs.
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    lanes: Vec<Lane>,
    lane_by_period: HashMap<u64, u32>,
    started: Instant,
    /// Whether the wall clock must be polled for steps: cron jobs exist and
    /// the clock does not report its steps.
    poll_wall: bool,
    steps: Option<tokio::sync::watch::Receiver<u64>>,
    /// The wall time at `started`, as the clocks implied at the last check:
    /// wall time now minus monotonic time since `started`.
    wall_at_start: DateTime<Utc>,
    next_wall_check: Instant,
    /// With a cluster: the wall time at `started`, in nanoseconds since the
    /// Unix epoch. The `every` jobs the cluster claims sit on a grid
    /// anchored at the epoch, so that every instance computes the same
    /// instants; their tick indices count from the epoch, and a tick's
    /// deadline is its offset minus this.
    anchor: u64,
    /// With a cluster: how long before its instant a tick is claimed, in
    /// nanoseconds (see [`Coordinator::claim_ahead`](crate::seams::cluster::Coordinator::claim_ahead)).
    ahead: u64,
    /// What fell behind since the last line about it, and when that was.
    behind: Behind,
    jumped: Behind,
    behind_said: Option<Instant>,
    /// The gap after a wake-up that fired few runs: [`FEW_GAP`], or less
    /// for a job whose ticks come closer ([`few_gap`]); see `timer.rs`.
    few_gap: Duration,
}

/// A cron job's state when it never fires again.
const NONE: u64 = u64::MAX;

/// The bit of a heap key that marks a lane.
const LANE: u32 = 1 << 31;

/// The `every` jobs without jitter that share a period, in deadline order.
/// One fired at the front comes due again one period later, after every
/// other job of the lane: it goes to the back. Firing a job of a lane is
/// therefore O(1) and touches memory in order, where a heap of 100,000
/// jobs costs a sift through 17 levels of cache misses. A job whose next
/// deadline would come before the back (after a stall) waits in the heap
/// instead, and rejoins when it fits.
struct Lane {
    queue: VecDeque<LaneEntry>,
}

struct LaneEntry {
    /// Nanoseconds since the scheduler's start.
    deadline: u64,
    /// The index of the job's next tick.
    tick: u64,
    job: Arc<JobDef>,
}

/// What a batch of due jobs shares: the time it was taken, on both
/// clocks, and when the last inline run ended (the next one's start).
struct Now {
    anchor: u64,
    ahead: u64,
    elapsed: u64,
    wall: DateTime<Utc>,
    wall_ns: i64,
    cursor: Instant,
    /// `every` jobs that fell behind, since the last line about it.
    behind: Behind,
    /// Cron jobs whose fires fell in a jump of the wall clock, likewise.
    jumped: Behind,
    /// Jobs that came due in this batch.
    fired: u32,
    /// The scheduler's start, from which deadlines count.
    origin: Instant,
}

/// Ticks skipped because the scheduler fell behind (or the wall clock
/// jumped), summed: under overload every job falls behind at once, and a
/// warning a job would be thousands of lines a second, whose writing
/// makes the overload worse. One line a second at most says it all.
#[derive(Default)]
struct Behind {
    jobs: u64,
    skipped: u64,
    worst: Duration,
    /// The first few jobs' names, for the line.
    names: Vec<Box<str>>,
}

impl Behind {
    const NAMES: usize = 3;

    fn note(&mut self, job: &JobDef, skipped: u64, late: Duration) {
        self.jobs += 1;
        self.skipped += skipped;
        self.worst = self.worst.max(late);
        if self.names.len() < Self::NAMES {
            self.names.push(job.name.clone());
        }
    }

    /// `a`, `b`, `c` and N other(s).
    fn jobs(&self) -> String {
        let mut text = self
            .names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let others = self.jobs.saturating_sub(self.names.len() as u64);
        if others > 0 {
            text.push_str(&format!(" and {others} other(s)"));
        }
        text
    }
}

/// The shortest time between two lines about jobs falling behind.
const BEHIND_EVERY: Duration = Duration::from_secs(1);

/// The period of the lane the job belongs to: `every` jobs without jitter
/// have one.
fn lane_period(job: &JobDef) -> Option<u64> {
    match &job.schedule {
        Schedule::Every(every) => every.lane_period(),
        Schedule::Cron(_) | Schedule::Service(_) | Schedule::Queued(_) => None,
    }
}

impl Scheduler {
    pub(crate) fn new(host: Arc<HostShared>) -> Scheduler {
        let started = Instant::now();
        let wall = host.wall();
        let jobs = host.jobs.len();
        let anchor = match host.coordinator {
            Some(_) => u64::try_from(wall.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0),
            None => 0,
        };
        let ahead = host
            .coordinator
            .as_ref()
            .map_or(0, |c| nanos(c.claim_ahead()));
        let mut scheduler = Scheduler {
            host: host.clone(),
            state: vec![0; jobs],
            heap: BinaryHeap::new(),
            lanes: Vec::new(),
            lane_by_period: HashMap::new(),
            started,
            poll_wall: false,
            steps: None,
            wall_at_start: wall,
            next_wall_check: started + WALL_CHECK,
            anchor,
            ahead,
            behind: Behind::default(),
            jumped: Behind::default(),
            behind_said: None,
            few_gap: FEW_GAP,
        };
        let mut heap = Vec::new();
        for (index, job) in host.jobs.iter().enumerate() {
            if !job.enabled {
                continue;
            }
            // The first deadline, and for cron the wall time it stands for.
            let mut tick = 0;
            let early = Duration::from_nanos(if job.claims() { ahead } else { 0 });
            let first = match &job.schedule {
                Schedule::Every(every) => {
                    scheduler.few_gap = scheduler.few_gap.min(few_gap(every.shortest_gap()));
                    let base = if job.claims() { anchor } else { 0 };
                    tick = every.first_tick_from(base);
                    scheduler.state[index] = tick;
                    let offset = every
                        .offset(tick)
                        .saturating_sub(Duration::from_nanos(base));
                    job.stats
                        .set_next_run(TimeDelta::from_std(offset).ok().map(|o| wall + o));
                    Some(offset.saturating_sub(early))
                }
                Schedule::Cron(cron) => {
                    if scheduler.steps.is_none() {
                        scheduler.steps = host.clock.steps();
                        scheduler.poll_wall = scheduler.steps.is_none();
                    }
                    let next = cron.first_after(wall);
                    job.stats.set_next_run(next.map(|next| next.at));
                    scheduler.state[index] = fire_state(next);
                    if next.is_none() {
                        tracing::warn!(job = %job.name, "cron line never fires again");
                    }
                    next.map(|next| {
                        (next.at - wall)
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                            .saturating_sub(early)
                    })
                }
                Schedule::Service(_) | Schedule::Queued(_) => None,
            };
            let Some(offset) = first else { continue };
            match lane_period(job) {
                Some(period) => {
                    let lanes = &mut scheduler.lanes;
                    let lane = *scheduler.lane_by_period.entry(period).or_insert_with(|| {
                        lanes.push(Lane {
                            queue: VecDeque::new(),
                        });
                        index_of(lanes.len() - 1)
                    });
                    scheduler.lanes[lane as usize].queue.push_back(LaneEntry {
                        deadline: nanos(offset),
                        tick,
                        job: job.clone(),
                    });
                }
                None => heap.push(Reverse((nanos(offset), index_of(index)))),
            }
        }
        for (n, lane) in scheduler.lanes.iter_mut().enumerate() {
            lane.queue.shrink_to_fit();
            lane.queue
                .make_contiguous()
                .sort_unstable_by_key(|entry| (entry.deadline, entry.job.index));
            if let Some(front) = lane.queue.front() {
                heap.push(Reverse((front.deadline, LANE | index_of(n))));
            }
        }
        // One heapify rather than a push per entry.
        scheduler.heap = BinaryHeap::from(heap);
        scheduler
    }

    /// Runs until the host's stop token is cancelled.
    pub(crate) async fn run(mut self) {
        let stop = self.host.stop.clone();
        // Made once: each new `cancelled()` future registers with the
        // token under its lock.
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let mut steps = self.steps.take();
        let mut timer = Timer::new(matches!(self.host.clock, Clock::System));
        let mut armed = None;
        // When the last wake-up was due: the next comes at least
        // `MIN_GAP` after it. (After the time it happened instead, each
        // wake-up's own latency would push the next one later.)
        let mut woke_for = self.started;
        loop {
            let fired = self.fire_due();
            let mut wake = self
                .heap
                .peek()
                .map(|Reverse((deadline, _))| self.instant(*deadline));
            if self.poll_wall {
                wake = Some(wake.map_or(self.next_wall_check, |w| w.min(self.next_wall_check)));
            }
            if timer.is_precise() {
                // At most one wake-up per `MIN_GAP`, as with tokio's timer,
                // and fewer while each fires few runs (see `timer.rs`).
                let earliest = earliest_next(woke_for, fired, self.few_gap);
                wake = wake.map(|w| w.max(earliest));
            }
            if wake != armed {
                if let Some(wake) = wake {
                    timer.reset(wake);
                }
                armed = wake;
            }
            tokio::select! {
                biased;
                () = &mut stopped => return,
                () = timer.expired(), if armed.is_some() => {
                    woke_for = armed.take().unwrap_or(woke_for);
                }
                Ok(()) = changed(&mut steps) => self.check_wall_clock(Instant::now()),
            }
        }
    }

    /// Fires every job due now; returns how many were due.
    fn fire_due(&mut self) -> u32 {
        let now = Instant::now();
        if self.poll_wall && now >= self.next_wall_check {
            self.check_wall_clock(now);
        }
        // Read once per batch: a wall-clock read per job adds up at 100,000
        // jobs.
        let wall = self.host.wall();
        let mut batch = Now {
            anchor: self.anchor,
            ahead: self.ahead,
            elapsed: nanos(now - self.started),
            wall,
            wall_ns: wall.timestamp_nanos_opt().unwrap_or(i64::MAX),
            cursor: now,
            // What fell behind so far goes on adding up in the batch.
            behind: std::mem::take(&mut self.behind),
            jumped: std::mem::take(&mut self.jumped),
            fired: 0,
            origin: self.started,
        };
        self.fire_batch(&mut batch);
        self.behind = batch.behind;
        self.jumped = batch.jumped;
        if self.behind.jobs + self.jumped.jobs > 0 {
            self.say_behind();
        }
        batch.fired
    }

    /// Says what fell behind since the last time, unless that was less
    /// than [`BEHIND_EVERY`] ago (the next batch after that says it).
    fn say_behind(&mut self) {
        let now = Instant::now();
        if self
            .behind_said
            .is_some_and(|said| now.duration_since(said) < BEHIND_EVERY)
        {
            return;
        }
        let over = match self.behind_said {
            Some(said) => format!(" in the last {:.1?}", now.duration_since(said)),
            None => String::new(),
        };
        self.behind_said = Some(now);
        let behind = &self.behind;
        if behind.jobs > 0 {
            tracing::warn!(
                "the scheduler fell behind by up to {:?}{over}: {} ran their oldest due tick late and skipped {} tick(s) in all",
                behind.worst,
                behind.jobs(),
                behind.skipped,
            );
        }
        let jumped = &self.jumped;
        if jumped.jobs > 0 {
            tracing::warn!(
                "the wall clock jumped ahead (or the host stalled){over}: {} ran a fire up to {:?} late and skipped {} later fire(s) that fell in the gap",
                jumped.jobs(),
                jumped.worst,
                jumped.skipped,
            );
        }
        self.behind = Behind::default();
        self.jumped = Behind::default();
    }

    /// Fires every job due by `batch.elapsed`.
    fn fire_batch(&mut self, batch: &mut Now) {
        let host = self.host.clone();
        loop {
            let Some(mut top) = self.heap.peek_mut() else {
                return;
            };
            let Reverse((deadline, key)) = *top;
            if deadline > batch.elapsed || host.is_stopping() {
                return;
            }
            if key & LANE == 0 {
                let index = key as usize;
                let job = &host.jobs[index];
                let next = fire(&host, job, &mut self.state[index], deadline, batch);
                match next {
                    // Stays in the heap: one sift-down rather than a pop and
                    // a push.
                    Some(next) if lane_period(job).is_none() => *top = Reverse((next, key)),
                    Some(next) => {
                        PeekMut::pop(top);
                        let tick = self.state[index];
                        self.place(job.clone(), tick, next);
                    }
                    None => {
                        PeekMut::pop(top);
                    }
                }
                continue;
            }
            let lane = &mut self.lanes[(key & !LANE) as usize];
            let Some(mut entry) = lane.queue.pop_front() else {
                PeekMut::pop(top);
                continue;
            };
            // The lane's entry carries the job and its tick: no lookup in
            // the host's list, no other memory touched.
            let next = fire(&host, &entry.job, &mut entry.tick, deadline, batch);
            let mut overflow = None;
            if let Some(next) = next {
                entry.deadline = next;
                match lane.queue.back() {
                    Some(back) if back.deadline > next => overflow = Some(entry),
                    _ => lane.queue.push_back(entry),
                }
            }
            match lane.queue.front() {
                Some(front) => {
                    *top = Reverse((front.deadline, key));
                    drop(top);
                }
                None => {
                    PeekMut::pop(top);
                }
            }
            if let Some(entry) = overflow {
                let index = entry.job.index;
                self.state[index as usize] = entry.tick;
                self.heap.push(Reverse((entry.deadline, index)));
            }
        }
    }

    /// Puts a job of a lane that waited in the heap back at `deadline`:
    /// at the back of its lane if it fits there, else in the heap again.
    fn place(&mut self, job: Arc<JobDef>, tick: u64, deadline: u64) {
        let index = job.index;
        let lane = lane_period(&job).and_then(|period| self.lane_by_period.get(&period).copied());
        if let Some(lane) = lane {
            let queue = &mut self.lanes[lane as usize].queue;
            let entry = LaneEntry {
                deadline,
                tick,
                job,
            };
            match queue.back() {
                None => {
                    queue.push_back(entry);
                    self.heap.push(Reverse((deadline, LANE | lane)));
                    return;
                }
                Some(back) if back.deadline <= deadline => {
                    queue.push_back(entry);
                    return;
                }
                Some(_) => {}
            }
        }
        self.heap.push(Reverse((deadline, index)));
    }

    /// The instant `deadline` nanoseconds after the start.
    fn instant(&self, deadline: u64) -> Instant {
        self.started + Duration::from_nanos(deadline)
    }

    /// Recomputes cron deadlines if the wall clock stepped since the last
    /// check.
    fn check_wall_clock(&mut self, now: Instant) {
        self.next_wall_check = now + WALL_CHECK;
        let wall = self.host.wall();
        let wall_at_start =
            wall - TimeDelta::from_std(now - self.started).unwrap_or(TimeDelta::MAX);
        let step = wall_at_start - self.wall_at_start;
        self.wall_at_start = wall_at_start;
        if step.abs() <= WALL_STEP {
            return;
        }
        tracing::info!(step = %step, "the wall clock stepped; rescheduling cron jobs");
        let elapsed = nanos(now - self.started);
        let host = &self.host;
        let state = &self.state;
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .map(|Reverse((deadline, index))| {
                if index & LANE != 0 {
                    // Lanes hold `every` jobs only: monotonic deadlines.
                    return Reverse((deadline, index));
                }
                let fire = match &host.jobs[index as usize].schedule {
                    Schedule::Cron(cron) => fire_of(cron, state[index as usize]),
                    Schedule::Every(_) | Schedule::Service(_) | Schedule::Queued(_) => None,
                };
                let early = if host.jobs[index as usize].claims() {
                    self.ahead
                } else {
                    0
                };
                match fire {
                    Some(fire) => Reverse((
                        (elapsed + until(fire.at, wall)).saturating_sub(early),
                        index,
                    )),
                    None => Reverse((deadline, index)),
                }
            })
            .collect();
    }
}

/// Handles one due job; returns its next deadline.
fn fire(
    host: &Arc<HostShared>,
    job: &Arc<JobDef>,
    state: &mut u64,
    deadline: u64,
    now: &mut Now,
) -> Option<u64> {
    let Now {
        anchor,
        ahead,
        elapsed,
        wall,
        wall_ns,
        ..
    } = *now;
    now.fired = now.fired.saturating_add(1);
    // A claimed tick comes due `ahead` before its instant: its claim then
    // reaches the store before the instant.
    let early = if job.claims() { ahead } else { 0 };
    match &job.schedule {
        Schedule::Every(every) => {
            let base = if job.claims() { anchor } else { 0 };
            if !job.stats.paused.load(Ordering::Relaxed) {
                let due = if job.claims() {
                    // The tick's own instant, the same on every instance:
                    // with the job's name, the tick's identity.
                    DateTime::from_timestamp_nanos(nanos(every.offset(*state)) as i64)
                } else {
                    let late = i64::try_from(elapsed - deadline).unwrap_or(i64::MAX);
                    DateTime::from_timestamp_nanos(wall_ns.saturating_sub(late))
                };
                let due_at = now.origin + Duration::from_nanos(deadline);
                let _ = dispatch(host, job, due, false, &mut now.cursor, due_at);
            }
            // After a stall, the ticks that came due meanwhile are
            // skipped and counted, not run in a burst.
            let next = every.next_tick(*state, Duration::from_nanos(elapsed + base));
            let missed = next - *state - 1;
            if missed > 0 {
                job.stats.skipped.fetch_add(missed, Ordering::Relaxed);
                now.behind
                    .note(job, missed, Duration::from_nanos(elapsed - deadline));
            }
            *state = next;
            let next = nanos(every.offset(next)) - base;
            let next_due = next.saturating_sub(early);
            let until_next = i64::try_from((next - elapsed) / 1_000_000).unwrap_or(i64::MAX);
            job.stats
                .set_next_run_millis(wall_ns / 1_000_000 + until_next);
            Some(next_due)
        }
        Schedule::Cron(cron) => {
            let fire = fire_of(cron, *state)?;
            let early_by = TimeDelta::nanoseconds(i64::try_from(early).unwrap_or(0));
            if wall + early_by < fire.at {
                // Not yet on the wall clock: it went back, or the timer
                // ran ahead of it. Never early: wait for the wall time.
                return Some((elapsed + until(fire.at, wall)).saturating_sub(early));
            }
            if !job.stats.paused.load(Ordering::Relaxed) {
                let due_at = now.origin + Duration::from_nanos(deadline);
                let _ = dispatch(host, job, fire.at, false, &mut now.cursor, due_at);
            }
            // Fires that share this one's instant (fixed times in one
            // spring gap) are due now, not missed.
            let mut next = cron.after(fire);
            let mut missed = 0_u64;
            while let Some(n) = next.filter(|n| n.at <= wall && n.at > fire.at) {
                missed += 1;
                if missed == MAX_MISSED {
                    next = cron.first_after(wall);
                    break;
                }
                next = cron.after(n);
            }
            if missed > 0 {
                // (At `MAX_MISSED` the count is a lower bound: the walk
                // stopped there and jumped to the first fire after now.)
                job.stats.skipped.fetch_add(missed, Ordering::Relaxed);
                now.jumped
                    .note(job, missed, (wall - fire.at).to_std().unwrap_or_default());
            }
            *state = fire_state(next);
            job.stats.set_next_run(next.map(|next| next.at));
            next.map(|next| (elapsed + until(next.at, wall)).saturating_sub(early))
        }
        Schedule::Service(_) | Schedule::Queued(_) => None,
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

/// How long from `wall` until wall time `fire`, in nanoseconds.
fn until(fire: DateTime<Utc>, wall: DateTime<Utc>) -> u64 {
    nanos((fire - wall).to_std().unwrap_or(Duration::ZERO))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn index_of(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 4 billion jobs")
}

/// A cron job's next fire as its state: the fire's key (fires fall on
/// whole seconds).
fn fire_state(fire: Option<Fire>) -> u64 {
    fire.map_or(NONE, |fire| fire.key as u64)
}

fn fire_of(cron: &CronSchedule, state: u64) -> Option<Fire> {
    match state {
        NONE => None,
        key => cron.fire_of(key as i64),
    }
}
