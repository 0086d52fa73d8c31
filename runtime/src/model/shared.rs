//! What every part of a running host shares: its tokens and events, its
//! state, its jobs, scopes and queues, and why it stops.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::base::clock::Clock;
use crate::base::outcome::Outcome;
use crate::base::queue::TaskQueue;
use crate::base::report::Phase;
use crate::base::report::{HostError, StopReason};
use crate::model::extract::StateMap;
use crate::model::job::{JobDef, RunHistory};
use crate::model::scope::ScopeDef;
use crate::seams::cluster::Coordinator;
use crate::seams::work::WorkSource;

/// A run that starts, as the run hook sees it.
pub(crate) struct RunStart<'a> {
    pub(crate) job: &'a str,
    pub(crate) number: u64,
    pub(crate) scheduled: DateTime<Utc>,
    /// The wall time it started.
    pub(crate) started: DateTime<Utc>,
}

/// Called as each run starts.
pub(crate) type RunHook = Box<dyn Fn(RunStart<'_>) + Send + Sync>;

/// What a host coordinates through and is fed from, outside the process.
pub(crate) struct Stores {
    pub(crate) coordinator: Option<Arc<dyn Coordinator>>,
    pub(crate) sources: Vec<Arc<dyn WorkSource>>,
}

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
    /// The jobs' indices sorted by name: the handle finds a job of 100,000
    /// by name in 17 comparisons, for 4 bytes a job.
    by_name: Box<[u32]>,
    pub(crate) scopes: Vec<ScopeDef>,
    pub(crate) queues: Vec<TaskQueue>,
    reason: Mutex<Option<StopReason>>,
    pub(crate) errors: Mutex<Vec<HostError>>,
    /// Called as each run starts, when set: how `testing::TestHost`
    /// records the runs a test asserts on, without this module knowing of
    /// it.
    pub(crate) run_hook: OnceLock<RunHook>,
    /// The cluster this host coordinates through, if any.
    pub(crate) coordinator: Option<Arc<dyn Coordinator>>,
    /// The durable queues that feed this host's queued handlers.
    pub(crate) sources: Vec<Arc<dyn WorkSource>>,
    /// Nanoseconds added to the wall clock: with a cluster, the cluster's
    /// clock (the database's) minus this machine's, so that every instance
    /// fires a tick at the same moment whatever its own clock says.
    wall_offset: AtomicI64,
    /// The seed of this host's pseudo-random choices (`HostBuilder::seed`).
    pub(crate) seed: u64,
    /// The runs before each job's last that the host keeps.
    pub(crate) history: RunHistory,
    /// Where each lifecycle service stands, in start order: set once
    /// `build()` has them.
    pub(crate) lifecycle: OnceLock<Vec<Arc<crate::model::service::ServiceStatus>>>,
    /// The metric handles, resolved at start.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: OnceLock<crate::model::metrics::HostMetrics>,
}

impl HostShared {
    // Each argument is one part of the host, made once by `build()`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        state: StateMap,
        clock: Clock,
        jobs: Vec<Arc<JobDef>>,
        scopes: Vec<ScopeDef>,
        queues: Vec<TaskQueue>,
        stores: Stores,
        seed: u64,
        history: RunHistory,
    ) -> HostShared {
        let Stores {
            coordinator,
            sources,
        } = stores;
        let mut by_name: Box<[u32]> = (0..jobs.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| jobs[a as usize].name.cmp(&jobs[b as usize].name));
        HostShared {
            by_name,
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
            run_hook: OnceLock::new(),
            coordinator,
            sources,
            wall_offset: AtomicI64::new(0),
            seed,
            history,
            lifecycle: OnceLock::new(),
            #[cfg(feature = "metrics")]
            metrics: OnceLock::new(),
        }
    }

    /// The job named `name`.
    pub(crate) fn job_named(&self, name: &str) -> Option<&Arc<JobDef>> {
        self.by_name
            .binary_search_by(|&i| (*self.jobs[i as usize].name).cmp(name))
            .ok()
            .map(|found| &self.jobs[self.by_name[found] as usize])
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
    pub(crate) fn fire_started(&self) -> bool {
        let slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return false;
        }
        self.started.cancel();
        true
    }

    /// The host's wall time: its clock's, plus the cluster's offset.
    pub(crate) fn wall(&self) -> DateTime<Utc> {
        let wall = self.clock.wall();
        match self.wall_offset.load(Ordering::Relaxed) {
            0 => wall,
            offset => wall + chrono::TimeDelta::nanoseconds(offset),
        }
    }

    /// Sets the offset [`wall`](Self::wall) adds to the clock.
    pub(crate) fn set_wall_offset(&self, offset: chrono::TimeDelta) {
        let nanos = offset.num_nanoseconds().unwrap_or(0);
        self.wall_offset.store(nanos, Ordering::Relaxed);
    }

    /// Whether stop has begun, without the token's lock.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The shutdown deadline passed: drop whatever still runs.
    pub(crate) fn abort(&self) {
        self.kill.cancel();
        for queue in &self.queues {
            queue.abort();
        }
    }

    pub(crate) fn reason(&self) -> StopReason {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(StopReason::Requested)
    }

    pub(crate) fn push_error(&self, error: HostError) {
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

    /// A run of `job` due at `scheduled` starts: tells the hook, if set.
    pub(crate) fn record_run(&self, job: &str, number: u64, scheduled: DateTime<Utc>) {
        if let Some(hook) = self.run_hook.get() {
            hook(RunStart {
                job,
                number,
                scheduled,
                started: self.wall(),
            });
        }
    }
}
