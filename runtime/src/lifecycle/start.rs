//! Startup: the services' `starting`, `start` and `started` steps under the
//! startup timeout, abandoned at once if a stop comes first; then the
//! `started` event and the background jobs.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::steps::{run_phase, InFlight};
use super::Host;
use super::{Lifetime, RunningHost};
use crate::base::kind::JobKind;
use crate::base::outcome::Outcome;
use crate::base::queue::TaskQueue;
use crate::base::report::Phase;
use crate::base::report::{HostError, Report, StopReason};
use crate::run::host_side::{cluster_host, work_host};
use crate::run::scheduler::Scheduler;
use crate::run::supervise::supervise;
use crate::seams::cluster::Missed;

use super::signals::Signals;

impl Host {
    /// Starts the host, runs it until SIGINT, SIGTERM or SIGQUIT, a stop
    /// request or a failed service, then stops it within the shutdown
    /// timeout. A second signal during the stop aborts what is left at once.
    /// A signal during startup abandons it.
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
        if let Some(report) = self.check_runtime() {
            return report;
        }
        let mut signals = Signals::new();
        let startup = self.start_until(async {
            let name = signals.recv().await;
            tracing::info!("received {name} during startup");
            StopReason::Signal(name)
        });
        let running = match startup.await {
            Ok(running) => running,
            Err(report) => return report,
        };
        tokio::select! {
            () = running.shared.stop.cancelled() => {}
            name = signals.recv() => {
                tracing::info!("received {name}");
                running.shared.request_stop(StopReason::Signal(name));
            }
        }
        running
            .shutdown(async move {
                let name = signals.recv().await;
                tracing::warn!("received {name} again; aborting what is left");
            })
            .await
    }

    /// Starts the services and the background jobs, and returns a handle on
    /// the running host once the `started` event has fired. Installs no
    /// signal handler: stop it with [`RunningHost::stop`] or a
    /// [`HostHandle`](crate::HostHandle). For a process's main, [`run`](Host::run) does all of
    /// it.
    ///
    /// # Errors
    ///
    /// If startup fails, the services that started are stopped again and
    /// the [`Report`] says why (exit code [`Report::EXIT_START_FAILED`]).
    pub async fn start(self) -> Result<RunningHost, Report> {
        if let Some(report) = self.check_runtime() {
            return Err(report);
        }
        self.start_until(std::future::pending()).await
    }

    /// Fails startup, before anything starts, on a tokio runtime that lacks
    /// a driver the host needs: timers for every schedule and timeout, I/O
    /// for the signals and the scheduler's timer. Without the check, the
    /// first use would panic deep inside the host. The report of the
    /// failed startup, if it failed.
    fn check_runtime(&self) -> Option<Report> {
        let lacks = if tokio::runtime::Handle::try_current().is_err() {
            Some("is not a tokio runtime: run the host on one (`#[tokio::main]` makes one)")
        } else if std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_err() {
            Some("has no timers: build it with `enable_all()` (as `#[tokio::main]` does), or at least `enable_time()` and `enable_io()`")
        } else if !crate::base::timer::runtime_has_io() {
            Some("has no I/O driver, which the signals and the scheduler's timer need: build it with `enable_all()` (as `#[tokio::main]` does), or at least `enable_io()` and `enable_time()`")
        } else {
            None
        };
        let lacks = lacks?;
        let error = HostError {
            name: "runtime".to_owned(),
            phase: Phase::Start,
            outcome: Outcome::Failed(format!("the runtime the host runs on {lacks}")),
        };
        tracing::error!(error = %error.outcome, "startup failed");
        self.shared
            .request_stop(StopReason::StartFailed(error.name.clone()));
        self.shared.stopped.cancel();
        Some(Report {
            reason: self.shared.reason(),
            errors: vec![error],
            aborted: Vec::new(),
            late: Vec::new(),
            forced: false,
            queues: self.shared.queues.iter().map(TaskQueue::stats).collect(),
            took: Duration::ZERO,
        })
    }

    /// The host's lifetime events, to await from anywhere, before or after
    /// it runs.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime::new(self.shared.clone())
    }

    /// The queue named `name` (`"default"` for the one [`TaskQueue`]
    /// arguments get), to hand to code outside the host, such as a web
    /// handler, before it runs.
    pub fn queue(&self, name: &str) -> Option<TaskQueue> {
        self.shared.queue(name)
    }

    /// Startup, abandoned if `interrupt` completes first.
    async fn start_until(
        self,
        interrupt: impl Future<Output = StopReason>,
    ) -> Result<RunningHost, Report> {
        let Host {
            shared,
            settings,
            mut services,
        } = self;
        let began = Instant::now();
        // The token `start` and the hooks get: fired if startup is
        // abandoned; otherwise it lives until the host stops, so work a
        // service spawns with it in `start` lives as long as the host.
        let cancel = shared.stop.child_token();
        let in_flight = InFlight::default();
        let outcome = {
            let startup = async {
                if let Some(coordinator) = &shared.coordinator {
                    if let Err(error) = coordinator.start(cluster_host(&shared)).await {
                        tracing::error!(error = %error, "could not join the cluster");
                        return Err(vec![HostError {
                            name: "cluster".to_owned(),
                            phase: Phase::Start,
                            outcome: Outcome::Failed(error.to_string()),
                        }]);
                    }
                }
                for source in &shared.sources {
                    if let Err(error) = source.start(work_host(&shared)).await {
                        tracing::error!(error = %error, "could not start the durable queue");
                        return Err(vec![HostError {
                            name: "durable queue".to_owned(),
                            phase: Phase::Start,
                            outcome: Outcome::Failed(error.to_string()),
                        }]);
                    }
                }
                for phase in [Phase::Starting, Phase::Start, Phase::Started] {
                    let errors = run_phase(
                        &mut services,
                        phase,
                        &cancel,
                        settings.start_concurrently,
                        &in_flight,
                    )
                    .await;
                    if !errors.is_empty() {
                        return Err(errors);
                    }
                }
                Ok(())
            };
            let timeout = async {
                match settings.startup_timeout {
                    Some(limit) => tokio::time::sleep_until(began + limit).await,
                    None => std::future::pending().await,
                }
            };
            // Biased, in this order: a stop request (from a handle, a
            // lifetime, or before `run()`) and a signal win over a startup
            // that finishes in the same poll, and a startup that is done
            // wins over its timeout (so a zero timeout always lets a startup
            // that never waits succeed, and always fails one that waits).
            tokio::select! {
                biased;
                () = shared.stop.cancelled() => Err(Vec::new()),
                reason = interrupt => {
                    shared.request_stop(reason);
                    Err(Vec::new())
                }
                result = startup => result,
                () = timeout => {
                    let limit = settings.startup_timeout.unwrap_or_default();
                    let outcome = Outcome::Failed(format!("did not finish within the startup timeout of {limit:?}"));
                    let mut stuck: Vec<HostError> = in_flight.take_running().into_iter().map(|(_, (name, phase))| HostError {
                        name: name.to_string(),
                        phase,
                        outcome: outcome.clone(),
                    }).collect();
                    if stuck.is_empty() {
                        // Between two steps: the startup as a whole was late.
                        stuck.push(HostError { name: "startup".to_owned(), phase: Phase::Start, outcome });
                    }
                    Err(stuck)
                }
            }
        };
        let running = RunningHost {
            shared,
            settings,
            services,
        };
        if outcome.is_ok() && running.launch_background() {
            return Ok(running);
        }
        cancel.cancel();
        let errors = outcome.err().unwrap_or_default();
        match errors.first() {
            Some(first) => running
                .shared
                .request_stop(StopReason::StartFailed(first.name.clone())),
            None => tracing::info!("stop requested during startup; abandoning it"),
        }
        for error in errors {
            tracing::error!(service = %error.name, phase = %error.phase, error = %error.outcome, "startup failed");
            running.shared.push_error(error);
        }
        Err(running.shutdown(std::future::pending()).await)
    }
}

