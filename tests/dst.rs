//! Daylight saving time, as cronie handles it, on the 2026 transition days
//! in Europe/Berlin and America/New_York: a fixed time inside the spring gap
//! runs once, right after the jump; a fixed time inside the repeated autumn
//! hour runs once; a wildcard hour follows real time.

use chrono::{DateTime, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The fire times of `line` in `tz` from `from` to `to` (UTC).
async fn fires(line: &str, tz: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let clock = TestClock::at(at(from));
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .job(Job::cron("dst", line, || async {}).tz(tz))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance((at(to) - at(from)).to_std().unwrap()).await;
    let runs = test.runs().iter().map(|r| r.scheduled).collect();
    assert!(test.stop().await.is_clean());
    runs
}

fn all(times: &[&str]) -> Vec<DateTime<Utc>> {
    times.iter().map(|t| at(t)).collect()
}

// Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
#[tokio::test(start_paused = true)]
async fn berlin_spring_a_time_in_the_gap_runs_once_right_after_the_jump() {
    let seen = fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00Z",
        "2026-03-30T12:00:00Z",
    )
    .await;
    // 03:00 CEST on the 29th, then 02:30 CEST on the 30th.
    assert_eq!(seen, all(&["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]));
}

#[tokio::test(start_paused = true)]
async fn berlin_spring_a_wildcard_hour_follows_real_time() {
    let seen = fires(
        "30 * * * *",
        "Europe/Berlin",
        "2026-03-28T23:00:00Z",
        "2026-03-29T03:00:00Z",
    )
    .await;
    // 00:30 CET, 01:30 CET, 03:30 CEST, 04:30 CEST: one run per real hour.
    assert_eq!(
        seen,
        all(&[
            "2026-03-28T23:30:00Z",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:30:00Z"
        ])
    );
}

// Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
#[tokio::test(start_paused = true)]
async fn berlin_autumn_a_time_in_the_repeated_hour_runs_once() {
    let seen = fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        "2026-10-26T12:00:00Z",
    )
    .await;
    // 02:30 CEST on the 25th (not again at 02:30 CET), then 02:30 CET on the 26th.
    assert_eq!(seen, all(&["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]));
}

#[tokio::test(start_paused = true)]
async fn berlin_autumn_a_wildcard_hour_follows_real_time() {
    let seen = fires(
        "30 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:00:00Z",
        "2026-10-25T03:00:00Z",
    )
    .await;
    // 01:30 CEST, 02:30 CEST, 02:30 CET, 03:30 CET: one run per real hour.
    assert_eq!(
        seen,
        all(&[
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z"
        ])
    );
}

// New York, 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
#[tokio::test(start_paused = true)]
async fn new_york_spring_a_time_in_the_gap_runs_once_right_after_the_jump() {
    let seen = fires(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00Z",
        "2026-03-09T12:00:00Z",
    )
    .await;
    // 03:00 EDT on the 8th, then 02:30 EDT on the 9th.
    assert_eq!(seen, all(&["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]));
}

// New York, 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC.
#[tokio::test(start_paused = true)]
async fn new_york_autumn_a_time_in_the_repeated_hour_runs_once() {
    let seen = fires(
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00Z",
        "2026-11-02T12:00:00Z",
    )
    .await;
    // 01:30 EDT on the 1st (not again at 01:30 EST), then 01:30 EST on the 2nd.
    assert_eq!(seen, all(&["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]));
}

#[tokio::test(start_paused = true)]
async fn new_york_autumn_every_fifteen_minutes_follows_real_time() {
    let seen = fires(
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T05:50:00Z",
        "2026-11-01T06:20:00Z",
    )
    .await;
    // 01:00 and 01:15 happen twice (EDT, then EST): each real quarter hour fires.
    assert_eq!(seen, all(&["2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z"]));
    let seen = fires(
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T04:50:00Z",
        "2026-11-01T05:20:00Z",
    )
    .await;
    assert_eq!(seen, all(&["2026-11-01T05:00:00Z", "2026-11-01T05:15:00Z"]));
}
