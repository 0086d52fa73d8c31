//! The stop sequence: the `stopping` event and hooks, the end of every
//! background run, every `stop`, the `stopped` hooks and event, all under
//! one deadline; at the deadline, what still runs is dropped and named.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::steps::{run_phase, InFlight, Key};
use super::RunningHost;
use crate::base::kind::JobKind;
use crate::base::outcome::{panic_message, Outcome};
use crate::base::queue::TaskQueue;
use crate::base::report::Phase;
use crate::base::report::{Aborted, HostError, Report, StopReason, Work};

/// How long aborted tasks get to be dropped after the deadline. A task that
/// blocks its thread cannot be aborted; past this, the host stops waiting.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// How long the cluster's coordinator gets to release what this instance
/// holds, after the runs ended.
const CLUSTER_STOP: Duration = Duration::from_secs(5);

impl RunningHost {
    /// The stop sequence; `force` completing aborts what is left at once.
    pub(super) async fn shutdown(mut self, force: impl Future<Output = ()>) -> Report {
        let began = Instant::now();
        let shared = self.shared.clone();
        shared.request_stop(StopReason::Requested);
        let reason = shared.reason();
        let timeout = self.settings.shutdown_timeout;
        tracing::info!(%reason, ?timeout, "stopping");

        let deadline = CancellationToken::new();
        let in_flight = InFlight::default();
        in_flight.set_deadline(began + timeout);
        let concurrently = self.settings.stop_concurrently;
        let mut forced = false;
        let finished = {
            let services = &mut self.services;
            let sequence = async {
                let errors = run_phase(
                    services,
                    Phase::Stopping,
                    &deadline,
                    concurrently,
                    &in_flight,
                )
                .await;
                errors.into_iter().for_each(|e| shared.push_error(e));
                shared.tracker.close();
                shared.tracker.wait().await;
                for phase in [Phase::Stop, Phase::Stopped] {
                    let errors =
                        run_phase(services, phase, &deadline, concurrently, &in_flight).await;
                    errors.into_iter().for_each(|e| shared.push_error(e));
                }
            };
            tokio::pin!(sequence);
            let in_time = tokio::select! {
                () = &mut sequence => true,
                () = tokio::time::sleep_until(began + timeout) => false,
                () = force => { forced = true; false }
            };
            // At the deadline the deadline token fires and background runs
            // are dropped; a step that honours the token returns on this
            // last poll.
            if !in_time {
                deadline.cancel();
                shared.abort();
                let _ = sequence.now_or_never();
            }
            in_time
        };

        let mut aborted = Vec::new();
        // Past the deadline, what was dropped is named even if the last
        // poll found the sequence done: the dropped runs may have ended on
        // other threads in between.
        if !finished {
            let abandoned = in_flight.take_running();
            let abandoned_keys: HashSet<Key> = abandoned
                .iter()
                .map(|(index, (_, phase))| (*index, *phase))
                .collect();
            let mut steps = Vec::new();
            for (_, (name, phase)) in abandoned {
                tracing::warn!(service = %name, %phase, "did not finish {phase} in time; abandoning it");
                steps.push(Aborted {
                    name: name.to_string(),
                    phase,
                    work: Work::of_step(phase),
                });
            }
            // Steps never begun get one poll each.
            for phase in [Phase::Stopping, Phase::Stop, Phase::Stopped] {
                for slot in self.services.iter_mut().rev().filter(|s| s.started) {
                    let key = (slot.index, phase);
                    if in_flight.is_done(slot.index, phase) || abandoned_keys.contains(&key) {
                        continue;
                    }
                    match AssertUnwindSafe(slot.service.call(phase, deadline.clone()))
                        .catch_unwind()
                        .now_or_never()
                    {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(error))) => shared.push_error(HostError {
                            name: slot.name.to_string(),
                            phase,
                            outcome: Outcome::Failed(error),
                        }),
                        Some(Err(panic)) => shared.push_error(HostError {
                            name: slot.name.to_string(),
                            phase,
                            outcome: Outcome::Panicked(panic_message(&*panic)),
                        }),
                        None => steps.push(Aborted {
                            name: slot.name.to_string(),
                            phase,
                            work: Work::of_step(phase),
                        }),
                    }
                }
            }
            // The aborted runs record themselves as they are dropped, on
            // whatever thread they run: wait for them before reading.
            if tokio::time::timeout(ABORT_GRACE, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "some runs did not end after being aborted; a job may be blocking its thread"
                );
            }
            for job in &shared.jobs {
                let stats = &job.stats;
                if stats.aborted.load(Ordering::Acquire)
                    || stats.running.load(Ordering::Acquire) > 0
                {
                    tracing::warn!(job = %job.name, "did not stop in time; aborted");
                    aborted.push(Aborted {
                        name: job.name.to_string(),
                        phase: Phase::Run,
                        work: match job.kind {
                            JobKind::Service => Work::Service,
                            JobKind::Queued => Work::Queue,
                            _ => Work::Job,
                        },
                    });
                }
            }
            for queue in shared.queues.iter().filter(|q| q.aborted_items()) {
                tracing::warn!(
                    queue = queue.name(),
                    "queue items did not finish in time; aborted them"
                );
                aborted.push(Aborted {
                    name: queue.name().to_owned(),
                    phase: Phase::Run,
                    work: Work::Queue,
                });
            }
            aborted.extend(steps);
        }
        let late: Vec<Aborted> = in_flight
            .take_late()
            .into_iter()
            .map(|(name, phase)| {
                tracing::warn!(service = %name, %phase, "{phase} finished past the shutdown deadline");
                Aborted {
                    name: name.to_string(),
                    phase,
                    work: Work::of_step(phase),
                }
            })
            .collect();
        // The cluster gets the leases back that runs dropped at the
        // deadline still held, and this instance is marked stopped.
        if let Some(coordinator) = &shared.coordinator {
            if tokio::time::timeout(CLUSTER_STOP, coordinator.stop())
                .await
                .is_err()
            {
                tracing::warn!("the cluster's store did not answer at stop; the leases this instance held run out on their own");
            }
        }
        // The durable queues get back the items whose runs were dropped at
        // the deadline, so that another instance takes them at once.
        for source in &shared.sources {
            if tokio::time::timeout(CLUSTER_STOP, source.stop())
                .await
                .is_err()
            {
                tracing::warn!("the durable queue's store did not answer at stop; the items this instance held go back once their leases run out");
            }
        }
        // Whatever is still queued never ran: count it, log it, resolve its
        // handle.
        for queue in &shared.queues {
            queue.close();
        }
        #[cfg(feature = "metrics")]
        crate::observe::telemetry::publish(&shared);
        let queues = shared.queues.iter().map(TaskQueue::stats).collect();
        let errors =
            std::mem::take(&mut *shared.errors.lock().unwrap_or_else(PoisonError::into_inner));
        let report = Report {
            reason,
            errors,
            aborted,
            late,
            forced,
            queues,
            took: began.elapsed(),
        };
        shared.stopped.cancel();
        if report.is_clean() {
            tracing::info!(took = ?report.took, "stopped");
        } else {
            tracing::error!(took = ?report.took, code = report.code(), "stopped: {report}");
        }
        report
    }
}
