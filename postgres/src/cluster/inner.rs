//! The coordinator's state: what `start` learned, the leases this
//! instance holds, its trust in its leases, its counters, and the
//! statement helper every duty goes through.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hosted::cluster::{Claim, ClusterHost, Completion, Declined, TickClaim};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ClusterOptions;
use crate::connection::Instance;
use crate::error::Error;
use crate::sql::ClusterSql;
use crate::state::{ClaimVerdict, RunState};

/// The most claims or completions in one statement.
pub(super) const MAX_BATCH: usize = 10_000;

/// How often the watchdog checks the trust window.
pub(super) const WATCHDOG: Duration = Duration::from_millis(100);

/// The state shared by the coordinator's tasks and the host's runs.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) options: ClusterOptions,
    pub(crate) instance: Instance,
    /// `host:port (user, database)`, for error messages.
    pub(crate) target: String,
    pub(super) sql: ClusterSql,
    pub(super) started: OnceLock<Started>,
    pub(super) state: Mutex<State>,
    pub(super) counters: Counters,
    /// Ends the coordinator's own tasks.
    pub(super) stop: CancellationToken,
    pub(super) tasks: TaskTracker,
}

/// What `start` learned and set up.
pub(super) struct Started {
    pub(super) host: ClusterHost,
    /// By job index: the name, and whether its ticks are claimed.
    pub(super) names: Vec<String>,
    pub(super) claimable: Vec<bool>,
    pub(super) skip_overlap: Vec<bool>,
    pub(super) rerun: Vec<bool>,
    pub(super) services: Vec<bool>,
    pub(super) last_ticks: Vec<Option<DateTime<Utc>>>,
    /// Job indices by name, for the rows the store sends back.
    pub(super) index: HashMap<String, usize>,
    /// The names the periodic statements send, fixed at start: the jobs
    /// claimed per tick; of those, the ones that do not overlap; and the
    /// ones that rerun after a crash.
    pub(super) claimed_names: Vec<String>,
    pub(super) no_overlap_names: Vec<String>,
    pub(super) rerun_names: Vec<String>,
    pub(super) claims: mpsc::UnboundedSender<PendingClaim>,
    pub(super) completions: mpsc::UnboundedSender<PendingCompletion>,
}

#[derive(Default)]
pub(super) struct State {
    /// Runs this instance holds a lease for, by fencing number (unique:
    /// the numbers come from one sequence).
    pub(super) runs: HashMap<i64, Held>,
    /// Singleton services this instance holds, by job index.
    pub(super) singletons: HashMap<usize, Held>,
    /// Until when this instance trusts its leases: the send time of its
    /// last statement that succeeded, plus the trust window.
    pub(super) trusted_until: Option<Instant>,
    /// Set once the trust window passed without contact; cleared by the
    /// next statement that succeeds.
    pub(super) untrusted: bool,
    /// The current outage: since when, and the ticks declined meanwhile.
    pub(super) outage: Option<(Instant, u64)>,
    /// The pause flags last mirrored into the host, by job index.
    pub(super) paused: HashSet<usize>,
    /// The database's clock minus this host's, as last set.
    pub(super) offset: Option<chrono::TimeDelta>,
}

pub(super) struct Held {
    pub(super) job: usize,
    pub(super) fence: i64,
    /// The run's row in `running` (a job that overlaps), or 0: the lease
    /// on the job's own row.
    pub(super) id: i64,
    pub(super) token: CancellationToken,
    /// Its completion is on the way: a renewal that no longer finds it is
    /// not a lost lease.
    pub(super) completing: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) statements: AtomicU64,
    pub(super) claim_statements: AtomicU64,
    pub(super) granted: AtomicU64,
    pub(super) taken: AtomicU64,
    pub(super) running: AtomicU64,
    pub(super) unavailable: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) reruns: AtomicU64,
    pub(super) outages: AtomicU64,
}

/// A claim's row: the run's fence if granted, its row in `running` (0 for
/// the lease on the job's row), and the verdict.
pub(super) type Verdict = (Option<i64>, i64, Option<ClaimVerdict>);

pub(super) struct PendingClaim {
    pub(super) claim: TickClaim,
    pub(super) reply: oneshot::Sender<Claim>,
}

