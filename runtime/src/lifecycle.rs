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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::extract::{ExtractError, FromRun, Outcome, RunContext, StateMap};
use crate::handle::HostHandle;
use crate::host::{Host, Settings};
use crate::queue::{QueueStats, TaskQueue};
use crate::registry::JobKind;
use crate::runner::{panic_message, supervise, JobDef};
use crate::scheduler::Scheduler;
use crate::scope::ScopeDef;
use crate::service::{DynService, Phase};
use crate::testing::RecordedRun;

/// How long aborted tasks get to be dropped after the deadline. A task that
/// blocks its thread cannot be aborted; past this, the host stops waiting.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// What every part of a running host shares.
pub(crate) struct HostShared {
    /// Cancelled when stop begins: the token jobs get, and the `stopping`
    /// event.
    pub(crate) stop: CancellationToken,
    /// Set just before `stop` is cancelled: `CancellationToken::is_cancelled`
    /// takes a lock, and the scheduler asks once per due tick.
    stopping: AtomicBool,
    /// Cancelled at the shutdown deadline: drops what is still running.
    pub(crate) kill: CancellationToken,
    /// The `started` event.
    pub(crate) started: CancellationToken,
    /// The `stopped` event.
    pub(crate) stopped: CancellationToken,
    pub(crate) state: StateMap,
    pub(crate) tracker: TaskTracker,
    pub(crate) clock: Clock,
    pub(crate) jobs: Vec<Arc<JobDef>>,
    pub(crate) scopes: Vec<ScopeDef>,
    pub(crate) queues: Vec<TaskQueue>,
    reason: Mutex<Option<StopReason>>,
    errors: Mutex<Vec<HostError>>,
    /// Set by `testing::TestHost` to record every run that starts.
    pub(crate) run_log: OnceLock<Mutex<Vec<RecordedRun>>>,
}

impl HostShared {
    pub(crate) fn new(
        state: StateMap,
        clock: Clock,
        jobs: Vec<Arc<JobDef>>,
        scopes: Vec<ScopeDef>,
        queues: Vec<TaskQueue>,
    ) -> HostShared {
        HostShared {
            stop: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            kill: CancellationToken::new(),
            started: CancellationToken::new(),
            stopped: CancellationToken::new(),
            state,
            tracker: TaskTracker::new(),
            clock,
            jobs,
            scopes,
            queues,
            reason: Mutex::new(None),
            errors: Mutex::new(Vec::new()),
            run_log: OnceLock::new(),
        }
    }

