//! Work that survives a killed process: `node queue` worker processes on a
//! database of their own, one killed with SIGKILL in the middle of 10,000
//! items, one stopped with SIGSTOP past its lease and then continued.
//! Every handler writes its key to `effects`, a table without a unique
//! constraint: an item run twice shows as two rows, one lost as none.
//!
//! The tests take turns: each runs two worker processes, and on two cores
//! two sets at once would measure the machine, not the queue.

use std::sync::Mutex;
use std::time::Duration;

use hosted_postgres::tokio_postgres;
use support::node::{instance_of, runtime};
use support::pg::TestDb;
use support::process::Process;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Items enqueued for the kill test.
const ITEMS: i64 = 10_000;
/// Items a node runs at once (`node queue`'s limit).
const IN_FLIGHT: i64 = 16;
/// The nodes' lease and rescue interval: redelivery is promised within
/// their sum.
const LEASE: Duration = Duration::from_millis(1500);
const RESCUE_EVERY: Duration = Duration::from_millis(300);

fn node(db: &TestDb, mode: &str, n: usize) -> Process {
    support::node::start(env!("CARGO_BIN_EXE_node"), db, "queue", mode, n)
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Enqueues `ITEMS` keyed items for `handler` in batches of 1,000.
async fn enqueue(db: &TestDb, handler: &str) {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE effects (key text NOT NULL, instance text NOT NULL, attempt int)",
        )
        .await
        .unwrap();
    let queue = hosted_postgres::DurableQueue::connect(&db.url)
        .await
        .unwrap();
    drop(queue);
    for batch in 0..ITEMS / 1_000 {
        client
            .execute(
                "INSERT INTO hosted.items (queue, handler, payload, max_attempts, key)
                 SELECT 'keys', $1, to_jsonb('k' || n), 10, 'k' || n
                 FROM generate_series($2::int8, $2::int8 + 999) AS n",
                &[&handler, &(batch * 1_000)],
            )
            .await
            .unwrap();
    }
}

struct KillOutcome {
    distinct: i64,
    rows: i64,
    /// The rescued items' redelivery: from the kill to the last rescue
    /// that handed one of them out again, both in the database's time.
    redelivery: Duration,
    rescued: i64,
}

