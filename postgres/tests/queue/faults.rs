//! The durable queue when its connections are cut: every backend of the
//! test's database is terminated mid-run (`pg_terminate_backend`), the
//! listener's included, twice. Nothing is lost or run twice (the handler
//! writes through `Tx`), the counts add up, and wake-ups resume on a new
//! listener connection without a poll.

use hosted::State;
use hosted_postgres::{Payload, Tx};
use support::durable::{Seen, Workload};
use support::pg::TestDb;

#[hosted_postgres::queued(queue = "faults", name = "write-key")]
async fn write_key(
    Payload(key): Payload<String>,
    tx: Tx,
    State(seen): State<Seen>,
) -> Result<(), String> {
    tx.execute("INSERT INTO effects (key) VALUES ($1)", &[&key])
        .await
        .map_err(|e| e.to_string())?;
    seen.saw();
    Ok(())
}

/// Terminates every other connection to the test's database.
async fn cut(db: &TestDb) -> usize {
    support::pg::admin()
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_lose_nothing_and_wake_ups_resume() {
    let db = TestDb::create().await;
    let work = Workload::start::<write_key>(&db, 3_000).await;
    for _ in 0..2 {
        work.seen_at_least(500).await;
        let cut_now = cut(&db).await;
        assert!(
            cut_now >= 2,
            "the pool's connections and the listener's ({cut_now})"
        );
    }
    // The first connection, and one after each cut.
    work.check::<write_key>(&db, 3).await;
}
