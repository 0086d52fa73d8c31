//! The durable queue when its connections are cut: every backend of the
//! test's database is terminated mid-run (`pg_terminate_backend`), the
//! listener's included. Nothing is lost or run twice (the handler writes
//! through `Tx`), the counts add up, and wake-ups resume on a new
//! listener connection without a poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::{Host, State};
use hosted_postgres::{tokio_postgres, DurableQueue, Payload, Tx};
use hosted_tests::pg::{durable_fast, TestDb};

#[derive(Clone, Default)]
struct Seen(Arc<AtomicU64>);

#[hosted_postgres::queued(queue = "faults", name = "write-key")]
async fn write_key(
    Payload(key): Payload<String>,
    tx: Tx,
    State(seen): State<Seen>,
) -> Result<(), String> {
    tx.execute("INSERT INTO effects (key) VALUES ($1)", &[&key])
        .await
        .map_err(|e| e.to_string())?;
    seen.0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Terminates every other connection to the test's database.
async fn cut(db: &TestDb) -> i64 {
    let admin = hosted_tests::pg::admin().await;
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap()
        .len() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_lose_nothing_and_wake_ups_resume() {
    let db = TestDb::create().await;
    let setup = db.client().await;
    setup
        .batch_execute("CREATE TABLE effects (key text NOT NULL)")
        .await
        .unwrap();
    // Only a notification wakes an idle worker within the test's time.
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
    write_key::enqueue_many(&queue, (0..3_000).map(|n| format!("k{n}")))
        .await
        .unwrap();
    // Cut twice while the items run.
    for _ in 0..2 {
        while seen.0.load(Ordering::SeqCst) < 500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cut_now = cut(&db).await;
        assert!(
            cut_now >= 2,
            "the pool's connections and the listener's ({cut_now})"
        );
        seen.0.store(0, Ordering::SeqCst);
    }
    let client = db.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while one(&client, "SELECT count(*) FROM hosted.items").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "items left after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        one(&client, "SELECT count(DISTINCT key) FROM effects").await,
        3_000
    );
    assert_eq!(
        one(&client, "SELECT count(*) FROM effects").await,
        3_000,
        "none twice"
    );
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM hosted.finished WHERE state = 'succeeded'"
        )
        .await,
        3_000
    );
    // The listener is back: a new item wakes the idle worker at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.stats().listens < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.0.store(0, Ordering::SeqCst);
    let began = tokio::time::Instant::now();
    write_key::enqueue(&queue, "after".to_owned())
        .await
        .unwrap();
    while seen.0.load(Ordering::SeqCst) == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "no wake-up after the reconnect"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while one(&client, "SELECT count(*) FROM hosted.finished").await < 3_001 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last item did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The counts add up: nothing waits or runs, every item succeeded once.
    let counts = queue.counts().await.unwrap();
    assert!(
        counts
            .iter()
            .all(|c| c.due + c.running + c.scheduled + c.dead == 0),
        "{counts:?}"
    );
    assert_eq!(one(&client, "SELECT count(*) FROM effects").await, 3_001);
    // Every claim is accounted for (the last completion's counter may
    // trail its commit by a moment).
    let accounted = |s: &hosted_postgres::DurableStats| {
        s.succeeded + s.retried + s.stale + s.released + s.dead + s.cancelled
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while accounted(&queue.stats()) < queue.stats().claimed
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = queue.stats();
    assert_eq!(stats.claimed, accounted(&stats), "{stats:?}");
    assert!(running.stop().await.is_clean());
}
