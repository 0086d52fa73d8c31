//! A running host: start, the stop sequence, signals, the handle, and the
//! report `run()` returns. How stop works, in order:
//!
//! 1. Stop begins on SIGINT, SIGTERM or SIGQUIT, on
//!    [`HostHandle::request_stop`], or when a service fails. The first
//!    cause is kept as the [`StopReason`]; asking again changes nothing.
//! 2. The stop token is cancelled: every job's `CancellationToken` fires at
//!    once, and the scheduler starts no more runs.
//! 3. Everything still running gets `shutdown_timeout` in total to finish.
//! 4. Whatever has not finished by then (or at once, on a second signal) is
//!    aborted: its future is dropped, its job is named in the [`Report`]
//!    and its run counted as failed.

use std::fmt;
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::extract::{ExtractError, FromRun, Outcome, RunContext, StateMap};
use crate::host::Host;
use crate::registry::JobKind;
use crate::runner::{dispatch, JobDef};
use crate::scheduler::Scheduler;
use crate::testing::RecordedRun;

/// How long aborted tasks get to be dropped after the deadline. A task that
/// blocks its thread cannot be aborted; past this, the host stops waiting.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// What every part of a running host shares.
pub(crate) struct HostShared {
    /// Cancelled when stop begins: the token jobs get.
    pub(crate) stop: CancellationToken,
    /// Cancelled at the shutdown deadline: drops what is still running.
    pub(crate) kill: CancellationToken,
    pub(crate) state: StateMap,
    pub(crate) tracker: TaskTracker,
    pub(crate) clock: Clock,
    pub(crate) jobs: Vec<Arc<JobDef>>,
    reason: Mutex<Option<StopReason>>,
    failures: Mutex<Vec<Failure>>,
    /// Set by `testing::TestHost` to record every run that starts.
    pub(crate) run_log: OnceLock<Mutex<Vec<RecordedRun>>>,
}

impl HostShared {
    pub(crate) fn new(state: StateMap, clock: Clock, jobs: Vec<Arc<JobDef>>) -> HostShared {
        HostShared {
            stop: CancellationToken::new(),
            kill: CancellationToken::new(),
            state,
            tracker: TaskTracker::new(),
            clock,
            jobs,
            reason: Mutex::new(None),
            failures: Mutex::new(Vec::new()),
            run_log: OnceLock::new(),
        }
    }

    /// Begins the stop sequence; the first reason given is the one kept.
    pub(crate) fn request_stop(&self, reason: StopReason) {
        {
            let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(reason);
            }
        }
        self.stop.cancel();
    }

    /// Records a failed service and stops the host.
    pub(crate) fn fail(&self, job: &str, outcome: &Outcome) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Failure {
                job: job.to_owned(),
                outcome: outcome.clone(),
            });
        self.request_stop(StopReason::ServiceFailed(job.to_owned()));
    }

    pub(crate) fn record_run(&self, job: &str, number: u64, scheduled: DateTime<Utc>) {
        if let Some(log) = self.run_log.get() {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(RecordedRun {
                    job: job.to_owned(),
                    number,
                    scheduled,
                    started: self.clock.wall(),
                });
        }
    }
}

impl Host {
    /// Runs the host until SIGINT, SIGTERM or SIGQUIT, a stop request or a
    /// failed service, then stops it gracefully within the shutdown timeout.
    /// A second signal during the stop aborts what is left at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use hosted::Host;
    ///
    /// #[tokio::main]
    /// async fn main() -> std::process::ExitCode {
    ///     Host::builder()
    ///         .build()
    ///         .expect("host configuration")
    ///         .run()
    ///         .await
    ///         .exit_code()
    /// }
    /// ```
    pub async fn run(self) -> Report {
        let mut signals = Signals::new();
        let running = self.start();
        tokio::select! {
            () = running.shared.stop.cancelled() => {}
            name = signals.recv() => {
                tracing::info!(signal = name, "received {name}");
                running.shared.request_stop(StopReason::Signal(name));
            }
        }
        running
            .shutdown(async move {
                let name = signals.recv().await;
                tracing::warn!(
                    signal = name,
                    "received {name} again; aborting what is left"
                );
            })
            .await
    }
}

/// A host whose jobs are running. From [`Host::start`].
#[must_use = "a running host keeps running until stopped; call `stop` or `wait`"]
pub struct RunningHost {
    shared: Arc<HostShared>,
    shutdown_timeout: Duration,
}

