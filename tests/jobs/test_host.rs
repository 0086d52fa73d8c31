//! `hosted::testing::TestHost::advance`: every run that can finish without
//! time passing has finished when it returns, however many times it yields
//! or hops between tasks, and the clock stops exactly where it was told.

use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};

#[every("1s", overlap = "allow")]
async fn yields_five_thousand_times() {
    for _ in 0..5_000 {
        tokio::task::yield_now().await;
    }
}

#[every("1s", overlap = "allow")]
async fn hops_through_a_spawned_task() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
        }
        let inner = tokio::spawn(async { 7 });
        let _ = tx.send(inner.await.unwrap());
    });
    assert_eq!(rx.await.unwrap(), 7);
}

#[every("1s")]
async fn sleeps_half_a_second() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn start(job: &str) -> TestHost {
    let clock = TestClock::at("2026-06-01T12:00:00Z".parse().unwrap());
    let host = Host::builder()
        .only_jobs([job])
        .clock(&clock)
        .build()
        .expect("valid host");
    TestHost::start(host).await
}

/// Runs started and runs that ended, of `job`.
fn started_and_finished(test: &TestHost, job: &str) -> (u64, u64) {
    let status = test.status(job);
    (
        status.runs,
        status.succeeded + status.failed + status.cancelled,
    )
}

#[tokio::test(start_paused = true)]
async fn a_run_that_yields_thousands_of_times_has_finished_when_advance_returns() {
    let test = start("yields_five_thousand_times").await;
    test.advance(Duration::from_secs(20)).await;
    // Ticks at 0 s, 1 s, ... 20 s: the last one is due at the end instant.
    assert_eq!(
        started_and_finished(&test, "yields_five_thousand_times"),
        (21, 21)
    );
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_run_that_waits_on_spawned_tasks_has_finished_when_advance_returns() {
    let test = start("hops_through_a_spawned_task").await;
    test.advance(Duration::from_secs(5)).await;
    assert_eq!(
        started_and_finished(&test, "hops_through_a_spawned_task"),
        (6, 6)
    );
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn advance_stops_the_clock_exactly_at_the_end_and_a_run_that_sleeps_past_it_waits() {
    let test = start("sleeps_half_a_second").await;
    let begin = tokio::time::Instant::now();
    test.advance(Duration::from_millis(10_200)).await;
    assert_eq!(begin.elapsed(), Duration::from_millis(10_200));
    // The run of 10 s sleeps until 10.5 s: started, not finished.
    assert_eq!(
        started_and_finished(&test, "sleeps_half_a_second"),
        (11, 10)
    );
    test.advance(Duration::from_millis(300)).await;
    assert_eq!(
        started_and_finished(&test, "sleeps_half_a_second"),
        (11, 11)
    );
    assert!(test.stop().await.is_clean());
}
