//! A background service's life: started once per host start (and, under a
//! cluster, once it holds the singleton lease), restarted or not by its
//! [`FailurePolicy`] when it fails.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::execute::{execute, killable, number, Grant, This};
use crate::base::outcome::Outcome;
use crate::base::report::Phase;
use crate::model::job::JobDef;
use crate::model::registry::FailurePolicy;
use crate::model::schedule::seed_of;
use crate::model::shared::HostShared;
use crate::seams::cluster::Placement;

/// Runs a background service (`#[hosted_service]` on an `async fn`) and
/// applies its failure policy.
pub(crate) async fn supervise(host: Arc<HostShared>, job: Arc<JobDef>) {
    let mut failures_in_row = 0_u32;
    let seed = seed_of(&job.name) ^ host.seed;
    let singleton = match &host.coordinator {
        Some(coordinator) if job.scope() == Placement::Singleton => Some(coordinator.clone()),
        _ => None,
    };
    loop {
        // A singleton waits for its lease: until then another instance
        // runs it.
        let lease = match &singleton {
            Some(coordinator) => {
                match coordinator
                    .acquire(job.index as usize, host.stop.clone())
                    .await
                {
                    Some(lease) => Some(lease),
                    None => return,
                }
            }
            None => None,
        };
        if let Some(lease) = &lease {
            tracing::info!(job = %job.name, fence = lease.fence, "holds the singleton lease; starting");
        }
        let lost = lease.as_ref().map(|lease| lease.token.clone());
        job.stats.running.fetch_add(1, Ordering::AcqRel);
        let number = number(&job);
        let this = This {
            number,
            scheduled: host.wall(),
            began: Instant::now(),
            late: Duration::ZERO,
        };
        let grant = match lease {
            Some(lease) => Grant::Lease(lease),
            None => Grant::Own,
        };
        let run = execute(host.clone(), job.clone(), this, grant);
        let (outcome, _) = killable(host.clone(), job.clone(), this, run).await;
        if lost.is_some_and(|lost| lost.is_cancelled()) && !host.is_stopping() {
            tracing::warn!(job = %job.name, outcome = %outcome, "lost the singleton lease; waiting to take it again");
            continue;
        }
        let (Outcome::Failed(_) | Outcome::Panicked(_)) = &outcome else {
            return;
        };
        match job.on_failure() {
            FailurePolicy::Stop => {
                tracing::error!(job = %job.name, error = %outcome, "service failed; stopping the host");
                host.fail(&job.name, Phase::Run, outcome);
                return;
            }
            FailurePolicy::Ignore => {
                tracing::error!(job = %job.name, error = %outcome, "service failed; carrying on without it (on_failure = \"ignore\")");
                return;
            }
            FailurePolicy::Restart(backoff) => {
                if this.began.elapsed() >= backoff.max {
                    failures_in_row = 0;
                }
                failures_in_row += 1;
                if failures_in_row > backoff.max_restarts {
                    tracing::error!(
                        job = %job.name,
                        error = %outcome,
                        "service failed {failures_in_row} time(s) in a row, past its budget of {} restart(s); stopping the host",
                        backoff.max_restarts
                    );
                    host.fail(&job.name, Phase::Run, outcome);
                    return;
                }
                let delay = backoff.delay(failures_in_row, seed);
                tracing::warn!(
                    job = %job.name,
                    error = %outcome,
                    ?delay,
                    "service failed; restart {failures_in_row} of {} in {delay:?}",
                    backoff.max_restarts
                );
                tokio::select! {
                    () = host.stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
