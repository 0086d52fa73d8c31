//! The runs each job keeps: the last `run_history` of them, newest first,
//! with when each was due and started, how long it took and how it ended;
//! within a budget over all jobs; a history of zero is a build error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Host, Job, Outcome, Problem, Run, DEFAULT_RUN_HISTORY};

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// A job every second whose even-numbered runs fail and that takes 200 ms.
fn flaky(name: &str) -> Job {
    Job::every(name, Duration::from_secs(1), |run: Run| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if run.number().is_multiple_of(2) {
            Err(format!("run {} failed", run.number()))
        } else {
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_job_keeps_its_last_runs_newest_first_with_their_times_and_errors() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .job(flaky("flaky"))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(70)).await;
    let runs = test.handle().runs("flaky").expect("the job");
    let last = test.handle().job("flaky").unwrap().last_run.unwrap();
    assert!(test.stop().await.is_clean());

    assert_eq!(runs.len(), DEFAULT_RUN_HISTORY, "the default keeps 50");
    assert_eq!(runs[0], last, "the newest is the last run");
    let numbers: Vec<u64> = runs.iter().map(|r| r.number).collect();
    let newest = numbers[0];
    assert!(newest >= 70, "{newest} runs in 70 s");
    assert_eq!(
        numbers,
        (newest - 49..=newest).rev().collect::<Vec<_>>(),
        "the last 50, newest first"
    );
    for run in &runs {
        // Due every whole second from the start; started on time (paused
        // time), and took the 200 ms it sleeps.
        assert_eq!(
            run.scheduled,
            t0() + TimeDelta::seconds(run.number as i64 - 1)
        );
        assert_eq!(run.started, run.scheduled, "run {}", run.number);
        assert_eq!(run.took, Duration::from_millis(200), "run {}", run.number);
        let want = if run.number.is_multiple_of(2) {
            Outcome::Failed(format!("run {} failed", run.number))
        } else {
            Outcome::Succeeded
        };
        assert_eq!(run.outcome, want);
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_over_all_jobs_shares_the_history_and_leaves_each_its_last_run() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .run_history(10)
        .run_history_budget(12)
        .job(flaky("a"))
        .job(flaky("b"))
        .job(flaky("c"))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(20)).await;
    let kept: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|name| test.handle().runs(name).unwrap().len())
        .collect();
    assert!(test.stop().await.is_clean());
    assert_eq!(kept, [4, 4, 4], "12 runs over 3 jobs");

    // A budget smaller than the jobs still keeps each job's last run.
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .run_history_budget(1)
        .job(flaky("a"))
        .job(flaky("b"))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(5)).await;
    let kept: Vec<usize> = ["a", "b"]
        .iter()
        .map(|name| test.handle().runs(name).unwrap().len())
        .collect();
    assert_eq!(test.handle().runs("nope"), None);
    assert!(test.stop().await.is_clean());
    assert_eq!(kept, [1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_ran_has_no_runs_and_an_aborted_run_is_kept_as_such() {
    let clock = TestClock::at(t0());
    let began = Arc::new(AtomicU64::new(0));
    let seen = began.clone();
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .shutdown_timeout(Duration::from_secs(1))
        .job(
            Job::every("stuck", Duration::from_secs(10), move || {
                seen.fetch_add(1, Ordering::Relaxed);
                // Ignores the stop: aborted at the deadline.
                std::future::pending::<()>()
            })
            .initial_delay(Duration::from_secs(1)),
        )
        .job(
            Job::every("later", Duration::from_secs(3_600), || async {})
                .initial_delay(Duration::from_secs(3_600)),
        )
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(2)).await;
    let handle = test.handle();
    assert_eq!(handle.runs("later"), Some(Vec::new()));
    assert_eq!(handle.runs("stuck"), Some(Vec::new()), "still running");
    assert!(!test.stop().await.is_clean());
    let runs = handle.runs("stuck").unwrap();
    assert_eq!(began.load(Ordering::Relaxed), 1);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, Outcome::Aborted);
    assert_eq!(runs[0].scheduled, t0() + TimeDelta::seconds(1));
}

#[test]
fn a_history_of_zero_runs_is_a_build_error_that_says_what_to_give() {
    let error = Host::builder()
        .without_registered()
        .run_history(0)
        .build()
        .unwrap_err();
    assert!(
        error.problems().iter().any(|p| matches!(
            p,
            Problem::InvalidHostConfig { key: "run_history", message } if message.contains("give 1")
        )),
        "{error}"
    );
}
