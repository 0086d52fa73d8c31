//! With the feature `metrics`: what a cluster and a durable queue publish
//! through the `metrics` facade, read back from a debugging recorder.

use std::time::Duration;

use hosted::{Host, Job};
use metrics::Unit;
use support::recorder::{counter, exclusive, gauge, metric, snapshot};

/// With `hosted-postgres`'s feature `metrics`: the cluster's counters, as
/// its stats give them, once the host has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_counters_are_published_as_its_stats_give_them() {
    let _recorder = exclusive().await;
    let db = support::pg::TestDb::create().await;
    let cluster = hosted_postgres::Cluster::connect_with(&db.url, support::pg::fast())
        .await
        .unwrap();
    let host = Host::builder()
        .without_registered()
        .job(Job::every(
            "metered-cluster",
            Duration::from_millis(100),
            || async {},
        ))
        .cluster(cluster.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(host.stop().await.is_clean());
    let stats = cluster.stats();
    let recorded = snapshot();
    let granted = counter(
        metric(
            &recorded,
            "hosted_cluster_ticks_total",
            &[("result", "granted")],
        )
        .1,
    );
    assert!(granted >= 5, "{granted} ticks granted in 1.2 s");
    assert_eq!(granted, stats.granted);
    let statements = counter(metric(&recorded, "hosted_cluster_statements_total", &[]).1);
    assert_eq!(statements, stats.statements);
    let outages = counter(metric(&recorded, "hosted_cluster_outages_total", &[]).1);
    assert_eq!(outages, 0);
    // And the core's per-job counter for the same job.
    let runs = counter(
        metric(
            &recorded,
            "hosted_job_runs_total",
            &[("job", "metered-cluster"), ("outcome", "succeeded")],
        )
        .1,
    );
    // A tick granted ahead of its instant as the host stopped did not run.
    assert!(
        runs <= granted && runs + 2 >= granted,
        "{runs} runs, {granted} granted"
    );
}

#[hosted_postgres::queued(queue = "metered-durable", name = "metered-item")]
async fn metered_item(hosted_postgres::Payload(_): hosted_postgres::Payload<u32>) {}

/// A durable queue's items by state and its lag, as gauges read from
/// `counts()` at start and every 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_queues_items_by_state_and_lag_are_published_as_gauges() {
    let _recorder = exclusive().await;
    let db = support::pg::TestDb::create().await;
    let queue = hosted_postgres::DurableQueue::connect_with(&db.url, support::pg::durable_fast())
        .await
        .unwrap();
    queue.migrate().await.unwrap();
    for _ in 0..3 {
        metered_item::enqueue(&queue, 1)
            .delay(Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let host = Host::builder()
        .only_jobs(["metered-item"])
        .durable(queue.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let scheduled = loop {
        let recorded = snapshot();
        let found = recorded.iter().find(|(n, l, _, _)| {
            n == "hosted_durable_queue_items"
                && l.contains(&("queue".into(), "metered-durable".into()))
                && l.contains(&("state".into(), "scheduled".into()))
        });
        if let Some((_, _, _, value)) = found {
            break gauge(value);
        }
        assert!(tokio::time::Instant::now() < deadline, "no gauge in 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(scheduled, 3.0);
    let recorded = snapshot();
    let (unit, lag) = metric(
        &recorded,
        "hosted_durable_queue_lag_seconds",
        &[("queue", "metered-durable")],
    );
    assert_eq!(
        (unit, gauge(lag)),
        (Some(Unit::Seconds), 0.0),
        "nothing is due"
    );
    assert!(host.stop().await.is_clean());
}
