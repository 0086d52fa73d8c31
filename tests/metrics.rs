//! With the feature `metrics`, what the host records through the `metrics`
//! facade, read back from a debugging recorder: runs by job and outcome,
//! run duration and lateness, skipped ticks, running runs, service
//! restarts, and queue depth and items by outcome, with their units.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Backoff, FailurePolicy, Host, Job, Overlap, QueueOptions, Run, TaskQueue};
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// The process's one recorder: every test here reads its own jobs' names.
static RECORDER: LazyLock<Snapshotter> = LazyLock::new(|| {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder in this test binary");
    snapshotter
});

/// A metric as read back: name, labels (sorted), unit, value.
type Recorded = (String, Vec<(String, String)>, Option<Unit>, DebugValue);

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// Every metric named `name` with exactly `labels`: its unit and value.
fn metric<'a>(
    snapshot: &'a [Recorded],
    name: &str,
    labels: &[(&str, &str)],
) -> (Option<Unit>, &'a DebugValue) {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    snapshot
        .iter()
        .find(|(n, l, _, _)| n == name && *l == want)
        .map(|(_, _, unit, value)| (*unit, value))
        .unwrap_or_else(|| panic!("no {name} {labels:?} among {snapshot:#?}"))
}

fn snapshot() -> Vec<Recorded> {
    RECORDER
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, unit, value)
        })
        .collect()
}

fn counter(value: &DebugValue) -> u64 {
    match value {
        DebugValue::Counter(n) => *n,
        other => panic!("not a counter: {other:?}"),
    }
}

fn gauge(value: &DebugValue) -> f64 {
    match value {
        DebugValue::Gauge(v) => v.0,
        other => panic!("not a gauge: {other:?}"),
    }
}

