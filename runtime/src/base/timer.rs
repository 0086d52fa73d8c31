//! The scheduler's one timer.
//!
//! tokio's timer wheel has a resolution of one millisecond and rounds every
//! deadline up to the next whole millisecond, and a parked worker sleeps in
//! `epoll_wait`, whose timeout is in milliseconds too: a tick due at
//! 10.0 ms runs at 11 to 12 ms. On Linux the scheduler therefore waits on a
//! `timerfd` armed to the nanosecond and registered with tokio's own
//! reactor: the same thread, no timer thread of its own, and the reactor
//! wakes exactly when the kernel's high-resolution timer expires.
//!
//! tokio's timer is still used where it is the right one: under paused time
//! (tests, through [`TestClock`](crate::testing::TestClock) or tokio's
//! `start_paused`), where only tokio's clock moves; on a runtime built
//! without I/O, where there is no reactor to register with; and off Linux.
//!
//! A wake-up costs the same whatever it fires (here, a context switch and
//! the timerfd's one system call, which tokio's timer does without: it
//! sleeps in `epoll_wait`'s own timeout). So the scheduler spaces its
//! wake-ups by what they fire:
//! - never more than once per [`MIN_GAP`] (1 ms): a dense schedule
//!   (100,000 jobs a second) does not turn into one wake-up per deadline;
//!   each wake-up fires everything due by then, as tokio's timer would, but
//!   without the rounding;
//! - after a wake-up that fired fewer than [`FEW_RUNS`], not before
//!   [`FEW_GAP`] (2 ms), unless a job's ticks can come closer together than
//!   that (then that job's shortest gap, so no job ever skips a tick for
//!   it). A thousand jobs a second, one due every millisecond, then wake
//!   the scheduler 500 times a second with two runs each, instead of a
//!   thousand times with one: tokio's timer wakes a thousand times, so
//!   the timerfd's extra system call would make hosted the dearer.
//!
//! A deadline that comes later than that after the previous wake-up (any
//! schedule sparser than one tick per 2 ms) is met to the microsecond; in a
//! dense one a tick runs at most 1 or 2 ms late, as late as tokio's timer
//! runs every tick.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The shortest time between two wake-ups of the precise timer.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(1);

/// A wake-up that fires fewer runs than this is followed by one
/// [`FEW_GAP`] later at the earliest: its fixed cost is shared by few.
pub(crate) const FEW_RUNS: u32 = 8;

/// The shortest time between a wake-up that fired few runs and the next.
pub(crate) const FEW_GAP: Duration = Duration::from_millis(2);

/// The gap after a wake-up that fired few runs, for a job whose ticks come
/// at least `shortest` apart: [`FEW_GAP`], shortened to `shortest` so that
/// waiting longer never makes that job skip a tick, but never under
/// [`MIN_GAP`]. The scheduler takes the least over its jobs.
pub(crate) fn few_gap(shortest: Duration) -> Duration {
    FEW_GAP.min(shortest.max(MIN_GAP))
}

/// The earliest the precise timer wakes again after a wake-up for
/// `woke_for` that fired `fired` runs, given the scheduler's `few_gap`.
pub(crate) fn earliest_next(woke_for: Instant, fired: u32, few_gap: Duration) -> Instant {
    woke_for + if fired < FEW_RUNS { few_gap } else { MIN_GAP }
}

pub(crate) struct Timer {
    inner: Inner,
}

enum Inner {
    Tokio(Pin<Box<Sleep>>),
    #[cfg(target_os = "linux")]
    Precise(precise::TimerFd),
}

/// Whether the current runtime has an I/O driver, found by registering a
/// descriptor with it (tokio offers no question that does not panic). The
/// panic, if any, is caught; tokio's hook prints its own message first.
pub(crate) fn runtime_has_io() -> bool {
    #[cfg(target_os = "linux")]
    return std::panic::catch_unwind(|| drop(precise::TimerFd::new())).is_ok();
    #[cfg(not(target_os = "linux"))]
    true
}

impl Timer {
    /// A precise timer if `want_precise` and this runtime and platform
    /// allow one, else tokio's.
    pub(crate) fn new(want_precise: bool) -> Timer {
        #[cfg(target_os = "linux")]
        if want_precise && !time_is_paused() {
            match precise::TimerFd::new() {
                Ok(fd) => {
                    return Timer {
                        inner: Inner::Precise(fd),
                    }
                }
                Err(error) => tracing::debug!(
                    %error,
                    "no timerfd on this runtime (is I/O enabled?); the scheduler uses tokio's millisecond timer"
                ),
            }
        }
        let _ = want_precise;
        Timer {
            inner: Inner::Tokio(Box::pin(tokio::time::sleep_until(Instant::now()))),
        }
    }

    /// Whether this is the precise timer.
    pub(crate) fn is_precise(&self) -> bool {
        !matches!(self.inner, Inner::Tokio(_))
    }

    /// Arms the timer for `deadline`, replacing any earlier setting.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        match &mut self.inner {
            Inner::Tokio(sleep) => sleep.as_mut().reset(deadline),
            #[cfg(target_os = "linux")]
            Inner::Precise(fd) => fd.arm(deadline),
        }
    }

    /// Resolves once the armed deadline has passed (never before).
    pub(crate) async fn expired(&mut self) {
        match &mut self.inner {
            Inner::Tokio(sleep) => sleep.as_mut().await,
            #[cfg(target_os = "linux")]
            Inner::Precise(fd) => fd.expired().await,
        }
    }
}

