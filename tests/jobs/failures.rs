//! Failures: a failed or panicking run is logged, counted, and the schedule
//! goes on; a failed service stops the host with a non-zero exit code.

use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::TestHost;
use hosted::{ExtractError, FromRun, Outcome, RunContext, StopReason};

#[every("1s")]
async fn panics_on_even(run: Run) {
    if run.number().is_multiple_of(2) {
        panic!("run {} panics on purpose", run.number());
    }
}

#[every("1s")]
async fn errs_on_odd(run: Run) -> Result<(), String> {
    if run.number() % 2 == 1 {
        return Err(format!("run {} fails on purpose", run.number()));
    }
    Ok(())
}

#[every("1s")]
async fn anyhow_errors() -> anyhow::Result<()> {
    Err(anyhow::anyhow!("disk full")).map_err(|e| e.context("writing the report"))
}

#[tokio::test(start_paused = true)]
async fn failed_and_panicking_runs_are_counted_and_the_schedule_goes_on() {
    let host = Host::builder()
        .only_jobs(["panics_on_even", "errs_on_odd", "anyhow_errors"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(9)).await;

    for job in ["panics_on_even", "errs_on_odd"] {
        let status = test.status(job);
        assert_eq!(
            (status.runs, status.succeeded, status.failed),
            (10, 5, 5),
            "{job}"
        );
    }
    assert_eq!(test.status("anyhow_errors").failed, 10);
    assert!(
        !test.handle().is_stopping(),
        "failed runs must not stop the host"
    );
    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
}

#[hosted_service]
async fn broken_service() -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Err(anyhow::anyhow!("connection lost")).map_err(|e| e.context("consuming orders"))
}

#[tokio::test(start_paused = true)]
async fn a_failed_service_stops_the_host_with_a_non_zero_exit_code() {
    let host = Host::builder()
        .only_jobs(["broken_service", "polite_tick"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    let report = test.wait().await;

    assert_eq!(
        *report.reason(),
        StopReason::ServiceFailed("broken_service".into())
    );
    assert_eq!(report.code(), hosted::Report::EXIT_SERVICE_FAILED);
    assert_eq!(report.exit_code(), std::process::ExitCode::from(1));
    let failure = &report.errors()[0];
    assert_eq!(failure.name, "broken_service");
    assert_eq!(failure.phase, hosted::Phase::Run);
    assert_eq!(
        failure.outcome,
        Outcome::Failed("consuming orders: connection lost".into())
    );
    assert!(report
        .to_string()
        .contains("service `broken_service` failed"));
}

#[every("1s")]
async fn polite_tick(stop: CancellationToken) {
    stop.cancelled().await;
}

#[hosted_service]
async fn panicking_service() {
    panic!("invariant broken");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_service_stops_the_host_too() {
    let host = Host::builder()
        .only_jobs(["panicking_service"])
        .build()
        .unwrap();
    let report = TestHost::start(host).await.wait().await;
    assert_eq!(report.code(), 1);
    assert_eq!(
        report.errors()[0].outcome,
        Outcome::Panicked("invariant broken".into())
    );
}

#[hosted_service]
async fn one_shot() -> anyhow::Result<()> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_service_that_returns_ok_early_is_simply_done() {
    let host = Host::builder()
        .only_jobs(["one_shot", "polite_tick"])
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(5)).await;
    assert!(!test.handle().is_stopping());
    let status = test.status("one_shot");
    assert_eq!((status.runs, status.succeeded, status.running), (1, 1, 0));
    assert!(test.stop().await.is_clean());
}

/// An argument type that cannot be built at run time.
struct Unavailable;

impl FromRun for Unavailable {
    fn from_run(_: &RunContext<'_>) -> Result<Self, ExtractError> {
        Err(ExtractError::new("the license server is down"))
    }
}

#[tokio::test(start_paused = true)]
async fn an_argument_that_cannot_be_built_fails_the_run_without_running_the_body() {
    let body_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = body_ran.clone();
    let host = Host::builder()
        .without_registered()
        .job(Job::every(
            "licensed",
            Duration::from_secs(1),
            move |_: Unavailable| {
                let flag = flag.clone();
                async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) }
            },
        ))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(2)).await;
    let status = test.status("licensed");
    assert_eq!((status.runs, status.failed), (3, 3));
    assert!(!body_ran.load(std::sync::atomic::Ordering::SeqCst));
    assert!(test.stop().await.is_clean());
}
