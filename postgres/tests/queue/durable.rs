//! The durable queue end to end on a database of its own: items run with
//! their typed payload and the host's arguments, keys deduplicate within
//! their window, delays and priorities order the work, a batch is one
//! statement, and an enqueue inside a transaction exists only if it
//! commits.

use std::time::Duration;

use hosted::work::WorkItem;
use hosted::{Host, RunningHost, State};
use hosted_postgres::deadpool_postgres::Pool;
use hosted_postgres::{
    tokio_postgres, DurableOptions, DurableQueue, Enqueued, Payload, QueueLimits,
};
use serde::{Deserialize, Serialize};
use support::pg::{durable_fast, TestDb};

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
    setup_with(db, durable_fast()).await
}

async fn setup_with(
    db: &TestDb,
    options: DurableOptions,
) -> (DurableQueue, tokio_postgres::Client) {
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE effects (key text NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .await
        .unwrap();
    let queue = DurableQueue::connect_with(&db.url, options).await.unwrap();
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

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_held_for_its_window_whatever_the_items_state() {
    let db = TestDb::create().await;
    let (queue, client) = setup(&db).await;
    let host = start(&queue, &["queue_durable::write_note"]).await;
    let first = write_note::enqueue(&queue, Note { key: "k".into() })
        .key("welcome:7")
        .await
        .unwrap();
    let again = write_note::enqueue(&queue, Note { key: "k".into() })
        .key("welcome:7")
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate(first.id()));
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 1).await,
        1
    );
    // Finished, and still held.
    let later = write_note::enqueue(&queue, Note { key: "k".into() })
        .key("welcome:7")
        .await
        .unwrap();
    assert_eq!(later, Enqueued::Duplicate(first.id()));
    // A key with a short window is free again once it ends.
    let short = write_note::enqueue(&queue, Note { key: "s".into() })
        .key("short")
        .key_window(Duration::from_millis(200))
        .await
        .unwrap();
    assert!(short.is_new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let renewed = write_note::enqueue(&queue, Note { key: "s".into() })
        .key("short")
        .await
        .unwrap();
    assert!(renewed.is_new() && renewed.id() != short.id());
    // In a batch: a key seen earlier in the batch, and one held already.
    let batch =
        write_note::enqueue_many(&queue, ["x", "x", "k", "y"].map(|k| Note { key: k.into() }))
            .key_by(|n| format!("batch:{}", n.key))
            .await
            .unwrap();
    assert!(batch[0].is_new() && batch[3].is_new());
    assert_eq!(batch[1], Enqueued::Duplicate(batch[0].id()));
    assert!(batch[2].is_new(), "`batch:k` was never used");
    // "k", "s" twice, and the batch's "x", "k" and "y".
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 6).await,
        6
    );
    assert!(host.stop().await.is_clean());
    assert_eq!(count(&client, "SELECT count(*) FROM effects").await, 6);
    let stats = queue.stats();
    assert_eq!((stats.enqueued, stats.duplicates), (6, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_statement_and_every_item_runs_once() {
    let db = TestDb::create().await;
    let (queue, client) = setup(&db).await;
    let notes = (0..5_000).map(|i| Note {
        key: format!("n{i}"),
    });
    let written = write_note::enqueue_many(&queue, notes).await.unwrap();
    assert_eq!(written.len(), 5_000);
    assert!(written.iter().all(|w| w.is_new()));
    let host = start(&queue, &["queue_durable::write_note"]).await;
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 5_000).await,
        5_000
    );
    assert!(host.stop().await.is_clean());
    assert_eq!(
        count(&client, "SELECT count(DISTINCT key) FROM effects").await,
        5_000
    );
    assert_eq!(count(&client, "SELECT count(*) FROM effects").await, 5_000);
    assert_eq!(
        count(&client, "SELECT count(*) FROM hosted.items").await,
        0,
        "finished items leave the live table"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM hosted.finished WHERE state = 'succeeded'"
        )
        .await,
        5_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_wait_in_database_time_and_priorities_order_the_queue() {
    let db = TestDb::create().await;
    // One at a time, so that the order they start in is the order they
    // are claimed in.
    let one = QueueLimits {
        per_instance: 1,
        cluster: None,
    };
    let (queue, client) = setup_with(&db, durable_fast().queue("notes", one)).await;
    let late = write_note::enqueue(&queue, Note { key: "late".into() })
        .delay(Duration::from_millis(800))
        .await
        .unwrap();
    for (key, priority) in [("low", -5), ("mid", 0), ("high", 5)] {
        write_note::enqueue(&queue, Note { key: key.into() })
            .priority(priority)
            .await
            .unwrap();
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].due, counts[0].scheduled), (3, 1));
    let host = Host::builder()
        .only_jobs(["queue_durable::write_note"])
        .state(Effects(queue.pool().clone()))
        .durable(queue.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 4).await,
        4
    );
    assert!(host.stop().await.is_clean());
    let order: Vec<String> = client
        .query("SELECT key FROM effects ORDER BY at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, ["high", "mid", "low", "late"]);
    let item = queue.item(late.id()).await.unwrap().unwrap();
    let waited = item.started.unwrap() - item.enqueued;
    assert!(waited >= chrono::TimeDelta::milliseconds(800), "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_inside_a_transaction_exists_only_if_it_commits() {
    let db = TestDb::create().await;
    let (queue, mut client) = setup(&db).await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY)")
        .await
        .unwrap();
    let host = start(&queue, &["queue_durable::write_note"]).await;
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO orders VALUES (1)", &[])
            .await
            .unwrap();
        write_note::enqueue(
            &queue,
            Note {
                key: "rolled back".into(),
            },
        )
        .on(&tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
    }
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO orders VALUES (2)", &[])
            .await
            .unwrap();
        write_note::enqueue(
            &queue,
            Note {
                key: "committed".into(),
            },
        )
        .on(&tx)
        .await
        .unwrap();
        // Not visible, so not run, before the commit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = db.client().await;
        assert_eq!(count(&other, "SELECT count(*) FROM effects").await, 0);
        assert_eq!(count(&other, "SELECT count(*) FROM hosted.items").await, 0);
        tx.commit().await.unwrap();
    }
    assert_eq!(
        wait_for(&client, "SELECT count(*) FROM effects", 1).await,
        1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(host.stop().await.is_clean());
    let keys: Vec<String> = client
        .query("SELECT key FROM effects", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["committed"]);
    assert_eq!(count(&client, "SELECT count(*) FROM hosted.items").await, 0);
    assert_eq!(
        count(&client, "SELECT count(*) FROM hosted.finished").await,
        1
    );
}

