//! The [`Coordinator`] on PostgreSQL: claims batched into one statement,
//! completions likewise, and one maintenance task that renews leases and
//! the heartbeat, reads triggers and pause flags, rescues runs whose lease
//! ran out, and prunes the history. A watchdog cancels the runs of an
//! instance that has not reached the database within its trust window.
//!
//! One file per duty, as River keeps its maintenance services apart:
//! `start.rs` (start, stop, the [`Coordinator`] the host calls),
//! `claim.rs`, `complete.rs`, `singleton.rs`, `upkeep.rs` (renewal,
//! heartbeat, clock offset, watchdog), `rescue.rs`, `controls.rs` (pauses
//! and triggers), `read.rs` (what the dashboard reads); the shared state in
//! `inner.rs`, the options in `options.rs`. The statements are in
//! `src/sql/cluster/`.

mod claim;
mod complete;
mod controls;
mod inner;
#[cfg(feature = "metrics")]
mod metrics;
mod options;
mod read;
mod rescue;
mod singleton;
mod start;
mod upkeep;

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::connection::{check_connection, Connection, Instance};
use crate::error::Error;

use self::inner::Inner;
pub use self::options::ClusterOptions;
pub use self::read::{
    AuditRecord, ClusterJobCounts, ClusterJobStatus, ClusterStats, InstanceInfo, RunRecord,
};

/// A cluster of instances that share one PostgreSQL database: give it to
/// [`HostBuilder::cluster`](hosted::HostBuilder::cluster). Cheap to clone;
/// clones share one connection pool and one instance. Its methods steer the
/// whole cluster from any instance.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.inner.instance.id)
            .field("schema", &self.inner.options.leases.schema)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects with the default options: checks the URL, the server and
    /// the credentials at once, so that a wrong one is an error here, not a
    /// host that runs without coordination.
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a server that cannot be reached, refused
    /// credentials, a missing database: each says what to check.
    pub async fn connect(url: &str) -> Result<Cluster, Error> {
        Cluster::connect_with(url, ClusterOptions::default()).await
    }

    /// Connects with `options`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Cluster::connect), and options out of range.
    pub async fn connect_with(url: &str, options: ClusterOptions) -> Result<Cluster, Error> {
        options.check()?;
        let instance = Instance::fresh();
        let connection = Connection::open(url, &instance, &options.leases)?;
        let cluster = Cluster {
            inner: Arc::new(Inner::new(
                connection.pool,
                options,
                instance,
                connection.target,
            )),
        };
        check_connection(&cluster.inner.pool, &cluster.inner.target).await?;
        Ok(cluster)
    }

    /// A cluster on a pool of your own (with your TLS connector, say). Its
    /// connections keep the `application_name` your configuration gives.
    ///
    /// # Errors
    ///
    /// Options out of range. The pool is first used as the host starts.
    pub fn from_pool(pool: Pool, options: ClusterOptions) -> Result<Cluster, Error> {
        options.check()?;
        let instance = Instance::fresh();
        Ok(Cluster {
            inner: Arc::new(Inner::new(
                pool,
                options,
                instance,
                "the pool's server".to_owned(),
            )),
        })
    }

    /// This instance's id: fresh at every start of the process.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance.id
    }

    /// The pool the cluster uses.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Pauses a job on every instance: its ticks pass without runs until
    /// [`resume`](Cluster::resume).
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn pause(&self, job: &str) -> Result<(), Error> {
        self.inner.set_paused(job, true).await
    }

    /// Resumes a job paused with [`pause`](Cluster::pause), on every
    /// instance.
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn resume(&self, job: &str) -> Result<(), Error> {
        self.inner.set_paused(job, false).await
    }

    /// Runs a job once, now, on one instance that has it (within
    /// [`ClusterOptions::poll_every`]), beside its schedule. A job that does
    /// not overlap and holds its lease is not started again.
    ///
    /// # Errors
    ///
    /// No such job in the cluster, or the database failed.
    pub async fn trigger(&self, job: &str) -> Result<(), Error> {
        self.inner.trigger(job).await
    }

    /// The instances that joined the cluster, oldest first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.inner.instances().await
    }

    /// Every job the cluster knows, with its last run wherever it ran.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn jobs(&self) -> Result<Vec<ClusterJobStatus>, Error> {
        self.inner.jobs().await
    }

    /// The latest runs of `job`, newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn runs(&self, job: &str, limit: i64) -> Result<Vec<RunRecord>, Error> {
        self.inner.runs(job, limit).await
    }

    /// The jobs named in `names` that the cluster knows, as
    /// [`jobs`](Cluster::jobs) gives them: one page's worth, read
    /// through the jobs' primary key.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn jobs_named(&self, names: &[String]) -> Result<Vec<ClusterJobStatus>, Error> {
        self.inner.jobs_named(names).await
    }

    /// The jobs the cluster knows, how many of them are paused, and how
    /// many hold a run's lease now: one pass over the jobs table, no
    /// history.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn job_counts(&self) -> Result<ClusterJobCounts, Error> {
        let (jobs, paused, running) = self.inner.job_counts().await?;
        Ok(ClusterJobCounts {
            jobs,
            paused,
            running,
        })
    }

    /// The latest failed (or lost) runs of any job, newest first, at most
    /// `limit`: through an index of failures only, however many runs
    /// succeeded.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn failures(&self, limit: i64) -> Result<Vec<(String, RunRecord)>, Error> {
        self.inner.failures(limit).await
    }

    /// Records an action an operator took (trigger, pause, a retry of
    /// dead letters) in the cluster's audit table, with this instance's
    /// id. The table is kept, not pruned.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn audit(&self, action: &AuditRecord) -> Result<(), Error> {
        self.inner.audit(action).await
    }

    /// The latest actions of the audit table, newest first, at most
    /// `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        self.inner.audit_log(limit).await
    }

    /// What this instance sent and was told.
    pub fn stats(&self) -> ClusterStats {
        self.inner.stats()
    }
}
