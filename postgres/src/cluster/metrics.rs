//! The cluster's counters through the `metrics` facade (feature
//! `metrics`), published every second from [`ClusterStats`] and once more
//! at stop; the names are in the crate's documentation, section "Metrics".
//! No label: each process publishes its own instance's counters, which
//! the scrape's own `instance` label tells apart.

use metrics::{describe_counter, Unit};
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterStats};
use crate::telemetry::every_second;

/// Publishes `cluster`'s counters until `stop` fires.
pub(crate) async fn cluster(cluster: Cluster, stop: CancellationToken) {
    describe_cluster();
    every_second(stop, || publish_cluster(&cluster.stats())).await;
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