impl fmt::Debug for RunningHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningHost")
            .field("stopping", &self.shared.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl RunningHost {
    pub(crate) fn start(host: Host) -> RunningHost {
        let Host {
            shared,
            shutdown_timeout,
        } = host;
        let scheduler = Scheduler::new(shared.clone(), &shared.jobs);
        shared.tracker.spawn(scheduler.run());
        let started = shared.clock.wall();
        let mut services = 0;
        for job in shared.jobs.iter().filter(|j| j.kind == JobKind::Service) {
            services += 1;
            dispatch(&shared, job, started);
        }
        tracing::info!(
            jobs = shared.jobs.len() - services,
            services,
            "host started: {} scheduled job(s), {services} service(s); press Ctrl+C to stop",
            shared.jobs.len() - services,
        );
        RunningHost {
            shared,
            shutdown_timeout,
        }
    }

    /// A handle on this host, for inspecting it and stopping it from
    /// anywhere.
    pub fn handle(&self) -> HostHandle {
        HostHandle {
            shared: self.shared.clone(),
        }
    }

    /// Requests a stop and waits for the stop sequence to finish.
    pub async fn stop(self) -> Report {
        self.shared.request_stop(StopReason::Requested);
        self.wait().await
    }

    /// Waits until stop is requested (through a [`HostHandle`] or a failed
    /// service), then runs the stop sequence. Does not listen for signals.
    pub async fn wait(self) -> Report {
        self.shared.stop.cancelled().await;
        self.shutdown(std::future::pending()).await
    }

    /// The stop sequence; `force` completing aborts what is left at once.
    async fn shutdown(self, force: impl Future<Output = ()>) -> Report {
        let began = Instant::now();
        let shared = &self.shared;
        shared.request_stop(StopReason::Requested);
        let reason = shared
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(StopReason::Requested);
        tracing::info!(%reason, timeout = ?self.shutdown_timeout, "stopping");
        shared.tracker.close();

        let deadline = began + self.shutdown_timeout;
        let mut forced = false;
        let finished = tokio::select! {
            () = shared.tracker.wait() => true,
            () = tokio::time::sleep_until(deadline) => false,
            () = force => { forced = true; false }
        };
        let mut aborted = Vec::new();
        if !finished {
            for job in &shared.jobs {
                let running = job.stats.running.load(Ordering::Acquire);
                if running > 0 {
                    tracing::warn!(job = %job.name, running, "did not stop in time; aborting");
                    aborted.push(job.name.to_string());
                }
            }
            shared.kill.cancel();
            if tokio::time::timeout(ABORT_GRACE, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "some runs did not end after being aborted; a job may be blocking its thread"
                );
            }
        }
        let failures = std::mem::take(
            &mut *shared
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let report = Report {
            reason,
            failures,
            aborted,
            forced,
            took: began.elapsed(),
        };
        if report.is_clean() {
            tracing::info!(took = ?report.took, "stopped");
        } else {
            tracing::error!(took = ?report.took, "stopped: {report}");
        }
        report
    }
}

/// A cloneable handle on a running host: inspect its jobs, request a stop.
///
/// Jobs can take it as an argument.
#[derive(Clone)]
pub struct HostHandle {
    shared: Arc<HostShared>,
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle").finish_non_exhaustive()
    }
}

impl HostHandle {
    pub(crate) fn shared(&self) -> &HostShared {
        &self.shared
    }

    /// Begins a graceful stop; asking again changes nothing.
    pub fn request_stop(&self) {
        self.shared.request_stop(StopReason::Requested);
    }

    /// Whether stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Waits until stop begins.
    pub async fn stopping(&self) {
        self.shared.stop.cancelled().await;
    }

    /// Every job's status, in start order.
    pub fn jobs(&self) -> Vec<JobStatus> {
        self.shared
            .jobs
            .iter()
            .map(|job| JobStatus::of(job))
            .collect()
    }

    /// The status of the job named `name`.
    pub fn job(&self, name: &str) -> Option<JobStatus> {
        self.shared
            .jobs
            .iter()
            .find(|job| &*job.name == name)
            .map(|job| JobStatus::of(job))
    }
}

impl FromRun for HostHandle {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        Ok(HostHandle {
            shared: cx.host.clone(),
        })
    }
}

/// A job's counters, as [`HostHandle::jobs`] reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its kind.
    pub kind: JobKind,
    /// Its schedule as written, e.g. `every 5s` or `cron 0 3 * * * (UTC)`.
    pub schedule: String,
    /// Where it was defined: `file:line` of the annotated fn, or
    /// `HostBuilder::job`.
    pub defined_at: String,
    /// Runs started.
    pub runs: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed, panicked or were aborted.
    pub failed: u64,
    /// Ticks skipped because the previous run was still going, and cron
    /// fires jumped over by the wall clock.
    pub skipped: u64,
    /// Runs going now.
    pub running: u32,
}

