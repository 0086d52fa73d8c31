//! `#[cron]` and `Job::cron`: fire times for a table of lines (weekday
//! numbering, 5 and 6 fields, aliases, day-of-month OR day-of-week, time
//! zones), run end to end on paused time with a test clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Runs `line` in `tz` from `start` until its last expected fire, and
/// returns the fire times seen.
async fn fires(line: &str, tz: &str, start: &str, expected: &[&str]) -> Vec<DateTime<Utc>> {
    let clock = TestClock::at(at(start));
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .job(Job::cron("row", line, || async {}).tz(tz))
        .build()
        .unwrap_or_else(|e| panic!("`{line}`: {e}"));
    let test = TestHost::start(host).await;
    let last = at(expected.last().unwrap());
    test.advance((last - clock.now()).to_std().unwrap()).await;
    let runs = test.runs().iter().map(|r| r.scheduled).collect();
    assert!(test.stop().await.is_clean());
    runs
}

#[tokio::test(start_paused = true)]
async fn fire_times_for_a_table_of_lines() {
    // 2026-06-01 is a Monday; each row starts just before it.
    let start = "2026-05-31T23:59:30Z";
    let table: &[(&str, &str, &[&str])] = &[
        // Regression: rejected at `build()`; cronie takes a step longer
        // than its field as the field's first value, and `*` in a list as
        // the whole range.
        (
            "*/90 * * * *",
            "UTC",
            &[
                "2026-06-01T00:00:00Z",
                "2026-06-01T01:00:00Z",
                "2026-06-01T02:00:00Z",
            ],
        ),
        (
            "0 */25 * * *",
            "UTC",
            &["2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"],
        ),
        (
            "0 0 * * 1,*",
            "UTC",
            &["2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"],
        ),
        // POSIX weekdays: 1 is Monday, 0 and 7 are Sunday.
        (
            "0 9 * * 1",
            "UTC",
            &[
                "2026-06-01T09:00:00Z",
                "2026-06-08T09:00:00Z",
                "2026-06-15T09:00:00Z",
            ],
        ),
        (
            "0 9 * * 0",
            "UTC",
            &[
                "2026-06-07T09:00:00Z",
                "2026-06-14T09:00:00Z",
                "2026-06-21T09:00:00Z",
            ],
        ),
        (
            "0 9 * * 7",
            "UTC",
            &[
                "2026-06-07T09:00:00Z",
                "2026-06-14T09:00:00Z",
                "2026-06-21T09:00:00Z",
            ],
        ),
        (
            "0 9 * * MON-FRI",
            "UTC",
            &[
                "2026-06-01T09:00:00Z",
                "2026-06-02T09:00:00Z",
                "2026-06-03T09:00:00Z",
            ],
        ),
        (
            "0 9 * * 6,7",
            "UTC",
            &[
                "2026-06-06T09:00:00Z",
                "2026-06-07T09:00:00Z",
                "2026-06-13T09:00:00Z",
            ],
        ),
        // 5 fields: minute-resolution; steps.
        (
            "30 */6 * * *",
            "UTC",
            &[
                "2026-06-01T00:30:00Z",
                "2026-06-01T06:30:00Z",
                "2026-06-01T12:30:00Z",
            ],
        ),
        // 6 fields: seconds first.
        (
            "15 30 4 * * *",
            "UTC",
            &[
                "2026-06-01T04:30:15Z",
                "2026-06-02T04:30:15Z",
                "2026-06-03T04:30:15Z",
            ],
        ),
        (
            "*/20 * * * * *",
            "UTC",
            &[
                "2026-05-31T23:59:40Z",
                "2026-06-01T00:00:00Z",
                "2026-06-01T00:00:20Z",
            ],
        ),
        // Aliases.
        (
            "@hourly",
            "UTC",
            &[
                "2026-06-01T00:00:00Z",
                "2026-06-01T01:00:00Z",
                "2026-06-01T02:00:00Z",
            ],
        ),
        (
            "@daily",
            "UTC",
            &[
                "2026-06-01T00:00:00Z",
                "2026-06-02T00:00:00Z",
                "2026-06-03T00:00:00Z",
            ],
        ),
        (
            "@weekly",
            "UTC",
            &[
                "2026-06-07T00:00:00Z",
                "2026-06-14T00:00:00Z",
                "2026-06-21T00:00:00Z",
            ],
        ),
        (
            "@monthly",
            "UTC",
            &[
                "2026-06-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
                "2026-08-01T00:00:00Z",
            ],
        ),
        // Day of month OR day of week, as Vixie cron: the 13th or a Friday.
        (
            "0 0 13 * 5",
            "UTC",
            &[
                "2026-06-05T00:00:00Z",
                "2026-06-12T00:00:00Z",
                "2026-06-13T00:00:00Z",
            ],
        ),
        // Time zones: noon in New York is 16:00 UTC in summer.
        (
            "0 12 * * *",
            "America/New_York",
            &[
                "2026-06-01T16:00:00Z",
                "2026-06-02T16:00:00Z",
                "2026-06-03T16:00:00Z",
            ],
        ),
        (
            "0 8 * * 1",
            "Asia/Tokyo",
            &[
                "2026-06-07T23:00:00Z",
                "2026-06-14T23:00:00Z",
                "2026-06-21T23:00:00Z",
            ],
        ),
        // A leap day, years away.
        ("0 0 29 2 *", "UTC", &["2028-02-29T00:00:00Z"]),
    ];
    for (line, tz, expected) in table {
        let seen = fires(line, tz, start, expected).await;
        let expected: Vec<DateTime<Utc>> = expected.iter().map(|t| at(t)).collect();
        assert_eq!(seen, expected, "`{line}` in {tz}");
    }
}

