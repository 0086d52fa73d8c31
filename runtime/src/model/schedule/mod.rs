//! Schedules: where the ticks of an `every` job fall on its grid, and when a
//! cron line fires next in its time zone. Pure functions of time; the
//! scheduler (`run/scheduler.rs`) decides when to look.

use std::time::Duration;

use crate::model::registry::{FailurePolicy, ScheduleSpec};

mod cron;

pub(crate) use self::cron::{CronSchedule, Fire};

/// A checked schedule. A parsed cron line is large (about 350 bytes), so it
/// is boxed: an `every` job, the kind hosts carry by the thousand, pays only
/// for its own fields.
pub(crate) enum Schedule {
    Every(Every),
    Cron(Box<CronSchedule>),
    /// A background fn: no schedule, and what to do when it fails (boxed:
    /// services are few, and `every` jobs, which may be many, then pay for
    /// no more than their own fields).
    Service(Box<FailurePolicy>),
    /// A handler of durable work: runs per item, never on a schedule.
    Queued(Box<crate::seams::work::HandlerOptions>),
}

impl Schedule {
    /// Checks `spec`; the error says what is wrong and how to fix it.
    pub(crate) fn from_spec(
        spec: ScheduleSpec,
        on_failure: FailurePolicy,
        name: &str,
        seed: u64,
    ) -> Result<Schedule, String> {
        match spec {
            ScheduleSpec::Every {
                source,
                period,
                initial_delay,
                jitter,
            } => Every::new(source, period, initial_delay, jitter, seed_of(name) ^ seed)
                .map(Schedule::Every),
            ScheduleSpec::Cron { line, zone } => CronSchedule::parse(&line, zone.as_deref())
                .map(|cron| Schedule::Cron(Box::new(cron))),
            ScheduleSpec::Service => Ok(Schedule::Service(Box::new(on_failure))),
            ScheduleSpec::Queued(options) => options
                .check()
                .map(|()| Schedule::Queued(Box::new(options))),
        }
    }

    /// The latest tick after `after` and at or before `now`, on the grid
    /// a cluster uses (an `every` grid anchored at the Unix epoch): the one
    /// [`Missed::Once`](crate::seams::cluster::Missed::Once) runs.
    pub(crate) fn last_due(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Schedule::Every(every) => {
                let now_ns = u64::try_from(now.timestamp_nanos_opt()?).ok()?;
                let next = every.first_tick_from(now_ns.saturating_add(1));
                let last = next.checked_sub(1)?;
                let at = chrono::DateTime::from_timestamp_nanos(
                    i64::try_from(every.offset(last).as_nanos()).ok()?,
                );
                (at > after && at <= now).then_some(at)
            }
            Schedule::Cron(cron) => {
                // Bounded: a line that fires every second, down for a day,
                // takes 86,400 steps; past the bound the latest found wins.
                let mut latest = None;
                let mut fire = cron.first_after(after);
                for _ in 0..200_000 {
                    match fire {
                        Some(f) if f.at <= now => {
                            latest = Some(f.at);
                            fire = cron.after(f);
                        }
                        _ => break,
                    }
                }
                latest
            }
            Schedule::Service(_) | Schedule::Queued(_) => None,
        }
    }

    /// The schedule in words: `every 1 minute 30 seconds`, croner's
    /// description of a cron line.
    pub(crate) fn in_words(&self) -> String {
        match self {
            Schedule::Every(every) => {
                let mut text = format!("every {}", words(every.period()));
                if every.jitter != 0 {
                    text += &format!(", up to {} late", words(every.jitter()));
                }
                if every.initial_delay != 0 {
                    text += &format!(", first after {}", words(every.initial_delay()));
                }
                text
            }
            Schedule::Cron(cron) => {
                let text = cron.parsed.cron().describe();
                format!("{} ({})", text.trim_end_matches('.'), cron.zone)
            }
            Schedule::Service(_) => "runs for the host's life".to_owned(),
            Schedule::Queued(options) => format!("runs the items of queue `{}`", options.queue),
        }
    }

    /// The next `n` instants it is due after `now`, each with its zone's
    /// offset from UTC in seconds: a cron line's fires in its zone, an
    /// `every` grid's ticks from `next` (the tick the scheduler has
    /// planned; later ticks are shown without their jitter). Empty for
    /// services and queued handlers.
    pub(crate) fn upcoming(
        &self,
        next: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
        n: usize,
    ) -> Vec<(chrono::DateTime<chrono::Utc>, i32)> {
        match self {
            Schedule::Every(every) => {
                let Some(first) = next else { return Vec::new() };
                let period =
                    chrono::TimeDelta::from_std(every.period()).unwrap_or(chrono::TimeDelta::MAX);
                std::iter::successors(Some(first), |at| at.checked_add_signed(period))
                    .take(n)
                    .map(|at| (at, 0))
                    .collect()
            }
            Schedule::Cron(cron) => {
                let mut out = Vec::with_capacity(n);
                let mut fire = cron.first_after(now);
                while let Some(f) = fire.filter(|_| out.len() < n) {
                    out.push((f.at, cron.utc_offset(f.at)));
                    fire = cron.after(f);
                }
                out
            }
            Schedule::Service(_) | Schedule::Queued(_) => Vec::new(),
        }
    }

    /// The zone a cron line is read in; `None` for other schedules, which
    /// follow no wall clock's zone.
    pub(crate) fn zone(&self) -> Option<String> {
        match self {
            Schedule::Cron(cron) => Some(cron.zone_name()),
            _ => None,
        }
    }

    /// The zone's offset from UTC at `at`, in seconds (0 but for cron
    /// lines in a zone of their own).
    pub(crate) fn utc_offset(&self, at: chrono::DateTime<chrono::Utc>) -> i32 {
        match self {
            Schedule::Cron(cron) => cron.utc_offset(at),
            _ => 0,
        }
    }

    /// The schedule as written: `"5s"`, `"*/5 * * * * (Europe/Berlin)"`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Schedule::Every(every) => match &every.source {
                Some(source) => format!("every {source}"),
                None => format!("every {:?}", every.period()),
            },
            Schedule::Cron(cron) => format!("cron {} ({})", cron.line, cron.zone),
            Schedule::Service(_) => "service".to_owned(),
            Schedule::Queued(options) => format!("queued on `{}`", options.queue),
        }
    }
}

