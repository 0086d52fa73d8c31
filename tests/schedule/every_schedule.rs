//! `#[every]`: the grid, skipped ticks, jitter, initial delay and overlap, on
//! paused time.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};
use hosted_tests::wait_until;

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

async fn start(jobs: &[&str]) -> (TestClock, TestHost) {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(jobs.iter().copied())
        .clock(&clock)
        .build()
        .expect("valid host");
    (clock, TestHost::start(host).await)
}

fn offsets(test: &TestHost, job: &str) -> Vec<TimeDelta> {
    test.runs_of(job)
        .iter()
        .map(|r| r.scheduled - t0())
        .collect()
}

/// Each run takes 3 ms: a schedule computed as "end of run + period" would
/// drift 3 ms per tick.
#[every("10ms")]
async fn grid_10ms() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

#[tokio::test(start_paused = true)]
async fn a_thousand_ticks_stay_on_the_grid() {
    let (_clock, test) = start(&["grid_10ms"]).await;
    test.advance(Duration::from_millis(9_990)).await;

    let runs = test.runs_of("grid_10ms");
    assert_eq!(runs.len(), 1_000);
    for (k, run) in runs.iter().enumerate() {
        let due = t0() + TimeDelta::milliseconds(10 * k as i64);
        assert_eq!(run.scheduled, due, "tick {k} is off the grid");
        assert_eq!(run.started, due, "tick {k} started late");
        assert_eq!(run.number, k as u64 + 1);
    }
    assert_eq!(test.status("grid_10ms").skipped, 0);
    assert!(test.stop().await.is_clean());
}

