//! What the cluster's and the durable queue's metrics (feature `metrics`,
//! in `cluster/metrics.rs` and `durable/metrics.rs`) share: the loop that
//! publishes them every second, and once more at stop.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the counters are published.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn every_second(stop: CancellationToken, publish: impl Fn()) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = every.tick() => publish(),
        }
    }
    publish();
}