/// A fixed-rate grid: tick `k` is due at
/// `start + initial_delay + k * period + jitter(k)`, so no error ever
/// accumulates, whatever the runs do.
pub(crate) struct Every {
    /// As written in the macro or the configuration (`"5s"`); `None` for
    /// jobs built by hand, which show their period. A host may hold 100,000
    /// of these, so the rest is kept in nanoseconds rather than in
    /// `Duration`s of 16 bytes each.
    source: Option<Box<str>>,
    period: u64,
    initial_delay: u64,
    jitter: u64,
    seed: u64,
}

impl Every {
    fn new(
        source: Option<Box<str>>,
        period: Duration,
        initial_delay: Duration,
        jitter: Duration,
        seed: u64,
    ) -> Result<Every, String> {
        if period.is_zero() {
            return Err("the period is zero; give it a positive duration".to_owned());
        }
        if jitter >= period {
            return Err(format!(
                "the jitter ({jitter:?}) is not shorter than the period ({period:?}); shorten it, or ticks could swap places"
            ));
        }
        let nanos = |d: Duration, what: &str| {
            u64::try_from(d.as_nanos())
                .map_err(|_| format!("the {what} ({d:?}) is longer than 584 years; shorten it"))
        };
        Ok(Every {
            source,
            period: nanos(period, "period")?,
            initial_delay: nanos(initial_delay, "initial delay")?,
            jitter: nanos(jitter, "jitter")?,
            seed,
        })
    }

    /// The period in nanoseconds when ticks fall exactly on the grid (no
    /// jitter): such jobs with equal periods come due again in the order
    /// they came due, which the scheduler's lanes use.
    pub(crate) fn lane_period(&self) -> Option<u64> {
        (self.jitter == 0).then_some(self.period)
    }

    pub(crate) fn period(&self) -> Duration {
        Duration::from_nanos(self.period)
    }

    pub(crate) fn initial_delay(&self) -> Duration {
        Duration::from_nanos(self.initial_delay)
    }

    /// The shortest time between two of its ticks: jitter can bring a
    /// tick closer to the next by up to its own size.
    pub(crate) fn shortest_gap(&self) -> Duration {
        Duration::from_nanos(self.period - self.jitter)
    }

    pub(crate) fn jitter(&self) -> Duration {
        Duration::from_nanos(self.jitter)
    }

    /// How long after the host's start tick `k` is due.
    pub(crate) fn offset(&self, k: u64) -> Duration {
        let grid = self.period.saturating_mul(k);
        Duration::from_nanos(self.initial_delay.saturating_add(grid)) + self.jitter_of(k)
    }

    /// The jitter of tick `k`: uniform in `[0, jitter]`, a pure function of
    /// the seed (the job's name mixed with the host's seed, see
    /// `HostBuilder::seed`) and `k`. A hash rather than a random number
    /// generator: no state per job, no lock, and a schedule a test can
    /// predict.
    pub(crate) fn jitter_of(&self, k: u64) -> Duration {
        if self.jitter == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(splitmix64(self.seed ^ k) % self.jitter.saturating_add(1))
    }

