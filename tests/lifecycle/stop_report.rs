//! The report tells the truth about the stop: what was aborted at the
//! deadline is always named, a step that blocked its thread past the
//! deadline is named as late, and naming what is stuck costs time in
//! proportion to the number of services.

use std::time::Duration;

use hosted::prelude::*;
use hosted::{Phase, Report};
use hosted_tests::{Act, Journal, Probe};

/// Regression: the report was read right after the abort, racing with the
/// aborted runs' own bookkeeping on other threads: 1 to 100 of 200 stops
/// reported exit code 0 and nothing aborted.
#[test]
fn work_aborted_at_the_deadline_is_always_named() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..200 {
        runtime.block_on(async {
            let host = Host::builder()
                .without_registered()
                .job(Job::service("sleeps through its token", || async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }))
                .shutdown_timeout(Duration::from_millis(5))
                .build()
                .unwrap();
            let running = host.start().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            let report = running.stop().await;
            assert_eq!(
                report.code(),
                Report::EXIT_ABORTED,
                "round {round}: {report}"
            );
            let aborted: Vec<(&str, Phase)> = report
                .aborted()
                .iter()
                .map(|a| (a.name.as_str(), a.phase))
                .collect();
            assert_eq!(
                aborted,
                [("sleeps through its token", Phase::Run)],
                "round {round}"
            );
        });
    }
}

/// A service whose `stop` blocks its thread.
struct BlocksItsThread;

impl HostedService for BlocksItsThread {
    type Error = String;

    async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(60));
        Ok(())
    }
}

/// Regression: a `stop` that blocked its thread past the deadline was
/// reported as "everything stopped in time".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_blocks_past_the_deadline_is_reported_late() {
    let host = Host::builder()
        .without_registered()
        .service(BlocksItsThread)
        .shutdown_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let report = host.start().await.unwrap().stop().await;
    assert_eq!(report.code(), Report::EXIT_ABORTED, "{report}");
    let late: Vec<(&str, Phase)> = report
        .past_deadline()
        .iter()
        .map(|a| (a.name.as_str(), a.phase))
        .collect();
    assert_eq!(late, [("BlocksItsThread", Phase::Stop)]);
    assert!(
        report
            .to_string()
            .contains("finished past the deadline: `BlocksItsThread`'s stop"),
        "{report}"
    );
}

/// Finding what is stuck was a linear scan per service and step: 2.2 s for
/// 10,000 services. Each step now costs the same however many there are.
#[tokio::test(start_paused = true)]
async fn ten_thousand_services_stuck_past_the_deadline_are_all_named() {
    let journal = Journal::default();
    let names: Vec<&'static str> = (0..10_000)
        .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
        .collect();
    let host = names
        .iter()
        .fold(Host::builder().without_registered(), |builder, name| {
            builder.service(Probe::new(name, &journal).at(Phase::Stop, Act::Hang))
        })
        .stop_concurrently(true)
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let report = host.start().await.unwrap().stop().await;
    assert_eq!(report.code(), Report::EXIT_ABORTED);
    let stuck = report
        .aborted()
        .iter()
        .filter(|a| a.phase == Phase::Stop)
        .count();
    assert_eq!(stuck, 10_000);
    // Every `stopped` hook, never begun, got its one poll.
    let stopped = journal
        .steps()
        .iter()
        .filter(|s| s.ends_with(":stopped"))
        .count();
    assert_eq!(stopped, 10_000);
}

#[tokio::test(start_paused = true)]
async fn the_report_names_each_kind_of_aborted_work_in_words() {
    let queue = TaskQueue::new(hosted::QueueOptions::default().workers(1));
    let host = Host::builder()
        .without_registered()
        .job(Job::service("feed", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }))
        .job(Job::every(
            "report",
            Duration::from_secs(3600),
            |stop: CancellationToken| async move {
                // Ignores its token.
                let _keep = stop;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            },
        ))
        .queue(queue.clone())
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let running = host.start().await.unwrap();
    queue
        .try_enqueue_detached("slow item", |_token| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let text = running.stop().await.to_string();
    for part in [
        "aborted at the deadline: ",
        "a run of `report`",
        "service `feed`",
        "items of queue `default`",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(!text.contains("``"), "{text}");
    assert!(!text.contains("(run)"), "{text}");
}