/// Whether tokio's clock is paused: it then stands still between two reads
/// however much real time passes.
pub(crate) fn time_is_paused() -> bool {
    let before = Instant::now();
    let real = std::time::Instant::now();
    while real.elapsed() < Duration::from_micros(2) {
        std::hint::spin_loop();
    }
    Instant::now() == before
}

#[cfg(target_os = "linux")]
mod precise {
    use std::os::fd::{AsFd as _, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{self, ClockId, Expiration, TimerFlags, TimerSetTimeFlags};
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    /// A non-blocking `CLOCK_MONOTONIC` timerfd (the clock behind
    /// `std::time::Instant`, and so behind tokio's when it is not paused),
    /// registered with the current runtime's reactor.
    pub(super) struct TimerFd {
        fd: AsyncFd<Fd>,
    }

    struct Fd(timerfd::TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    impl TimerFd {
        pub(super) fn new() -> std::io::Result<TimerFd> {
            let fd = timerfd::TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // SAFETY: `Fd` owns the descriptor (an `OwnedFd` inside nix's
            // `TimerFd`) and its `as_raw_fd` always returns that one; the
            // `AsyncFd` owns the `Fd`, so the descriptor stays open and the
            // same for as long as it is registered.
            #[allow(unsafe_code)]
            let fd =
                unsafe { AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE)? };
            Ok(TimerFd { fd })
        }

        /// Arms the timer relative to now: `Instant` does not expose its
        /// clock's raw value, and the few hundred nanoseconds between
        /// reading the clock and arming can only make it later, never early.
        pub(super) fn arm(&mut self, deadline: Instant) {
            // Zero would disarm it: a deadline already passed fires in 1 ns.
            let after = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1));
            let set = self.fd.get_ref().0.set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            );
            if let Err(error) = set {
                // timerfd_settime fails only for invalid arguments, which
                // these are not; wake at once rather than never.
                tracing::error!(%error, "could not arm the scheduler's timerfd");
            }
        }

        /// Resolves at the expiry of the current arming. The expiry count
        /// is never read: arming again resets it, and the reactor
        /// (edge-triggered) reports each expiry anew, so one syscall a
        /// wake-up is saved. The caller arms once per wake-up and checks
        /// the time itself, so a stale report costs one early look, never
        /// an early fire.
        pub(super) async fn expired(&mut self) {
            match self.fd.readable().await {
                Ok(mut ready) => ready.clear_ready(),
                // The reactor is gone: the runtime is shutting down.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_that_fired_few_runs_is_followed_by_a_longer_gap() {
        let at = Instant::now();
        assert_eq!(earliest_next(at, 0, FEW_GAP), at + FEW_GAP);
        assert_eq!(earliest_next(at, FEW_RUNS - 1, FEW_GAP), at + FEW_GAP);
        assert_eq!(earliest_next(at, FEW_RUNS, FEW_GAP), at + MIN_GAP);
        assert_eq!(earliest_next(at, 10_000, FEW_GAP), at + MIN_GAP);
    }

    #[test]
    fn the_longer_gap_never_exceeds_a_jobs_shortest_gap_nor_falls_under_the_minimum() {
        assert_eq!(few_gap(Duration::from_secs(1)), FEW_GAP);
        assert_eq!(few_gap(FEW_GAP), FEW_GAP);
        // A job every 1.5 ms would skip ticks behind a 2 ms gap.
        assert_eq!(
            few_gap(Duration::from_micros(1_500)),
            Duration::from_micros(1_500)
        );
        // Below the minimum, the minimum: as with tokio's timer.
        assert_eq!(few_gap(Duration::from_micros(300)), MIN_GAP);
        assert_eq!(few_gap(Duration::ZERO), MIN_GAP);
    }

    #[tokio::test]
    async fn the_precise_timer_never_fires_early() {
        let mut timer = Timer::new(true);
        assert_eq!(timer.is_precise(), cfg!(target_os = "linux"));
        for wait_ms in [3, 1, 5] {
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            timer.reset(deadline);
            timer.expired().await;
            assert!(Instant::now() >= deadline, "fired before {wait_ms} ms");
        }
    }

    #[tokio::test]
    async fn arming_again_replaces_the_deadline() {
        let mut timer = Timer::new(true);
        timer.reset(Instant::now() + Duration::from_secs(3_600));
        let deadline = Instant::now() + Duration::from_millis(2);
        timer.reset(deadline);
        tokio::time::timeout(Duration::from_secs(5), timer.expired())
            .await
            .expect("the later arming replaced the hour");
        assert!(Instant::now() >= deadline);
    }

    #[tokio::test]
    async fn a_passed_deadline_fires_at_once() {
        let mut timer = Timer::new(true);
        timer.reset(Instant::now());
        tokio::time::timeout(Duration::from_secs(5), timer.expired())
            .await
            .expect("a deadline in the past fires");
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_gets_tokios_timer() {
        let mut timer = Timer::new(true);
        assert!(!timer.is_precise());
        let deadline = Instant::now() + Duration::from_secs(3_600);
        timer.reset(deadline);
        timer.expired().await;
        assert!(Instant::now() >= deadline);
    }
}
