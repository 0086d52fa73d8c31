//! Controls: pauses and triggers, set by any instance or admin tool
//! (`set_paused.sql`, `trigger.sql`) and polled by every instance
//! (`paused.sql`, `triggers.sql`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::inner::Inner;
use crate::error::Error;

impl Inner {
    pub(super) async fn poll_controls(&self) {
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

    pub(crate) async fn set_paused(&self, job: &str, paused: bool) -> Result<(), Error> {
        let rows = self.query(&self.sql.set_paused, &[&job, &paused]).await?;
        if rows.is_empty() {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        tracing::info!(job, instance = %self.instance.id, "{} the job across the cluster", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    pub(crate) async fn trigger(&self, job: &str) -> Result<(), Error> {
        let rows = self
            .query(&self.sql.trigger, &[&job, &self.instance.id])
            .await?;
        if rows.is_empty() {
            return Err(Error::UnknownJob(job.to_owned()));
        }
        tracing::info!(job, instance = %self.instance.id, "triggered the job across the cluster");
        Ok(())
    }
}