fn kill_mid_run(mode: &str) -> KillOutcome {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let db = rt.block_on(TestDb::create());
    rt.block_on(enqueue(&db, mode));
    let client = rt.block_on(db.client());
    let victim = node(&db, mode, 1);
    let victim_id = instance_of(&victim);
    let survivor = node(&db, mode, 2);
    // Once 500 are done, SIGKILL the first node in the middle of its work.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rt.block_on(one(&client, "SELECT count(*) FROM effects")) < 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "500 items did not run within 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.signal(libc::SIGKILL);
    let killed_at: chrono::DateTime<chrono::Utc> = rt
        .block_on(client.query_one("SELECT now()", &[]))
        .unwrap()
        .get(0);
    let (status, _) = victim.exit();
    assert!(!status.success());
    let held: i64 = rt.block_on(async {
        client
            .query_one(
                "SELECT count(*) FROM hosted.items WHERE state = 'running' AND holder = $1",
                &[&victim_id],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert!(held <= IN_FLIGHT, "the killed node held {held} items");
    // The survivor finishes everything, the dead node's items included.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = rt.block_on(one(&client, "SELECT count(*) FROM hosted.items"));
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} items left after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    survivor.signal(libc::SIGTERM);
    let (status, output) = survivor.exit();
    assert!(status.success(), "{output}");
    rt.block_on(async {
        let succeeded = one(
            &client,
            "SELECT count(*) FROM hosted.finished WHERE state = 'succeeded'",
        )
        .await;
        assert_eq!(succeeded, ITEMS, "every item finished");
        // The rescued items: their first attempt was the dead node's.
        let rescued = one(
            &client,
            "SELECT count(*) FROM hosted.finished WHERE errors::text LIKE '%lease ran out%'",
        )
        .await;
        // When the last of the dead node's items was handed out again: the
        // rescue records its instant in the item's attempts.
        let rescued_at: Option<chrono::DateTime<chrono::Utc>> = client
            .query_one(
                "SELECT max((e->>'at')::timestamptz)
                 FROM hosted.finished, jsonb_array_elements(errors) AS e
                 WHERE e->>'error' LIKE '%lease ran out%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let redelivery = rescued_at
            .map(|at| (at - killed_at).to_std().unwrap_or_default())
            .unwrap_or_default();
        KillOutcome {
            distinct: one(&client, "SELECT count(DISTINCT key) FROM effects").await,
            rows: one(&client, "SELECT count(*) FROM effects").await,
            redelivery,
            rescued,
        }
    })
}

#[test]
fn a_killed_workers_items_run_elsewhere_within_the_lease_and_none_is_lost() {
    let outcome = kill_mid_run("effect");
    eprintln!(
        "effect rows {}, distinct {}, rescued {}, handed out again {:?} after the kill",
        outcome.rows, outcome.distinct, outcome.rescued, outcome.redelivery
    );
    assert_eq!(outcome.distinct, ITEMS, "every key has an effect");
    let duplicates = outcome.rows - outcome.distinct;
    assert!(
        duplicates <= IN_FLIGHT,
        "{duplicates} duplicates, more than the {IN_FLIGHT} items in flight at the kill"
    );
    assert!(outcome.rescued >= 1, "the killed node held items");
    // The lease, the rescue's interval, and a margin for a loaded machine.
    let promised = LEASE + RESCUE_EVERY + Duration::from_millis(500);
    assert!(
        outcome.redelivery <= promised,
        "handed out again {:?} after the kill; promised within {promised:?}",
        outcome.redelivery
    );
}

#[test]
fn with_the_effect_in_the_completions_transaction_a_kill_leaves_exactly_one_effect_per_item() {
    let outcome = kill_mid_run("tx");
    eprintln!(
        "tx: effect rows {}, distinct {}, rescued {}, handed out again {:?} after the kill",
        outcome.rows, outcome.distinct, outcome.rescued, outcome.redelivery
    );
    assert_eq!(outcome.distinct, ITEMS);
    assert_eq!(outcome.rows, ITEMS, "exactly one effect per item");
    assert!(outcome.rescued >= 1, "the killed node held items");
}

#[test]
fn a_worker_paused_past_its_lease_has_its_late_completion_rejected() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let db = rt.block_on(TestDb::create());
    let client = rt.block_on(async {
        let client = db.client().await;
        client
            .batch_execute(
                "CREATE TABLE effects (key text NOT NULL, instance text NOT NULL, attempt int)",
            )
            .await
            .unwrap();
        client
    });
    let mut paused = node(&db, "slow", 1);
    let paused_id = instance_of(&paused);
    rt.block_on(async {
        client
            .execute(
                "INSERT INTO hosted.items (queue, handler, payload, max_attempts) VALUES ('keys', 'slow', '\"x\"', 5)",
                &[],
            )
            .await
            .unwrap();
    });
    paused.wait_for_line("start x 1");
    paused.signal(libc::SIGSTOP);
    let mut other = node(&db, "slow", 2);
    let other_id = instance_of(&other);
    // Past the lease and the rescue, the other node runs it again.
    other.wait_for_line("start x 2");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rt.block_on(one(&client, "SELECT count(*) FROM hosted.finished")) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second attempt did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    paused.signal(libc::SIGCONT);
    // Its sleep is over: it completes at once, and is rejected.
    std::thread::sleep(Duration::from_millis(1500));
    paused.signal(libc::SIGTERM);
    let (status, output) = paused.exit();
    assert!(status.success(), "{output}");
    let stale: u64 = output
        .lines()
        .find_map(|l| l.strip_prefix("stale ").and_then(|s| s.parse().ok()))
        .expect("the stale line");
    assert_eq!(stale, 1, "the late completion was rejected and counted");
    other.signal(libc::SIGTERM);
    let (status, output) = other.exit();
    assert!(status.success(), "{output}");
    rt.block_on(async {
        let row = client
            .query_one("SELECT state, holder, attempt FROM hosted.finished", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "succeeded");
        assert_eq!(
            row.get::<_, String>(1),
            other_id,
            "the new attempt's result stands"
        );
        assert_eq!(row.get::<_, i32>(2), 2);
        let effects = client
            .query("SELECT instance, attempt FROM effects", &[])
            .await
            .unwrap();
        assert_eq!(
            effects.len(),
            1,
            "the late attempt's write went with its rejected completion"
        );
        assert_eq!(effects[0].get::<_, String>(0), other_id);
        assert_ne!(other_id, paused_id);
    });
}
