//! Metrics through the `metrics` facade (feature `metrics`); the list of
//! names is in the crate's documentation, section "Metrics".
//!
//! The two histograms are recorded as each run ends: two records, on
//! handles resolved once at start. Everything else is read from the
//! counters the host keeps anyway and published every second (and once
//! more when the host has stopped), so that a run costs no further
//! metric update: at 100,000 runs a second, an update a run on a job's
//! counter, last touched a second before, is a cache miss each.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics::Unit;

use crate::model::metrics::{Extra, HostMetrics, JobMetrics, QueueMetrics};

use crate::base::clock::Clock;
use crate::base::kind::JobKind;
use crate::model::shared::HostShared;

/// How often the counters and gauges are published.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// A host's metric handles, resolved once from the recorder installed when
/// it starts.
/// Describes the metrics to the recorder (units and help texts), resolves
/// the host's handles, and spawns the task that publishes them every
/// [`PUBLISH_EVERY`] until stop begins.
pub(crate) fn start(shared: &Arc<HostShared>, per_job: bool) {
    describe();
    let jobs = if per_job {
        shared.jobs.iter().map(job_metrics).collect()
    } else {
        vec![host_metrics(shared)].into_boxed_slice()
    };
    let queues = shared
        .queues
        .iter()
        .map(|queue| {
            let name = queue.name().to_owned();
            let items = |outcome: &'static str| {
                metrics::counter!("hosted_queue_items_total", "queue" => name.clone(), "outcome" => outcome)
            };
            QueueMetrics {
                depth: metrics::gauge!("hosted_queue_depth", "queue" => name.clone()),
                lag: metrics::gauge!("hosted_queue_lag_seconds", "queue" => name.clone()),
                in_flight: metrics::gauge!("hosted_queue_in_flight", "queue" => name.clone()),
                completed: items("completed"),
                failed: items("failed"),
                refused: items("refused"),
                not_run: items("not_run"),
            }
        })
        .collect();
    if shared
        .metrics
        .set(HostMetrics {
            jobs,
            per_job,
            restarts: (!per_job).then(|| metrics::counter!("hosted_service_restarts_total")),
            queues,
        })
        .is_err()
    {
        // A host starts once; a second start has nothing to resolve.
        return;
    }
    // On a test clock or paused time, a timer a second would make a test
    // that lets a year pass wake 31 million times: there, the counters are
    // published when `TestHost::advance` returns, and at stop.
    if matches!(shared.clock, Clock::Manual(_)) || crate::base::timer::time_is_paused() {
        return;
    }
    let host = shared.clone();
    shared.tracker.spawn(async move {
        let mut every = tokio::time::interval(PUBLISH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = host.stop.cancelled() => return,
                _ = every.tick() => publish(&host),
            }
        }
    });
}

/// One set of handles for every job of the host, with no `job` label.
fn host_metrics(shared: &HostShared) -> JobMetrics {
    let runs =
        |outcome: &'static str| metrics::counter!("hosted_job_runs_total", "outcome" => outcome);
    let extra = if shared.jobs.iter().any(|job| job.cluster.is_some()) {
        Some(Box::new(Extra::Cluster {
            elsewhere: metrics::counter!("hosted_job_ticks_claimed_elsewhere_total"),
            unclaimed: metrics::counter!("hosted_job_ticks_unclaimed_total"),
            stale: metrics::counter!("hosted_job_stale_completions_total"),
        }))
    } else {
        None
    };
    JobMetrics {
        duration: metrics::histogram!("hosted_job_run_duration_seconds"),
        lateness: metrics::histogram!("hosted_job_tick_lateness_seconds"),
        succeeded: runs("succeeded"),
        failed: runs("failed"),
        cancelled: runs("cancelled"),
        skipped: metrics::counter!("hosted_job_ticks_skipped_total"),
        running: metrics::gauge!("hosted_job_runs_running"),
        extra,
    }
}

fn job_metrics(job: &Arc<crate::model::job::JobDef>) -> JobMetrics {
    let name = job.name.to_string();
    let runs = |outcome: &'static str| metrics::counter!("hosted_job_runs_total", "job" => name.clone(), "outcome" => outcome);
    let extra = if job.cluster.is_some() {
        Some(Box::new(Extra::Cluster {
            elsewhere: metrics::counter!("hosted_job_ticks_claimed_elsewhere_total", "job" => name.clone()),
            unclaimed: metrics::counter!("hosted_job_ticks_unclaimed_total", "job" => name.clone()),
            stale: metrics::counter!("hosted_job_stale_completions_total", "job" => name.clone()),
        }))
    } else if job.kind == JobKind::Service {
        Some(Box::new(Extra::Service {
            restarts: metrics::counter!("hosted_service_restarts_total", "service" => name.clone()),
        }))
    } else {
        None
    };
    JobMetrics {
        duration: metrics::histogram!("hosted_job_run_duration_seconds", "job" => name.clone()),
        lateness: metrics::histogram!("hosted_job_tick_lateness_seconds", "job" => name.clone()),
        succeeded: runs("succeeded"),
        failed: runs("failed"),
        cancelled: runs("cancelled"),
        skipped: metrics::counter!("hosted_job_ticks_skipped_total", "job" => name.clone()),
        running: metrics::gauge!("hosted_job_runs_running", "job" => name),
        extra,
    }
}

/// Records how long a run of job `index` took and how late it started.
#[inline]
pub(crate) fn run_ended(host: &HostShared, index: usize, took: Duration, late: Duration) {
    let Some(metrics) = host.metrics.get() else {
        return;
    };
    let index = if metrics.per_job { index } else { 0 };
    if let Some(job) = metrics.jobs.get(index) {
        job.duration.record(took.as_secs_f64());
        job.lateness.record(late.as_secs_f64());
    }
}

