//! Starting the coordinator (registering the instance, its jobs, and the
//! tasks of its duties) and stopping it; the [`Coordinator`] the host
//! calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::cluster::{
    BoxError, BoxFuture, Claim, ClusterHost, Completion, Coordinator, Declined, Lease, OnCrash,
    Placement, TickClaim,
};
use hosted::{JobKind, Outcome, Overlap};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::inner::{Inner, PendingClaim, Started};
use super::Cluster;
use crate::error::Error;

impl Inner {
    pub(super) async fn start(self: &Arc<Self>, host: ClusterHost) -> Result<(), Error> {
        let jobs = host.jobs();
        let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
        let claimable: Vec<bool> = jobs
            .iter()
            .map(|j| j.kind != JobKind::Service && j.options.scope == Placement::Cluster)
            .collect();
        let services: Vec<bool> = jobs
            .iter()
            .map(|j| j.kind == JobKind::Service && j.options.scope == Placement::Singleton)
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
            .map_err(|e| Error::connect_pool(e, &self.target))?;
        crate::schema::migrate(&mut client, &self.options.leases.schema, &self.target).await?;
        let database = |e: tokio_postgres::Error| Error::database(e, &self.target);
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
                .query_one(&self.sql.clock, &[])
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
                tracing::warn!(
                    instance = %self.instance.id,
                    ?rtt,
                    "{}; following the database's clock",
                    clock_offset(offset)
                );
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
            state.trusted_until = Some(Instant::now() + self.options.leases.trust_window);
            state.paused = paused;
        }
        self.tasks.spawn(self.clone().claim_loop(claims_rx));
        self.tasks
            .spawn(self.clone().completion_loop(completions_rx));
        self.tasks.spawn(self.clone().maintain());
        self.tasks.spawn(self.clone().watchdog());
        tracing::info!(
            instance = %self.instance.id,
            schema = %self.options.leases.schema,
            "joined the cluster: {claimed} job(s) claimed per tick, {singletons} singleton service(s)"
        );
        Ok(())
    }

    pub(super) async fn stop(&self) {
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
                tracing::warn!(instance = %self.instance.id, error = %error, "could not mark this instance stopped; its leases run out on their own")
            }
        }
    }
}

impl Coordinator for Cluster {
    fn start(&self, host: ClusterHost) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            #[cfg(feature = "metrics")]
            let stop = host.stop_token();
            self.inner.start(host).await.map_err(BoxError::from)?;
            #[cfg(feature = "metrics")]
            tokio::spawn(super::metrics::cluster(self.clone(), stop));
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
            super::metrics::publish_cluster(&self.stats());
        })
    }
}

/// How this machine's clock stands to the database's, for a person, from
/// the database's clock minus this machine's: "this machine's clock is
/// 2.0 s ahead of the database's", not a signed ISO 8601 duration.
fn clock_offset(db_minus_own: chrono::TimeDelta) -> String {
    let seconds = db_minus_own.num_milliseconds() as f64 / 1000.0;
    let way = if seconds < 0.0 { "ahead of" } else { "behind" };
    format!(
        "this machine's clock is {:.1} s {way} the database's",
        seconds.abs()
    )
}

#[cfg(test)]
mod tests {
    use super::clock_offset;

    /// Regression: a clock 2 s ahead was logged as "-PT1.99S off the
    /// database's".
    #[test]
    fn a_clock_offset_reads_as_seconds_ahead_or_behind() {
        let ahead = chrono::TimeDelta::milliseconds(-1_990);
        assert_eq!(
            clock_offset(ahead),
            "this machine's clock is 2.0 s ahead of the database's"
        );
        let behind = chrono::TimeDelta::milliseconds(400);
        assert_eq!(
            clock_offset(behind),
            "this machine's clock is 0.4 s behind the database's"
        );
    }
}
