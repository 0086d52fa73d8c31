//! The console lines read well: a run's lines name the job once (through
//! its span), a service's lines name the service (and its restart, once
//! restarted) instead of a run number, and queue items and lifecycle
//! services' steps have spans of their own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Backoff, CancellationToken, FailurePolicy, Host, HostedService, Job, TaskQueue};
use hosted_tests::logs::Logs;

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

struct Warmup;

impl HostedService for Warmup {
    type Error = String;

    async fn start(&mut self, _: CancellationToken) -> Result<(), String> {
        tracing::info!("warming up");
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_line_names_its_job_service_item_or_step_once() {
    let (logs, _guard) = Logs::capture(tracing::Level::INFO);
    let clock = TestClock::at(t0());
    let queue = TaskQueue::new(hosted::QueueOptions::default());
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .service(Warmup)
        .queue(queue.clone())
        .job(Job::every("flaky", Duration::from_secs(1), || async {
            Err::<(), _>("the disk is full")
        }))
        .job(
            Job::service("feed", move || {
                let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                async move {
                    tracing::info!("feeding");
                    if attempt == 1 {
                        return Err("lost the connection".to_owned());
                    }
                    std::future::pending::<Result<(), String>>().await
                }
            })
            .on_failure(FailurePolicy::Restart(Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_millis(100),
                max_restarts: 3,
            })),
        )
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    queue
        .try_enqueue_detached("send mail 7", |_| async {
            tracing::info!("sending");
        })
        .unwrap();
    test.advance(Duration::from_millis(500)).await;
    let _ = test.stop().await;

    let lines = logs.lines();
    let one = |needle: &str| {
        let found = logs.matching(needle);
        assert!(
            !found.is_empty(),
            "no line with {needle:?} in:\n{}",
            lines.join("\n")
        );
        found[0].clone()
    };
    let failed = one("run failed");
    assert!(
        failed.contains("run{job=flaky kind=every run=1"),
        "{failed}"
    );
    assert_eq!(failed.matches("job=flaky").count(), 1, "{failed}");

    let fed = logs.matching("feeding");
    assert_eq!(fed.len(), 2, "{fed:#?}");
    assert!(fed[0].contains("service{name=feed}"), "{}", fed[0]);
    assert!(
        fed[1].contains("service{name=feed restart=1}"),
        "{}",
        fed[1]
    );
    assert!(!fed[0].contains("run="), "{}", fed[0]);

    let sent = one("sending");
    assert!(
        sent.contains(r#"item{queue=default item=send mail 7}"#),
        "{sent}"
    );
    let warmed = one("warming up");
    assert!(
        warmed.contains("service{name=Warmup phase=start}"),
        "{warmed}"
    );
}
