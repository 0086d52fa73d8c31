//! What a [`Cluster`](crate::Cluster) and a
//! [`DurableQueue`](crate::DurableQueue) share in their options: where
//! their tables are, how they connect, and how they keep their leases. Both
//! option types hold one [`LeaseOptions`], set through the same setters
//! ([`lease_setters!`]) and checked by the same [`LeaseOptions::check`].

use std::time::Duration;

use crate::error::Error;

/// The options both a cluster and a durable queue have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseOptions {
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) renew_every: Duration,
    pub(crate) trust_window: Duration,
    pub(crate) rescue_every: Duration,
    pub(crate) poll_every: Duration,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
}

impl LeaseOptions {
    /// The defaults, but for the two that differ between a cluster and a
    /// queue.
    pub(crate) fn new(poll_every: Duration, pool_size: usize) -> LeaseOptions {
        LeaseOptions {
            schema: "hosted".to_owned(),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            trust_window: Duration::from_secs(12),
            rescue_every: Duration::from_secs(5),
            poll_every,
            pool_size,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }

    /// Checks the schema's name, that every duration here and in `more` is
    /// positive, that leases are renewed within the trust window, which is
    /// shorter than the lease (an instance cut off from the database lets
    /// go of its work before another may take it over: `goes_on` says what
    /// it would do otherwise, `one` is a unit of its work), and that the
    /// pool has room for claims and renewals at once.
    pub(crate) fn check(
        &self,
        more: &[(&str, Duration)],
        goes_on: &str,
        one: &str,
    ) -> Result<(), Error> {
        check_schema_name(&self.schema)?;
        let positive = [
            ("lease", self.lease),
            ("renew_every", self.renew_every),
            ("trust_window", self.trust_window),
            ("rescue_every", self.rescue_every),
            ("poll_every", self.poll_every),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
        ];
        if let Some((name, _)) = positive
            .iter()
            .chain(more)
            .find(|(_, duration)| duration.is_zero())
        {
            return Err(Error::Options(format!(
                "`{name}` is zero; give it a positive duration"
            )));
        }
        let (lease, renew_every, trust_window) = (self.lease, self.renew_every, self.trust_window);
        if trust_window >= lease {
            return Err(Error::Options(format!(
                "the trust window ({trust_window:?}) is not shorter than the lease ({lease:?}): an instance cut off from the database would still {goes_on}; shorten the window or lengthen the lease"
            )));
        }
        if renew_every >= trust_window {
            return Err(Error::Options(format!(
                "leases are renewed every {renew_every:?}, not within the trust window ({trust_window:?}): one late renewal would cancel every {one}; renew more often"
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

/// The setters of the [`LeaseOptions`] an option type holds in its field
/// `leases`, written once for both. `$what` names the owner in the docs
/// ("cluster", "queue"); `$from_pool` is its constructor that takes a pool.
macro_rules! lease_setters {
    ($what:literal, $from_pool:literal) => {
        #[doc = concat!("The schema the ", $what, "'s tables live in (`hosted`): a lowercase SQL")]
        /// identifier. A cluster and a durable queue on one database share
        /// the schema `hosted` unless told otherwise; two schemas are two
        /// separate clusters.
        pub fn schema(mut self, name: impl Into<String>) -> Self {
            self.leases.schema = name.into();
            self
        }

        /// How long a claim (of a tick, a singleton service or an item)
        /// lasts without renewal (15 s): with
        /// [`rescue_every`](Self::rescue_every), how soon the work of a
        /// killed instance runs elsewhere.
        pub fn lease(mut self, lease: Duration) -> Self {
            self.leases.lease = lease;
            self
        }

        /// How often leases are renewed and the heartbeat written (3 s).
        pub fn renew_every(mut self, every: Duration) -> Self {
            self.leases.renew_every = every;
            self
        }

        /// How long the instance trusts its leases without reaching the
        /// database (12 s); past it, it claims nothing and cancels the
        /// tokens of its runs, which another instance may take over once
        /// their leases run out. Shorter than the lease, so that the
        /// instance lets go before another may take over.
        pub fn trust_window(mut self, window: Duration) -> Self {
            self.leases.trust_window = window;
            self
        }

        /// How often work whose lease ran out is looked for (5 s): a
        /// cluster marks such runs lost and runs them again if their job
        /// has `on_crash = "rerun"`; a queue hands such items out again.
        pub fn rescue_every(mut self, every: Duration) -> Self {
            self.leases.rescue_every = every;
            self
        }

        /// How often the database is polled for what no notification
        /// brings: a cluster reads triggers and pause flags and tries a
        /// free singleton lease (every 1 s); an idle queue looks for work
        /// (every 2 s), which covers notifications lost while the listener
        /// reconnected, and poolers in transaction mode, which do not pass
        /// them on.
        pub fn poll_every(mut self, every: Duration) -> Self {
            self.leases.poll_every = every;
            self
        }

        #[doc = concat!("The size of the ", $what, "'s own pool (a cluster 4, a queue 10); ignored with [`", $from_pool, "`](crate::", $from_pool, ").")]
        /// On a queue, a handler that takes [`Tx`](crate::Tx) holds one
        /// connection while it runs.
        pub fn pool_size(mut self, size: usize) -> Self {
            self.leases.pool_size = size;
            self
        }

        /// How long connecting may take (5 s).
        pub fn connect_timeout(mut self, timeout: Duration) -> Self {
            self.leases.connect_timeout = timeout;
            self
        }

        #[doc = concat!("The server-side limit of each of the ", $what, "'s own statements (10 s).")]
        pub fn statement_timeout(mut self, timeout: Duration) -> Self {
            self.leases.statement_timeout = timeout;
            self
        }
    };
}

pub(crate) use lease_setters;

/// Checks that `name` is a lowercase SQL identifier, safe to quote into
/// every statement.
fn check_schema_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Options(format!(
            "the schema `{name}` is not a lowercase SQL identifier (letters, digits and `_`, starting with a letter or `_`, at most 63 bytes)"
        )))
    }
}
