//! Rescue: runs whose lease ran out are recorded as lost, and rerun here
//! if their job reruns (`sql/cluster/rescue.sql`).

use chrono::{DateTime, Utc};
use hosted::cluster::Lease;

use super::inner::{count, Held, Inner, Started};
use crate::state::RunState;

impl Inner {
    pub(super) async fn rescue(&self) {
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
            if RunState::parse(row.get(0)) == Some(RunState::Lost) {
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
    pub(super) fn run_here(
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
}
