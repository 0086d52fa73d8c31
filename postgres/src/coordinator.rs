//! The [`Coordinator`] on PostgreSQL: claims batched into one statement,
//! completions likewise, and one maintenance task that renews leases and
//! the heartbeat, reads triggers and pause flags, rescues runs whose lease
//! ran out, and prunes the history. A watchdog cancels the runs of an
//! instance that has not reached the database within its trust window.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hosted::cluster::{
    BoxError, BoxFuture, Claim, ClusterHost, Completion, Coordinator, Declined, Lease, OnCrash,
    Scope, TickClaim,
};
use hosted::{JobKind, Outcome, Overlap};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{describe, describe_pool, Error};
use crate::sql::Sql;
use crate::{
    AuditRecord, Cluster, ClusterJobStatus, ClusterOptions, ClusterStats, InstanceInfo, RunRecord,
};

/// The most claims or completions in one statement.
const MAX_BATCH: usize = 10_000;

/// How often the watchdog checks the trust window.
const WATCHDOG: Duration = Duration::from_millis(100);

/// This process as an instance of the cluster.
pub(crate) struct Instance {
    pub(crate) id: String,
    host_name: String,
    pid: u32,
}

impl Instance {
    /// A fresh id: host, process id and a random suffix (a process that
    /// reuses a dead one's pid still gets a new id).
    pub(crate) fn fresh() -> Instance {
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let pid = std::process::id();
        // `RandomState` is seeded from the OS's randomness per process;
        // the time and a counter make two instances of one process differ.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nonce = hasher.finish() as u32;
        let short: String = host_name.chars().take(32).collect();
        Instance {
            id: format!("{short}-{pid}-{nonce:08x}"),
            host_name,
            pid,
        }
    }

    pub(crate) fn application_name(&self) -> String {
        // PostgreSQL keeps 63 bytes of it.
        format!("hosted {}", self.id).chars().take(63).collect()
    }
}

/// The state shared by the coordinator's tasks and the host's runs.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) options: ClusterOptions,
    pub(crate) instance: Instance,
    /// `host:port (user, database)`, for error messages.
    pub(crate) target: String,
    sql: Sql,
    started: OnceLock<Started>,
    state: Mutex<State>,
    counters: Counters,
    /// Ends the coordinator's own tasks.
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What `start` learned and set up.
struct Started {
    host: ClusterHost,
    /// By job index: the name, and whether its ticks are claimed.
    names: Vec<String>,
    claimable: Vec<bool>,
    skip_overlap: Vec<bool>,
    rerun: Vec<bool>,
    services: Vec<bool>,
    last_ticks: Vec<Option<DateTime<Utc>>>,
    /// Job indices by name, for the rows the store sends back.
    index: HashMap<String, usize>,
    /// The names the periodic statements send, fixed at start: the jobs
    /// claimed per tick; of those, the ones that do not overlap; and the
    /// ones that rerun after a crash.
    claimed_names: Vec<String>,
    no_overlap_names: Vec<String>,
    rerun_names: Vec<String>,
    claims: mpsc::UnboundedSender<PendingClaim>,
    completions: mpsc::UnboundedSender<PendingCompletion>,
}

#[derive(Default)]
struct State {
    /// Runs this instance holds a lease for, by fencing number (unique:
    /// the numbers come from one sequence).
    runs: HashMap<i64, Held>,
    /// Singleton services this instance holds, by job index.
    singletons: HashMap<usize, Held>,
    /// Until when this instance trusts its leases: the send time of its
    /// last statement that succeeded, plus the trust window.
    trusted_until: Option<Instant>,
    /// Set once the trust window passed without contact; cleared by the
    /// next statement that succeeds.
    untrusted: bool,
    /// The current outage: since when, and the ticks declined meanwhile.
    outage: Option<(Instant, u64)>,
    /// The pause flags last mirrored into the host, by job index.
    paused: HashSet<usize>,
    /// The database's clock minus this host's, as last set.
    offset: Option<chrono::TimeDelta>,
}

struct Held {
    job: usize,
    fence: i64,
    /// The run's row in `running` (a job that overlaps), or 0: the lease
    /// on the job's own row.
    id: i64,
    token: CancellationToken,
    /// Its completion is on the way: a renewal that no longer finds it is
    /// not a lost lease.
    completing: bool,
}

#[derive(Default)]
struct Counters {
    statements: AtomicU64,
    claim_statements: AtomicU64,
    granted: AtomicU64,
    taken: AtomicU64,
    running: AtomicU64,
    unavailable: AtomicU64,
    stale: AtomicU64,
    lost: AtomicU64,
    reruns: AtomicU64,
    outages: AtomicU64,
}

/// A claim's row: the run's fence if granted, its row in `running` (0 for
/// the lease on the job's row), and the verdict.
type Verdict = (Option<i64>, i64, String);

