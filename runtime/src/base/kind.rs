//! The kinds of job, and what a tick does while a run is still going.

use std::fmt;

/// What a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A fixed-rate job (`#[every]`).
    Every,
    /// A cron job (`#[cron]`).
    Cron,
    /// A long-running service (`#[hosted_service]`).
    Service,
    /// A handler of durable work items (`#[queued]` of `hosted-postgres`):
    /// runs once per item a durable queue hands it, never on a schedule.
    Queued,
}

impl JobKind {
    /// `"every"`, `"cron"`, `"service"` or `"queued"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Every => "every",
            JobKind::Cron => "cron",
            JobKind::Service => "service",
            JobKind::Queued => "queued",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a tick comes due while the job's previous run is still
/// going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overlap {
    /// The tick is skipped and counted; the next run is the next tick on the
    /// schedule (the default).
    #[default]
    Skip,
    /// The tick starts another run beside the one still going.
    Allow,
}