    /// The first tick at or after `base` since the grid's origin: tick 0
    /// for a grid that starts with the host (`base` 0); for one anchored at
    /// the Unix epoch, the first tick from the host's start on.
    pub(crate) fn first_tick_from(&self, base: u64) -> u64 {
        if base == 0 || self.offset(0) >= Duration::from_nanos(base) {
            return 0;
        }
        self.next_tick(0, Duration::from_nanos(base))
    }

    /// The first tick after `k` that is not yet due at `elapsed` since the
    /// host's start: `k + 1` when the scheduler keeps up, later after a stall.
    pub(crate) fn next_tick(&self, k: u64, elapsed: Duration) -> u64 {
        if self.offset(k + 1) > elapsed {
            // Keeping up: no division.
            return k + 1;
        }
        let since_grid = elapsed.saturating_sub(self.initial_delay() + self.jitter());
        let behind = since_grid.as_nanos() / u128::from(self.period);
        // Jitter only moves ticks later, so the estimate may stop short of
        // the first tick not yet due by a tick or two; walk the rest.
        let mut next = (k + 1).max(u64::try_from(behind).unwrap_or(u64::MAX));
        while self.offset(next) <= elapsed {
            next += 1;
        }
        next
    }
}

/// `90s` → `1 minute 30 seconds`.
fn words(duration: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
        (1, "millisecond"),
    ];
    let mut rest = duration.as_millis();
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        let n = rest / size;
        rest %= size;
        match n {
            0 => {}
            1 => parts.push(format!("1 {unit}")),
            n => parts.push(format!("{n} {unit}s")),
        }
    }
    if parts.is_empty() {
        "0 milliseconds".to_owned()
    } else {
        parts.join(" ")
    }
}

/// FNV-1a: a stable hash of a job's name, the seed of its jitter.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a of a name: the seed of its pseudo-random choices.
pub(crate) fn seed_of(name: &str) -> u64 {
    fnv1a(name.as_bytes())
}

/// SplitMix64's output function: spreads `z` over all 64 bits.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(period_ms: u64, delay_ms: u64, jitter_ms: u64) -> Every {
        Every::new(
            None,
            Duration::from_millis(period_ms),
            Duration::from_millis(delay_ms),
            Duration::from_millis(jitter_ms),
            seed_of("job"),
        )
        .expect("valid")
    }

    #[test]
    fn jitter_brings_two_ticks_closer_by_up_to_its_size() {
        assert_eq!(every(10, 0, 0).shortest_gap(), Duration::from_millis(10));
        assert_eq!(every(10, 3, 4).shortest_gap(), Duration::from_millis(6));
        let jittered = every(10, 0, 9);
        let closest = (0..10_000)
            .map(|k| jittered.offset(k + 1) - jittered.offset(k))
            .min()
            .unwrap();
        assert!(closest >= jittered.shortest_gap(), "{closest:?}");
    }

    #[test]
    fn grid_ticks_are_exact_multiples_of_the_period() {
        let e = every(10, 3, 0);
        assert_eq!(e.offset(0), Duration::from_millis(3));
        assert_eq!(e.offset(1_000_000), Duration::from_millis(3 + 10_000_000));
        assert_eq!(e.period(), Duration::from_millis(10));
    }

    #[test]
    fn after_a_stall_the_next_tick_is_the_first_not_yet_due() {
        let e = every(1000, 0, 0);
        assert_eq!(e.next_tick(0, Duration::from_millis(10)), 1);
        assert_eq!(e.next_tick(0, Duration::from_millis(3_600_500)), 3_601);
        assert_eq!(e.next_tick(5, Duration::from_millis(6_000)), 7);
        let jittered = every(1000, 0, 300);
        for elapsed_ms in [0, 999, 1_000, 1_299, 5_000, 86_400_123] {
            let elapsed = Duration::from_millis(elapsed_ms);
            let next = jittered.next_tick(0, elapsed);
            assert!(jittered.offset(next) > elapsed);
            assert!(
                next == 1 || jittered.offset(next - 1) <= elapsed,
                "{elapsed_ms}: {next}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_its_bound_and_varies() {
        let e = every(1000, 0, 200);
        let jitters: Vec<Duration> = (0..10_000).map(|k| e.jitter_of(k)).collect();
        assert!(jitters.iter().all(|j| *j <= Duration::from_millis(200)));
        let spread = jitters
            .iter()
            .max()
            .unwrap()
            .saturating_sub(*jitters.iter().min().unwrap());
        assert!(
            spread > Duration::from_millis(190),
            "jitter barely varies: {spread:?}"
        );
    }

    #[test]
    fn zero_period_and_long_jitter_are_rejected() {
        let zero = Every::new(
            None,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            seed_of("j"),
        );
        assert!(zero.err().unwrap().contains("zero"));
        let long = Every::new(
            None,
            Duration::from_secs(1),
            Duration::ZERO,
            Duration::from_secs(1),
            seed_of("j"),
        );
        assert!(long.err().unwrap().contains("jitter"));
    }
}
