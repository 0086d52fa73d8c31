//! One worker process of a durable queue, for the tests that kill and
//! pause processes (`queue/processes.rs`).
//!
//! `node queue <database url> <mode>`: it prints `joined <instance id>`
//! once it runs, and at SIGTERM `stale <n>` (completions the queue
//! rejected) before it exits. Its options are shortened like the tests'
//! (`pg::durable_fast`): leases of 1.5 s, rescues every 300 ms.
//!
//! Modes, each a handler of the `keys` queue:
//! - `effect`: writes its key to `effects` on the pool, then completes (at
//!   least once: a kill between the two writes runs it again);
//! - `tx`: writes its key through `Tx`, in its completion's transaction
//!   (exactly once);
//! - `slow`: prints `start <key> <attempt>`, sleeps a second ignoring its
//!   token, and writes `(key, instance, attempt)` through `Tx`.

use std::process::ExitCode;

use crate::{say, Node};
use std::time::Duration;

use hosted::work::WorkItem;
use hosted::{Host, State};
use hosted_postgres::{DurableQueue, Payload, QueueLimits, Tx};

#[hosted_postgres::queued(queue = "keys", name = "effect")]
async fn effect(Payload(key): Payload<String>, State(node): State<Node>) -> Result<(), String> {
    let client = node.pool.get().await.map_err(|e| e.to_string())?;
    client
        .execute(
            "INSERT INTO effects (key, instance) VALUES ($1, $2)",
            &[&key, &node.instance],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[hosted_postgres::queued(queue = "keys", name = "tx")]
async fn in_tx(
    Payload(key): Payload<String>,
    tx: Tx,
    State(node): State<Node>,
) -> Result<(), String> {
    tx.execute(
        "INSERT INTO effects (key, instance) VALUES ($1, $2)",
        &[&key, &node.instance],
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[hosted_postgres::queued(queue = "keys", name = "slow")]
async fn slow(
    Payload(key): Payload<String>,
    item: WorkItem,
    tx: Tx,
    State(node): State<Node>,
) -> Result<(), String> {
    say(format!("start {key} {}", item.attempt()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.execute(
        "INSERT INTO effects (key, instance, attempt) VALUES ($1, $2, $3)",
        &[&key, &node.instance, &(item.attempt() as i32)],
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs the node until SIGTERM.
pub(crate) async fn run(url: &str, mode: &str) -> ExitCode {
    let options = hosted_postgres::DurableOptions::default()
        .lease(Duration::from_millis(1500))
        .renew_every(Duration::from_millis(300))
        .trust_window(Duration::from_millis(1200))
        .rescue_every(Duration::from_millis(300))
        .poll_every(Duration::from_millis(200))
        .queue(
            "keys",
            QueueLimits {
                per_instance: 16,
                cluster: None,
            },
        );
    let queue = DurableQueue::connect_with(url, options)
        .await
        .expect("connect");
    let node = Node {
        pool: queue.pool().clone(),
        instance: queue.instance_id().to_owned(),
    };
    let host = Host::builder()
        .only_jobs([mode])
        .state(node)
        .shutdown_timeout(Duration::from_secs(5))
        .durable(queue.clone())
        .build()
        .expect("configuration");
    let running = match host.start().await {
        Ok(running) => running,
        Err(report) => {
            eprintln!("{report}");
            return ExitCode::from(3);
        }
    };
    say(format!("joined {}", queue.instance_id()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    term.recv().await;
    let report = running.stop().await;
    say(format!("stale {}", queue.stats().stale));
    ExitCode::from(report.code())
}
