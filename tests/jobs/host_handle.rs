//! The handle on a running host: list jobs with their schedule, next and
//! last run and counters; trigger a job now (respecting its overlap
//! policy); pause and resume; request stop.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};
use hosted::{HandleError, JobKind, Outcome};

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

#[every("1m30s", jitter = "5s")]
async fn listed_every() -> Result<(), String> {
    Err("disk full".into())
}

#[cron("0 */15 * * * *", tz = "Europe/Berlin")]
async fn listed_cron() {}

#[hosted_service]
async fn listed_service(stop: CancellationToken) {
    stop.cancelled().await
}

#[tokio::test(start_paused = true)]
async fn jobs_are_listed_with_schedule_next_and_last_run_and_counters() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(["listed_every", "listed_cron", "listed_service"])
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    let first = test.handle().job("listed_every").unwrap().next_run.unwrap();
    assert!(
        first >= t0() && first <= t0() + TimeDelta::seconds(5),
        "{first}"
    );
    test.advance(Duration::from_secs(6)).await;
    let jobs = test.handle().jobs();
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["listed_cron", "listed_every", "listed_service"]);

    let every = &jobs[1];
    assert_eq!(
        (every.name.as_str(), every.kind),
        ("listed_every", JobKind::Every)
    );
    assert_eq!(every.schedule, "every 1m30s");
    assert_eq!(
        every.description,
        "every 1 minute 30 seconds, up to 5 seconds late"
    );
    assert!(every.defined_at.contains("host_handle.rs:"));
    let next = every.next_run.unwrap();
    let offset = next - t0();
    assert!(
        (TimeDelta::seconds(90)..=TimeDelta::seconds(95)).contains(&offset),
        "{next}"
    );
    let last = every.last_run.clone().unwrap();
    assert_eq!(
        (last.number, last.outcome),
        (1, Outcome::Failed("disk full".into()))
    );
    assert_eq!((every.runs, every.failed, every.succeeded), (1, 1, 0));

    let cron = &jobs[0];
    assert_eq!(cron.schedule, "cron 0 */15 * * * * (Europe/Berlin)");
    assert!(
        cron.description.ends_with("(Europe/Berlin)"),
        "{}",
        cron.description
    );
    assert_eq!(cron.next_run, Some("2026-06-01T12:15:00Z".parse().unwrap()));
    assert_eq!(cron.last_run, None);

    let service = &jobs[2];
    assert_eq!(
        (service.kind, service.running, service.next_run),
        (JobKind::Service, 1, None)
    );
    assert!(test.stop().await.is_clean());
}

#[every("1h")]
async fn hourly_slow(stop: CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

#[every("1h", overlap = "allow")]
async fn hourly_overlapping() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn trigger_runs_a_job_now_and_respects_its_overlap_policy() {
    let host = Host::builder()
        .only_jobs(["hourly_slow", "hourly_overlapping", "listed_service"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(20)).await;
    let handle = test.handle();

    assert_eq!(handle.trigger("hourly_slow"), Ok(2));
    assert_eq!(
        handle.trigger("hourly_slow"),
        Err(HandleError::AlreadyRunning("hourly_slow".into()))
    );
    assert_eq!(handle.trigger("hourly_overlapping"), Ok(2));
    assert_eq!(handle.trigger("hourly_overlapping"), Ok(3));
    test.advance(Duration::from_secs(1)).await;
    assert_eq!(handle.job("hourly_overlapping").unwrap().running, 2);
    // A refused trigger is not a skipped tick.
    assert_eq!(handle.job("hourly_slow").unwrap().skipped, 0);

    assert_eq!(
        handle.trigger("listed_service"),
        Err(HandleError::NotScheduled("listed_service".into()))
    );
    assert_eq!(
        handle.trigger("nope"),
        Err(HandleError::UnknownJob("nope".into()))
    );
    handle.request_stop();
    assert_eq!(
        handle.trigger("hourly_overlapping"),
        Err(HandleError::Stopping)
    );
    assert!(test.stop().await.is_clean());
}

#[every("1s")]
async fn pausable() {}

#[tokio::test(start_paused = true)]
async fn pause_and_resume() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(["pausable", "listed_service"])
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    let handle = test.handle();
    test.advance(Duration::from_millis(2_500)).await; // runs at 0, 1, 2
    handle.pause("pausable").unwrap();
    assert!(handle.job("pausable").unwrap().paused);
    test.advance(Duration::from_secs(5)).await; // 3..=7 pass
    assert_eq!(test.runs_of("pausable").len(), 3);
    handle.resume("pausable").unwrap();
    test.advance(Duration::from_secs(2)).await; // 8, 9
    let seconds: Vec<i64> = test
        .runs_of("pausable")
        .iter()
        .map(|r| (r.scheduled - t0()).num_seconds())
        .collect();
    assert_eq!(seconds, [0, 1, 2, 8, 9]);
    let status = handle.job("pausable").unwrap();
    assert_eq!((status.skipped, status.paused), (0, false));
    assert_eq!(
        handle.pause("listed_service"),
        Err(HandleError::NotScheduled("listed_service".into()))
    );
    assert!(
        handle.trigger("pausable").is_ok(),
        "a paused job can still be triggered"
    );
    assert!(test.stop().await.is_clean());
}

/// A lifecycle service that fails its `stop` when told to.
struct Gate {
    name: &'static str,
    fail_stop: bool,
}

impl hosted::HostedService for Gate {
    type Error = String;

    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.name.into()
    }

    async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        if self.fail_stop {
            Err("the gate stuck".to_owned())
        } else {
            Ok(())
        }
    }
}