    /// Begins the stop sequence; the first reason given is the one kept.
    /// The `stopping` event fires under the lock that
    /// [`fire_started`](Self::fire_started) takes: the two events have one
    /// order on every runtime.
    pub(crate) fn request_stop(&self, reason: StopReason) {
        {
            let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(reason);
            }
            self.stopping.store(true, Ordering::Release);
            self.stop.cancel();
        }
        for queue in &self.queues {
            queue.begin_stop();
        }
    }

    /// Fires the `started` event unless stop has begun; returns whether it
    /// fired. A stop requested before this point abandons startup, so
    /// `stopping` never comes before `started`.
    fn fire_started(&self) -> bool {
        let slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return false;
        }
        self.started.cancel();
        true
    }

    /// Whether stop has begun, without the token's lock.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The shutdown deadline passed: drop whatever still runs.
    fn abort(&self) {
        self.kill.cancel();
        for queue in &self.queues {
            queue.abort();
        }
    }

    fn reason(&self) -> StopReason {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(StopReason::Requested)
    }

    fn push_error(&self, error: HostError) {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error);
    }

    /// Records a failed service and stops the host.
    pub(crate) fn fail(&self, name: &str, phase: Phase, outcome: Outcome) {
        self.push_error(HostError {
            name: name.to_owned(),
            phase,
            outcome,
        });
        self.request_stop(StopReason::ServiceFailed(name.to_owned()));
    }

    /// The queue named `name`.
    pub(crate) fn queue(&self, name: &str) -> Option<TaskQueue> {
        self.queues.iter().find(|q| q.name() == name).cloned()
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

/// A service as the host holds it.
pub(crate) struct ServiceSlot {
    /// Its place in the host's list of services.
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) service: Box<dyn DynService>,
    pub(crate) started: bool,
}

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
        let mut signals = Signals::new();
        let startup = self.start_until(async {
            let name = signals.recv().await;
            tracing::info!(signal = name, "received {name} during startup");
            StopReason::Signal(name)
        });
        let running = match startup.await {
            Ok(running) => running,
            Err(report) => return report,
        };
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

    /// Starts the services and the background jobs, and returns a handle on
    /// the running host once the `started` event has fired. Installs no
    /// signal handler: stop it with [`RunningHost::stop`] or a
    /// [`HostHandle`]. For a process's main, [`run`](Host::run) does all of
    /// it.
    ///
    /// # Errors
    ///
    /// If startup fails, the services that started are stopped again and
    /// the [`Report`] says why (exit code [`Report::EXIT_START_FAILED`]).
    pub async fn start(self) -> Result<RunningHost, Report> {
        self.start_until(std::future::pending()).await
    }

    /// The host's lifetime events, to await from anywhere, before or after
    /// it runs.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            shared: self.shared.clone(),
        }
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
                    Err(in_flight.take_running().into_iter().map(|(_, (name, phase))| HostError {
                        name: name.to_string(),
                        phase,
                        outcome: Outcome::Failed(format!("did not finish within the startup timeout of {limit:?}")),
                    }).collect())
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
        if let Some(first) = errors.first() {
            running
                .shared
                .request_stop(StopReason::StartFailed(first.name.clone()));
        }
        for error in errors {
            tracing::error!(service = %error.name, phase = %error.phase, error = %error.outcome, "startup failed");
            running.shared.push_error(error);
        }
        if running.shared.is_stopping() {
            tracing::info!("stop requested during startup; abandoning it");
        }
        Err(running.shutdown(std::future::pending()).await)
    }
}

/// The steps in progress, for naming them when they are abandoned; the
/// steps finished, so that the ones never begun can be told apart; and the
/// steps that finished after the stop's deadline (a step that blocked its
/// thread cannot be abandoned, only named). Keyed by the service's place in
/// the host's list, so each step costs the same however many services the
/// host has.
#[derive(Default)]
struct InFlight(Mutex<Steps>);

/// One service's step, by name.
type Step = (Arc<str>, Phase);

/// One service's step, by the service's index.
type Key = (usize, Phase);

#[derive(Default)]
struct Steps {
    /// Steps begun so far: orders the running ones.
    begun: u64,
    /// Each step's place in the order begun, name, and start.
    running: HashMap<Key, (u64, Arc<str>, Instant)>,
    done: HashSet<Key>,
    deadline: Option<Instant>,
    late: Vec<Step>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Steps> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Steps that finish after `deadline` are late.
    fn set_deadline(&self, deadline: Instant) {
        self.lock().deadline = Some(deadline);
    }

    fn enter(&self, slot: &ServiceSlot, phase: Phase) {
        let mut steps = self.lock();
        steps.begun += 1;
        let order = steps.begun;
        steps.running.insert(
            (slot.index, phase),
            (order, slot.name.clone(), Instant::now()),
        );
    }

    fn leave(&self, slot: &ServiceSlot, phase: Phase) {
        let mut steps = self.lock();
        if let Some((_, name, began)) = steps.running.remove(&(slot.index, phase)) {
            steps.done.insert((slot.index, phase));
            // Late: begun before the deadline, finished after it.
            let now = Instant::now();
            if steps
                .deadline
                .is_some_and(|deadline| began <= deadline && now > deadline)
            {
                steps.late.push((name, phase));
            }
        }
    }

    /// The steps still in progress, in the order they began, now
    /// abandoned.
    fn take_running(&self) -> Vec<(usize, Step)> {
        let mut running: Vec<(u64, usize, Step)> = self
            .lock()
            .running
            .drain()
            .map(|((index, phase), (order, name, _))| (order, index, (name, phase)))
            .collect();
        running.sort_unstable_by_key(|(order, ..)| *order);
        running
            .into_iter()
            .map(|(_, index, step)| (index, step))
            .collect()
    }

