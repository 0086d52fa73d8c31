//! How a [`Cluster`](super::Cluster) connects and keeps its leases.

use std::time::Duration;

use crate::connection::{check_leases, check_schema_name};
use crate::error::Error;

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
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) renew_every: Duration,
    pub(crate) trust_window: Duration,
    pub(crate) poll_every: Duration,
    pub(crate) rescue_every: Duration,
    pub(crate) history: Duration,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) claim_ahead: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            schema: "hosted".to_owned(),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            trust_window: Duration::from_secs(12),
            poll_every: Duration::from_secs(1),
            rescue_every: Duration::from_secs(5),
            history: Duration::from_secs(7 * 24 * 3600),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            claim_ahead: Duration::from_millis(50),
        }
    }
}

impl ClusterOptions {
    /// The schema the cluster's tables live in (`hosted`): a lowercase SQL
    /// identifier. Two schemas in one database are two separate clusters.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// How long a claim or a singleton's lease lasts without renewal
    /// (15 s): the longest a dead instance holds a tick or a service.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often leases are renewed and the heartbeat written (3 s).
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = every;
        self
    }

    /// How long the instance trusts its leases without reaching the
    /// database (12 s); past it, it claims nothing and cancels the tokens
    /// of its runs. Shorter than the lease, so that the instance lets go
    /// before another may take over.
    pub fn trust_window(mut self, window: Duration) -> Self {
        self.trust_window = window;
        self
    }

    /// How often triggers and pause flags are read, and a free singleton
    /// lease is tried (1 s).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// How often runs whose lease ran out are looked for (5 s): marked
    /// lost, and run again if their job has `on_crash = "rerun"`.
    pub fn rescue_every(mut self, every: Duration) -> Self {
        self.rescue_every = every;
        self
    }

    /// How long finished runs stay in the history (7 days); older ones are
    /// deleted in batches.
    pub fn history(mut self, keep: Duration) -> Self {
        self.history = keep;
        self
    }

    /// The size of the cluster's own pool (4); ignored with
    /// [`Cluster::from_pool`](crate::Cluster::from_pool).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long connecting may take (5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server-side limit of each of the cluster's statements (10 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
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
        check_schema_name(&self.schema)?;
        let positive = [
            ("lease", self.lease),
            ("renew_every", self.renew_every),
            ("trust_window", self.trust_window),
            ("poll_every", self.poll_every),
            ("rescue_every", self.rescue_every),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::Options(format!(
                "`{name}` is zero; give it a positive duration"
            )));
        }
        check_leases(
            self.lease,
            self.renew_every,
            self.trust_window,
            "run after another took its ticks over",
            "run",
        )?;
        if self.claim_ahead >= self.lease {
            return Err(Error::Options(format!(
                "claims are sent {:?} ahead, not within the lease ({:?}): a claim's lease would run out before its run starts; send them closer to the tick",
                self.claim_ahead, self.lease
            )));
        }
        if self.pool_size < 2 {
            return Err(Error::Options(
                "`pool_size` is below 2: claims and lease renewals need a connection each"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}
