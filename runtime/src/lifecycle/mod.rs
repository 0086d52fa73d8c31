//! The host's lifecycle: startup, the lifetime events, the stop sequence,
//! signals, and the report `run()` returns.
//!
//! Startup, in order: every service's `starting` hook, every `start`, every
//! `started` hook (services in start order, one after another unless
//! `start_concurrently`), then the `started` event, then the background
//! jobs. A step that fails, panics or outlives `startup_timeout`, or a stop
//! requested meanwhile, aborts startup: later steps never run, and the
//! services already started are stopped in reverse order.
//!
//! Stop begins on SIGINT, SIGTERM or SIGQUIT, a stop request, a failed
//! service, or a failed startup; the first cause is kept. Then, under one
//! deadline (`shutdown_timeout`): the `stopping` event (every job's token is
//! cancelled at once), the `stopping` hooks, the end of every background
//! job, every `stop`, the `stopped` hooks (services in reverse start order,
//! one after another unless `stop_concurrently`), and the `stopped` event.
//! Every step runs even when an earlier one failed; errors are collected in
//! order. At the deadline (or at once, on a second signal) the deadline
//! token given to `stop` fires, the steps in progress and background runs
//! still going are dropped and named in the report, and the steps not yet
//! begun get one poll each: cleanup that need not wait still happens.

mod lifetime;
mod signals;
mod start;
mod steps;
mod stop;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::base::report::{Report, StopReason};
use crate::model::service::DynService;
use crate::model::service::ServiceStatus;
use crate::model::shared::HostShared;

pub use self::lifetime::Lifetime;

/// A service as the host holds it.
pub(crate) struct ServiceSlot {
    /// Its place in the host's list of services.
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) service: Box<dyn DynService>,
    pub(crate) started: bool,
    /// Where it stands, as the host's handle reports it.
    pub(crate) status: Arc<ServiceStatus>,
}

/// A host whose services and jobs are running. From [`Host::start`](crate::Host::start).
///
/// Stop it with [`stop`](RunningHost::stop) or [`wait`](RunningHost::wait)
/// for the graceful stop sequence. Dropped without either (or with its stop
/// cut short by dropping the future), it aborts: every token is cancelled,
/// runs and queue items still going are dropped at their next await, and
/// nothing more is scheduled; the services' `stop` methods and hooks do not
/// run, as they cannot be awaited from `drop`.
/// A configured host, ready to [`run`](Host::run).
///
/// Built by [`Host::builder`]; every job's schedule and arguments have been
/// checked.
pub struct Host {
    pub(crate) shared: Arc<HostShared>,
    pub(crate) settings: Settings,
    pub(crate) services: Vec<ServiceSlot>,
}

/// How the lifecycle runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) startup_timeout: Option<Duration>,
    pub(crate) start_concurrently: bool,
    pub(crate) stop_concurrently: bool,
    /// The builder took every registered job and service, and the binary
    /// holds none: almost always jobs declared in a library crate that the
    /// linker dropped. Said at start.
    pub(crate) nothing_registered: bool,
    /// Finished runs kept per job, and in all.
    pub(crate) run_history: usize,
    pub(crate) run_history_budget: usize,
    /// Metrics labelled by job (the default), or one set for the host.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_per_job: bool,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("services", &self.service_names().collect::<Vec<_>>())
            .field("jobs", &self.job_names().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// The names of the host's jobs (scheduled jobs and background fns), in
    /// start order.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.shared.jobs.iter().map(|job| &*job.name)
    }

    /// The names of the host's lifecycle services, in start order.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|slot| &*slot.name)
    }
}

/// A host whose services and jobs are running. From [`Host::start`](crate::Host::start).
///
/// Stop it with [`stop`](RunningHost::stop) or [`wait`](RunningHost::wait)
/// for the graceful stop sequence. Dropped without either (or with its stop
/// cut short by dropping the future), it aborts: every token is cancelled,
/// runs and queue items still going are dropped at their next await, and
/// nothing more is scheduled; the services' `stop` methods and hooks do not
/// run, as they cannot be awaited from `drop`.
#[must_use = "a running host keeps running until stopped; call `stop` or `wait` (dropping it aborts everything)"]
pub struct RunningHost {
    pub(crate) shared: Arc<HostShared>,
    pub(super) settings: Settings,
    pub(super) services: Vec<ServiceSlot>,
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if !self.shared.stopped.is_cancelled() {
            tracing::warn!("a running host was dropped without being stopped; aborting its jobs");
            self.shared.request_stop(StopReason::Requested);
            self.shared.abort();
        }
    }
}

impl fmt::Debug for RunningHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningHost")
            .field("stopping", &self.shared.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl RunningHost {
    /// The host's lifetime events.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime::new(self.shared.clone())
    }

    /// Requests a stop and waits for the stop sequence to finish.
    pub async fn stop(self) -> Report {
        self.shared.request_stop(StopReason::Requested);
        self.wait().await
    }

    /// Waits until stop is requested (through a [`HostHandle`](crate::HostHandle), a
    /// [`Lifetime`] or a failed service), then runs the stop sequence. Does
    /// not listen for signals.
    pub async fn wait(self) -> Report {
        self.shared.stop.cancelled().await;
        self.shutdown(std::future::pending()).await
    }
}
