//! Upkeep: the loop that runs the periodic duties, lease renewal with the
//! heartbeat and the clock offset (`sql/cluster/renew.sql`), and the
//! watchdog that cancels this instance's runs once it cannot vouch for
//! its leases.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;

use super::inner::{count, Inner, WATCHDOG};
use crate::error::Error;

impl Inner {
    /// Renews leases and the heartbeat; reads triggers and pause flags;
    /// rescues runs whose lease ran out; prunes the history. Backs off
    /// while the store is out of reach.
    pub(super) async fn maintain(self: Arc<Self>) {
        let options = &self.options;
        let tick = options
            .leases
            .renew_every
            .min(options.leases.poll_every)
            .min(options.leases.rescue_every);
        let mut backoff = Duration::from_millis(100);
        let now = Instant::now();
        let mut next_renew = now + options.leases.renew_every;
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
                next_renew = now + options.leases.renew_every;
                healthy = self.renew().await.is_ok();
                if !healthy {
                    backoff = (backoff * 2).min(options.leases.renew_every);
                    continue;
                }
                backoff = Duration::from_millis(100);
            }
            if now >= next_poll {
                next_poll = now + options.leases.poll_every;
                self.poll_controls().await;
            }
            if now >= next_rescue {
                next_rescue = now + options.leases.rescue_every;
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
    pub(super) async fn watchdog(self: Arc<Self>) {
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
                self.options.leases.trust_window,
                held.len()
            );
            for token in held {
                token.cancel();
            }
        }
    }

    pub(super) async fn renew(&self) -> Result<(), Error> {
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
    pub(super) fn refine_offset(&self, rows: &[Row], before: Option<DateTime<Utc>>, rtt: Duration) {
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
}
