//! Completions: finished runs batched into one statement
//! (`sql/cluster/complete.sql`), each recorded only under its fence.

use std::collections::HashSet;
use std::sync::Arc;

use hosted::cluster::{Completion, Lease};
use hosted::Outcome;
use tokio::sync::{mpsc, oneshot};

use super::inner::{count, next_batch, Inner, PendingCompletion};
use crate::state::RunState;

impl Inner {
    pub(super) async fn completion_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<PendingCompletion>,
    ) {
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
            let states: Vec<&str> = batch.iter().map(|p| p.state.as_str()).collect();
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

    pub(super) async fn complete(
        self: Arc<Self>,
        job: usize,
        lease: Lease,
        outcome: Outcome,
    ) -> Completion {
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
            Outcome::Succeeded => (RunState::Succeeded, None),
            Outcome::Failed(message) => (RunState::Failed, Some(message)),
            Outcome::Panicked(message) => (RunState::Panicked, Some(message)),
            Outcome::Cancelled => (RunState::Cancelled, None),
            Outcome::Aborted => (RunState::Aborted, None),
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
}