    fn is_done(&self, index: usize, phase: Phase) -> bool {
        self.lock().done.contains(&(index, phase))
    }

    /// The steps that finished after the deadline.
    fn take_late(&self) -> Vec<Step> {
        std::mem::take(&mut self.lock().late)
    }
}

/// Runs `phase` on the services it applies to: all of them at startup (in
/// order, stopping at the first error unless concurrent), the started ones
/// at stop (in reverse order, every one). Returns the errors in order.
async fn run_phase(
    services: &mut [ServiceSlot],
    phase: Phase,
    token: &CancellationToken,
    concurrently: bool,
    in_flight: &InFlight,
) -> Vec<HostError> {
    let startup = phase.is_startup();
    let step = |slot| run_step(slot, phase, token.clone(), in_flight);
    let slots: Vec<&mut ServiceSlot> = if startup {
        services.iter_mut().collect()
    } else {
        services.iter_mut().rev().filter(|s| s.started).collect()
    };
    if concurrently {
        let results = futures_util::future::join_all(slots.into_iter().map(step)).await;
        return results.into_iter().flatten().collect();
    }
    let mut errors = Vec::new();
    for slot in slots {
        if let Some(error) = step(slot).await {
            errors.push(error);
            if startup {
                break;
            }
        }
    }
    errors
}

/// Runs one step of one service, catching a panic.
async fn run_step(
    slot: &mut ServiceSlot,
    phase: Phase,
    token: CancellationToken,
    in_flight: &InFlight,
) -> Option<HostError> {
    in_flight.enter(slot, phase);
    let result = AssertUnwindSafe(slot.service.call(phase, token))
        .catch_unwind()
        .await;
    in_flight.leave(slot, phase);
    let outcome = match result {
        Ok(Ok(())) => {
            if phase == Phase::Start {
                slot.started = true;
            }
            return None;
        }
        Ok(Err(error)) => Outcome::Failed(error),
        Err(panic) => Outcome::Panicked(panic_message(&*panic)),
    };
    tracing::error!(service = %slot.name, %phase, error = %outcome, "service {phase} failed");
    Some(HostError {
        name: slot.name.to_string(),
        phase,
        outcome,
    })
}

