//! With the feature `metrics`, what the host records through the `metrics`
//! facade, read back from a debugging recorder: runs by job and outcome,
//! run duration and lateness, skipped ticks, running runs, service
//! restarts, and queue depth and items by outcome, with their units.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Backoff, FailurePolicy, Host, Job, Overlap, QueueOptions, Run, TaskQueue};
use hosted_tests::recorder::{counter, exclusive, gauge, histogram, metric, snapshot};
use metrics::Unit;

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn runs_services_and_queues_are_recorded_with_bounded_labels_and_units() {
    let _recorder = exclusive().await;
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

/// `metrics_per_job(false)`: one set for the host, the jobs' counters
/// summed and every run in the one pair of histograms; no series names a
/// job.
#[tokio::test(start_paused = true)]
async fn a_host_without_per_job_metrics_publishes_one_set_for_all_its_jobs() {
    let _recorder = exclusive().await;
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
