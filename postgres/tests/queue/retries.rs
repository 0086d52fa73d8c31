//! What happens to durable items that fail: a failed or panicking attempt
//! is retried with a backoff, the last one dead-letters the item with the
//! history of its attempts, a payload that cannot be read is dead-lettered
//! at once, and dead letters are retried, discarded or cancelled from the
//! queue's handle. A completion whose claim is no longer current is
//! rejected, and with `Tx` the handler's writes go with it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::work::WorkItem;
use hosted::{CancellationToken, Host, RunningHost, State};
use hosted_postgres::{tokio_postgres, DurableQueue, ItemFilter, Payload, Tx};
use serde::{Deserialize, Serialize};
use support::pg::{durable_fast, TestDb};
use support::wait_until;

#[derive(Serialize, Deserialize)]
struct Task {
    /// Attempts that fail before one succeeds.
    fail: u32,
    /// Whether failing attempts panic rather than return an error.
    panic: bool,
}

#[hosted_postgres::queued(queue = "flaky", max_attempts = 3, backoff = "50ms..100ms")]
async fn flaky(Payload(task): Payload<Task>, item: WorkItem) -> Result<(), String> {
    if item.attempt() <= task.fail {
        if task.panic {
            panic!("attempt {} blew up", item.attempt());
        }
        return Err(format!("attempt {} failed", item.attempt()));
    }
    Ok(())
}

/// Gate of the handlers that wait: the test opens it.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<tokio::sync::Notify>,
    entered: Arc<AtomicU32>,
}

#[hosted_postgres::queued(queue = "slow", name = "waits-at-the-gate")]
async fn waits(
    Payload(key): Payload<String>,
    tx: Tx,
    State(gate): State<Gate>,
) -> Result<(), String> {
    tx.execute("INSERT INTO effects (key) VALUES ($1)", &[&key])
        .await
        .map_err(|e| e.to_string())?;
    gate.entered.fetch_add(1, Ordering::SeqCst);
    gate.open.notified().await;
    Ok(())
}

#[hosted_postgres::queued(queue = "slow", name = "honours-cancel")]
async fn honours_cancel(token: CancellationToken, State(gate): State<Gate>) -> Result<(), String> {
    gate.entered.fetch_add(1, Ordering::SeqCst);
    token.cancelled().await;
    Err("cancelled".to_owned())
}