impl JobStatus {
    fn of(job: &JobDef) -> JobStatus {
        let stats = &job.stats;
        JobStatus {
            name: job.name.to_string(),
            kind: job.kind,
            schedule: job.schedule.describe(),
            defined_at: job.origin.to_string(),
            runs: stats.started.load(Ordering::Relaxed),
            succeeded: stats.succeeded.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            skipped: stats.skipped.load(Ordering::Relaxed),
            running: stats.running.load(Ordering::Relaxed),
        }
    }
}

/// Why a host stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A stop request through a [`HostHandle`] or [`RunningHost::stop`].
    Requested,
    /// A signal: `"SIGINT"`, `"SIGTERM"` or `"SIGQUIT"`.
    Signal(&'static str),
    /// The named service failed.
    ServiceFailed(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Requested => f.write_str("stop requested"),
            StopReason::Signal(name) => write!(f, "received {name}"),
            StopReason::ServiceFailed(job) => write!(f, "service `{job}` failed"),
        }
    }
}

/// A service that failed: it returned `Err` or panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The service's name.
    pub job: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// How a host's run ended; turn it into the process's exit code with
/// [`exit_code`](Report::exit_code).
///
/// | exit code | meaning |
/// |---|---|
/// | 0 | clean stop: nothing failed, everything stopped in time |
/// | 1 ([`Report::EXIT_FAILURE`]) | a service failed |
/// | 2 ([`Report::EXIT_TIMEOUT`]) | nothing failed, but something did not stop within the shutdown timeout (or a second signal cut the stop short) and was aborted |
///
/// Failed runs of scheduled jobs do not change the exit code: they are
/// logged and counted, and the schedule goes on.
#[derive(Clone, Debug)]
#[must_use]
pub struct Report {
    reason: StopReason,
    failures: Vec<Failure>,
    aborted: Vec<String>,
    forced: bool,
    took: Duration,
}

impl Report {
    /// The exit code when a service failed.
    pub const EXIT_FAILURE: u8 = 1;
    /// The exit code when something had to be aborted.
    pub const EXIT_TIMEOUT: u8 = 2;

    /// Why the host stopped.
    pub fn reason(&self) -> &StopReason {
        &self.reason
    }

    /// Services that failed, in order.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Jobs still running at the shutdown deadline, which were aborted.
    pub fn aborted(&self) -> &[String] {
        &self.aborted
    }

    /// Whether a second signal cut the stop short.
    pub fn was_forced(&self) -> bool {
        self.forced
    }

    /// How long the stop sequence took.
    pub fn stop_took(&self) -> Duration {
        self.took
    }

    /// Whether nothing failed and everything stopped in time.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty() && self.aborted.is_empty() && !self.forced
    }

    /// The exit code as a number: see the table above.
    pub fn code(&self) -> u8 {
        if !self.failures.is_empty() {
            Self::EXIT_FAILURE
        } else if !self.aborted.is_empty() || self.forced {
            Self::EXIT_TIMEOUT
        } else {
            0
        }
    }

    /// The process exit code: see the table above.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        for failure in &self.failures {
            write!(f, "; service `{}` {}", failure.job, failure.outcome)?;
        }
        if !self.aborted.is_empty() {
            write!(f, "; aborted at the deadline: {}", self.aborted.join(", "))?;
        }
        if self.forced {
            f.write_str("; stop cut short by a second signal")?;
        }
        Ok(())
    }
}

impl std::process::Termination for Report {
    fn report(self) -> ExitCode {
        if !self.is_clean() {
            eprintln!("host stopped: {self}");
        }
        self.exit_code()
    }
}

/// The signals that stop a host.
struct Signals {
    #[cfg(unix)]
    streams: Vec<(tokio::signal::unix::Signal, &'static str)>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let mut streams = Vec::new();
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::quit(), "SIGQUIT"),
        ] {
            match signal(kind) {
                Ok(stream) => streams.push((stream, name)),
                Err(error) => tracing::warn!(%error, "cannot listen for {name}"),
            }
        }
        Signals { streams }
    }

    #[cfg(not(unix))]
    fn new() -> Signals {
        Signals {}
    }

    /// Waits for the next signal and returns its name.
    #[cfg(unix)]
    async fn recv(&mut self) -> &'static str {
        if self.streams.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            for (stream, name) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl+C",
            Err(_) => std::future::pending().await,
        }
    }
}
