//! What a host's run ends with: why it stopped, what failed, what was
//! aborted at the deadline, and the process's exit code.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use crate::base::outcome::Outcome;
use crate::base::queue::QueueStats;

/// Why a host stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A stop request through a [`HostHandle`](crate::HostHandle), a [`Lifetime`](crate::Lifetime) or
    /// [`RunningHost::stop`](crate::RunningHost::stop).
    Requested,
    /// A signal: `"SIGINT"`, `"SIGTERM"` or `"SIGQUIT"`.
    Signal(&'static str),
    /// The named background service failed.
    ServiceFailed(String),
    /// The named service failed to start.
    StartFailed(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Requested => f.write_str("stop requested"),
            StopReason::Signal(name) => write!(f, "received {name}"),
            StopReason::ServiceFailed(name) => write!(f, "service `{name}` failed"),
            StopReason::StartFailed(name) => write!(f, "service `{name}` failed to start"),
        }
    }
}

/// A step of a service that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostError {
    /// The service's name.
    pub name: String,
    /// The step.
    pub phase: Phase,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}: {}", self.name, self.phase, self.outcome)
    }
}

/// Something still going at the shutdown deadline, and dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Aborted {
    /// The job's, service's or queue's name.
    pub name: String,
    /// What it was doing: [`Phase::Run`] for a job's run, a background
    /// service or a queue's items, else the lifecycle step.
    pub phase: Phase,
    /// What kind of work it was.
    pub work: Work,
}

/// The kinds of work a [`Report`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Work {
    /// A run of a scheduled job.
    Job,
    /// A background service (`#[hosted_service]` on an `async fn`).
    Service,
    /// The items of a work queue.
    Queue,
    /// A lifecycle service's step (`start`, `stop`, a hook).
    Step,
}

impl Work {
    /// A step of the stop sequence: a lifecycle service's, or the run of a
    /// background service.
    pub(crate) fn of_step(phase: Phase) -> Work {
        if phase == Phase::Run {
            Work::Service
        } else {
            Work::Step
        }
    }
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.work {
            Work::Job => write!(f, "a run of `{}`", self.name),
            Work::Service => write!(f, "service `{}`", self.name),
            Work::Queue => write!(f, "items of queue `{}`", self.name),
            Work::Step => write!(f, "`{}`'s {}", self.name, self.phase),
        }
    }
}

/// How a host's run ended; turn it into the process's exit code with
/// [`exit_code`](Report::exit_code).
///
/// | exit code | meaning |
/// |---|---|
/// | 0 | clean stop: nothing failed, everything stopped in time |
/// | 1 ([`Report::EXIT_SERVICE_FAILED`]) | a background service failed |
/// | 2 ([`Report::EXIT_START_FAILED`]) | startup failed |
/// | 3 ([`Report::EXIT_STOP_FAILED`]) | a `stopping`, `stop` or `stopped` step failed |
/// | 4 ([`Report::EXIT_ABORTED`]) | something did not stop within the shutdown timeout (or a second signal cut the stop short) and was aborted, or a step that blocked its thread finished past the deadline |
///
/// When several apply, the first in this order wins: 2, 1, 3, 4. Failed
/// runs of scheduled jobs do not change the exit code: they are logged and
/// counted, and the schedule goes on.
#[derive(Clone, Debug)]
#[must_use]
pub struct Report {
    pub(crate) reason: StopReason,
    pub(crate) errors: Vec<HostError>,
    pub(crate) aborted: Vec<Aborted>,
    pub(crate) late: Vec<Aborted>,
    pub(crate) forced: bool,
    pub(crate) queues: Vec<QueueStats>,
    pub(crate) took: Duration,
}

impl Report {
    /// The exit code when a background service failed.
    pub const EXIT_SERVICE_FAILED: u8 = 1;
    /// The exit code when startup failed.
    pub const EXIT_START_FAILED: u8 = 2;
    /// The exit code when a step of the stop sequence failed.
    pub const EXIT_STOP_FAILED: u8 = 3;
    /// The exit code when something had to be aborted.
    pub const EXIT_ABORTED: u8 = 4;

    /// Why the host stopped.
    pub fn reason(&self) -> &StopReason {
        &self.reason
    }

    /// Every failed step, in the order they failed.
    pub fn errors(&self) -> &[HostError] {
        &self.errors
    }

    /// What was still going at the shutdown deadline, and dropped.
    pub fn aborted(&self) -> &[Aborted] {
        &self.aborted
    }

    /// Lifecycle steps that finished only after the shutdown deadline: a
    /// step that blocks its thread cannot be dropped, so the host waits for
    /// it, and says so here.
    pub fn past_deadline(&self) -> &[Aborted] {
        &self.late
    }

    /// Each queue's counters at the end, with the items that never ran
    /// ([`QueueStats::not_run`]).
    pub fn queues(&self) -> &[QueueStats] {
        &self.queues
    }

    /// Queued items that never ran, over every queue.
    pub fn not_run(&self) -> u64 {
        self.queues.iter().map(|q| q.not_run).sum()
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
        self.code() == 0
    }

    /// The exit code as a number: see the table above.
    pub fn code(&self) -> u8 {
        if matches!(self.reason, StopReason::StartFailed(_)) {
            Self::EXIT_START_FAILED
        } else if self.errors.iter().any(|e| e.phase == Phase::Run) {
            Self::EXIT_SERVICE_FAILED
        } else if !self.errors.is_empty() {
            Self::EXIT_STOP_FAILED
        } else if !self.aborted.is_empty() || !self.late.is_empty() || self.forced {
            Self::EXIT_ABORTED
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
        for error in &self.errors {
            write!(f, "; {error}")?;
        }
        for (what, steps) in [
            ("aborted at the deadline", &self.aborted),
            ("finished past the deadline", &self.late),
        ] {
            if !steps.is_empty() {
                let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
                write!(f, "; {what}: {}", names.join(", "))?;
            }
        }
        if self.forced {
            f.write_str("; stop cut short by a second signal")?;
        }
        for queue in self.queues.iter().filter(|q| q.not_run > 0) {
            write!(
                f,
                "; {} item(s) of queue `{}` never ran",
                queue.not_run, queue.name
            )?;
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

/// One step of a service's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The `starting` hook.
    Starting,
    /// `start`.
    Start,
    /// The `started` hook.
    Started,
    /// A background fn's run (`#[hosted_service]` on an `async fn`).
    Run,
    /// The `stopping` hook.
    Stopping,
    /// `stop`.
    Stop,
    /// The `stopped` hook.
    Stopped,
}

impl Phase {
    pub(crate) fn is_startup(self) -> bool {
        matches!(self, Phase::Starting | Phase::Start | Phase::Started)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::Start => "start",
            Phase::Started => "started",
            Phase::Run => "run",
            Phase::Stopping => "stopping",
            Phase::Stop => "stop",
            Phase::Stopped => "stopped",
        })
    }
}
