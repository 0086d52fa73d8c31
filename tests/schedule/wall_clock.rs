//! Steps of the wall clock (an NTP correction, a resumed VM): a cron job
//! never fires early, never fires twice for one fire time, and never drops a
//! fire silently.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[cron("* * * * *")]
async fn each_minute() {}

async fn start(clock: &TestClock) -> TestHost {
    let host = Host::builder()
        .only_jobs(["each_minute"])
        .clock(clock)
        .build()
        .unwrap();
    TestHost::start(host).await
}

#[tokio::test(start_paused = true)]
async fn a_step_back_never_fires_early_nor_twice() {
    let clock = TestClock::at(at("2026-06-01T12:00:30Z"));
    let test = start(&clock).await;
    test.advance(Duration::from_secs(60)).await; // 12:01:30, fired 12:01
    assert_eq!(test.runs().len(), 1);

    clock.step(TimeDelta::hours(-1)); // 11:01:30
    test.advance(Duration::from_secs(59 * 60)).await; // 12:00:30
    assert_eq!(test.runs().len(), 1, "nothing may fire again before 12:02");

    test.advance(Duration::from_secs(90)).await; // 12:02:00
    let runs = test.runs();
    let scheduled: Vec<_> = runs.iter().map(|r| r.scheduled).collect();
    assert_eq!(
        scheduled,
        [at("2026-06-01T12:01:00Z"), at("2026-06-01T12:02:00Z")]
    );
    assert!(runs.iter().all(|r| r.started >= r.scheduled), "{runs:?}");
    assert_eq!(test.status("each_minute").skipped, 0);
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_step_forward_runs_the_first_missed_fire_once_and_counts_the_rest() {
    let clock = TestClock::at(at("2026-06-01T12:00:30Z"));
    let test = start(&clock).await;
    test.advance(Duration::from_secs(1)).await; // 12:00:31
    clock.step(TimeDelta::hours(1)); // 13:00:31
    test.advance(Duration::from_millis(10)).await;

    let runs = test.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].scheduled, at("2026-06-01T12:01:00Z"));
    assert!(runs[0].started >= at("2026-06-01T13:00:31Z"));
    // 12:02 through 13:00 fell in the gap: 59 fires, counted, not run.
    assert_eq!(test.status("each_minute").skipped, 59);

    test.advance(Duration::from_secs(30)).await; // 13:01:01
    let scheduled: Vec<_> = test.runs().iter().map(|r| r.scheduled).collect();
    assert_eq!(
        scheduled,
        [at("2026-06-01T12:01:00Z"), at("2026-06-01T13:01:00Z")]
    );
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_small_step_forward_inside_a_minute_loses_nothing() {
    let clock = TestClock::at(at("2026-06-01T12:00:30Z"));
    let test = start(&clock).await;
    test.advance(Duration::from_secs(10)).await; // 12:00:40
    clock.step(TimeDelta::seconds(15)); // 12:00:55
    test.advance(Duration::from_secs(6)).await; // 12:01:01

    let runs = test.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].scheduled, at("2026-06-01T12:01:00Z"));
    assert_eq!(
        runs[0].started,
        at("2026-06-01T12:01:00Z"),
        "fires on time after the step"
    );
    assert_eq!(test.status("each_minute").skipped, 0);
    assert!(test.stop().await.is_clean());
}
