//! Lifecycle failures: a failed startup stops only what started; every
//! stop step runs and its errors are collected in order; the deadline
//! abandons what is stuck and names it.

use std::time::Duration;

use hosted::prelude::*;
use hosted::{Outcome, Phase, StopReason};
use hosted_tests::{Act, Journal, Probe};
use tokio::time::Instant;

fn builder(probes: Vec<Probe>) -> hosted::HostBuilder {
    probes
        .into_iter()
        .fold(Host::builder().without_registered(), |b, p| b.service(p))
}

fn phases(report: &Report) -> Vec<(String, Phase)> {
    report
        .errors()
        .iter()
        .map(|e| (e.name.clone(), e.phase))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_stops_only_what_started_in_reverse() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal),
        Probe::new("b", &journal),
        Probe::new("c", &journal).at(Phase::Start, Act::Fail),
        Probe::new("d", &journal),
    ])
    .build()
    .unwrap();
    let lifetime = host.lifetime();
    let report = host.start().await.unwrap_err();

    assert_eq!(
        journal.steps(),
        [
            "a:starting",
            "b:starting",
            "c:starting",
            "d:starting",
            "a:start",
            "b:start",
            "c:start",
            // c failed: d never starts; b and a stop, in reverse.
            "b:stopping",
            "a:stopping",
            "b:stop",
            "a:stop",
            "b:stopped",
            "a:stopped",
        ]
    );
    assert_eq!(*report.reason(), StopReason::StartFailed("c".into()));
    assert_eq!(phases(&report), [("c".to_owned(), Phase::Start)]);
    assert_eq!(
        report.errors()[0].outcome,
        Outcome::Failed("c refuses to start".into())
    );
    assert_eq!(report.code(), Report::EXIT_START_FAILED);
    assert!(
        report.to_string().contains("service `c` failed to start"),
        "{report}"
    );
    assert!(!lifetime.started().await, "`started` never fires");
    assert!(lifetime.is_stopped());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_start_or_hook_fails_startup_the_same_way() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal),
        Probe::new("b", &journal).at(Phase::Started, Act::Panic),
    ])
    .build()
    .unwrap();
    let report = host.start().await.unwrap_err();
    assert_eq!(
        report.errors()[0].outcome,
        Outcome::Panicked("b panics at started".into())
    );
    assert_eq!(report.errors()[0].phase, Phase::Started);
    // Both had started; both are stopped.
    let stops: Vec<String> = journal
        .steps()
        .into_iter()
        .filter(|s| s.ends_with(":stop"))
        .collect();
    assert_eq!(stops, ["b:stop", "a:stop"]);
    assert_eq!(report.code(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_start_that_outlives_the_startup_timeout_fails_startup() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal),
        Probe::new("b", &journal).at(Phase::Start, Act::Hang),
    ])
    .startup_timeout(Duration::from_secs(5))
    .build()
    .unwrap();
    let began = Instant::now();
    let report = host.start().await.unwrap_err();
    assert_eq!(began.elapsed(), Duration::from_secs(5));
    assert_eq!(phases(&report), [("b".to_owned(), Phase::Start)]);
    assert!(matches!(&report.errors()[0].outcome,
        Outcome::Failed(text) if text.contains("startup timeout of 5s")));
    // b never started, so only a is stopped.
    assert!(journal
        .steps()
        .ends_with(&["a:stopping".into(), "a:stop".into(), "a:stopped".into()]));
}

#[tokio::test(start_paused = true)]
async fn every_stop_step_runs_and_errors_are_collected_in_order() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal).at(Phase::Stopped, Act::Panic),
        Probe::new("b", &journal).at(Phase::Stopping, Act::Fail),
        Probe::new("c", &journal).at(Phase::Stop, Act::Fail),
    ])
    .build()
    .unwrap();
    let report = host.start().await.unwrap().stop().await;
    let stop_steps: Vec<String> = journal.steps().into_iter().skip(9).collect();
    assert_eq!(
        stop_steps,
        [
            "c:stopping",
            "b:stopping",
            "a:stopping",
            "c:stop",
            "b:stop",
            "a:stop",
            "c:stopped",
            "b:stopped",
            "a:stopped",
        ]
    );
    assert_eq!(
        phases(&report),
        [
            ("b".to_owned(), Phase::Stopping),
            ("c".to_owned(), Phase::Stop),
            ("a".to_owned(), Phase::Stopped),
        ]
    );
    assert_eq!(report.code(), Report::EXIT_STOP_FAILED);
    assert!(report.aborted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_abandons_a_stuck_stop_names_it_and_polls_the_rest_once() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal),
        Probe::new("b", &journal).at(Phase::Stop, Act::Hang),
        Probe::new("c", &journal),
    ])
    .shutdown_timeout(Duration::from_secs(5))
    .build()
    .unwrap();
    let report = host.start().await.unwrap().stop().await;
    assert_eq!(report.stop_took(), Duration::from_secs(5));
    let aborted: Vec<(&str, Phase)> = report
        .aborted()
        .iter()
        .map(|a| (a.name.as_str(), a.phase))
        .collect();
    assert_eq!(aborted, [("b", Phase::Stop)]);
    assert_eq!(report.code(), Report::EXIT_ABORTED);
    // a's stop and every stopped hook still ran, with one poll each.
    let stop_steps: Vec<String> = journal.steps().into_iter().skip(12).collect();
    assert_eq!(
        stop_steps,
        [
            "c:stop",
            "b:stop",
            "a:stop",
            "c:stopped",
            "b:stopped",
            "a:stopped"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_honours_the_deadline_token_is_not_aborted() {
    let journal = Journal::default();
    let host = builder(vec![
        Probe::new("a", &journal).at(Phase::Stop, Act::AwaitToken)
    ])
    .shutdown_timeout(Duration::from_secs(3))
    .build()
    .unwrap();
    let report = host.start().await.unwrap().stop().await;
    assert_eq!(report.stop_took(), Duration::from_secs(3));
    assert!(report.aborted().is_empty(), "{report}");
    assert!(report.is_clean(), "{report}");
    assert!(journal
        .steps()
        .ends_with(&["a:stop".into(), "a:stopped".into()]));
}

#[every("1s")]
async fn ticking() {}

#[tokio::test(start_paused = true)]
async fn background_jobs_end_before_services_stop() {
    let journal = Journal::default();
    let host = Host::builder()
        .only_jobs(["ticking"])
        .service(Probe::new("a", &journal))
        .build()
        .unwrap();
    let running = host.start().await.unwrap();
    let handle = running.handle();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let report = running.stop().await;
    assert!(report.is_clean());
    assert_eq!(handle.job("ticking").unwrap().runs, 3);
    assert_eq!(handle.job("ticking").unwrap().running, 0);
}
