//! The durable queue across a restart of the database server itself, in
//! the middle of a run: every connection drops, nothing can connect for a
//! moment, and then the server is back. Nothing is lost or run twice, and
//! wake-ups resume.
//!
//! The only test of its binary: it restarts the server every test shares,
//! so it must not run beside another (cargo runs test binaries one after
//! another). The restart command is `HOSTED_TEST_PG_RESTART`, else
//! `pg_ctlcluster` for the one cluster in `/etc/postgresql`, as `.ci/run`
//! starts it. Without either the test fails, saying so.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::{Host, State};
use hosted_postgres::{tokio_postgres, DurableQueue, Payload, Tx};
use hosted_tests::pg::{durable_fast, TestDb};

#[derive(Clone, Default)]
struct Seen(Arc<AtomicU64>);

#[hosted_postgres::queued(queue = "restart", name = "write-key")]
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

fn restart_command() -> Command {
    if let Ok(line) = std::env::var("HOSTED_TEST_PG_RESTART") {
        let mut command = Command::new("sh");
        command.args(["-c", &line]);
        return command;
    }
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let [version] = versions.as_slice() else {
        panic!(
            "cannot tell how to restart PostgreSQL (clusters in /etc/postgresql: {versions:?}); set HOSTED_TEST_PG_RESTART to the command"
        );
    };
    let mut command = Command::new("pg_ctlcluster");
    command.args([
        "--skip-systemctl-redirect",
        version,
        "main",
        "restart",
        "-m",
        "fast",
    ]);
    command
}

async fn one(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_loses_nothing_and_wake_ups_resume() {
    let db = TestDb::create().await;
    let setup = db.client().await;
    setup
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
    write_key::enqueue_many(&queue, (0..2_000).map(|n| format!("k{n}")))
        .await
        .unwrap();
    while seen.0.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = tokio::task::spawn_blocking(|| restart_command().status())
        .await
        .unwrap()
        .expect("run the restart command");
    assert!(status.success(), "the restart command failed: {status}");
    // Wait until the server answers again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        match tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("PostgreSQL did not come back within 30 s: {error}"),
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while one(&client, "SELECT count(*) FROM hosted.items").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "items left 60 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        one(&client, "SELECT count(DISTINCT key) FROM effects").await,
        2_000
    );
    assert_eq!(
        one(&client, "SELECT count(*) FROM effects").await,
        2_000,
        "none twice"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while queue.stats().listens < 2 {
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
            "no wake-up after the restart"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(running.stop().await.is_clean());
}
