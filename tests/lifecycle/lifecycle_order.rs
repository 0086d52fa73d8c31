//! Lifecycle order: services start in a deterministic order and stop in
//! reverse; hooks and lifetime events fire in the documented order;
//! background jobs start after every `start`; phases run one after another
//! or concurrently.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hosted::prelude::*;
use hosted::{Phase, StopReason};
use hosted_tests::{Act, Journal, Probe};
use tokio::time::Instant;

fn host_of(journal: &Journal, probes: Vec<Probe>) -> hosted::HostBuilder {
    let mut builder = Host::builder().without_registered();
    for probe in probes {
        builder = builder.service(probe);
    }
    let _ = journal;
    builder
}

#[tokio::test(start_paused = true)]
async fn services_start_in_order_and_stop_in_reverse_with_hooks_and_events_in_order() {
    let journal = Journal::default();
    let host = host_of(
        &journal,
        vec![
            Probe::new("a", &journal),
            Probe::new("b", &journal),
            Probe::new("c", &journal),
        ],
    )
    .build()
    .unwrap();
    let lifetime = host.lifetime();
    journal.watch(lifetime.clone());
    assert!(!lifetime.is_started());

    let running = host.start().await.unwrap();
    assert!(lifetime.is_started());
    assert!(lifetime.started().await);
    let report = running.stop().await;
    assert!(report.is_clean(), "{report}");
    assert!(lifetime.is_stopped());

    let expected: Vec<(&str, (bool, bool, bool))> = vec![
        ("a:starting", (false, false, false)),
        ("b:starting", (false, false, false)),
        ("c:starting", (false, false, false)),
        ("a:start", (false, false, false)),
        ("b:start", (false, false, false)),
        ("c:start", (false, false, false)),
        ("a:started", (false, false, false)),
        ("b:started", (false, false, false)),
        ("c:started", (false, false, false)),
        // `started` fired; then stop: `stopping` fires before any hook.
        ("c:stopping", (true, true, false)),
        ("b:stopping", (true, true, false)),
        ("a:stopping", (true, true, false)),
        ("c:stop", (true, true, false)),
        ("b:stop", (true, true, false)),
        ("a:stop", (true, true, false)),
        ("c:stopped", (true, true, false)),
        ("b:stopped", (true, true, false)),
        ("a:stopped", (true, true, false)),
        // `stopped` fires last, before `stop()` returns (checked above).
    ];
    let entries: Vec<(String, (bool, bool, bool))> = journal
        .entries()
        .into_iter()
        .map(|e| (e.step, e.flags))
        .collect();
    let expected: Vec<(String, (bool, bool, bool))> = expected
        .into_iter()
        .map(|(s, f)| (s.to_owned(), f))
        .collect();
    assert_eq!(entries, expected);
}

/// Declared services; `Early` has `order = -1`, so it starts before the
/// ones added with the builder, which start before `Late` (order 0).
mod declared {
    use hosted::prelude::*;
    use hosted_tests::Journal;
    use std::sync::OnceLock;

    pub(crate) static JOURNAL: OnceLock<Journal> = OnceLock::new();

    fn record(step: &str) {
        if let Some(journal) = JOURNAL.get() {
            journal.record(step.to_owned());
        }
    }

    #[hosted_service(order = -1)]
    #[derive(Default)]
    pub(crate) struct Early;

