//! How a [`Cluster`](super::Cluster) connects and keeps its leases.

use std::time::Duration;

use crate::error::Error;
use crate::leases::{lease_setters, LeaseOptions};

/// The options of a [`Cluster`](crate::Cluster); the defaults suit most services.
///
/// ```
/// use std::time::Duration;
/// use hosted_postgres::ClusterOptions;
///
/// let options = ClusterOptions::default()
///     .schema("billing_jobs")
///     .lease(Duration::from_secs(30))
///     .trust_window(Duration::from_secs(24));
/// # drop(options);
/// ```
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub(crate) leases: LeaseOptions,
    pub(crate) history: Duration,
    pub(crate) claim_ahead: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            leases: LeaseOptions::new(Duration::from_secs(1), 4),
            history: Duration::from_secs(7 * 24 * 3600),
            claim_ahead: Duration::from_millis(50),
        }
    }
}

impl ClusterOptions {
    lease_setters!("cluster", "Cluster::from_pool");

    /// How long finished runs stay in the history (7 days); older ones are
    /// deleted in batches.
    pub fn history(mut self, keep: Duration) -> Self {
        self.history = keep;
        self
    }

    /// How long before a tick's instant its claim is sent (50 ms): a claim
    /// granted early waits for the instant, so that the round trip to the
    /// database does not make the run late. A claim declined because the
    /// previous run still held its lease is sent again at the instant. A
    /// pause takes effect for ticks whose claim is not yet sent. Zero sends
    /// each claim at its tick.
    pub fn claim_ahead(mut self, ahead: Duration) -> Self {
        self.claim_ahead = ahead;
        self
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        self.leases
            .check(&[], "run after another took its ticks over", "run")?;
        if self.claim_ahead >= self.leases.lease {
            return Err(Error::Options(format!(
                "claims are sent {:?} ahead, not within the lease ({:?}): a claim's lease would run out before its run starts; send them closer to the tick",
                self.claim_ahead, self.leases.lease
            )));
        }
        Ok(())
    }
}
