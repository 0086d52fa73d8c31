//! The durable queue end to end on a database of its own: items run with
//! their typed payload and the host's arguments, keys deduplicate within
//! their window, delays and priorities order the work, a batch is one
//! statement, and an enqueue inside a transaction exists only if it
//! commits.

use std::time::Duration;

use hosted::work::WorkItem;
use hosted::{Host, RunningHost, State};
use hosted_postgres::deadpool_postgres::Pool;
use hosted_postgres::{tokio_postgres, DurableQueue, Enqueued, Payload};
use hosted_tests::pg::{durable_fast, TestDb};
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct Effects(Pool);

#[derive(Serialize, Deserialize)]
struct Note {
    key: String,
}

#[hosted_postgres::queued(queue = "notes")]
async fn write_note(
    Payload(note): Payload<Note>,
    item: WorkItem,
    State(Effects(pool)): State<Effects>,
) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .execute(
            "INSERT INTO effects (key, attempt) VALUES ($1, $2)",
            &[&note.key, &(item.attempt() as i32)],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn setup(db: &TestDb) -> (DurableQueue, tokio_postgres::Client) {
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE effects (key text NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .await
        .unwrap();
    let queue = DurableQueue::connect_with(&db.url, durable_fast())
        .await
        .unwrap();
    (queue, client)
}

async fn start(queue: &DurableQueue, jobs: &[&str]) -> RunningHost {
    Host::builder()
        .only_jobs(jobs.iter().copied())
        .state(Effects(queue.pool().clone()))
        .durable(queue.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn wait_for(client: &tokio_postgres::Client, sql: &str, want: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        if n >= want || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueued_item_runs_once_with_its_payload_and_the_hosts_state() {
    let db = TestDb::create().await;
    let (queue, client) = setup(&db).await;
    let host = start(&queue, &["queue_durable::write_note"]).await;
    let written = write_note::enqueue(&queue, Note { key: "a".into() })
        .await
        .unwrap();
    assert!(matches!(written, Enqueued::New(_)));
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 1).await,
        1
    );
    let report = host.stop().await;
    assert!(report.is_clean(), "{report}");
    let rows = client
        .query("SELECT key, attempt FROM effects", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "a");
    assert_eq!(rows[0].get::<_, i32>(1), 1);
    let item = queue.item(written.id()).await.unwrap().unwrap();
    assert_eq!(item.state, "succeeded");
    assert_eq!(item.handler, "queue_durable::write_note");
    let stats = queue.stats();
    assert_eq!((stats.enqueued, stats.claimed, stats.succeeded), (1, 1, 1));
}
