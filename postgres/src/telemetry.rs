//! The cluster's and the durable queue's counters through the `metrics`
//! facade (feature `metrics`), published every second from
//! [`ClusterStats`] and [`DurableStats`] and once more at stop; the names
//! are in the crate's documentation, section "Metrics". No label: each
//! process publishes its own instance's counters, which the scrape's own
//! `instance` label tells apart.

use std::time::Duration;

use metrics::{describe_counter, Unit};
use tokio_util::sync::CancellationToken;

use crate::{Cluster, ClusterStats, DurableQueue, DurableStats};

/// How often the counters are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// How often each instance reads the durable queues' items by state and
/// their lag (`DurableQueue::estimated_counts`: a statement over the live
/// table and one over the dead letters) for their gauges: once a scrape
/// interval, not once a second.
const COUNTS_EVERY: Duration = Duration::from_secs(15);

/// Tables larger than this are sampled for the gauges, not counted.
const EXACT_BELOW: u64 = 100_000;

/// Publishes `cluster`'s counters until `stop` fires.
pub(crate) async fn cluster(cluster: Cluster, stop: CancellationToken) {
    describe_cluster();
    every_second(stop, || publish_cluster(&cluster.stats())).await;
}

/// Publishes `queue`'s counters, and its queues' items by state and lag,
/// until `stop` fires.
pub(crate) async fn durable(queue: DurableQueue, stop: CancellationToken) {
    describe_durable();
    let counters = every_second(stop.clone(), || publish_durable(&queue.stats()));
    tokio::join!(counters, counts(&queue, stop));
}

/// Reads the queues' counts every [`COUNTS_EVERY`] (the first at once) and
/// sets their gauges; a read that fails or takes longer than that leaves
/// the last values.
async fn counts(queue: &DurableQueue, stop: CancellationToken) {
    let mut every = tokio::time::interval(COUNTS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let read = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            read = tokio::time::timeout(COUNTS_EVERY, queue.estimated_counts(EXACT_BELOW)) => read,
        };
        match read {
            Ok(Ok(counts)) => {
                for c in &counts {
                    let items = |state: &'static str, value: u64| {
                        metrics::gauge!("hosted_durable_queue_items", "queue" => c.queue.clone(), "state" => state)
                            .set(value as f64);
                    };
                    items("due", c.due);
                    items("scheduled", c.scheduled);
                    items("running", c.running);
                    items("retrying", c.retrying);
                    items("dead", c.dead);
                    metrics::gauge!("hosted_durable_queue_lag_seconds", "queue" => c.queue.clone())
                        .set(c.lag.as_secs_f64());
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "could not read the durable queues' counts for their gauges")
            }
            Err(_) => {
                tracing::debug!("the durable queues' counts took longer than {COUNTS_EVERY:?}")
            }
        }
    }
}

async fn every_second(stop: CancellationToken, publish: impl Fn()) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = every.tick() => publish(),
        }
    }
    publish();
}

pub(crate) fn publish_cluster(stats: &ClusterStats) {
    let ticks = |result: &'static str, value: u64| {
        metrics::counter!("hosted_cluster_ticks_total", "result" => result).absolute(value);
    };
    ticks("granted", stats.granted);
    ticks("taken", stats.taken);
    ticks("running", stats.running);
    ticks("unavailable", stats.unavailable);
    metrics::counter!("hosted_cluster_statements_total").absolute(stats.statements);
    metrics::counter!("hosted_cluster_stale_completions_total").absolute(stats.stale);
    metrics::counter!("hosted_cluster_leases_lost_total").absolute(stats.lost);
    metrics::counter!("hosted_cluster_reruns_total").absolute(stats.reruns);
    metrics::counter!("hosted_cluster_outages_total").absolute(stats.outages);
}

pub(crate) fn publish_durable(stats: &DurableStats) {
    let items = |outcome: &'static str, value: u64| {
        metrics::counter!("hosted_durable_items_total", "outcome" => outcome).absolute(value);
    };
    items("succeeded", stats.succeeded);
    items("retried", stats.retried);
    items("dead", stats.dead);
    items("cancelled", stats.cancelled);
    items("released", stats.released);
    metrics::counter!("hosted_durable_enqueued_total").absolute(stats.enqueued);
    metrics::counter!("hosted_durable_duplicates_total").absolute(stats.duplicates);
    metrics::counter!("hosted_durable_claimed_total").absolute(stats.claimed);
    metrics::counter!("hosted_durable_rescued_total").absolute(stats.rescued);
    metrics::counter!("hosted_durable_stale_completions_total").absolute(stats.stale);
    metrics::counter!("hosted_durable_leases_lost_total").absolute(stats.lost);
    metrics::counter!("hosted_durable_outages_total").absolute(stats.outages);
}

fn describe_cluster() {
    describe_counter!(
        "hosted_cluster_ticks_total",
        Unit::Count,
        "Ticks this instance asked the cluster for, by result: granted (it runs them), taken (another instance had), running (the previous run held its lease), unavailable (the store was out of reach)"
    );
    describe_counter!(
        "hosted_cluster_statements_total",
        Unit::Count,
        "Statements sent to the cluster's store"
    );
    describe_counter!(
        "hosted_cluster_stale_completions_total",
        Unit::Count,
        "Completions the store rejected because the run's lease had run out"
    );
    describe_counter!(
        "hosted_cluster_leases_lost_total",
        Unit::Count,
        "Leases this instance lost while their runs went on"
    );
    describe_counter!(
        "hosted_cluster_reruns_total",
        Unit::Count,
        "Runs this instance ran again for an instance that died"
    );
    describe_counter!(
        "hosted_cluster_outages_total",
        Unit::Count,
        "Times the store stopped answering"
    );
}

fn describe_durable() {
    metrics::describe_gauge!(
        "hosted_durable_queue_items",
        Unit::Count,
        "Items of a durable queue by state (due, scheduled, running, retrying, dead), read every 15 s"
    );
    metrics::describe_gauge!(
        "hosted_durable_queue_lag_seconds",
        Unit::Seconds,
        "How long the oldest due item of a durable queue has waited, read every 15 s"
    );
    describe_counter!(
        "hosted_durable_items_total",
        Unit::Count,
        "Attempts of durable items this instance ended, by outcome: succeeded, retried, dead, cancelled, released (handed back at stop)"
    );
    describe_counter!(
        "hosted_durable_enqueued_total",
        Unit::Count,
        "Items enqueued through this instance"
    );
    describe_counter!(
        "hosted_durable_duplicates_total",
        Unit::Count,
        "Enqueues that found their key held and added nothing"
    );
    describe_counter!(
        "hosted_durable_claimed_total",
        Unit::Count,
        "Items this instance claimed"
    );
    describe_counter!(
        "hosted_durable_rescued_total",
        Unit::Count,
        "Items whose lease had run out that this instance's rescue handed out again"
    );
    describe_counter!(
        "hosted_durable_stale_completions_total",
        Unit::Count,
        "Ends of attempts the store rejected because their fence was no longer current"
    );
    describe_counter!(
        "hosted_durable_leases_lost_total",
        Unit::Count,
        "Items whose lease this instance lost while they ran"
    );
    describe_counter!(
        "hosted_durable_outages_total",
        Unit::Count,
        "Times the store stopped answering"
    );
}