/// With a cluster: claims, once, the last tick of each job of
/// [`Missed::Once`] that fell while no instance claimed it (judged from the
/// last tick the store recorded).
fn catch_up(shared: &std::sync::Arc<crate::model::shared::HostShared>) {
    let Some(coordinator) = &shared.coordinator else {
        return;
    };
    let last_ticks = coordinator.last_ticks();
    let now = shared.wall();
    for job in shared.jobs.iter().filter(|j| {
        j.claims()
            && j.enabled
            && j.cluster
                .as_ref()
                .is_some_and(|c| c.options.missed == Missed::Once)
    }) {
        let Some(Some(last)) = last_ticks.get(job.index as usize).copied() else {
            continue;
        };
        if let Some(at) = job.schedule.last_due(last, now) {
            tracing::info!(job = %job.name, tick = %at, "the cluster missed this job's tick at {at}; running it once (missed = \"once\")");
            crate::run::tick::claim_tick(shared, job, at, true);
        }
    }
}

impl RunningHost {
    /// Fires `started`, then starts the scheduler, the background services
    /// and the queues' workers; returns `false`, and starts nothing, if stop
    /// began first.
    fn launch_background(&self) -> bool {
        let shared = &self.shared;
        if !shared.fire_started() {
            return false;
        }
        #[cfg(feature = "metrics")]
        crate::observe::telemetry::start(shared, self.settings.metrics_per_job);
        let scheduler = Scheduler::new(shared.clone());
        shared.tracker.spawn(scheduler.run());
        catch_up(shared);
        let mut background = 0;
        for job in shared
            .jobs
            .iter()
            .filter(|j| j.kind == JobKind::Service && j.enabled)
        {
            background += 1;
            shared.tracker.spawn(supervise(shared.clone(), job.clone()));
        }
        for queue in &shared.queues {
            for worker in 0..queue.options().workers {
                shared.tracker.spawn(queue.clone().work(worker));
            }
        }
        let scheduled = shared.jobs.len() - background;
        let services = self.services.len() + background;
        let queues = shared.queues.len();
        tracing::info!(
            "host started: {scheduled} job(s), {services} service(s), {queues} queue(s); press Ctrl+C to stop",
        );
        if self.settings.nothing_registered {
            tracing::warn!(
                "this binary holds no job or service declared with #[every], #[cron] or \
                 #[hosted_service]. If yours are in a library crate, the linker left it out \
                 because nothing in the binary uses it: add `use your_jobs_crate as _;` to \
                 main.rs. A host whose jobs are all added by hand says so with \
                 `HostBuilder::without_registered()`, which also silences this warning"
            );
        }
        true
    }
}