fn histogram(value: &DebugValue) -> Vec<f64> {
    match value {
        DebugValue::Histogram(samples) => samples.iter().map(|v| v.0).collect(),
        other => panic!("not a histogram: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn runs_services_and_queues_are_recorded_with_bounded_labels_and_units() {
    LazyLock::force(&RECORDER);
    let clock = TestClock::at(t0());
    let queue = TaskQueue::new(QueueOptions::named("metered-queue").capacity(10));
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .queue(queue.clone())
        // Every second; every second run fails; each takes 300 ms.
        .job(Job::every(
            "metered",
            Duration::from_secs(1),
            |run: Run| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if run.number().is_multiple_of(2) {
                    Err("even".to_owned())
                } else {
                    Ok(())
                }
            },
        ))
        // Every second, taking 2.5 s: two of every three ticks skipped.
        .job(
            Job::every("slow", Duration::from_secs(1), || async {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            })
            .overlap(Overlap::Skip),
        )
        .job(
            Job::service("restarting", || async { Err::<(), _>("no route to host") }).on_failure(
                FailurePolicy::Restart(Backoff {
                    min: Duration::from_secs(1),
                    max: Duration::from_secs(1),
                    max_restarts: 1_000,
                }),
            ),
        )
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    for i in 0..3 {
        queue
            .try_enqueue_detached(format!("item {i}"), move |_stop| async move {
                if i == 2 {
                    Err("the third fails")
                } else {
                    Ok(())
                }
            })
            .unwrap();
    }
    test.advance(Duration::from_millis(10_100)).await;
    // On a test clock, published as `advance` returns (every second on a
    // real one).
    let running = snapshot();
    let starts = test.status("restarting").runs;
    let _ = test.stop().await;
    // And once more when it has stopped.
    let stopped = snapshot();

    let (unit, value) = metric(&running, "hosted_job_runs_running", &[("job", "slow")]);
    assert_eq!((unit, gauge(value)), (Some(Unit::Count), 1.0));

    let runs = |outcome: &str| {
        counter(
            metric(
                &stopped,
                "hosted_job_runs_total",
                &[("job", "metered"), ("outcome", outcome)],
            )
            .1,
        )
    };
    assert_eq!(
        (runs("succeeded"), runs("failed"), runs("cancelled")),
        (6, 5, 0),
        "11 runs in 10.1 s"
    );
    let (unit, durations) = metric(
        &running,
        "hosted_job_run_duration_seconds",
        &[("job", "metered")],
    );
    assert_eq!(unit, Some(Unit::Seconds));
    let durations = histogram(durations);
    assert_eq!(
        durations.len(),
        10,
        "the runs that had ended at the first snapshot: {durations:?}"
    );
    assert!(
        durations.iter().all(|d| (*d - 0.3).abs() < 1e-9),
        "{durations:?}"
    );
    let (_, lateness) = metric(
        &running,
        "hosted_job_tick_lateness_seconds",
        &[("job", "metered")],
    );
    assert!(
        histogram(lateness).iter().all(|l| *l == 0.0),
        "paused time: on time"
    );

    let skipped = counter(
        metric(
            &stopped,
            "hosted_job_ticks_skipped_total",
            &[("job", "slow")],
        )
        .1,
    );
    assert!((6..=7).contains(&skipped), "{skipped} ticks skipped");
    let restarts = counter(
        metric(
            &stopped,
            "hosted_service_restarts_total",
            &[("service", "restarting")],
        )
        .1,
    );
    assert!(
        starts >= 6,
        "{starts} starts in 10 s, a second or less apart"
    );
    assert_eq!(restarts, starts - 1);

    let items = |outcome: &str| {
        counter(
            metric(
                &stopped,
                "hosted_queue_items_total",
                &[("queue", "metered-queue"), ("outcome", outcome)],
            )
            .1,
        )
    };
    assert_eq!(
        (
            items("completed"),
            items("failed"),
            items("refused"),
            items("not_run")
        ),
        (2, 1, 0, 0)
    );
    let depth = gauge(
        metric(
            &stopped,
            "hosted_queue_depth",
            &[("queue", "metered-queue")],
        )
        .1,
    );
    assert_eq!(depth, 0.0);
    let (unit, lag) = metric(
        &stopped,
        "hosted_queue_lag_seconds",
        &[("queue", "metered-queue")],
    );
    assert_eq!(
        (unit, gauge(lag)),
        (Some(Unit::Seconds), 0.0),
        "nothing waits"
    );

    // No label carries a run's number or an item's label (the other tests
    // of this binary record into the same recorder: a cluster's `result`,
    // a durable queue's `state`).
    for (name, labels, _, _) in &stopped {
        if name.starts_with("hosted_") {
            for (key, _) in labels {
                assert!(
                    ["job", "outcome", "service", "queue", "result", "state"]
                        .contains(&key.as_str()),
                    "{name}: {key}"
                );
            }
        }
    }
}

/// With `hosted-postgres`'s feature `metrics`: the cluster's counters, as
/// its stats give them, once the host has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_counters_are_published_as_its_stats_give_them() {
    LazyLock::force(&RECORDER);
    let db = hosted_tests::pg::TestDb::create().await;
    let cluster = hosted_postgres::Cluster::connect_with(&db.url, hosted_tests::pg::fast())
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

/// `metrics_per_job(false)`: one set for the host, the jobs' counters
/// summed and every run in the one pair of histograms; no series names a
/// job.
#[tokio::test(start_paused = true)]
async fn a_host_without_per_job_metrics_publishes_one_set_for_all_its_jobs() {
    LazyLock::force(&RECORDER);
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .metrics_per_job(false)
        .job(Job::every("summed-ok", Duration::from_secs(1), || async {}))
        .job(Job::every("summed-bad", Duration::from_secs(2), || async {
            Err::<(), _>("no".to_owned())
        }))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(9_500)).await;
    let ok = test.status("summed-ok");
    let bad = test.status("summed-bad");
    assert_eq!((ok.succeeded, bad.failed), (10, 5));
    let snapshot = snapshot();
    assert!(
        !snapshot
            .iter()
            .any(|(_, labels, _, _)| labels.iter().any(|(_, v)| v.starts_with("summed-"))),
        "no series names a job: {snapshot:#?}"
    );
    let runs =
        |outcome| counter(metric(&snapshot, "hosted_job_runs_total", &[("outcome", outcome)]).1);
    assert_eq!((runs("succeeded"), runs("failed")), (10, 5));
    let (unit, durations) = metric(&snapshot, "hosted_job_run_duration_seconds", &[]);
    assert_eq!(unit, Some(Unit::Seconds));
    assert_eq!(histogram(durations).len(), 15, "every run of either job");
    let _ = test.stop().await;
}

#[hosted_postgres::queued(queue = "metered-durable", name = "metered-item")]
async fn metered_item(hosted_postgres::Payload(_): hosted_postgres::Payload<u32>) {}

/// A durable queue's items by state and its lag, as gauges read from
/// `counts()` at start and every 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_queues_items_by_state_and_lag_are_published_as_gauges() {
    LazyLock::force(&RECORDER);
    let db = hosted_tests::pg::TestDb::create().await;
    let queue =
        hosted_postgres::DurableQueue::connect_with(&db.url, hosted_tests::pg::durable_fast())
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