struct PendingClaim {
    claim: TickClaim,
    reply: oneshot::Sender<Claim>,
}

struct PendingCompletion {
    job: usize,
    fence: i64,
    id: i64,
    state: &'static str,
    error: Option<String>,
    reply: oneshot::Sender<Completion>,
}

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Inner {
    pub(crate) fn new(
        pool: Pool,
        options: ClusterOptions,
        instance: Instance,
        target: String,
    ) -> Inner {
        let sql = Sql::new(&options.schema);
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lease_secs(&self) -> f64 {
        self.options.lease.as_secs_f64()
    }

    /// Runs one statement on a pooled connection, retrying once on a
    /// deadlock or a serialization failure. Counts it; notes whether the
    /// store answered.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, String> {
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
                    .map_err(|e| (describe_pool(&e, &self.target), false))?;
                // Statements whose arrays carry a batch are planned for the
                // batch at hand: a plan cached for a generic array expects
                // ten rows and joins thousands by nested loops.
                let statement = if batched {
                    client.prepare(sql).await
                } else {
                    client.prepare_cached(sql).await
                }
                .map_err(|e| (describe(&e, &self.target), retryable(&e)))?;
                client
                    .query(&statement, params)
                    .await
                    .map_err(|e| (describe(&e, &self.target), retryable(&e)))
            }
            .await;
            match result {
                Ok(rows) => {
                    self.reached(sent);
                    return Ok(rows);
                }
                Err((_, true)) if tries < 3 => continue,
                Err((message, _)) => {
                    self.unreached(&message);
                    return Err(message);
                }
            }
        }
    }

    /// A statement sent at `sent` succeeded: the leases are good until
    /// `sent` plus the trust window.
    fn reached(&self, sent: Instant) {
        let mut state = self.state();
        let until = sent + self.options.trust_window;
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
    fn unreached(&self, message: &str) {
        let mut state = self.state();
        if state.outage.is_none() {
            state.outage = Some((Instant::now(), 0));
            count(&self.counters.outages, 1);
            tracing::warn!(
                instance = %self.instance.id,
                error = message,
                "lost the cluster's database; retrying with backoff, and claiming nothing once the trust window ({:?}) passes",
                self.options.trust_window
            );
        }
    }

    fn trusted(&self) -> bool {
        let state = self.state();
        !state.untrusted && state.trusted_until.is_some_and(|t| Instant::now() < t)
    }

    /// A tick not claimed because the store is out of reach.
    fn decline_unavailable(&self) -> Claim {
        count(&self.counters.unavailable, 1);
        if let Some((_, declined)) = &mut self.state().outage {
            *declined += 1;
        }
        Claim::Declined(Declined::Unavailable)
    }

    async fn start(self: &Arc<Self>, host: ClusterHost) -> Result<(), Error> {
        let jobs = host.jobs();
        let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
        let claimable: Vec<bool> = jobs
            .iter()
            .map(|j| j.kind != JobKind::Service && j.options.scope == Scope::Cluster)
            .collect();
        let services: Vec<bool> = jobs
            .iter()
            .map(|j| j.kind == JobKind::Service && j.options.scope == Scope::Singleton)
            .collect();
        let skip_overlap: Vec<bool> = jobs.iter().map(|j| j.overlap == Overlap::Skip).collect();
        let rerun: Vec<bool> = jobs
            .iter()
            .map(|j| j.options.on_crash == OnCrash::Rerun)
            .collect();

        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| Error::Connect(describe_pool(&e, &self.target)))?;
        crate::schema::migrate(&mut client, &self.options.schema, &self.target).await?;
        let database = |e: tokio_postgres::Error| Error::Database(describe(&e, &self.target));
        client
            .execute(
                &self.sql.register,
                &[
                    &self.instance.id,
                    &self.instance.host_name,
                    &i32::try_from(self.instance.pid).unwrap_or(i32::MAX),
                ],
            )
            .await
            .map_err(database)?;
        let (job_names, kinds): (Vec<&str>, Vec<&str>) = jobs
            .iter()
            .zip(&claimable)
            .filter(|(_, c)| **c)
            .map(|(j, _)| (j.name.as_str(), j.kind.as_str()))
            .unzip();
        let rows = client
            .query(&self.sql.upsert_jobs, &[&job_names, &kinds])
            .await
            .map_err(database)?;
        // Follow the database's clock: every instance then fires a tick at
        // the same moment, whatever its own clock says.
        let mut best: Option<(Duration, chrono::TimeDelta)> = None;
        for _ in 0..3 {
            let (Some(before), sent) = (host.own_clock(), Instant::now()) else {
                break;
            };
            let row = client
                .query_one("SELECT clock_timestamp()", &[])
                .await
                .map_err(database)?;
            let rtt = sent.elapsed();
            let db: DateTime<Utc> = row.get(0);
            let offset = db - (before + chrono::TimeDelta::from_std(rtt / 2).unwrap_or_default());
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        if let Some((rtt, offset)) = best {
            host.set_clock_offset(offset);
            self.state().offset = Some(offset);
            if offset.abs() > chrono::TimeDelta::milliseconds(100) {
                tracing::warn!(instance = %self.instance.id, ?rtt, "this machine's clock is {offset} off the database's; following the database's clock");
            }
        }
        drop(client);
        let mut last_ticks = vec![None; names.len()];
        let mut paused = HashSet::new();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        for row in rows {
            let name: &str = row.get(0);
            if let Some(&i) = index.get(name) {
                last_ticks[i] = row.get(1);
                if row.get::<_, bool>(2) {
                    paused.insert(i);
                    host.set_paused(i, true);
                }
            }
        }

        let (claims, claims_rx) = mpsc::unbounded_channel();
        let (completions, completions_rx) = mpsc::unbounded_channel();
        let pick = |wanted: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..names.len())
                .filter(|&i| claimable[i] && wanted(i))
                .map(|i| names[i].clone())
                .collect()
        };
        let claimed_names = pick(&|_| true);
        let no_overlap_names = pick(&|i| skip_overlap[i]);
        let rerun_names = pick(&|i| rerun[i]);
        let index = index
            .into_iter()
            .map(|(name, i)| (name.to_owned(), i))
            .collect();
        let started = Started {
            host,
            names,
            claimable,
            skip_overlap,
            rerun,
            services,
            last_ticks,
            index,
            claimed_names,
            no_overlap_names,
            rerun_names,
            claims,
            completions,
        };
        let (claimed, singletons) = (
            started.claimable.iter().filter(|c| **c).count(),
            started.services.iter().filter(|s| **s).count(),
        );
        if self.started.set(started).is_err() {
            return Err(Error::AlreadyStarted);
        }
        {
            let mut state = self.state();
            state.trusted_until = Some(Instant::now() + self.options.trust_window);
            state.paused = paused;
        }
        self.tasks.spawn(self.clone().claim_loop(claims_rx));
        self.tasks
            .spawn(self.clone().completion_loop(completions_rx));
        self.tasks.spawn(self.clone().maintain());
        self.tasks.spawn(self.clone().watchdog());
        tracing::info!(
            instance = %self.instance.id,
            schema = %self.options.schema,
            "joined the cluster: {claimed} job(s) claimed per tick, {singletons} singleton service(s)"
        );
        Ok(())
    }

    /// Takes claims as they come and sends them in batches: whatever waits
    /// while a statement is out goes in the next one.
    async fn claim_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PendingClaim>) {
        let mut carry: Vec<PendingClaim> = Vec::new();
        loop {
            let Some(batch) = next_batch(&mut rx, &self.stop, std::mem::take(&mut carry)).await
            else {
                return;
            };
            // One claim per job per statement: a second one waits for the
            // next (`UPDATE ... FROM` would apply only one of them).
            let mut jobs = HashSet::with_capacity(batch.len());
            let (now, later): (Vec<_>, Vec<_>) =
                batch.into_iter().partition(|p| jobs.insert(p.claim.job));
            carry = later;
            self.claim_batch(now).await;
        }
    }

    async fn claim_batch(&self, batch: Vec<PendingClaim>) {
        let Some(started) = self.started.get() else {
            return;
        };
        if !self.trusted() {
            for pending in batch {
                let _ = pending.reply.send(self.decline_unavailable());
            }
            return;
        }
        let names: Vec<&str> = batch
            .iter()
            .map(|p| started.names[p.claim.job].as_str())
            .collect();
        let ticks: Vec<DateTime<Utc>> = batch.iter().map(|p| p.claim.at).collect();
        let catch_up: Vec<bool> = batch.iter().map(|p| p.claim.catch_up).collect();
        let skip: Vec<bool> = batch
            .iter()
            .map(|p| started.skip_overlap[p.claim.job])
            .collect();
        let rerun: Vec<bool> = batch.iter().map(|p| started.rerun[p.claim.job]).collect();
        count(&self.counters.claim_statements, 1);
        let lease = self.lease_secs();
        let rows = self
            .query(
                &self.sql.claim,
                &[
                    &names,
                    &ticks,
                    &catch_up,
                    &skip,
                    &rerun,
                    &lease,
                    &self.instance.id,
                ],
            )
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(_) => {
                for pending in batch {
                    let _ = pending.reply.send(self.decline_unavailable());
                }
                return;
            }
        };
        let mut answers: Vec<Option<Verdict>> = (0..batch.len()).map(|_| None).collect();
        for row in rows {
            let n: i64 = row.get(0);
            if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| answers.get_mut(i)) {
                *slot = Some((row.get(1), row.get(2), row.get(3)));
            }
        }
        for (pending, answer) in batch.into_iter().zip(answers) {
            let claim = match answer {
                Some((Some(fence), id, verdict)) if verdict == "granted" => {
                    count(&self.counters.granted, 1);
                    let token = pending.claim.token.clone();
                    self.state().runs.insert(
                        fence,
                        Held {
                            job: pending.claim.job,
                            fence,
                            id,
                            token: token.clone(),
                            completing: false,
                        },
                    );
                    let lease = Lease { fence, id, token };
                    if pending.reply.send(Claim::Granted(lease)).is_err() {
                        // Nobody waits for it: stop renewing it, and the
                        // lease runs out.
                        self.state().runs.remove(&fence);
                    }
                    continue;
                }
                Some((_, _, verdict)) => match verdict.as_str() {
                    "taken" => {
                        count(&self.counters.taken, 1);
                        Claim::Declined(Declined::Taken)
                    }
                    "running" => {
                        count(&self.counters.running, 1);
                        Claim::Declined(Declined::Running)
                    }
                    "paused" => Claim::Declined(Declined::Paused),
                    _ => {
                        tracing::warn!(job = %started.names[pending.claim.job], "the cluster's store has no row for this job; it reappears when the instance restarts");
                        self.decline_unavailable()
                    }
                },
                None => self.decline_unavailable(),
            };
            let _ = pending.reply.send(claim);
        }
    }

    async fn completion_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PendingCompletion>) {
        loop {
            let Some(batch) = next_batch(&mut rx, &self.stop, Vec::new()).await else {
                return;
            };
            let Some(started) = self.started.get() else {
                return;
            };
            let names: Vec<&str> = batch
                .iter()
                .map(|p| started.names[p.job].as_str())
                .collect();
            let fences: Vec<i64> = batch.iter().map(|p| p.fence).collect();
            let ids: Vec<i64> = batch.iter().map(|p| p.id).collect();
            let states: Vec<&str> = batch.iter().map(|p| p.state).collect();
            let errors: Vec<Option<&str>> = batch.iter().map(|p| p.error.as_deref()).collect();
            let result = self
                .query(
                    &self.sql.complete,
                    &[&names, &fences, &ids, &states, &errors, &self.instance.id],
                )
                .await;
            let recorded: Option<HashSet<i64>> = result
                .ok()
                .map(|rows| rows.iter().map(|r| r.get(0)).collect());
            let mut state = self.state();
            for pending in batch {
                state.runs.remove(&pending.fence);
                let answer = match &recorded {
                    None => Completion::Failed,
                    Some(fences) if fences.contains(&pending.fence) => Completion::Recorded,
                    Some(_) => {
                        count(&self.counters.stale, 1);
                        Completion::Stale
                    }
                };
                let _ = pending.reply.send(answer);
            }
        }
    }

    /// Renews leases and the heartbeat; reads triggers and pause flags;
    /// rescues runs whose lease ran out; prunes the history. Backs off
    /// while the store is out of reach.
    async fn maintain(self: Arc<Self>) {
        let options = &self.options;
        let tick = options
            .renew_every
            .min(options.poll_every)
            .min(options.rescue_every);
        let mut backoff = Duration::from_millis(100);
        let now = Instant::now();
        let mut next_renew = now + options.renew_every;
        let mut next_poll = now;
        let mut next_rescue = now;
        let mut next_prune = now + Duration::from_secs(60);
        let mut healthy = true;
        loop {
            let wait = if healthy { tick } else { backoff };
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let now = Instant::now();
            if !healthy || now >= next_renew {
                next_renew = now + options.renew_every;
                healthy = self.renew().await.is_ok();
                if !healthy {
                    backoff = (backoff * 2).min(options.renew_every);
                    continue;
                }
                backoff = Duration::from_millis(100);
            }
            if now >= next_poll {
                next_poll = now + options.poll_every;
                self.poll_controls().await;
            }
            if now >= next_rescue {
                next_rescue = now + options.rescue_every;
                self.rescue().await;
            }
            if now >= next_prune {
                next_prune = now + Duration::from_secs(60);
                let keep = options.history.as_secs_f64();
                let _ = self.query(&self.sql.prune, &[&keep]).await;
            }
        }
    }

    /// Cancels every run's token once the trust window passed without the
    /// store answering: another instance may own those ticks soon.
    async fn watchdog(self: Arc<Self>) {
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(WATCHDOG) => {}
            }
            let mut state = self.state();
            let expired = state.trusted_until.is_some_and(|t| Instant::now() >= t);
            if !expired || state.untrusted {
                continue;
            }
            state.untrusted = true;
            let fields = &mut *state;
            let held: Vec<CancellationToken> = fields
                .runs
                .drain()
                .map(|(_, held)| held.token)
                .chain(fields.singletons.drain().map(|(_, held)| held.token))
                .collect();
            drop(state);
            count(&self.counters.lost, held.len() as u64);
            tracing::error!(
                instance = %self.instance.id,
                runs = held.len(),
                "no contact with the cluster's database for the trust window ({:?}): claiming nothing, and cancelling the {} run(s) and service(s) whose leases can no longer be renewed",
                self.options.trust_window,
                held.len()
            );
            for token in held {
                token.cancel();
            }
        }
    }

    async fn renew(&self) -> Result<(), String> {
        if self.started.get().is_some_and(|s| !s.host.is_alive()) {
            // The host was dropped without a stop: let every lease run out.
            let mut guard = self.state();
            guard.runs.clear();
            guard.singletons.clear();
        }
        let Some(started) = self.started.get() else {
            return Ok(());
        };
        let (sent_fences, job_names, job_fences, ids, names, fences) = {
            let state = self.state();
            let sent_fences: Vec<i64> = state.runs.keys().copied().collect();
            let (job_names, job_fences): (Vec<String>, Vec<i64>) = state
                .runs
                .values()
                .filter(|held| held.id == 0)
                .map(|held| (started.names[held.job].clone(), held.fence))
                .unzip();
            let ids: Vec<i64> = state
                .runs
                .values()
                .filter(|held| held.id != 0)
                .map(|held| held.id)
                .collect();
            let (names, fences): (Vec<String>, Vec<i64>) = state
                .singletons
                .values()
                .map(|held| (started.names[held.job].clone(), held.fence))
                .unzip();
            (sent_fences, job_names, job_fences, ids, names, fences)
        };
        let lease = self.lease_secs();
        let before = started.host.own_clock();
        let sent = Instant::now();
        let rows = self
            .query(
                &self.sql.renew,
                &[
                    &self.instance.id,
                    &lease,
                    &job_names,
                    &job_fences,
                    &ids,
                    &names,
                    &fences,
                ],
            )
            .await?;
        self.refine_offset(&rows, before, sent.elapsed());
        let mut renewed_runs = HashSet::new();
        let mut renewed_leases = HashSet::new();
        for row in &rows {
            match row.get::<_, &str>(0) {
                "run" => {
                    renewed_runs.insert(row.get::<_, i64>(1));
                }
                "lease" => {
                    renewed_leases.insert(row.get::<_, String>(2));
                }
                _ => {}
            }
        }
        let mut lost = Vec::new();
        {
            let mut state = self.state();
            for fence in &sent_fences {
                if renewed_runs.contains(fence) {
                    continue;
                }
                if state.runs.get(fence).is_some_and(|held| !held.completing) {
                    if let Some(held) = state.runs.remove(fence) {
                        lost.push(held);
                    }
                }
            }
            if let Some(started) = self.started.get() {
                let gone: Vec<usize> = state
                    .singletons
                    .iter()
                    .filter(|(_, held)| {
                        names.contains(&started.names[held.job])
                            && !renewed_leases.contains(&started.names[held.job])
                    })
                    .map(|(job, _)| *job)
                    .collect();
                for job in gone {
                    if let Some(held) = state.singletons.remove(&job) {
                        lost.push(held);
                    }
                }
            }
        }
        for held in lost {
            count(&self.counters.lost, 1);
            let name = self
                .started
                .get()
                .map_or("?", |s| s.names[held.job].as_str());
            tracing::warn!(
                job = name,
                fence = held.fence,
                "the lease ran out before it could be renewed; cancelling the run's token"
            );
            held.token.cancel();
        }
        Ok(())
    }

    /// Refines the clock offset from a heartbeat's answer, if it came back
    /// quickly enough to say something, and moved by more than noise.
    fn refine_offset(&self, rows: &[Row], before: Option<DateTime<Utc>>, rtt: Duration) {
        let (Some(started), Some(before)) = (self.started.get(), before) else {
            return;
        };
        if rtt > Duration::from_millis(5) {
            return;
        }
        let Some(db) = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == "instance")
            .and_then(|r| r.get::<_, Option<DateTime<Utc>>>(3))
        else {
            return;
        };
        let offset = db - (before + chrono::TimeDelta::from_std(rtt / 2).unwrap_or_default());
        let mut state = self.state();
        let moved = state
            .offset
            .is_none_or(|old| (old - offset).abs() > chrono::TimeDelta::milliseconds(20));
        if moved {
            state.offset = Some(offset);
            drop(state);
            started.host.set_clock_offset(offset);
        }
    }

    async fn poll_controls(&self) {
        let Some(started) = self.started.get() else {
            return;
        };
        let (claimable, no_overlap) = (&started.claimed_names, &started.no_overlap_names);
        if claimable.is_empty() || !self.trusted() {
            return;
        }
        let lease = self.lease_secs();
        if let Ok(rows) = self
            .query(
                &self.sql.triggers,
                &[claimable, &self.instance.id, no_overlap, &lease],
            )
            .await
        {
            for row in rows {
                let job: String = row.get(2);
                let Some(&index) = started.index.get(&job) else {
                    continue;
                };
                if row.get::<_, &str>(0) == "dropped" {
                    tracing::info!(
                        job,
                        "a trigger from the cluster found the job still running; not started again"
                    );
                    continue;
                }
                let (id, tick, fence): (i64, DateTime<Utc>, i64) =
                    (row.get(1), row.get(3), row.get(4));
                self.run_here(started, index, id, tick, fence, "triggered");
            }
        }
        if let Ok(rows) = self.query(&self.sql.paused, &[claimable]).await {
            let now: HashSet<usize> = rows
                .iter()
                .filter_map(|row| {
                    let name: &str = row.get(0);
                    started.index.get(name).copied()
                })
                .collect();
            let mut state = self.state();
            for &job in now.symmetric_difference(&state.paused) {
                let paused = now.contains(&job);
                started.host.set_paused(job, paused);
                tracing::info!(
                    job = %started.names[job],
                    "{} across the cluster",
                    if paused { "paused" } else { "resumed" }
                );
            }
            state.paused = now;
        }
    }

    async fn rescue(&self) {
        let Some(started) = self.started.get() else {
            return;
        };
        if !self.trusted() {
            return;
        }
        let rerun = &started.rerun_names;
        let lease = self.lease_secs();
        let Ok(rows) = self
            .query(&self.sql.rescue, &[rerun, &self.instance.id, &lease])
            .await
        else {
            return;
        };
        for row in rows {
            let job: String = row.get(2);
            let tick: DateTime<Utc> = row.get(3);
            if row.get::<_, &str>(0) == "lost" {
                tracing::warn!(job, %tick, "a run's instance stopped renewing its lease; marked lost");
                continue;
            }
            let Some(&index) = started.index.get(&job) else {
                continue;
            };
            count(&self.counters.reruns, 1);
            self.run_here(started, index, row.get(1), tick, row.get(4), "rerun");
        }
    }

    /// Runs a tick claimed by the coordinator itself on this instance.
    fn run_here(
        &self,
        started: &Started,
        job: usize,
        id: i64,
        tick: DateTime<Utc>,
        fence: i64,
        why: &str,
    ) {
        let token = started.host.stop_token().child_token();
        self.state().runs.insert(
            fence,
            Held {
                job,
                fence,
                id,
                token: token.clone(),
                completing: false,
            },
        );
        tracing::info!(job = %started.names[job], %tick, fence, "{why}: running it here");
        let lease = Lease { fence, id, token };
        if !started.host.run_claimed(job, tick, lease) {
            // The host is stopping: the lease runs out, and the rescue
            // treats the run as lost.
            self.state().runs.remove(&fence);
        }
    }

    async fn acquire(self: Arc<Self>, job: usize, token: CancellationToken) -> Option<Lease> {
        let started = self.started.get()?;
        let name = started.names[job].clone();
        let lease = self.lease_secs();
        let mut waiting_logged = false;
        loop {
            if token.is_cancelled() {
                return None;
            }
            if self.trusted() {
                if let Ok(rows) = self
                    .query(&self.sql.acquire, &[&name, &self.instance.id, &lease])
                    .await
                {
                    if let Some(row) = rows.first() {
                        let fence: i64 = row.get(0);
                        let held = token.child_token();
                        self.state().singletons.insert(
                            job,
                            Held {
                                job,
                                fence,
                                id: 0,
                                token: held.clone(),
                                completing: false,
                            },
                        );
                        return Some(Lease {
                            fence,
                            id: 0,
                            token: held,
                        });
                    }
                    if !waiting_logged {
                        waiting_logged = true;
                        tracing::info!(
                            job = name,
                            "another instance runs this singleton; standing by"
                        );
                    }
                }
            }
            tokio::select! {
                () = token.cancelled() => return None,
                () = tokio::time::sleep(self.options.poll_every) => {}
            }
        }
    }

    async fn complete(self: Arc<Self>, job: usize, lease: Lease, outcome: Outcome) -> Completion {
        let Some(started) = self.started.get() else {
            return Completion::Failed;
        };
        if started.services.get(job).copied().unwrap_or(false) {
            self.state().singletons.remove(&job);
            let name = &started.names[job];
            return match self
                .query(
                    &self.sql.give_back,
                    &[name, &self.instance.id, &lease.fence],
                )
                .await
            {
                Ok(rows) if !rows.is_empty() => Completion::Recorded,
                Ok(_) => {
                    count(&self.counters.stale, 1);
                    Completion::Stale
                }
                Err(_) => Completion::Failed,
            };
        }
        let (state, error) = match outcome {
            Outcome::Succeeded => ("succeeded", None),
            Outcome::Failed(message) => ("failed", Some(message)),
            Outcome::Panicked(message) => ("panicked", Some(message)),
            Outcome::Cancelled => ("cancelled", None),
            Outcome::Aborted => ("aborted", None),
            _ => {
                // Claimed but never run (the host began to stop): the
                // lease ends now, and the rescue decides.
                self.state().runs.remove(&lease.fence);
                let names = vec![started.names[job].as_str()];
                let (fences, ids) = (vec![lease.fence], vec![lease.id]);
                return match self
                    .query(
                        &self.sql.release,
                        &[&names, &fences, &ids, &self.instance.id],
                    )
                    .await
                {
                    Ok(_) => Completion::Recorded,
                    Err(_) => Completion::Failed,
                };
            }
        };
        if let Some(held) = self.state().runs.get_mut(&lease.fence) {
            held.completing = true;
        }
        let (reply, answer) = oneshot::channel();
        let pending = PendingCompletion {
            job,
            fence: lease.fence,
            id: lease.id,
            state,
            error,
            reply,
        };
        if started.completions.send(pending).is_err() {
            return Completion::Failed;
        }
        answer.await.unwrap_or(Completion::Failed)
    }

    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let released = self.query(&self.sql.stop, &[&self.instance.id]).await;
        let held: Vec<CancellationToken> = {
            let mut guard = self.state();
            let state = &mut *guard;
            state
                .runs
                .drain()
                .map(|(_, h)| h.token)
                .chain(state.singletons.drain().map(|(_, h)| h.token))
                .collect()
        };
        for token in held {
            token.cancel();
        }
        match released {
            Ok(rows) => {
                let (runs, leases): (i64, i64) =
                    rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
                tracing::info!(
                    instance = %self.instance.id,
                    "left the cluster; released {runs} unfinished run(s) and {leases} singleton lease(s)"
                );
            }
            Err(error) => {
                tracing::warn!(instance = %self.instance.id, error, "could not mark this instance stopped; its leases run out on their own")
            }
        }
    }

    pub(crate) async fn set_paused(&self, job: &str, paused: bool) -> Result<(), Error> {
        let rows = self
            .query(&self.sql.set_paused, &[&job, &paused])
            .await
            .map_err(Error::Database)?;
        if rows.is_empty() {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        tracing::info!(job, instance = %self.instance.id, "{} the job across the cluster", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    pub(crate) async fn trigger(&self, job: &str) -> Result<(), Error> {
        let rows = self
            .query(&self.sql.trigger, &[&job, &self.instance.id])
            .await
            .map_err(Error::Database)?;
        if rows.is_empty() {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        tracing::info!(job, instance = %self.instance.id, "triggered the job across the cluster");
        Ok(())
    }

    pub(crate) async fn instances(&self) -> Result<Vec<InstanceInfo>, Error> {
        let rows = self
            .query(&self.sql.instances, &[])
            .await
            .map_err(Error::Database)?;
        Ok(rows
            .iter()
            .map(|r| InstanceInfo {
                id: r.get(0),
                host_name: r.get(1),
                pid: r.get(2),
                started: r.get(3),
                heartbeat: r.get(4),
                stopped: r.get(5),
            })
            .collect())
    }

    pub(crate) async fn jobs(&self) -> Result<Vec<ClusterJobStatus>, Error> {
        let rows = self
            .query(&self.sql.jobs, &[])
            .await
            .map_err(Error::Database)?;
        Ok(rows.iter().map(job_status).collect())
    }

    pub(crate) async fn jobs_named(
        &self,
        names: &[String],
    ) -> Result<Vec<ClusterJobStatus>, Error> {
        let rows = self
            .query(&self.sql.jobs_named, &[&names])
            .await
            .map_err(Error::Database)?;
        Ok(rows.iter().map(job_status).collect())
    }

    pub(crate) async fn job_counts(&self) -> Result<(u64, u64, u64), Error> {
        let rows = self
            .query(&self.sql.job_counts, &[])
            .await
            .map_err(Error::Database)?;
        let count = |i: usize| rows.first().map_or(0, |r| r.get::<_, i64>(i) as u64);
        Ok((count(0), count(1), count(2)))
    }

    pub(crate) async fn failures(&self, limit: i64) -> Result<Vec<(String, RunRecord)>, Error> {
        let rows = self
            .query(&self.sql.failures, &[&limit])
            .await
            .map_err(Error::Database)?;
        Ok(rows.iter().map(|r| (r.get(0), run_record(r))).collect())
    }

    pub(crate) async fn audit(&self, action: &AuditRecord) -> Result<(), Error> {
        self.query(
            &self.sql.audit,
            &[
                &action.who,
                &action.action,
                &action.target,
                &action.result,
                &self.instance.id,
            ],
        )
        .await
        .map_err(Error::Database)?;
        Ok(())
    }

    pub(crate) async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        let rows = self
            .query(&self.sql.audit_log, &[&limit])
            .await
            .map_err(Error::Database)?;
        Ok(rows
            .iter()
            .map(|r| AuditRecord {
                at: r.get(0),
                who: r.get(1),
                action: r.get(2),
                target: r.get(3),
                result: r.get(4),
                instance: r.get(5),
            })
            .collect())
    }

    pub(crate) async fn runs(&self, job: &str, limit: i64) -> Result<Vec<RunRecord>, Error> {
        let rows = self
            .query(&self.sql.runs, &[&job, &limit])
            .await
            .map_err(Error::Database)?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub(crate) fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            statements: get(&c.statements),
            claim_statements: get(&c.claim_statements),
            granted: get(&c.granted),
            taken: get(&c.taken),
            running: get(&c.running),
            unavailable: get(&c.unavailable),
            stale: get(&c.stale),
            lost: get(&c.lost),
            reruns: get(&c.reruns),
            outages: get(&c.outages),
        }
    }
}

/// The next batch: `batch` (what an earlier one left over), or else the
/// next item to come, plus whatever else is waiting, up to [`MAX_BATCH`].
/// `None` once `stop` fires or the senders are gone.
async fn next_batch<T>(
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
fn retryable(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl Coordinator for Cluster {
    fn start(&self, host: ClusterHost) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            #[cfg(feature = "metrics")]
            let stop = host.stop_token();
            self.inner.start(host).await.map_err(BoxError::from)?;
            #[cfg(feature = "metrics")]
            tokio::spawn(crate::telemetry::cluster(self.clone(), stop));
            Ok(())
        })
    }

    fn claim(&self, claim: TickClaim) -> BoxFuture<'static, Claim> {
        // Queued now, not when the future is first polled: every tick the
        // scheduler fires in one wake-up then goes in one statement.
        let inner = &self.inner;
        let queued = match inner.started.get() {
            Some(started) if inner.trusted() => {
                let (reply, answer) = oneshot::channel();
                started
                    .claims
                    .send(PendingClaim { claim, reply })
                    .ok()
                    .map(|()| answer)
            }
            _ => None,
        };
        let inner = inner.clone();
        Box::pin(async move {
            match queued {
                Some(answer) => answer
                    .await
                    .unwrap_or(Claim::Declined(Declined::Unavailable)),
                None => inner.decline_unavailable(),
            }
        })
    }

    fn complete(
        &self,
        job: usize,
        lease: Lease,
        outcome: &Outcome,
    ) -> BoxFuture<'static, Completion> {
        Box::pin(self.inner.clone().complete(job, lease, outcome.clone()))
    }

    fn acquire(&self, job: usize, token: CancellationToken) -> BoxFuture<'static, Option<Lease>> {
        Box::pin(self.inner.clone().acquire(job, token))
    }

    fn claim_ahead(&self) -> Duration {
        self.inner.options.claim_ahead
    }

    fn last_ticks(&self) -> Vec<Option<DateTime<Utc>>> {
        self.inner
            .started
            .get()
            .map(|s| s.last_ticks.clone())
            .unwrap_or_default()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.stop().await;
            #[cfg(feature = "metrics")]
            crate::telemetry::publish_cluster(&self.stats());
        })
    }
}

/// A row of the jobs query (`Sql::jobs`, `Sql::jobs_named`).
fn job_status(r: &Row) -> ClusterJobStatus {
    ClusterJobStatus {
        name: r.get(0),
        kind: r.get(1),
        paused: r.get(2),
        last_tick: r.get(3),
        fence: r.get(4),
        last_run: r.get::<_, Option<String>>(5).map(|instance| RunRecord {
            instance,
            state: r.get(6),
            tick: r.get(7),
            fence: r.get::<_, Option<i64>>(11).unwrap_or(0),
            started: r.get(8),
            finished: r.get(9),
            error: r.get(10),
        }),
    }
}

/// A row of `runs` as the history queries select it: its id (or job)
/// first, then tick, fence, instance, state, started, finished, error.
fn run_record(r: &Row) -> RunRecord {
    RunRecord {
        tick: r.get(1),
        fence: r.get(2),
        instance: r.get(3),
        state: r.get(4),
        started: r.get(5),
        finished: r.get(6),
        error: r.get(7),
    }
}
