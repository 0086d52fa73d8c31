//! Warnings that are right: falling behind is summed into one line a
//! second, not one a job; a job is moved off the scheduler's task only for
//! its own slow first steps, several in a row, never for one slow run or
//! for another job's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Host, Job};
use hosted_tests::logs::Logs;

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_stall_of_many_jobs_is_one_line_and_stalls_within_a_second_are_summed() {
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    let clock = TestClock::at(t0());
    let mut builder = Host::builder().without_registered().clock(&clock);
    for n in 0..200 {
        builder = builder.job(Job::every(
            format!("job-{n:03}"),
            Duration::from_millis(10),
            || async {},
        ));
    }
    let test = TestHost::start(builder.build().unwrap()).await;
    test.advance(Duration::from_millis(5)).await;

    // The runtime's clock jumps 300 ms while the scheduler waits: every
    // job falls behind at once.
    tokio::time::advance(Duration::from_millis(300)).await;
    test.advance(Duration::from_millis(1)).await;
    let behind = logs.matching("fell behind");
    assert_eq!(behind.len(), 1, "{behind:#?}");
    assert!(
        behind[0].contains("`job-000`, `job-001`, `job-002` and 197 other(s)"),
        "{}",
        behind[0]
    );
    assert!(
        behind[0].contains("skipped 5800 tick(s) in all"),
        "{}",
        behind[0]
    );

    // Another stall within the second: summed, said once the second is up.
    tokio::time::advance(Duration::from_millis(300)).await;
    test.advance(Duration::from_millis(1)).await;
    assert_eq!(logs.matching("fell behind").len(), 1);
    test.advance(Duration::from_secs(1)).await;
    let behind = logs.matching("fell behind");
    assert_eq!(behind.len(), 2, "{behind:#?}");
    assert!(behind[1].contains("in the last"), "{}", behind[1]);
    assert!(behind[1].contains("and 197 other(s)"), "{}", behind[1]);
    assert_eq!(test.status("job-000").skipped, 29 + 29);
    assert!(test.stop().await.is_clean());
}

/// Jobs every 20 ms on real time (the limit is about real blocking, which
/// paused time cannot show) for `for_ms`; each job's body is called with
/// its run number.
async fn run_real_time(jobs: Vec<Job>, for_ms: u64) -> Logs {
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    let mut builder = Host::builder().without_registered();
    for job in jobs {
        builder = builder.job(job);
    }
    let running = builder.build().unwrap().start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(for_ms)).await;
    assert!(running.stop().await.is_clean());
    logs
}

fn blocking_on(runs: impl Fn(u64) -> bool + Send + Sync + 'static) -> Job {
    Job::every(
        "blocking",
        Duration::from_millis(20),
        move |run: hosted::Run| {
            if runs(run.number()) {
                std::thread::sleep(Duration::from_millis(3));
            }
            async {}
        },
    )
}

#[tokio::test]
async fn one_slow_first_step_moves_nothing_and_says_nothing() {
    // Run 1 takes a first-time code path; later runs are quick.
    let logs = run_real_time(vec![blocking_on(|n| n == 1)], 200).await;
    assert_eq!(logs.matching("held the scheduler"), Vec::<String>::new());
}

#[tokio::test]
async fn a_job_slow_in_every_run_is_moved_and_named_and_no_other_job_is() {
    let quick = Job::every("quick", Duration::from_millis(20), || async {});
    let logs = run_real_time(vec![quick, blocking_on(|_| true)], 200).await;
    let held = logs.matching("held the scheduler");
    assert_eq!(held.len(), 1, "{held:#?}");
    assert!(held[0].contains("job=blocking"), "{}", held[0]);
    assert!(held[0].contains("3 runs in a row"), "{}", held[0]);
}
