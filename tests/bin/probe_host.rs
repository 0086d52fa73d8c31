//! A host run as a real process by `tests/exit_codes.rs`, which sends it
//! signals and checks its exit code. The first argument picks a scenario:
//!
//! - `clean`: a service and a job that stop gracefully;
//! - `stuck`: a service whose `stop` never returns, with a long timeout;
//! - `timeout`: the same with a 300 ms timeout;
//! - `fail-start`: a service whose `start` fails;
//! - `fail-service`: a background service that fails after 100 ms;
//! - `stop-error`: a service whose `stop` fails;
//! - `ignores-token`: a background service that ignores its token, with a
//!   50 ms timeout.
//!
//! It prints `started` and `stopping` on stdout as the lifetime events fire.
//!
//! `jitter` is apart: three jobs every hour with up to 59 minutes of
//! jitter, on the system clock with no seed given; it prints how far each
//! one's first tick is from now, in seconds, and stops.

use std::time::Duration;

use hosted::{Host, Job, Phase};
use hosted_tests::{Act, Journal, Probe};

#[tokio::main]
async fn main() -> hosted::Report {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if scenario == "jitter" {
        return jitter().await;
    }
    let journal = Journal::default();
    let mut probe = Probe::new("probe", &journal);
    let mut timeout = Duration::from_secs(60);
    let mut builder = Host::builder().without_registered();
    match scenario.as_str() {
        "clean" => {}
        "stuck" => probe = probe.at(Phase::Stop, Act::Hang),
        "timeout" => {
            probe = probe.at(Phase::Stop, Act::Hang);
            timeout = Duration::from_millis(300);
        }
        "fail-start" => probe = probe.at(Phase::Start, Act::Fail),
        "fail-service" => {
            builder = builder.job(Job::service("doomed", || async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<(), _>("the disk is gone")
            }));
        }
        "stop-error" => probe = probe.at(Phase::Stop, Act::Fail),
        "ignores-token" => {
            builder = builder.job(Job::service("ignores its token", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }));
            timeout = Duration::from_millis(50);
        }
        other => panic!("unknown scenario `{other}`"),
    }
    let host = builder
        .service(probe)
        .job(Job::every("tick", Duration::from_millis(50), || async {}))
        .shutdown_timeout(timeout)
        .build()
        .expect("valid host");
    let lifetime = host.lifetime();
    let printer = tokio::spawn(async move {
        if lifetime.started().await {
            println!("started");
        }
        lifetime.stopping().await;
        println!("stopping");
    });
    let report = host.run().await;
    // `stopping` has fired by now, but the printer may not have run yet: a
    // quick stop used to end the process before it printed.
    let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;
    report
}

async fn jitter() -> hosted::Report {
    let mut builder = Host::builder().without_registered();
    for name in ["a", "b", "c"] {
        builder = builder.job(
            Job::every(name, Duration::from_secs(3600), || async {})
                .jitter(Duration::from_secs(59 * 60)),
        );
    }
    let running = builder
        .build()
        .expect("valid host")
        .start()
        .await
        .expect("startup");
    let now = chrono::Utc::now();
    let offsets: Vec<i64> = running
        .handle()
        .jobs()
        .iter()
        .map(|job| (job.next_run.expect("a next run") - now).num_seconds())
        .collect();
    println!("offsets: {offsets:?}");
    running.stop().await
}