/// Publishes the host's counters and gauges as they are now.
pub(crate) fn publish(host: &HostShared) {
    let Some(metrics) = host.metrics.get() else {
        return;
    };
    if metrics.per_job {
        publish_per_job(host, metrics);
    } else {
        publish_summed(host, metrics);
    }
    for (queue, m) in host.queues.iter().zip(metrics.queues.iter()) {
        let stats = queue.stats();
        m.depth.set(stats.depth as f64);
        m.lag.set(stats.lag.as_secs_f64());
        m.in_flight.set(stats.in_flight as f64);
        m.completed.absolute(stats.completed);
        m.failed.absolute(stats.failed);
        m.refused.absolute(stats.refused);
        m.not_run.absolute(stats.not_run);
    }
}

/// Publishes each job's counters on its own set.
fn publish_per_job(host: &HostShared, metrics: &HostMetrics) {
    for (job, m) in host.jobs.iter().zip(metrics.jobs.iter()) {
        let stats = &job.stats;
        m.succeeded
            .absolute(stats.succeeded.load(Ordering::Relaxed));
        m.failed.absolute(stats.failed.load(Ordering::Relaxed));
        m.cancelled
            .absolute(u64::from(stats.cancelled.load(Ordering::Relaxed)));
        m.skipped.absolute(stats.skipped.load(Ordering::Relaxed));
        m.running
            .set(f64::from(stats.running.load(Ordering::Relaxed)));
        match m.extra.as_deref() {
            Some(Extra::Cluster {
                elsewhere,
                unclaimed,
                stale,
            }) => {
                if let Some(cluster) = &job.cluster {
                    elsewhere.absolute(cluster.elsewhere.load(Ordering::Relaxed));
                    unclaimed.absolute(cluster.unclaimed.load(Ordering::Relaxed));
                    stale.absolute(cluster.stale.load(Ordering::Relaxed));
                }
            }
            Some(Extra::Service { restarts }) => {
                let starts = stats.started.load(Ordering::Relaxed);
                restarts.absolute(starts.saturating_sub(1));
            }
            None => {}
        }
    }
}

/// Publishes every job's counters summed, on the host's one set.
fn publish_summed(host: &HostShared, metrics: &HostMetrics) {
    let Some(m) = metrics.jobs.first() else {
        return;
    };
    let mut sums = [0u64; 9];
    for job in &host.jobs {
        let stats = &job.stats;
        if job.kind == JobKind::Service {
            sums[8] += stats.started.load(Ordering::Relaxed).saturating_sub(1);
        }
        sums[0] += stats.succeeded.load(Ordering::Relaxed);
        sums[1] += stats.failed.load(Ordering::Relaxed);
        sums[2] += u64::from(stats.cancelled.load(Ordering::Relaxed));
        sums[3] += stats.skipped.load(Ordering::Relaxed);
        sums[4] += u64::from(stats.running.load(Ordering::Relaxed));
        if let Some(cluster) = &job.cluster {
            sums[5] += cluster.elsewhere.load(Ordering::Relaxed);
            sums[6] += cluster.unclaimed.load(Ordering::Relaxed);
            sums[7] += cluster.stale.load(Ordering::Relaxed);
        }
    }
    m.succeeded.absolute(sums[0]);
    m.failed.absolute(sums[1]);
    m.cancelled.absolute(sums[2]);
    m.skipped.absolute(sums[3]);
    m.running.set(sums[4] as f64);
    if let Some(Extra::Cluster {
        elsewhere,
        unclaimed,
        stale,
    }) = m.extra.as_deref()
    {
        elsewhere.absolute(sums[5]);
        unclaimed.absolute(sums[6]);
        stale.absolute(sums[7]);
    }
    if let Some(restarts) = &metrics.restarts {
        restarts.absolute(sums[8]);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "hosted_job_runs_total",
        Unit::Count,
        "Finished runs, by job and outcome (succeeded, failed, cancelled)"
    );
    describe_histogram!(
        "hosted_job_run_duration_seconds",
        Unit::Seconds,
        "How long each run took"
    );
    describe_histogram!(
        "hosted_job_tick_lateness_seconds",
        Unit::Seconds,
        "How long after it was due each run started"
    );
    describe_counter!(
        "hosted_job_ticks_skipped_total",
        Unit::Count,
        "Ticks skipped because the previous run was still going or the host stalled"
    );
    describe_gauge!("hosted_job_runs_running", Unit::Count, "Runs going now");
    describe_counter!(
        "hosted_job_ticks_claimed_elsewhere_total",
        Unit::Count,
        "Ticks another instance of the cluster claimed and ran"
    );
    describe_counter!(
        "hosted_job_ticks_unclaimed_total",
        Unit::Count,
        "Ticks not claimed because the cluster's store was out of reach"
    );
    describe_counter!(
        "hosted_job_stale_completions_total",
        Unit::Count,
        "Completions the cluster rejected because the run's lease had run out"
    );
    describe_counter!(
        "hosted_service_restarts_total",
        Unit::Count,
        "Restarts of a background service"
    );
    describe_gauge!(
        "hosted_queue_depth",
        Unit::Count,
        "Items waiting in a queue"
    );
    describe_gauge!(
        "hosted_queue_lag_seconds",
        Unit::Seconds,
        "How long the oldest waiting item of a queue has waited"
    );
    describe_gauge!(
        "hosted_queue_in_flight",
        Unit::Count,
        "Items of a queue running now"
    );
    describe_counter!(
        "hosted_queue_items_total",
        Unit::Count,
        "Queue items by outcome (completed, failed, refused, not_run)"
    );
}
