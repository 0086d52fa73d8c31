//! What the dashboard and operators read: instances, jobs, runs,
//! failures, the audit log, and this instance's counters.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::inner::Inner;
use crate::error::Error;
use crate::state::RunState;

impl Inner {
    pub(crate) async fn instances(&self) -> Result<Vec<InstanceInfo>, Error> {
        let rows = self.query(&self.sql.instances, &[]).await?;
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
        let rows = self.query(&self.sql.jobs, &[]).await?;
        Ok(rows.iter().map(job_status).collect())
    }

    pub(crate) async fn jobs_named(
        &self,
        names: &[String],
    ) -> Result<Vec<ClusterJobStatus>, Error> {
        let rows = self.query(&self.sql.jobs_named, &[&names]).await?;
        Ok(rows.iter().map(job_status).collect())
    }

    pub(crate) async fn job_counts(&self) -> Result<(u64, u64, u64), Error> {
        let rows = self.query(&self.sql.job_counts, &[]).await?;
        let count = |i: usize| rows.first().map_or(0, |r| r.get::<_, i64>(i) as u64);
        Ok((count(0), count(1), count(2)))
    }

    pub(crate) async fn failures(&self, limit: i64) -> Result<Vec<(String, RunRecord)>, Error> {
        let rows = self.query(&self.sql.failures, &[&limit]).await?;
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
        .await?;
        Ok(())
    }

    pub(crate) async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, Error> {
        let rows = self.query(&self.sql.audit_log, &[&limit]).await?;
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
        let rows = self.query(&self.sql.runs, &[&job, &limit]).await?;
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
            state: RunState::from_store(r.get(6)),
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
        state: RunState::from_store(r.get(4)),
        started: r.get(5),
        finished: r.get(6),
        error: r.get(7),
    }
}

/// The cluster's jobs counted, as [`Cluster::job_counts`](crate::Cluster::job_counts) gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterJobCounts {
    /// Jobs the cluster knows.
    pub jobs: u64,
    /// Of those, paused across the cluster.
    pub paused: u64,
    /// Of those, holding a run's lease now (running somewhere).
    pub running: u64,
}

/// An action in the cluster's audit table ([`Cluster::audit`](crate::Cluster::audit)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When it was recorded, in database time (ignored by
    /// [`Cluster::audit`](crate::Cluster::audit), which records `now()`).
    pub at: DateTime<Utc>,
    /// Who took it.
    pub who: String,
    /// `trigger`, `pause`, `resume`, `retry`, `discard`…
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// What came of it.
    pub result: String,
    /// The instance it was recorded from (ignored by
    /// [`Cluster::audit`](crate::Cluster::audit), which records its own).
    pub instance: String,
}

impl AuditRecord {
    /// An action to record: who did what to what, and what came of it.
    pub fn new(
        who: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        result: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            who: who.into(),
            action: action.into(),
            target: target.into(),
            result: result.into(),
            instance: String::new(),
        }
    }
}

/// An instance of the cluster, as [`Cluster::instances`](crate::Cluster::instances) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceInfo {
    /// Its id.
    pub id: String,
    /// The host it runs on.
    pub host_name: String,
    /// Its process id.
    pub pid: i32,
    /// When it joined.
    pub started: DateTime<Utc>,
    /// Its last heartbeat, in database time.
    pub heartbeat: DateTime<Utc>,
    /// When it stopped cleanly; `None` while it runs (or if it died).
    pub stopped: Option<DateTime<Utc>>,
}

/// A job as the cluster's store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterJobStatus {
    /// Its name.
    pub name: String,
    /// `every`, `cron` or `service`.
    pub kind: String,
    /// Paused across the cluster.
    pub paused: bool,
    /// The last tick claimed, on any instance.
    pub last_tick: Option<DateTime<Utc>>,
    /// The last fencing number handed out.
    pub fence: i64,
    /// Its latest run, wherever it ran.
    pub last_run: Option<RunRecord>,
}

/// One run in the cluster's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunRecord {
    /// The tick it ran.
    pub tick: DateTime<Utc>,
    /// The instance that ran it.
    pub instance: String,
    /// Going on, or how it ended.
    pub state: RunState,
    /// The fencing number of its claim.
    pub fence: i64,
    /// When it was claimed, in database time.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// The error of a failed run.
    pub error: Option<String>,
}

/// Counters of one instance's traffic with the cluster's store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Statements sent (each commits on its own).
    pub statements: u64,
    /// Of those, claim statements.
    pub claim_statements: u64,
    /// Ticks this instance claimed.
    pub granted: u64,
    /// Ticks another instance had claimed.
    pub taken: u64,
    /// Ticks skipped because the previous run held its lease.
    pub running: u64,
    /// Ticks not claimed because the store was out of reach.
    pub unavailable: u64,
    /// Completions rejected because the lease had run out.
    pub stale: u64,
    /// Leases this instance lost while their runs went on.
    pub lost: u64,
    /// Runs this instance ran again for another that died.
    pub reruns: u64,
    /// Outages: times the store stopped answering.
    pub outages: u64,
}
