//! Failure policies of background services: stop (the default), ignore,
//! and restart with exponential backoff and a budget; a cancellation the
//! host caused is never a failure.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};
use hosted::{Backoff, Cancelled, FailurePolicy, Phase, StopReason};

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

#[hosted_service(on_failure = "restart", backoff = "1s..8s", max_restarts = 3)]
async fn flappy() -> anyhow::Result<()> {
    anyhow::bail!("broker unreachable")
}

#[tokio::test(start_paused = true)]
async fn restart_backs_off_exponentially_with_jitter_then_escalates_to_stop() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(["flappy"])
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    let handle = test.handle();
    let report = test.wait().await;

    // Run 1 fails; restarts 1, 2, 3 follow delays in [d/2, d] for d = 1, 2,
    // 4 s; the 4th failure is past the budget of 3 and stops the host.
    assert_eq!(handle.job("flappy").unwrap().runs, 4);
    assert_eq!(*report.reason(), StopReason::ServiceFailed("flappy".into()));
    assert_eq!(report.code(), Report::EXIT_SERVICE_FAILED);
    assert_eq!(report.errors().len(), 1);
    assert_eq!(report.errors()[0].phase, Phase::Run);
}

/// The delays between the restarts of a service that always fails, on a
/// test clock, with `seed` if given.
async fn restart_delays(seed: Option<u64>) -> Vec<i64> {
    let clock = TestClock::at(t0());
    let mut builder = Host::builder().without_registered().clock(&clock).job(
        Job::service("flaky", || async { Err::<(), _>("no route to host") }).on_failure(
            FailurePolicy::Restart(Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(8),
                max_restarts: 5,
            }),
        ),
    );
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    let test = TestHost::start(builder.build().unwrap()).await;
    test.advance(Duration::from_secs(60)).await;
    let starts: Vec<DateTime<Utc>> = test.runs().iter().map(|r| r.started).collect();
    assert_eq!(starts.len(), 6, "the first run and 5 restarts");
    let report = test.wait().await;
    assert_eq!(report.code(), 1);
    starts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn restart_delays_follow_the_backoff() {
    let delays = restart_delays(None).await;
    for (delay, full) in delays.iter().zip([1_000, 2_000, 4_000, 8_000, 8_000]) {
        assert!(
            (full / 2..=full).contains(delay),
            "delays {delays:?}: {delay} ms is outside [{}, {full}]",
            full / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn restart_jitter_follows_the_host_seed() {
    let default = restart_delays(None).await;
    assert_eq!(default, restart_delays(None).await, "not reproducible");
    assert_ne!(restart_delays(Some(1)).await, restart_delays(Some(2)).await);
}

#[hosted_service(on_failure = "restart", backoff = "1s..5s", max_restarts = 1)]
async fn fails_after_a_while() -> Result<(), String> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    Err("lost the lease".into())
}

#[tokio::test(start_paused = true)]
async fn a_run_that_lasted_past_the_longest_delay_resets_the_budget() {
    let host = Host::builder()
        .only_jobs(["fails_after_a_while"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(60)).await;
    // Each run lasts 10 s, longer than the 5 s cap: healthy, so the budget of
    // one restart never runs out.
    assert!(!test.handle().is_stopping());
    let status = test.status("fails_after_a_while");
    assert!(status.runs >= 5, "{status:?}");
    assert!(test.stop().await.is_clean());
}

#[hosted_service(on_failure = "ignore")]
async fn optional_feed() -> Result<(), String> {
    Err("feed disabled upstream".into())
}

#[every("1s")]
async fn heartbeat() {}

#[tokio::test(start_paused = true)]
async fn ignore_logs_the_failure_and_never_stops_the_host() {
    let host = Host::builder()
        .only_jobs(["optional_feed", "heartbeat"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(10)).await;
    assert!(!test.handle().is_stopping());
    let feed = test.status("optional_feed");
    assert_eq!((feed.runs, feed.failed, feed.running), (1, 1, 0));
    assert_eq!(test.status("heartbeat").runs, 11);
    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
}

#[hosted_service]
async fn returns_cancelled(stop: CancellationToken) -> Result<(), Cancelled> {
    stop.cancelled().await;
    Err(Cancelled)
}

#[hosted_service]
async fn wraps_cancelled(stop: CancellationToken) -> anyhow::Result<()> {
    let Some(()) = stop.run_until_cancelled(std::future::pending::<()>()).await else {
        return Err(anyhow::Error::new(Cancelled).context("draining the inbox"));
    };
    Ok(())
}

#[hosted_service]
async fn boxed_cancelled(
    stop: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stop.cancelled().await;
    Err(std::io::Error::other(Cancelled).into())
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_caused_by_the_host_stop_is_not_a_failure() {
    let jobs = ["returns_cancelled", "wraps_cancelled", "boxed_cancelled"];
    let host = Host::builder().only_jobs(jobs).build().unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(1)).await;
    let handle = test.handle();
    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
    for job in jobs {
        let status = handle.job(job).unwrap();
        assert_eq!((status.cancelled, status.failed), (1, 0), "{job}");
    }
}

#[hosted_service]
async fn cancelled_too_early() -> Result<(), Cancelled> {
    Err(Cancelled)
}

#[tokio::test(start_paused = true)]
async fn cancelled_while_the_host_is_not_stopping_is_a_failure() {
    let host = Host::builder()
        .only_jobs(["cancelled_too_early"])
        .build()
        .unwrap();
    let report = TestHost::start(host).await.wait().await;
    assert_eq!(report.code(), Report::EXIT_SERVICE_FAILED);
    assert!(
        report.errors()[0]
            .outcome
            .to_string()
            .contains("the host is not stopping"),
        "{report}"
    );
}
