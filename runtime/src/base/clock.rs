//! The host's clocks. Deadlines are `tokio::time::Instant`s, so tokio's
//! paused time drives every schedule in tests. Cron needs the wall clock too:
//! the system's, or a manual one that follows tokio's time and can be
//! stepped like an NTP correction (see [`TestClock`](crate::testing::TestClock)).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Default)]
pub(crate) enum Clock {
    #[default]
    System,
    Manual(Arc<ManualWall>),
}

impl Clock {
    pub(crate) fn wall(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }

    /// For a manual clock, a receiver that changes at each step: the
    /// scheduler reacts to a step at once instead of polling. The system
    /// clock gives no such notice and is polled.
    pub(crate) fn steps(&self) -> Option<watch::Receiver<u64>> {
        match self {
            Clock::System => None,
            Clock::Manual(manual) => Some(manual.steps.subscribe()),
        }
    }
}

/// A wall clock that moves with tokio's clock, plus steps.
pub(crate) struct ManualWall {
    start_wall: DateTime<Utc>,
    start: Instant,
    step_nanos: AtomicI64,
    steps: watch::Sender<u64>,
}

impl ManualWall {
    pub(crate) fn new(start_wall: DateTime<Utc>) -> ManualWall {
        ManualWall {
            start_wall,
            start: Instant::now(),
            step_nanos: AtomicI64::new(0),
            steps: watch::Sender::new(0),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.start.elapsed()).unwrap_or(TimeDelta::MAX);
        let step = TimeDelta::nanoseconds(self.step_nanos.load(Ordering::Acquire));
        self.start_wall + elapsed + step
    }

    pub(crate) fn step(&self, by: TimeDelta) {
        let nanos = by.num_nanoseconds().unwrap_or(i64::MAX);
        self.step_nanos.fetch_add(nanos, Ordering::AcqRel);
        self.steps.send_modify(|count| *count += 1);
    }
}