async fn start(queue: &DurableQueue, jobs: &[&str], gate: Gate) -> RunningHost {
    Host::builder()
        .only_jobs(jobs.iter().copied())
        .state(gate)
        .durable(queue.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn state_of(queue: &DurableQueue, id: i64, want: &str) -> hosted_postgres::ItemRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let item = queue.item(id).await.unwrap().expect("the item exists");
        if item.state == want || tokio::time::Instant::now() > deadline {
            return item;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn db_and_queue() -> (TestDb, DurableQueue, tokio_postgres::Client) {
    let db = TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE effects (key text NOT NULL)")
        .await
        .unwrap();
    let queue = DurableQueue::connect_with(&db.url, durable_fast())
        .await
        .unwrap();
    (db, queue, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_panicking_attempts_are_retried_then_dead_lettered_with_their_history() {
    let (_db, queue, _client) = db_and_queue().await;
    let host = start(&queue, &["queue_retries::flaky"], Gate::default()).await;
    let recovers = flaky::enqueue(
        &queue,
        Task {
            fail: 1,
            panic: true,
        },
    )
    .await
    .unwrap();
    let dies = flaky::enqueue(
        &queue,
        Task {
            fail: 5,
            panic: false,
        },
    )
    .await
    .unwrap();

    let recovered = state_of(&queue, recovers.id(), "succeeded").await;
    assert_eq!(
        (recovered.state.as_str(), recovered.attempt),
        ("succeeded", 2)
    );
    assert!(
        recovered.attempts.contains("panicked: attempt 1 blew up"),
        "{}",
        recovered.attempts
    );

    let dead = state_of(&queue, dies.id(), "dead").await;
    assert_eq!((dead.state.as_str(), dead.attempt), ("dead", 3));
    assert_eq!(dead.error.as_deref(), Some("attempt 3 failed"));
    for n in 1..=3 {
        assert!(
            dead.attempts.contains(&format!("attempt {n} failed")),
            "{}",
            dead.attempts
        );
    }
    let letters = queue.dead_letters(Some("flaky"), 10).await.unwrap();
    assert_eq!(
        letters.iter().map(|l| l.id).collect::<Vec<_>>(),
        [dies.id()]
    );
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts[0].dead, 1);

    // Retried from the handle: one more attempt, which fails again.
    assert_eq!(queue.retry(&ItemFilter::id(dies.id())).await.unwrap(), 1);
    let again = state_of(&queue, dies.id(), "dead").await;
    assert_eq!((again.state.as_str(), again.attempt), ("dead", 4));
    // Discarded: no longer a dead letter.
    assert_eq!(
        queue
            .discard(&ItemFilter::all().queue("flaky"))
            .await
            .unwrap(),
        1
    );
    assert!(queue.dead_letters(None, 10).await.unwrap().is_empty());
    assert_eq!(
        queue.item(dies.id()).await.unwrap().unwrap().state,
        "discarded"
    );

    assert!(host.stop().await.is_clean());
    let stats = queue.stats();
    assert_eq!((stats.succeeded, stats.dead), (1, 2));
    assert_eq!(stats.retried, 1 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_cannot_be_read_is_dead_lettered_at_once_with_its_error() {
    let (_db, queue, client) = db_and_queue().await;
    let host = start(&queue, &["queue_retries::flaky"], Gate::default()).await;
    // What an older release enqueued: the type has changed since.
    let id: i64 = client
        .query_one(
            "INSERT INTO hosted.items (queue, handler, payload, max_attempts)
             VALUES ('flaky', 'queue_retries::flaky', '{\"fails\": \"two\"}', 3) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let dead = state_of(&queue, id, "dead").await;
    assert_eq!(
        (dead.state.as_str(), dead.attempt),
        ("dead", 1),
        "dead at the first attempt"
    );
    let error = dead.error.unwrap();
    assert!(
        error.contains("does not read as `queue_retries::Task`"),
        "{error}"
    );
    assert!(error.contains("missing field `fail`"), "{error}");
    assert!(host.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_after_the_claim_moved_on_is_rejected_and_its_writes_rolled_back() {
    let (_db, queue, client) = db_and_queue().await;
    let gate = Gate::default();
    let host = start(&queue, &["waits-at-the-gate"], gate.clone()).await;
    let written = waits::enqueue(&queue, "first".to_owned()).await.unwrap();
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another claim took the item over (as after a pause past the lease).
    client
        .execute(
            "UPDATE hosted.items SET fence = fence + 1000 WHERE id = $1",
            &[&written.id()],
        )
        .await
        .unwrap();
    // The renewal sees it and cancels the run's token; the handler goes
    // on regardless and completes.
    wait_until(
        Duration::from_secs(10),
        || queue.stats().lost == 1,
        || format!("{:?}", queue.stats()),
    )
    .await;
    gate.open.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while queue.stats().stale == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = queue.stats();
    assert_eq!((stats.stale, stats.lost, stats.succeeded), (1, 1, 0));
    let item = queue.item(written.id()).await.unwrap().unwrap();
    assert_eq!(item.state, "running", "the newer claim's item is untouched");
    let effects: i64 = client
        .query_one("SELECT count(*) FROM effects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        effects, 0,
        "the stale attempt's write was rolled back with its completion"
    );
    let _ = host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_writing_through_tx_commits_with_its_completion() {
    let (_db, queue, client) = db_and_queue().await;
    let gate = Gate::default();
    let host = start(&queue, &["waits-at-the-gate"], gate.clone()).await;
    let written = waits::enqueue(&queue, "kept".to_owned()).await.unwrap();
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let effects: i64 = client
        .query_one("SELECT count(*) FROM effects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(effects, 0, "not visible before the completion commits");
    gate.open.notify_waiters();
    let item = state_of(&queue, written.id(), "succeeded").await;
    assert_eq!(item.state, "succeeded");
    let effects: i64 = client
        .query_one("SELECT count(*) FROM effects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(effects, 1);
    assert!(host.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_waiting_item_at_once_and_a_running_one_through_its_token() {
    let (_db, queue, _client) = db_and_queue().await;
    let gate = Gate::default();
    let host = start(&queue, &["honours-cancel"], gate.clone()).await;
    let running = honours_cancel::enqueue(&queue, ()).await.unwrap();
    let waiting = honours_cancel::enqueue(&queue, ())
        .delay(Duration::from_secs(60))
        .await
        .unwrap();
    while gate.entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = queue
        .cancel(&ItemFilter::all().handler("honours-cancel"))
        .await
        .unwrap();
    assert_eq!((cancelled.waiting, cancelled.running), (1, 1));
    assert_eq!(
        queue.item(waiting.id()).await.unwrap().unwrap().state,
        "cancelled"
    );
    let item = state_of(&queue, running.id(), "cancelled").await;
    assert_eq!((item.state.as_str(), item.attempt), ("cancelled", 1));
    // Cancelled items can be retried like dead letters.
    assert_eq!(queue.retry(&ItemFilter::id(waiting.id())).await.unwrap(), 1);
    assert_eq!(
        state_of(&queue, waiting.id(), "running").await.state,
        "running"
    );
    let _ = host.stop().await;
}
