//! A durable-queue workload for the fault tests (`queue_faults.rs`,
//! `queue_restart.rs`): items whose handler writes its key through `Tx`
//! to `effects` (exactly once), run by one host whose idle workers only
//! a notification wakes (the fallback poll is 30 s away), with checks that
//! nothing was lost or run twice and that wake-ups work after the fault.
//!
//! Each test file declares the handler itself (a `#[queued]` fn in this
//! library would be registered in every test binary), as
//! `write_key(Payload<String>, Tx, State<Seen>)` named `write-key`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::{Host, RunningHost};
use hosted_postgres::{tokio_postgres, Durable, DurableQueue, DurableStats};

use crate::pg::{durable_fast, TestDb};

/// Items the handler has seen since the last [`Workload::seen_at_least`].
#[derive(Clone, Default)]
pub struct Seen(pub Arc<AtomicU64>);

impl Seen {
    pub fn saw(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Workload {
    pub queue: DurableQueue,
    pub seen: Seen,
    pub items: u64,
    running: RunningHost,
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

impl Workload {
    /// Starts a host of `write-key` and enqueues `items` keys for `H`.
    pub async fn start<H: Durable<Payload = String>>(db: &TestDb, items: u64) -> Workload {
        db.client()
            .await
            .batch_execute("CREATE TABLE effects (key text NOT NULL)")
            .await
            .unwrap();
        let queue =
            DurableQueue::connect_with(&db.url, durable_fast().poll_every(Duration::from_secs(30)))
                .await
                .unwrap();
        let seen = Seen::default();
        let running = Host::builder()
            .only_jobs(["write-key"])
            .state(seen.clone())
            .durable(queue.clone())
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        queue
            .enqueue_many::<H>((0..items).map(|n| format!("k{n}")))
            .await
            .unwrap();
        Workload {
            queue,
            seen,
            items,
            running,
        }
    }

    /// Waits until the handler has seen `n` items since the last call.
    pub async fn seen_at_least(&self, n: u64) {
        while self.seen.0.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.seen.0.store(0, Ordering::SeqCst);
    }

    /// After the faults: every item ran exactly once, the counts add up,
    /// the listener connected `listens` times, and one more item for `H`
    /// wakes the idle worker without a poll.
    pub async fn check<H: Durable<Payload = String>>(self, db: &TestDb, listens: u64) {
        let client = loop {
            // The server may still be coming back.
            match tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    break client;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while one(&client, "SELECT count(*) FROM hosted.items").await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "items left after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let items = i64::try_from(self.items).unwrap();
        assert_eq!(
            one(&client, "SELECT count(DISTINCT key) FROM effects").await,
            items
        );
        assert_eq!(
            one(&client, "SELECT count(*) FROM effects").await,
            items,
            "none twice"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.queue.stats().listens < listens {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the listener did not reconnect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.seen.0.store(0, Ordering::SeqCst);
        let began = tokio::time::Instant::now();
        self.queue.enqueue::<H>("after".to_owned()).await.unwrap();
        while self.seen.0.load(Ordering::SeqCst) == 0 {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "no wake-up after the fault"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while one(&client, "SELECT count(*) FROM hosted.finished").await < items + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the last item did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The counts add up: nothing waits or runs, and every claim is
        // accounted for (the last completion's counter may trail its
        // commit by a moment).
        let counts = self.queue.counts().await.unwrap();
        assert!(
            counts
                .iter()
                .all(|c| c.due + c.running + c.scheduled + c.dead == 0),
            "{counts:?}"
        );
        let accounted = |s: &DurableStats| {
            s.succeeded + s.retried + s.stale + s.released + s.dead + s.cancelled
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while accounted(&self.queue.stats()) < self.queue.stats().claimed
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = self.queue.stats();
        assert_eq!(stats.claimed, accounted(&stats), "{stats:?}");
        assert!(self.running.stop().await.is_clean());
    }
}
