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

use hosted::State;
use hosted_postgres::{Payload, Tx};
use support::durable::{Seen, Workload};
use support::pg::TestDb;

#[hosted_postgres::queued(queue = "restart", name = "write-key")]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_loses_nothing_and_wake_ups_resume() {
    let db = TestDb::create().await;
    let work = Workload::start::<write_key>(&db, 2_000).await;
    work.seen_at_least(300).await;
    let status = tokio::task::spawn_blocking(|| restart_command().status())
        .await
        .unwrap()
        .expect("run the restart command");
    assert!(status.success(), "the restart command failed: {status}");
    // The first connection, and one after the restart.
    work.check::<write_key>(&db, 2).await;
}
