//! The stop sequence: one token for everything, one deadline in total, and
//! what did not stop in time aborted and named.

use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::TestHost;
use hosted::StopReason;

#[hosted_service]
async fn polite_service(stop: CancellationToken) {
    stop.cancelled().await;
}

#[every("1s")]
async fn polite_tick(stop: CancellationToken) {
    // A run that would take an hour unless asked to stop.
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(3600)) => {}
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_that_honour_their_token_stop_at_once() {
    let host = Host::builder()
        .only_jobs(["polite_service", "polite_tick"])
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(1_500)).await;
    assert_eq!(test.status("polite_tick").running, 1);
    assert_eq!(test.status("polite_service").running, 1);

    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.code(), 0);
    assert_eq!(report.stop_took(), Duration::ZERO);
    assert_eq!(*report.reason(), StopReason::Requested);
}

#[hosted_service]
async fn stubborn_service() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[every("1s")]
async fn stubborn_tick() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::test(start_paused = true)]
async fn jobs_that_ignore_their_token_are_aborted_at_the_deadline_and_named() {
    let host = Host::builder()
        .only_jobs(["stubborn_service", "stubborn_tick", "polite_service"])
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(500)).await;
    let handle = test.handle();

    let report = test.stop().await;
    assert_eq!(report.stop_took(), Duration::from_secs(5));
    let mut aborted: Vec<(&str, hosted::Phase)> = report
        .aborted()
        .iter()
        .map(|a| (a.name.as_str(), a.phase))
        .collect();
    aborted.sort_by_key(|a| a.0);
    assert_eq!(
        aborted,
        [
            ("stubborn_service", hosted::Phase::Run),
            ("stubborn_tick", hosted::Phase::Run)
        ]
    );
    assert_eq!(report.code(), hosted::Report::EXIT_ABORTED);
    assert!(report.errors().is_empty());
    // The aborted runs are over and counted as failed.
    let tick = handle.job("stubborn_tick").unwrap();
    assert_eq!((tick.running, tick.failed), (0, 1));
    assert_eq!(handle.job("polite_service").unwrap().failed, 0);
}

#[every("1s")]
async fn stop_on_third(run: Run, host: HostHandle) {
    if run.number() == 3 {
        host.request_stop();
        host.request_stop(); // asking twice is harmless
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_can_request_the_stop() {
    let began = tokio::time::Instant::now();
    let host = Host::builder()
        .only_jobs(["stop_on_third"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    let report = test.wait().await;
    assert!(report.is_clean());
    assert_eq!(*report.reason(), StopReason::Requested);
    // Runs 1, 2 and 3 are due at 0 s, 1 s and 2 s; the third stops the host.
    assert_eq!(began.elapsed(), Duration::from_secs(2));
}

#[every("1s")]
async fn quick_tick() {}

#[tokio::test(start_paused = true)]
async fn no_run_starts_after_stop_began() {
    let host = Host::builder().only_jobs(["quick_tick"]).build().unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(2_500)).await;
    let handle = test.handle();
    assert_eq!(handle.job("quick_tick").unwrap().runs, 3);
    handle.request_stop();
    assert!(handle.is_stopping());
    let report = test.stop().await;
    assert!(report.is_clean());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(handle.job("quick_tick").unwrap().runs, 3);
}

/// A job that cancels the token it was given cancels its own copy only:
/// the host goes on, and other jobs' tokens stay uncancelled.
#[tokio::test(start_paused = true)]
async fn a_job_cancelling_its_token_does_not_cancel_the_hosts() {
    use hosted::testing::TestClock;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let other_saw_cancel = Arc::new(AtomicBool::new(false));
    let seen = other_saw_cancel.clone();
    let clock = TestClock::at("2026-06-01T12:00:00Z".parse().unwrap());
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .job(Job::every(
            "canceller",
            Duration::from_secs(1),
            |token: CancellationToken| async move { token.cancel() },
        ))
        .job(Job::every(
            "watcher",
            Duration::from_secs(1),
            move |token: CancellationToken| {
                let seen = seen.clone();
                async move {
                    seen.fetch_or(token.is_cancelled(), Ordering::Relaxed);
                }
            },
        ))
        .build()
        .expect("valid host");
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(3)).await;
    assert!(!other_saw_cancel.load(Ordering::Relaxed));
    assert!(!test.handle().is_stopping());
    assert_eq!(test.status("watcher").succeeded, 4);
    assert!(test.stop().await.is_clean());
}