/// The lifecycle services, in start order, with where each stands: not
/// started, running, then stopped or failed with the step and its error.
#[tokio::test(start_paused = true)]
async fn the_handle_tells_where_each_lifecycle_service_stands() {
    let host = Host::builder()
        .without_registered()
        .service(Gate {
            name: "front",
            fail_stop: false,
        })
        .service(Gate {
            name: "back",
            fail_stop: true,
        })
        .build()
        .unwrap();
    let handle = host.handle();
    let states = |handle: &HostHandle| {
        handle
            .lifecycle_services()
            .into_iter()
            .map(|s| (s.name, s.state, s.error, s.defined_at))
            .collect::<Vec<_>>()
    };
    let builder = || "HostBuilder::service".to_owned();
    assert_eq!(
        states(&handle),
        [
            ("front".into(), "not started", None, builder()),
            ("back".into(), "not started", None, builder()),
        ]
    );
    let running = host.start().await.unwrap();
    assert_eq!(
        states(&handle),
        [
            ("front".into(), "running", None, builder()),
            ("back".into(), "running", None, builder()),
        ]
    );
    let report = running.stop().await;
    assert!(!report.is_clean());
    assert_eq!(
        states(&handle),
        [
            ("front".into(), "stopped", None, builder()),
            (
                "back".into(),
                "failed",
                Some("stop: failed: the gate stuck".into()),
                builder()
            ),
        ]
    );
}

/// What a page of jobs reads: a page of matches with their number, the
/// jobs counted by state, the latest failures, and the next fires of a
/// cron line with the zone's offset change marked.
#[tokio::test(start_paused = true)]
async fn the_handle_pages_counts_and_looks_ahead() {
    // Four days before Europe/Berlin moves its clocks forward (29 March).
    let clock = TestClock::at("2026-03-25T12:00:00Z".parse().unwrap());
    let mut builder = Host::builder().without_registered().clock(&clock);
    for i in 0..120 {
        builder = builder.job(Job::every(
            format!("sync-{i:03}"),
            Duration::from_secs(60),
            || async {},
        ));
    }
    let host = builder
        .job(Job::every(
            "Broken-Feed",
            Duration::from_secs(60),
            || async { Err::<(), _>("feed down".to_owned()) },
        ))
        .job(Job::cron("nightly", "0 30 2 * * *", || async {}).tz("Europe/Berlin"))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(1)).await;
    let handle = test.handle();

    let page = handle.jobs_page("SYNC-1", 5, 10);
    assert_eq!(page.total, 20, "sync-100 to sync-119, case ignored");
    let names: Vec<&str> = page.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sync-105", "sync-106", "sync-107", "sync-108", "sync-109", "sync-110", "sync-111",
            "sync-112", "sync-113", "sync-114"
        ]
    );
    assert_eq!(handle.jobs_page("", 118, 10).jobs.len(), 4, "the last page");
    assert_eq!(handle.jobs_page("", 0, 10).total, 122);

    handle.pause("sync-000").unwrap();
    let summary = handle.summary();
    assert_eq!(
        (summary.scheduled, summary.paused, summary.failing),
        (122, 1, 1)
    );
    let failures = handle.recent_failures(5);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "Broken-Feed");
    assert_eq!(failures[0].1.outcome, Outcome::Failed("feed down".into()));

    let next = handle.next_runs("nightly", 5).unwrap();
    let shown: Vec<String> = next
        .iter()
        .map(|n| n.local.format("%m-%d %H:%M %:z").to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "03-26 02:30 +01:00",
            "03-27 02:30 +01:00",
            "03-28 02:30 +01:00",
            "03-29 03:00 +02:00",
            "03-30 02:30 +02:00"
        ]
    );
    let changes: Vec<bool> = next.iter().map(|n| n.offset_changes).collect();
    assert_eq!(changes, [false, false, false, true, false]);
    assert_eq!(handle.next_runs("sync-001", 3).unwrap().len(), 3);
    assert!(handle.next_runs("no-such-job", 3).is_none());
    let _ = test.stop().await;
}
