//! The seams a backend plugs into: a cluster's [`Coordinator`](cluster::Coordinator)
//! and a durable [`WorkSource`](work::WorkSource), with the data they
//! exchange and the handles through which they reach the host. They call
//! nothing above them: the host's side of each handle is a private trait
//! that the `run` layer implements.

pub mod cluster;
pub mod work;

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::cluster::{BoxFuture, Lease};
use self::work::WorkItem;
use crate::base::outcome::Outcome;

/// The host as a backend's handle ([`ClusterHost`](cluster::ClusterHost),
/// [`WorkHost`](work::WorkHost)) reaches it: implemented by the `run`
/// layer over the host's shared state, held weakly, so that a backend
/// outliving its host finds it gone.
pub(crate) trait HostSide: Send + Sync + 'static {
    /// Starts a run of `job` for the tick at `at`, claimed with `lease`;
    /// `false` if the job cannot run here now.
    fn run_claimed(self: Arc<Self>, job: usize, at: DateTime<Utc>, lease: Lease) -> bool;
    /// Marks `job` paused or not, as the cluster says.
    fn set_paused(&self, job: usize, paused: bool);
    /// The host's wall clock, without the offset to the database's.
    fn own_clock(&self) -> DateTime<Utc>;
    /// The offset added to the host's wall clock from now on.
    fn set_clock_offset(&self, offset: TimeDelta);
    /// The host's stop token.
    fn stop_token(&self) -> CancellationToken;
    /// Fires once the host has started.
    fn started(&self) -> CancellationToken;
    /// A run of the queued handler `job` for `item`, if it can run here.
    fn run_item(
        self: Arc<Self>,
        job: usize,
        item: WorkItem,
        timeout: Option<Duration>,
    ) -> Option<BoxFuture<'static, Outcome>>;
    /// The tracker whose tasks the stop waits for.
    fn tracker(&self) -> TaskTracker;
}

/// The host's stop token; an already cancelled one once the host is gone.
fn stop_token_of(host: &Weak<dyn HostSide>) -> CancellationToken {
    match host.upgrade() {
        Some(host) => host.stop_token(),
        None => {
            let gone = CancellationToken::new();
            gone.cancel();
            gone
        }
    }
}