#[cron("*/10 * * * * *", tz = "Europe/Berlin")]
async fn ten_seconds(run: Run) {
    assert_eq!(run.kind(), hosted::JobKind::Cron);
}

#[tokio::test(start_paused = true)]
async fn the_macro_registers_a_cron_job_with_its_zone() {
    let clock = TestClock::at(at("2026-06-01T10:00:05Z"));
    let host = Host::builder()
        .only_jobs(["ten_seconds"])
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(30)).await;
    let seen: Vec<_> = test.runs().iter().map(|r| r.scheduled).collect();
    assert_eq!(
        seen,
        [
            at("2026-06-01T10:00:10Z"),
            at("2026-06-01T10:00:20Z"),
            at("2026-06-01T10:00:30Z")
        ]
    );
    let status = test.status("ten_seconds");
    assert_eq!(status.schedule, "cron */10 * * * * * (Europe/Berlin)");
    assert_eq!(status.succeeded, 3);
    assert!(test.stop().await.is_clean());
}

/// Vixie cron's day rule: the day-of-month and day-of-week fields are
/// combined with AND when either begins with `*` (so `*/2` is
/// unrestricted), with OR only when both are restricted. croner alone ORs
/// `*/2` with a weekday.
#[tokio::test(start_paused = true)]
async fn the_day_fields_combine_as_in_vixie_cron() {
    let start = "2026-12-01T00:00:30Z"; // a Tuesday
    let table: &[(&str, &[&str])] = &[
        // Odd days that are Mondays (not odd days or Mondays: not the 3rd).
        (
            "0 0 */2 * 1",
            &[
                "2026-12-07T00:00:00Z",
                "2026-12-21T00:00:00Z",
                "2027-01-11T00:00:00Z",
            ],
        ),
        // Days 1-7 that are Sundays, Tuesdays, Thursdays or Saturdays.
        (
            "0 0 1-7 * */2",
            &[
                "2026-12-03T00:00:00Z",
                "2026-12-05T00:00:00Z",
                "2026-12-06T00:00:00Z",
                "2027-01-02T00:00:00Z",
            ],
        ),
        // Both restricted: the 13th or a Friday.
        (
            "0 0 13 * 5",
            &[
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z",
            ],
        ),
        // croner's extensions keep working: the last Friday, the last day,
        // the weekday nearest the 15th, the second Monday.
        (
            "0 0 * * 5L",
            &["2026-12-25T00:00:00Z", "2027-01-29T00:00:00Z"],
        ),
        (
            "0 0 L * *",
            &["2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"],
        ),
        (
            "0 0 15W * *",
            &["2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z"],
        ),
        (
            "0 0 * * 1#2",
            &["2026-12-14T00:00:00Z", "2027-01-11T00:00:00Z"],
        ),
        // Sunday ranges mean Sunday.
        (
            "0 0 * * SUN-SUN",
            &["2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"],
        ),
        (
            "0 0 * * 0-SUN",
            &["2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"],
        ),
        // cronie's `@midnight`.
        (
            "@midnight",
            &["2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"],
        ),
    ];
    for (line, expected) in table {
        let seen = fires(line, "UTC", start, expected).await;
        assert_eq!(
            seen,
            expected.iter().map(|t| at(t)).collect::<Vec<_>>(),
            "`{line}`"
        );
    }
}