/// A host whose services and jobs are running. From [`Host::start`].
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
    settings: Settings,
    services: Vec<ServiceSlot>,
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
    /// Fires `started`, then starts the scheduler, the background services
    /// and the queues' workers; returns `false`, and starts nothing, if stop
    /// began first.
    fn launch_background(&self) -> bool {
        let shared = &self.shared;
        if !shared.fire_started() {
            return false;
        }
        let scheduler = Scheduler::new(shared.clone());
        shared.tracker.spawn(scheduler.run());
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
            for _ in 0..queue.options().workers {
                shared.tracker.spawn(queue.clone().work());
            }
        }
        let scheduled = shared.jobs.len() - background;
        let services = self.services.len() + background;
        let queues = shared.queues.len();
        tracing::info!(
            jobs = scheduled,
            services,
            queues,
            "host started: {scheduled} job(s), {services} service(s), {queues} queue(s); press Ctrl+C to stop",
        );
        true
    }

    /// A handle on this host, for inspecting it and stopping it from
    /// anywhere.
    pub fn handle(&self) -> HostHandle {
        HostHandle::new(self.shared.clone())
    }

    /// The host's lifetime events.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            shared: self.shared.clone(),
        }
    }

    /// Requests a stop and waits for the stop sequence to finish.
    pub async fn stop(self) -> Report {
        self.shared.request_stop(StopReason::Requested);
        self.wait().await
    }

    /// Waits until stop is requested (through a [`HostHandle`], a
    /// [`Lifetime`] or a failed service), then runs the stop sequence. Does
    /// not listen for signals.
    pub async fn wait(self) -> Report {
        self.shared.stop.cancelled().await;
        self.shutdown(std::future::pending()).await
    }

    /// The stop sequence; `force` completing aborts what is left at once.
    async fn shutdown(mut self, force: impl Future<Output = ()>) -> Report {
        let began = Instant::now();
        let shared = self.shared.clone();
        shared.request_stop(StopReason::Requested);
        let reason = shared.reason();
        let timeout = self.settings.shutdown_timeout;
        tracing::info!(%reason, ?timeout, "stopping");

        let deadline = CancellationToken::new();
        let in_flight = InFlight::default();
        in_flight.set_deadline(began + timeout);
        let concurrently = self.settings.stop_concurrently;
        let mut forced = false;
        let finished = {
            let services = &mut self.services;
            let sequence = async {
                let errors = run_phase(
                    services,
                    Phase::Stopping,
                    &deadline,
                    concurrently,
                    &in_flight,
                )
                .await;
                errors.into_iter().for_each(|e| shared.push_error(e));
                shared.tracker.close();
                shared.tracker.wait().await;
                for phase in [Phase::Stop, Phase::Stopped] {
                    let errors =
                        run_phase(services, phase, &deadline, concurrently, &in_flight).await;
                    errors.into_iter().for_each(|e| shared.push_error(e));
                }
            };
            tokio::pin!(sequence);
            let in_time = tokio::select! {
                () = &mut sequence => true,
                () = tokio::time::sleep_until(began + timeout) => false,
                () = force => { forced = true; false }
            };
            // At the deadline the deadline token fires and background runs
            // are dropped; a step that honours the token returns on this
            // last poll.
            if !in_time {
                deadline.cancel();
                shared.abort();
                let _ = sequence.now_or_never();
            }
            in_time
        };

        let mut aborted = Vec::new();
        // Past the deadline, what was dropped is named even if the last
        // poll found the sequence done: the dropped runs may have ended on
        // other threads in between.
        if !finished {
            let abandoned = in_flight.take_running();
            let abandoned_keys: HashSet<Key> = abandoned
                .iter()
                .map(|(index, (_, phase))| (*index, *phase))
                .collect();
            let mut steps = Vec::new();
            for (_, (name, phase)) in abandoned {
                tracing::warn!(service = %name, %phase, "did not finish {phase} in time; abandoning it");
                steps.push(Aborted {
                    name: name.to_string(),
                    phase,
                });
            }
            // Steps never begun get one poll each.
            for phase in [Phase::Stopping, Phase::Stop, Phase::Stopped] {
                for slot in self.services.iter_mut().rev().filter(|s| s.started) {
                    let key = (slot.index, phase);
                    if in_flight.is_done(slot.index, phase) || abandoned_keys.contains(&key) {
                        continue;
                    }
                    match AssertUnwindSafe(slot.service.call(phase, deadline.clone()))
                        .catch_unwind()
                        .now_or_never()
                    {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(error))) => shared.push_error(HostError {
                            name: slot.name.to_string(),
                            phase,
                            outcome: Outcome::Failed(error),
                        }),
                        Some(Err(panic)) => shared.push_error(HostError {
                            name: slot.name.to_string(),
                            phase,
                            outcome: Outcome::Panicked(panic_message(&*panic)),
                        }),
                        None => steps.push(Aborted {
                            name: slot.name.to_string(),
                            phase,
                        }),
                    }
                }
            }
            // The aborted runs record themselves as they are dropped, on
            // whatever thread they run: wait for them before reading.
            if tokio::time::timeout(ABORT_GRACE, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "some runs did not end after being aborted; a job may be blocking its thread"
                );
            }
            for job in &shared.jobs {
                let stats = &job.stats;
                if stats.aborted.load(Ordering::Acquire)
                    || stats.running.load(Ordering::Acquire) > 0
                {
                    tracing::warn!(job = %job.name, "did not stop in time; aborted");
                    aborted.push(Aborted {
                        name: job.name.to_string(),
                        phase: Phase::Run,
                    });
                }
            }
            for queue in shared.queues.iter().filter(|q| q.aborted_items()) {
                tracing::warn!(
                    queue = queue.name(),
                    "queue items did not finish in time; aborted them"
                );
                aborted.push(Aborted {
                    name: format!("queue `{}`", queue.name()),
                    phase: Phase::Run,
                });
            }
            aborted.extend(steps);
        }
        let late: Vec<Aborted> = in_flight
            .take_late()
            .into_iter()
            .map(|(name, phase)| {
                tracing::warn!(service = %name, %phase, "{phase} finished past the shutdown deadline");
                Aborted {
                    name: name.to_string(),
                    phase,
                }
            })
            .collect();
        // Whatever is still queued never ran: count it, log it, resolve its
        // handle.
        for queue in &shared.queues {
            queue.close();
        }
        let queues = shared.queues.iter().map(TaskQueue::stats).collect();
        let errors =
            std::mem::take(&mut *shared.errors.lock().unwrap_or_else(PoisonError::into_inner));
        let report = Report {
            reason,
            errors,
            aborted,
            late,
            forced,
            queues,
            took: began.elapsed(),
        };
        shared.stopped.cancel();
        if report.is_clean() {
            tracing::info!(took = ?report.took, "stopped");
        } else {
            tracing::error!(took = ?report.took, code = report.code(), "stopped: {report}");
        }
        report
    }
}