pub(super) struct PendingCompletion {
    pub(super) job: usize,
    pub(super) fence: i64,
    pub(super) id: i64,
    pub(super) state: RunState,
    pub(super) error: Option<String>,
    pub(super) reply: oneshot::Sender<Completion>,
}

pub(super) fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Inner {
    pub(crate) fn new(
        pool: Pool,
        options: ClusterOptions,
        instance: Instance,
        target: String,
    ) -> Inner {
        let sql = ClusterSql::new(&options.leases.schema);
        Inner {
            pool,
            options,
            instance,
            target,
            sql,
            started: OnceLock::new(),
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn lease_secs(&self) -> f64 {
        self.options.leases.lease.as_secs_f64()
    }

    /// Runs one statement on a pooled connection, retrying once on a
    /// deadlock or a serialization failure. Counts it; notes whether the
    /// store answered.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let batched = [
            &self.sql.claim,
            &self.sql.complete,
            &self.sql.renew,
            &self.sql.rescue,
            &self.sql.triggers,
            &self.sql.paused,
            &self.sql.release,
            &self.sql.upsert_jobs,
        ]
        .iter()
        .any(|s| s.as_str() == sql);
        let sent = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            count(&self.counters.statements, 1);
            let result = async {
                let client = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| (Error::pool(e, &self.target), false))?;
                // Statements whose arrays carry a batch are planned for the
                // batch at hand: a plan cached for a generic array expects
                // ten rows and joins thousands by nested loops.
                let statement = if batched {
                    client.prepare(sql).await
                } else {
                    client.prepare_cached(sql).await
                }
                .map_err(|e| {
                    let retry = retryable(&e);
                    (Error::database(e, &self.target), retry)
                })?;
                client.query(&statement, params).await.map_err(|e| {
                    let retry = retryable(&e);
                    (Error::database(e, &self.target), retry)
                })
            }
            .await;
            match result {
                Ok(rows) => {
                    self.reached(sent);
                    return Ok(rows);
                }
                Err((_, true)) if tries < 3 => continue,
                Err((error, _)) => {
                    if let Error::Database { message, .. } = &error {
                        self.unreached(message);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// A statement sent at `sent` succeeded: the leases are good until
    /// `sent` plus the trust window.
    pub(super) fn reached(&self, sent: Instant) {
        let mut state = self.state();
        let until = sent + self.options.leases.trust_window;
        if state.trusted_until.is_none_or(|t| t < until) {
            state.trusted_until = Some(until);
        }
        state.untrusted = false;
        if let Some((since, declined)) = state.outage.take() {
            tracing::info!(
                instance = %self.instance.id,
                outage = ?since.elapsed(),
                unclaimed = declined,
                "reached the cluster's database again after {:?}; {declined} tick(s) were not claimed here meanwhile",
                since.elapsed()
            );
        }
    }

    /// A statement failed: the first failure of an outage is logged.
    pub(super) fn unreached(&self, message: &str) {
        let mut state = self.state();
        if state.outage.is_none() {
            state.outage = Some((Instant::now(), 0));
            count(&self.counters.outages, 1);
            tracing::warn!(
                instance = %self.instance.id,
                error = message,
                "lost the cluster's database; retrying with backoff, and claiming nothing once the trust window ({:?}) passes",
                self.options.leases.trust_window
            );
        }
    }

    pub(super) fn trusted(&self) -> bool {
        let state = self.state();
        !state.untrusted && state.trusted_until.is_some_and(|t| Instant::now() < t)
    }

    /// A tick not claimed because the store is out of reach.
    pub(super) fn decline_unavailable(&self) -> Claim {
        count(&self.counters.unavailable, 1);
        if let Some((_, declined)) = &mut self.state().outage {
            *declined += 1;
        }
        Claim::Declined(Declined::Unavailable)
    }
}

/// The next batch: `batch` (what an earlier one left over), or else the
/// next item to come, plus whatever else is waiting, up to [`MAX_BATCH`].
/// `None` once `stop` fires or the senders are gone.
pub(super) async fn next_batch<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    stop: &CancellationToken,
    mut batch: Vec<T>,
) -> Option<Vec<T>> {
    if batch.is_empty() {
        tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            got = rx.recv() => batch.push(got?),
        }
    }
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// A deadlock or a serialization failure: the statement may simply be
/// sent again.
pub(super) fn retryable(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}
