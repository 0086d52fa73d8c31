//! Run with: cargo bench -p hosted-benches --bench lifecycle
//!
//! Start and stop of a big host: 10,000 idle `every` jobs plus 10,000
//! background services that wait for the stop token, each contender in a
//! fresh process, median of 5 rounds:
//!
//! - `hosted`: `Job::every` (1 h) and `Job::service` (the builder form of
//!   `#[hosted_service] async fn`); start is `build()` plus `start()`, stop
//!   is `RunningHost::stop()` until its report is back;
//! - `tokio`: one task per job (an interval in a `select!` with the token)
//!   and per service (`token.cancelled().await`) on a `TaskTracker`; stop is
//!   `cancel()`, `close()` and `wait()`;
//! - `apalis`: a `Monitor` with one worker per service on an apalis-cron
//!   backend whose next tick is a day away (no jobs of another kind: an
//!   apalis worker is its only unit); stop is from the shutdown signal to
//!   `run_with_signal` returning. (The monitor does not say when its
//!   workers are up, so it has no start time here.)
//!
//! `LIFECYCLE_JOBS=10000`, `LIFECYCLE_SERVICES=10000`, `LIFECYCLE_ROUNDS=5`.

use std::time::{Duration, Instant};

use hosted::{Host, Job};
use hosted_benches::{child, cores, env_count, median, SecondsAhead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let jobs = env_count("LIFECYCLE_JOBS", 10_000);
    let services = env_count("LIFECYCLE_SERVICES", 10_000);
    let rounds = env_count("LIFECYCLE_ROUNDS", 5);
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let who = args[at + 1].clone();
        let (mut starts, mut stops) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (start, stop) = runtime.block_on(round(&who, jobs, services));
            starts.push(start);
            stops.push(stop);
        }
        println!(
            "start_ms={:.2} stop_ms={:.2}",
            median(&mut starts),
            median(&mut stops)
        );
        return;
    }
    println!(
        "lifecycle: {jobs} idle jobs + {services} token-waiting services, median of {rounds} rounds, {} cores",
        cores()
    );
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>12}",
        "who", "start ms", "vs tokio", "stop ms", "vs tokio"
    );
    let results: Vec<_> = ["hosted", "tokio", "apalis"]
        .iter()
        .map(|who| (who, child(&["--child", who])))
        .collect();
    let tokio = &results[1].1;
    let ratio = |r: &std::collections::BTreeMap<String, String>, key: &str| {
        let a: f64 = r[key].parse().unwrap_or(f64::NAN);
        let b: f64 = tokio[key].parse().unwrap_or(f64::NAN);
        format!("{:.2}", a / b)
    };
    for (who, r) in &results {
        println!(
            "{:>8} {:>10} {:>12} {:>10} {:>12}",
            who,
            r["start_ms"],
            ratio(r, "start_ms"),
            r["stop_ms"],
            ratio(r, "stop_ms"),
        );
    }
}

/// One start and stop; returns both in milliseconds.
async fn round(who: &str, jobs: usize, services: usize) -> (f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match who {
        "hosted" => {
            let began = Instant::now();
            let mut builder = Host::builder().without_registered();
            for i in 0..jobs {
                builder = builder.job(Job::every(
                    format!("job{i}"),
                    Duration::from_secs(3_600),
                    || async {},
                ));
            }
            for i in 0..services {
                builder = builder.job(Job::service(
                    format!("service{i}"),
                    |stop: CancellationToken| async move {
                        stop.cancelled().await;
                    },
                ));
            }
            let running = builder.build().expect("host").start().await.expect("start");
            let start = began.elapsed();
            let began = Instant::now();
            let report = running.stop().await;
            let stop = began.elapsed();
            assert!(report.is_clean(), "{report}");
            (ms(start), ms(stop))
        }
        "tokio" => {
            let began = Instant::now();
            let token = CancellationToken::new();
            let tracker = TaskTracker::new();
            for _ in 0..jobs {
                let token = token.clone();
                tracker.spawn(async move {
                    let mut interval = tokio::time::interval_at(
                        tokio::time::Instant::now() + Duration::from_secs(3_600),
                        Duration::from_secs(3_600),
                    );
                    loop {
                        tokio::select! {
                            () = token.cancelled() => return,
                            _ = interval.tick() => {}
                        }
                    }
                });
            }
            for _ in 0..services {
                let token = token.clone();
                tracker.spawn(async move { token.cancelled().await });
            }
            // Every task has run up to its first wait, as the host's have.
            tokio::task::yield_now().await;
            let start = began.elapsed();
            let began = Instant::now();
            token.cancel();
            tracker.close();
            tracker.wait().await;
            (ms(start), ms(began.elapsed()))
        }
        "apalis" => apalis(services).await,
        other => panic!("unknown contender {other}"),
    }
}

async fn apalis(services: usize) -> (f64, f64) {
    use apalis::prelude::{Monitor, WorkerBuilder};
    use apalis_cron::{CronScheduler, Tick};
    let began = Instant::now();
    let mut monitor = Monitor::new();
    for i in 0..services {
        monitor = monitor.register(move |_| {
            WorkerBuilder::new(format!("service{i}"))
                .backend(CronScheduler::new(SecondsAhead(86_400)))
                .build(|_: Tick<chrono::Utc>| async {})
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<Instant>();
    tokio::spawn(async move {
        let _ = monitor
            .run_with_signal(async move {
                let _ = stop_rx.await;
                Ok(())
            })
            .await;
        let _ = stopped_tx.send(Instant::now());
    });
    // The monitor starts its workers as it runs and says nothing when they
    // are up: no start time to compare; give them a moment to be up.
    let _ = began;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    let _ = stop_tx.send(());
    let stopped = stopped_rx.await.expect("monitor stopped");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (f64::NAN, ms(stopped - began))
}