/// The host's lifetime events, `IHostApplicationLifetime` in .NET: await
/// them from anywhere, and request a stop. Cloneable; jobs can take it as an
/// argument, and [`Host::lifetime`] gives one before the host runs.
///
/// The events fire in this order, on every runtime: `started` (after every
/// service's `started` hook, just before the background jobs begin),
/// `stopping` (when stop begins, before any `stopping` hook), `stopped`
/// (after every `stopped` hook, just before `run()` returns). A stop
/// requested during startup abandons it: `started` then never fires, and
/// [`started`](Lifetime::started) resolves to `false`.
#[derive(Clone)]
pub struct Lifetime {
    shared: Arc<HostShared>,
}

impl fmt::Debug for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifetime")
            .field("started", &self.is_started())
            .field("stopping", &self.is_stopping())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Lifetime {
    pub(crate) fn new(shared: Arc<HostShared>) -> Lifetime {
        Lifetime { shared }
    }

    /// Waits for the `started` event. Returns `true` once the host has
    /// started, or `false` if it began to stop without ever starting (a
    /// failed or interrupted startup).
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: it only observes.
    pub async fn started(&self) -> bool {
        tokio::select! {
            biased;
            () = self.shared.started.cancelled() => true,
            () = self.shared.stopped.cancelled() => self.is_started(),
        }
    }

    /// Waits for the `stopping` event.
    pub async fn stopping(&self) {
        self.shared.stop.cancelled().await;
    }

    /// Waits for the `stopped` event.
    pub async fn stopped(&self) {
        self.shared.stopped.cancelled().await;
    }

    /// Whether `started` has fired.
    pub fn is_started(&self) -> bool {
        self.shared.started.is_cancelled()
    }

    /// Whether `stopping` has fired.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Whether `stopped` has fired.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.is_cancelled()
    }

    /// Requests a graceful stop; asking again changes nothing.
    pub fn stop(&self) {
        self.shared.request_stop(StopReason::Requested);
    }
}

impl FromRun for Lifetime {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        Ok(Lifetime::new(cx.host.clone()))
    }
}

/// Why a host stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A stop request through a [`HostHandle`], a [`Lifetime`] or
    /// [`RunningHost::stop`].
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
    /// The job's or service's name.
    pub name: String,
    /// What it was doing: [`Phase::Run`] for a job's run or a background
    /// service, else the lifecycle step.
    pub phase: Phase,
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
    reason: StopReason,
    errors: Vec<HostError>,
    aborted: Vec<Aborted>,
    late: Vec<Aborted>,
    forced: bool,
    queues: Vec<QueueStats>,
    took: Duration,
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
        if !self.aborted.is_empty() {
            let names: Vec<String> = self
                .aborted
                .iter()
                .map(|a| format!("`{}` ({})", a.name, a.phase))
                .collect();
            write!(f, "; aborted at the deadline: {}", names.join(", "))?;
        }
        if !self.late.is_empty() {
            let names: Vec<String> = self
                .late
                .iter()
                .map(|a| format!("`{}` ({})", a.name, a.phase))
                .collect();
            write!(f, "; finished past the deadline: {}", names.join(", "))?;
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
