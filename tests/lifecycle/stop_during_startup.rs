//! A stop that comes while the host starts wins: the start's token fires at
//! once, startup is abandoned, what already started is stopped in reverse,
//! and `started` never fires. Once started, `stopping` never comes before
//! `started`, on any runtime. And the start token, the concurrent start's
//! errors, a zero startup timeout and a dropped `RunningHost` each do one
//! documented thing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hosted::prelude::*;
use hosted::{Phase, StopReason};
use hosted_tests::{Act, Journal, Probe};
use tokio::time::Instant;

/// A service whose `start` keeps its token and takes a minute, recording
/// when the token fires.
struct SlowStart {
    fired: Arc<Mutex<Option<Duration>>>,
    began: Instant,
}

impl HostedService for SlowStart {
    type Error = String;

    async fn start(&mut self, cancel: CancellationToken) -> Result<(), String> {
        let (fired, began) = (self.fired.clone(), self.began);
        tokio::spawn(async move {
            cancel.cancelled().await;
            *fired.lock().unwrap() = Some(began.elapsed());
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        Err("never started, so never stopped".into())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_requested_during_a_start_fires_its_token_and_abandons_startup() {
    let journal = Journal::default();
    let fired = Arc::new(Mutex::new(None));
    let host = Host::builder()
        .without_registered()
        .service(Probe::new("a", &journal))
        .service(SlowStart {
            fired: fired.clone(),
            began: Instant::now(),
        })
        .service(Probe::new("c", &journal))
        .build()
        .unwrap();
    let lifetime = host.lifetime();
    journal.watch(lifetime.clone());
    let stopper = lifetime.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stopper.stop();
    });
    let began = Instant::now();
    let report = host.start().await.unwrap_err();
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(1),
        "startup is abandoned at once"
    );
    tokio::task::yield_now().await;
    assert_eq!(*fired.lock().unwrap(), Some(Duration::from_secs(1)));
    assert!(!lifetime.started().await, "`started` never fires");
    assert_eq!(
        journal.steps(),
        [
            "a:starting",
            "c:starting",
            "a:start",
            "a:stopping",
            "a:stop",
            "a:stopped"
        ]
    );
    assert_eq!(report.reason(), &StopReason::Requested);
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_requested_before_run_starts_nothing() {
    let journal = Journal::default();
    let host = Host::builder()
        .without_registered()
        .service(Probe::new("a", &journal))
        .build()
        .unwrap();
    host.lifetime().stop();
    let lifetime = host.lifetime();
    let report = host.run().await;
    assert!(journal.steps().is_empty(), "{:?}", journal.steps());
    assert!(!lifetime.is_started());
    assert!(lifetime.is_stopped());
    assert!(report.is_clean(), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_from_the_handle_during_the_started_hooks_abandons_startup() {
    let journal = Journal::default();
    let host = Host::builder()
        .without_registered()
        .service(Probe::new("a", &journal).at(Phase::Started, Act::Take(Duration::from_secs(5))))
        .build()
        .unwrap();
    let lifetime = host.lifetime();
    let stopper = lifetime.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stopper.stop();
    });
    let report = host.start().await.unwrap_err();
    assert!(!lifetime.is_started());
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
    assert!(report.is_clean(), "{report}");
}

/// Regression: a background service that failed at once could request the
/// stop before `started` fired (about 15 % of runs on a multi-thread
/// runtime), and `started` then fired after `stopping`.
#[test]
fn stopping_never_comes_before_started_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..300 {
        runtime.block_on(async {
            let host = Host::builder()
                .without_registered()
                .job(Job::service("fails at once", || async {
                    Err::<(), _>(std::io::Error::other("no"))
                }))
                .build()
                .unwrap();
            // A thread that watches the flags, to see them the moment
            // `stopping` fires rather than when a task gets to look.
            let lifetime = host.lifetime();
            let observer = std::thread::spawn(move || loop {
                if lifetime.is_stopping() {
                    return lifetime.is_started();
                }
                std::hint::spin_loop();
            });
            let report = host.run().await;
            assert_eq!(report.code(), 1, "round {round}: {report}");
            assert!(
                observer.join().unwrap(),
                "round {round}: `stopping` fired before `started`"
            );
        });
    }
}

/// A service that fails to start, after a delay.
struct FailsToStart(&'static str, u64);

impl HostedService for FailsToStart {
    type Error = String;

    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.0.into()
    }

    async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(self.1)).await;
        Err(format!("{} cannot start", self.0))
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn with_concurrent_starts_every_failed_start_is_in_the_report() {
    let host = Host::builder()
        .without_registered()
        .service(FailsToStart("first", 10))
        .service(FailsToStart("second", 20))
        .start_concurrently(true)
        .build()
        .unwrap();
    let report = host.start().await.unwrap_err();
    let failed: Vec<&str> = report.errors().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(failed, ["first", "second"]);
    assert_eq!(report.code(), 2);
}

/// A service that spawns work with its start token.
struct SpawnsWithItsToken(Arc<AtomicU64>);

impl HostedService for SpawnsWithItsToken {
    type Error = String;

    async fn start(&mut self, cancel: CancellationToken) -> Result<(), String> {
        let ticks = self.0.clone();
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn work_spawned_with_the_start_token_lives_until_the_host_stops() {
    let ticks = Arc::new(AtomicU64::new(0));
    let host = Host::builder()
        .without_registered()
        .service(SpawnsWithItsToken(ticks.clone()))
        .build()
        .unwrap();
    let running = host.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(
        ticks.load(Ordering::Relaxed),
        11,
        "still running after startup"
    );
    assert!(running.stop().await.is_clean());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ticks.load(Ordering::Relaxed), 11, "ended with the host");
}

#[tokio::test(start_paused = true)]
async fn a_zero_startup_timeout_gives_the_same_outcome_every_time() {
    for _ in 0..50 {
        let journal = Journal::default();
        let quick = Host::builder()
            .without_registered()
            .service(Probe::new("quick", &journal))
            .startup_timeout(Duration::ZERO)
            .build()
            .unwrap();
        let running = quick
            .start()
            .await
            .expect("a start that never waits succeeds");
        assert!(running.stop().await.is_clean());
        let waits = Host::builder()
            .without_registered()
            .service(
                Probe::new("waits", &journal).at(Phase::Start, Act::Take(Duration::from_millis(1))),
            )
            .startup_timeout(Duration::ZERO)
            .build()
            .unwrap();
        let report = waits
            .start()
            .await
            .expect_err("a start that waits times out");
        assert_eq!(report.code(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_running_host_aborts_its_jobs() {
    let runs = Arc::new(AtomicU64::new(0));
    let service_saw_stop = Arc::new(Mutex::new(false));
    let host = Host::builder()
        .without_registered()
        .job(Job::every("tick", Duration::from_secs(1), {
            let runs = runs.clone();
            move || {
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }))
        .job(Job::service("waits", {
            let seen = service_saw_stop.clone();
            move |stop: CancellationToken| {
                let seen = seen.clone();
                async move {
                    stop.cancelled().await;
                    *seen.lock().unwrap() = true;
                }
            }
        }))
        .build()
        .unwrap();
    let lifetime = host.lifetime();
    let running = host.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    drop(running);
    assert!(lifetime.is_stopping());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        runs.load(Ordering::Relaxed),
        3,
        "nothing runs after the drop"
    );
    assert!(
        *service_saw_stop.lock().unwrap(),
        "the service's token was cancelled"
    );
}