/// Run 2 takes 3.5 s, so ticks 2, 3 and 4 fall during it.
#[every("1s")]
async fn overrunning(run: Run) {
    if run.number() == 2 {
        tokio::time::sleep(Duration::from_millis(3_500)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_run_skips_ticks_and_the_next_run_is_on_the_grid() {
    let (_clock, test) = start(&["overrunning"]).await;
    test.advance(Duration::from_secs(6)).await;

    let seconds: Vec<i64> = offsets(&test, "overrunning")
        .iter()
        .map(TimeDelta::num_milliseconds)
        .collect();
    assert_eq!(seconds, [0, 1_000, 5_000, 6_000]);
    let status = test.status("overrunning");
    assert_eq!(status.skipped, 3);
    assert_eq!(status.runs, 4);
    assert!(test.stop().await.is_clean());
}

#[every("1s", jitter = "300ms")]
async fn jittery() {}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_its_bound() {
    let (_clock, test) = start(&["jittery"]).await;
    test.advance(Duration::from_secs(200)).await;

    let offsets = offsets(&test, "jittery");
    assert!(offsets.len() >= 199, "{} runs", offsets.len());
    let jitters: Vec<i64> = offsets
        .iter()
        .enumerate()
        .map(|(k, offset)| offset.num_milliseconds() - 1_000 * k as i64)
        .collect();
    assert!(jitters.iter().all(|j| (0..=300).contains(j)), "{jitters:?}");
    let distinct: std::collections::BTreeSet<_> = jitters.iter().collect();
    assert!(distinct.len() > 50, "jitter barely varies: {distinct:?}");
    assert!(test.stop().await.is_clean());
}

/// The jitter of `jittery`'s first 20 ticks on a test clock, with `seed`
/// if given.
async fn jitters_with(seed: Option<u64>) -> Vec<TimeDelta> {
    let clock = TestClock::at(t0());
    let mut builder = Host::builder().only_jobs(["jittery"]).clock(&clock);
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    let test = TestHost::start(builder.build().expect("valid host")).await;
    test.advance(Duration::from_secs(20)).await;
    let mut offsets = offsets(&test, "jittery");
    assert!(test.stop().await.is_clean());
    assert!(offsets.len() >= 20, "{} runs", offsets.len());
    offsets.truncate(20);
    offsets
}

#[tokio::test(start_paused = true)]
async fn on_a_test_clock_jitter_is_the_same_on_every_run_and_the_seed_changes_it() {
    let default = jitters_with(None).await;
    assert_eq!(default, jitters_with(None).await, "not reproducible");
    assert_eq!(
        default,
        jitters_with(Some(0)).await,
        "the default is seed 0"
    );
    let (one, two) = (jitters_with(Some(1)).await, jitters_with(Some(2)).await);
    assert_eq!(one, jitters_with(Some(1)).await);
    assert_ne!(one, two);
    assert_ne!(one, default);
}

#[every("1s", initial_delay = "2500ms")]
async fn delayed() {}

#[tokio::test(start_paused = true)]
async fn initial_delay_moves_the_whole_grid() {
    let (_clock, test) = start(&["delayed"]).await;
    test.advance(Duration::from_millis(2_499)).await;
    assert!(test.runs_of("delayed").is_empty());

    test.advance(Duration::from_millis(2_001)).await;
    let millis: Vec<i64> = offsets(&test, "delayed")
        .iter()
        .map(TimeDelta::num_milliseconds)
        .collect();
    assert_eq!(millis, [2_500, 3_500, 4_500]);
    assert!(test.stop().await.is_clean());
}

#[every("1s", overlap = "allow")]
async fn overlapping(stop: CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(3_500)) => {}
        () = stop.cancelled() => {}
    }
}

#[tokio::test(start_paused = true)]
async fn overlap_allow_runs_concurrently() {
    let (_clock, test) = start(&["overlapping"]).await;
    test.advance(Duration::from_millis(2_500)).await;

    let status = test.status("overlapping");
    assert_eq!(status.running, 3, "runs 1, 2 and 3 should all be going");
    test.advance(Duration::from_millis(1_500)).await;
    let status = test.status("overlapping");
    assert_eq!((status.runs, status.skipped), (5, 0));
    assert!(test.stop().await.is_clean());
}

#[every("1s")]
async fn steady() {}

#[tokio::test(start_paused = true)]
async fn every_ignores_steps_of_the_wall_clock() {
    let (clock, test) = start(&["steady"]).await;
    test.advance(Duration::from_millis(2_500)).await;
    clock.step(TimeDelta::hours(-3));
    test.advance(Duration::from_secs(1)).await;
    clock.step(TimeDelta::hours(5));
    test.advance(Duration::from_secs(2)).await;

    assert_eq!(test.status("steady").runs, 6);
    assert!(test.stop().await.is_clean());
}

#[every("1s")]
async fn after_stall() {}

#[every("1s", overlap = "allow")]
async fn after_stall_overlapping() {}

/// Jobs that share a period wait in one lane, in deadline order. After a
/// stall their next deadlines come back in another order than they fired
/// in; each must still keep its own grid, run its oldest due tick once and
/// skip the rest, and none may run twice or be lost.
#[tokio::test(start_paused = true)]
async fn jobs_sharing_a_period_keep_their_own_grids_through_a_stall() {
    let clock = TestClock::at(t0());
    let mut builder = Host::builder().without_registered().clock(&clock);
    for (name, delay_ms) in [("a", 0), ("b", 300), ("c", 700)] {
        builder = builder.job(
            Job::every(name, Duration::from_secs(1), || async {})
                .initial_delay(Duration::from_millis(delay_ms)),
        );
    }
    let test = TestHost::start(builder.build().expect("valid host")).await;
    test.advance(Duration::from_millis(100)).await;
    tokio::time::advance(Duration::from_millis(2_500)).await; // to 2.6 s
    test.advance(Duration::ZERO).await;
    test.advance(Duration::from_millis(2_000)).await; // to 4.6 s

    let ms = |list: &[i64]| {
        list.iter()
            .map(|&ms| TimeDelta::milliseconds(ms))
            .collect::<Vec<_>>()
    };
    // a: tick 0, then tick 1 late at 2.6 s (tick 2 skipped), back on 3 s, 4 s.
    assert_eq!(offsets(&test, "a"), ms(&[0, 1_000, 3_000, 4_000]));
    // b: tick 0 late (1.3 s and 2.3 s skipped), then 3.3 s, 4.3 s.
    assert_eq!(offsets(&test, "b"), ms(&[300, 3_300, 4_300]));
    // c: tick 0 late (1.7 s skipped), then 2.7 s, 3.7 s.
    assert_eq!(offsets(&test, "c"), ms(&[700, 2_700, 3_700]));
    for (job, skipped) in [("a", 1), ("b", 2), ("c", 1)] {
        assert_eq!(test.status(job).skipped, skipped, "{job}");
    }
    assert!(test.stop().await.is_clean());
}

/// A stall (a paused VM, a blocked runtime) is modelled by jumping tokio's
/// clock without letting any task run on the way.
#[tokio::test(start_paused = true)]
async fn after_a_stall_one_late_run_and_the_missed_ticks_are_counted() {
    let (_clock, test) = start(&["after_stall", "after_stall_overlapping"]).await;
    test.advance(Duration::from_millis(500)).await;
    tokio::time::advance(Duration::from_secs(3_600)).await; // to 3600.5 s
    test.advance(Duration::ZERO).await;

    for job in ["after_stall", "after_stall_overlapping"] {
        let runs = offsets(&test, job);
        // Tick 0 at start, then tick 1 late, once; ticks 2..=3600 skipped.
        assert_eq!(runs, [TimeDelta::zero(), TimeDelta::seconds(1)], "{job}");
        assert_eq!(test.status(job).skipped, 3_599, "{job}");
    }
    test.advance(Duration::from_secs(1)).await; // back on the grid
    assert_eq!(
        offsets(&test, "after_stall").last(),
        Some(&TimeDelta::seconds(3_601))
    );
    assert!(test.stop().await.is_clean());
}

/// A due run is polled first on the scheduler's own task; a job whose first
/// step holds it past a millisecond three runs in a row gets a task of its
/// own from its next run on, so it cannot hold up the other jobs again. Real time: the limit
/// is about real blocking, which paused time cannot show.
#[tokio::test]
async fn a_job_that_blocks_before_awaiting_gets_a_task_of_its_own() {
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(&'static str, tokio::task::Id)>>>;
    let seen: Seen = Arc::default();
    let record = |job: &'static str, seen: &Seen| {
        seen.lock().unwrap().push((job, tokio::task::id()));
    };
    let (quick, blocking) = (seen.clone(), seen.clone());
    let host = Host::builder()
        .without_registered()
        .job(Job::every("quick", Duration::from_millis(20), move || {
            record("quick", &quick);
            async {}
        }))
        .job(Job::every(
            "blocking",
            Duration::from_millis(20),
            move || {
                let seen = blocking.clone();
                async move {
                    std::thread::sleep(Duration::from_millis(3));
                    record("blocking", &seen);
                }
            },
        ))
        .build()
        .expect("valid host");
    let running = host.start().await.expect("start");
    let runs_of = |job| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(j, _)| *j == job)
            .count()
    };
    wait_until(
        Duration::from_secs(10),
        || runs_of("quick") >= 5 && runs_of("blocking") >= 5,
        || format!("{:?}", seen.lock().unwrap()),
    )
    .await;
    assert!(running.stop().await.is_clean());

    let seen = seen.lock().unwrap().clone();
    let ids = |job| {
        seen.iter()
            .filter(|(j, _)| *j == job)
            .map(|(_, id)| *id)
            .collect::<Vec<_>>()
    };
    let (quick, blocking) = (ids("quick"), ids("blocking"));
    assert!(quick.len() >= 5 && blocking.len() >= 5, "{seen:?}");
    // First runs are inline, on the scheduler's task. (Later quick runs
    // are too, unless the machine stalls one past the limit: not asserted.)
    let scheduler = quick[0];
    // The blocking one ran there three times, then in tasks of its own.
    assert!(blocking[..3].iter().all(|id| *id == scheduler), "{seen:?}");
    assert!(blocking[3..].iter().all(|id| *id != scheduler), "{seen:?}");
}