    impl HostedService for Early {
        type Error = String;
        async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
            record("Early:start");
            Ok(())
        }
        async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
            record("Early:stop");
            Ok(())
        }
    }

    #[hosted_service(name = "late-one", constructor = "Late::new")]
    pub(crate) struct Late(&'static str);

    impl Late {
        fn new() -> Late {
            Late("late")
        }
    }

    impl HostedService for Late {
        type Error = String;
        async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
            record(&format!("{}:start", self.0));
            Ok(())
        }
        async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
            record(&format!("{}:stop", self.0));
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn builder_services_come_first_then_declared_ones_and_order_overrides() {
    let journal = Journal::default();
    declared::JOURNAL.set(journal.clone()).ok().unwrap();
    let host = Host::builder()
        .only_module("lifecycle_order::declared")
        .service(Probe::new("x", &journal))
        .service(Probe::new("y", &journal))
        .build()
        .unwrap();
    let names: Vec<&str> = host.service_names().collect();
    assert_eq!(names, ["Early", "x", "y", "late-one"]);
    let running = host.start().await.unwrap();
    assert!(running.stop().await.is_clean());
    let steps: Vec<String> = journal
        .steps()
        .into_iter()
        .filter(|s| s.ends_with(":start") || s.ends_with(":stop"))
        .collect();
    assert_eq!(
        steps,
        [
            "Early:start",
            "x:start",
            "y:start",
            "late:start",
            "late:stop",
            "y:stop",
            "x:stop",
            "Early:stop"
        ]
    );
}

#[derive(Clone, Default)]
struct FirstRun(Arc<Mutex<Vec<String>>>);

#[tokio::test(start_paused = true)]
async fn background_jobs_start_after_every_start_returned() {
    let journal = Journal::default();
    let seen = FirstRun::default();
    let seen_in_job = seen.clone();
    let journal_in_job = journal.clone();
    let host = Host::builder()
        .without_registered()
        .service(Probe::new("slow", &journal).at(Phase::Start, Act::Take(Duration::from_secs(5))))
        .job(Job::every(
            "tick",
            Duration::from_secs(1),
            move |lifetime: Lifetime| {
                let seen = seen_in_job.clone();
                let journal = journal_in_job.clone();
                async move {
                    seen.0.lock().unwrap().push(format!(
                        "tick after {:?}, started={}",
                        journal.steps(),
                        lifetime.is_started()
                    ));
                }
            },
        ))
        .build()
        .unwrap();
    let began = Instant::now();
    let running = host.start().await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let first = seen.0.lock().unwrap()[0].clone();
    assert_eq!(
        first,
        r#"tick after ["slow:starting", "slow:start", "slow:started"], started=true"#
    );
    assert!(running.stop().await.is_clean());
}

fn slow_probes(journal: &Journal) -> Vec<Probe> {
    ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            Probe::new(name, journal)
                .at(Phase::Start, Act::Take(Duration::from_secs(1)))
                .at(Phase::Stop, Act::Take(Duration::from_secs(2)))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn phases_run_one_after_another_by_default() {
    let journal = Journal::default();
    let host = host_of(&journal, slow_probes(&journal)).build().unwrap();
    let began = Instant::now();
    let running = host.start().await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(3));
    let report = running.stop().await;
    assert_eq!(report.stop_took(), Duration::from_secs(6));
    assert!(report.is_clean());
}

#[tokio::test(start_paused = true)]
async fn phases_run_concurrently_when_asked() {
    let journal = Journal::default();
    let host = host_of(&journal, slow_probes(&journal))
        .start_concurrently(true)
        .stop_concurrently(true)
        .build()
        .unwrap();
    let began = Instant::now();
    let running = host.start().await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(1));
    let report = running.stop().await;
    assert_eq!(report.stop_took(), Duration::from_secs(2));
    assert!(report.is_clean());
    // Concurrent or not, every step ran.
    assert_eq!(journal.steps().len(), 18);
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_from_the_lifetime_is_the_same_sequence_and_asking_twice_is_harmless() {
    let journal = Journal::default();
    let host = host_of(&journal, vec![Probe::new("a", &journal)])
        .build()
        .unwrap();
    let lifetime = host.lifetime();
    let running = host.start().await.unwrap();
    lifetime.stop();
    lifetime.stop();
    running.handle().request_stop();
    let report = running.wait().await;
    assert_eq!(*report.reason(), StopReason::Requested);
    assert!(report.is_clean());
    assert_eq!(
        journal.steps(),
        [
            "a:starting",
            "a:start",
            "a:started",
            "a:stopping",
            "a:stop",
            "a:stopped"
        ]
    );
    lifetime.stopping().await;
    lifetime.stopped().await;
}
