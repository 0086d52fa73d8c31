//! The host's side of the seams: what a coordinator and a work source reach
//! through their handles, implemented over the host's shared state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::base::kind::JobKind;
use crate::base::outcome::Outcome;
use crate::model::schedule::Schedule;
use crate::model::shared::HostShared;
use crate::seams::cluster::{BoxFuture, ClusterHost, ClusterJob, ClusterJobOptions, Lease};
use crate::seams::work::{HandlerInfo, WorkHost, WorkItem};
use crate::seams::HostSide;

/// The handle a coordinator starts with: every job with its cluster
/// options, by index.
pub(crate) fn cluster_host(shared: &Arc<HostShared>) -> ClusterHost {
    let jobs = shared
        .jobs
        .iter()
        .map(|job| ClusterJob {
            name: job.name.to_string(),
            kind: job.kind,
            options: job
                .cluster
                .as_ref()
                .map_or(ClusterJobOptions::default_for(job.kind), |c| c.options),
            overlap: job.overlap,
        })
        .collect();
    ClusterHost::new(Arc::downgrade(shared) as _, jobs)
}

/// The handle a work source starts with: the queued handlers, each with
/// its job's index.
pub(crate) fn work_host(shared: &Arc<HostShared>) -> WorkHost {
    let handlers = shared
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, job)| job.kind == JobKind::Queued)
        .filter_map(|(index, job)| match &job.schedule {
            Schedule::Queued(options) => Some((
                index,
                HandlerInfo {
                    name: job.name.to_string(),
                    options: (**options).clone(),
                    enabled: job.enabled,
                },
            )),
            _ => None,
        })
        .collect();
    WorkHost::new(Arc::downgrade(shared) as _, handlers)
}

impl HostSide for HostShared {
    fn run_claimed(self: Arc<Self>, job: usize, at: DateTime<Utc>, lease: Lease) -> bool {
        let Some(def) = self.jobs.get(job) else {
            return false;
        };
        if !def.enabled || def.kind == JobKind::Service || self.is_stopping() {
            return false;
        }
        let def = def.clone();
        super::tick::run_granted(&self, &def, at, lease);
        true
    }

    fn set_paused(&self, job: usize, paused: bool) {
        if let Some(def) = self.jobs.get(job) {
            def.stats.paused.store(paused, Ordering::Relaxed);
        }
    }

    fn own_clock(&self) -> DateTime<Utc> {
        self.clock.wall()
    }

    fn set_clock_offset(&self, offset: TimeDelta) {
        self.set_wall_offset(offset);
    }

    fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn started(&self) -> CancellationToken {
        self.started.clone()
    }

    fn run_item(
        self: Arc<Self>,
        job: usize,
        item: WorkItem,
        timeout: Option<Duration>,
    ) -> Option<BoxFuture<'static, Outcome>> {
        let def = self.jobs.get(job)?.clone();
        Some(Box::pin(super::execute::run_item(self, def, item, timeout)))
    }

    fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }
}
