//! Claims: the ticks asked for meanwhile, batched into one statement
//! (`sql/cluster/claim.sql`), each answered granted or declined.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hosted::cluster::{Claim, Declined, Lease};
use tokio::sync::mpsc;

use super::inner::{count, next_batch, Held, Inner, PendingClaim, Verdict};
use crate::state::ClaimVerdict;

impl Inner {
    /// Takes claims as they come and sends them in batches: whatever waits
    /// while a statement is out goes in the next one.
    pub(super) async fn claim_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PendingClaim>) {
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

    pub(super) async fn claim_batch(&self, batch: Vec<PendingClaim>) {
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
                *slot = Some((row.get(1), row.get(2), ClaimVerdict::parse(row.get(3))));
            }
        }
        for (pending, answer) in batch.into_iter().zip(answers) {
            let claim = match answer {
                Some((Some(fence), id, Some(ClaimVerdict::Granted))) => {
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
                Some((_, _, verdict)) => match verdict {
                    Some(ClaimVerdict::Taken) => {
                        count(&self.counters.taken, 1);
                        Claim::Declined(Declined::Taken)
                    }
                    Some(ClaimVerdict::Running) => {
                        count(&self.counters.running, 1);
                        Claim::Declined(Declined::Running)
                    }
                    Some(ClaimVerdict::Paused) => Claim::Declined(Declined::Paused),
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
}