/// `estimated_counts`: a live table larger than the bound, by the
/// catalog's estimate, is sampled and its counts marked estimated; one
/// within it is counted exactly, as `counts` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_sampled_and_a_small_one_counted() {
    let db = TestDb::create().await;
    let (queue, client) = setup(&db).await;
    let notes = (0..3_000).map(|i| Note {
        key: format!("e{i}"),
    });
    write_note::enqueue_many(&queue, notes)
        .delay(Duration::from_secs(3600))
        .await
        .unwrap();
    // The catalog's estimate, as autovacuum would leave it.
    client.batch_execute("ANALYZE hosted.items").await.unwrap();

    let exact = queue.counts().await.unwrap();
    assert_eq!(exact.len(), 1);
    assert_eq!((exact[0].scheduled, exact[0].estimated), (3_000, false));
    assert_eq!(queue.estimated_counts(1_000_000).await.unwrap(), exact);

    let sampled = queue.estimated_counts(1_000).await.unwrap();
    assert_eq!(sampled.len(), 1, "{sampled:?}");
    let notes = &sampled[0];
    assert!(notes.estimated, "{notes:?}");
    assert_eq!(notes.queue, "notes");
    // About a third of the pages read, the count scaled back up.
    assert!(notes.scheduled > 0 && notes.scheduled < 9_000, "{notes:?}");
    assert_eq!((notes.due, notes.running, notes.dead), (0, 0, 0));
}
