//! Testing hosts on tokio's paused time with a controllable wall clock.
//!
//! A test says "advance 10 minutes" and asserts which runs happened, with no
//! real sleeps: tokio's paused clock jumps from deadline to deadline, and the
//! [`TestClock`] gives cron jobs a wall clock that follows it and can be
//! stepped like an NTP correction.
//!
//! Needs tokio's `test-util` feature in your dev-dependencies and a test on
//! the current-thread runtime with paused time:
//! `#[tokio::test(start_paused = true)]`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use hosted::prelude::*;
//! use hosted::testing::{TestClock, TestHost};
//!
//! #[cron("0 */10 * * * *", tz = "Europe/Berlin")]
//! async fn report() {}
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let clock = TestClock::at("2026-03-29T00:55:00Z".parse().unwrap());
//! let host = Host::builder().only_jobs(["report"]).clock(&clock).build().unwrap();
//! let test = TestHost::start(host).await;
//!
//! test.advance(Duration::from_secs(30 * 60)).await;
//!
//! let fired: Vec<String> = test.runs().iter().map(|r| r.scheduled.to_rfc3339()).collect();
//! assert_eq!(fired, ["2026-03-29T01:00:00+00:00", "2026-03-29T01:10:00+00:00", "2026-03-29T01:20:00+00:00"]);
//! assert!(test.stop().await.is_clean());
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::base::clock::{Clock, ManualWall};
use crate::base::report::Report;
use crate::handle::{HostHandle, JobStatus};
use crate::host::HostBuilder;
use crate::lifecycle::Host;
use crate::lifecycle::RunningHost;
use crate::model::shared::{RunHook, RunStart};

/// A wall clock for tests: it starts at a chosen instant, moves with tokio's
/// (paused) clock, and can be stepped forward or back.
#[derive(Clone)]
pub struct TestClock {
    wall: Arc<ManualWall>,
}

impl std::fmt::Debug for TestClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TestClock").field(&self.now()).finish()
    }
}

impl TestClock {
    /// A clock that reads `start` now. Create it inside the test's runtime.
    pub fn at(start: DateTime<Utc>) -> TestClock {
        TestClock {
            wall: Arc::new(ManualWall::new(start)),
        }
    }

    /// The time it reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.wall.now()
    }

    /// Steps the wall clock by `by` (negative: back) without moving tokio's
    /// clock, as an NTP correction or a resumed VM does. The host notices
    /// within a second.
    pub fn step(&self, by: TimeDelta) {
        self.wall.step(by);
    }
}

impl HostBuilder {
    /// Uses `clock` as the host's wall clock instead of the system's.
    pub fn clock(mut self, clock: &TestClock) -> Self {
        self.clock = Clock::Manual(clock.wall.clone());
        self
    }
}

/// One run that started, as [`TestHost::runs`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRun {
    /// The job's name.
    pub job: String,
    /// The run's number.
    pub number: u64,
    /// When it was due, on the wall clock.
    pub scheduled: DateTime<Utc>,
    /// When it started, on the wall clock.
    pub started: DateTime<Utc>,
}

/// A running host that records every run it starts.
#[derive(Debug)]
pub struct TestHost {
    running: RunningHost,
    handle: HostHandle,
    log: Arc<Mutex<Vec<RecordedRun>>>,
}

impl TestHost {
    /// Starts `host`, recording runs.
    ///
    /// # Panics
    ///
    /// If startup fails; use [`try_start`](Self::try_start) to test that.
    pub async fn start(host: Host) -> TestHost {
        match TestHost::try_start(host).await {
            Ok(test) => test,
            Err(report) => panic!("the host failed to start: {report}"),
        }
    }

    /// Starts `host`, recording runs; a failed startup returns its report.
    ///
    /// # Errors
    ///
    /// The report of a failed startup.
    pub async fn try_start(host: Host) -> Result<TestHost, Report> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hook_log = log.clone();
        let hook: RunHook = Box::new(move |run: RunStart<'_>| {
            hook_log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(RecordedRun {
                    job: run.job.to_owned(),
                    number: run.number,
                    scheduled: run.scheduled,
                    started: run.started,
                });
        });
        let _ = host.shared.run_hook.set(hook);
        let running = host.start().await?;
        let handle = running.handle();
        Ok(TestHost {
            running,
            handle,
            log,
        })
    }

    /// Lets `by` pass on tokio's paused clock: every deadline on the way
    /// fires in order, and the runs it starts get to run, including those due
    /// exactly at the end.
    ///
    /// It returns once the runtime has nothing left to run at the end
    /// instant: every run (and every task it spawned) that can make progress
    /// without time passing has done so, however many times it yields or
    /// hops between tasks. What waits for later (a sleep, a timeout) stays
    /// waiting; what waits on the world outside the runtime (a socket, a
    /// `spawn_blocking` task) is not waited for. The end instant is exact:
    /// no deadline after it fires.
    ///
    /// On the multi-thread runtime (where tokio's time cannot be paused)
    /// it can only yield a few times; use the current-thread runtime.
    pub async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
        settle().await;
        // With the feature `metrics`, what a running host publishes every
        // second is published here instead.
        #[cfg(feature = "metrics")]
        crate::observe::telemetry::publish(&self.handle.shared);
    }

    /// Every run started so far, in start order.
    pub fn runs(&self) -> Vec<RecordedRun> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The runs of the job named `job`.
    pub fn runs_of(&self, job: &str) -> Vec<RecordedRun> {
        self.runs()
            .into_iter()
            .filter(|run| run.job == job)
            .collect()
    }

    /// The status of the job named `job`.
    ///
    /// # Panics
    ///
    /// If the host has no such job.
    pub fn status(&self, job: &str) -> JobStatus {
        self.handle
            .job(job)
            .unwrap_or_else(|| panic!("the host has no job named `{job}`"))
    }

    /// A handle on the host.
    pub fn handle(&self) -> HostHandle {
        self.handle.clone()
    }

    /// Requests a stop and runs the stop sequence.
    pub async fn stop(self) -> Report {
        self.running.stop().await
    }

    /// Waits for a stop requested elsewhere (a failed service, a handle),
    /// then runs the stop sequence.
    pub async fn wait(self) -> Report {
        self.running.wait().await
    }
}

/// Lets every task that is ready run until the runtime has nothing left
/// to run, without moving the clock.
///
/// The current-thread runtime counts the times it parks, which it does only
/// when no task is ready; a blocking task that watches that count says when
/// it went up. While a blocking task lives, tokio's paused clock does not
/// jump ahead to the next deadline when the runtime parks (tokio's
/// `test-util` holds auto-advance back for it), so the runtime parks at the
/// current instant and the watcher wakes it at once.
async fn settle() {
    let handle = tokio::runtime::Handle::current();
    #[cfg(target_has_atomic = "64")]
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        let metrics = handle.metrics();
        let parked = metrics.worker_park_count(0);
        let (tx, rx) = tokio::sync::oneshot::channel();
        handle.spawn_blocking(move || {
            while metrics.worker_park_count(0) == parked {
                std::thread::sleep(Duration::from_micros(50));
            }
            let _ = tx.send(());
        });
        let _ = rx.await;
        return;
    }
    // Neither a count of parks nor a paused clock to keep still: let every
    // ready task take a few turns.
    let _ = handle;
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}
