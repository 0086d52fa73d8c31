//! Run with: cargo run -p hosted-example-apps --example durable_orders
//!
//! An order and its follow-up work commit together, and the work survives
//! a killed process: the durable queue of `hosted-postgres` on a real
//! PostgreSQL (`DATABASE_URL`, by default the local server's `postgres`
//! database; the example keeps its tables in a schema of its own,
//! `durable_example`).
//!
//! What to watch for:
//!
//! - `place-order`, every 2 s, inserts an order and enqueues its
//!   confirmation **in the same transaction**: the item exists only if the
//!   order does;
//! - `send_confirmation`, a `#[queued]` handler, marks the order confirmed
//!   through `Tx`, the transaction its completion commits in: exactly once,
//!   even if the process is killed between the two;
//! - `charge_card` fails its first attempt on purpose, and is retried after
//!   its backoff;
//! - kill the process (`kill -9`) and start it again: the items it held
//!   run again once their leases run out (a few seconds here), and none is
//!   lost.
//!
//! Ctrl+C stops it: running items get the shutdown timeout, and what did
//! not finish is handed back for the next start.
//!
//! The dashboard (`hosted-dashboard`, as a service of the host on an
//! address of its own, `DASHBOARD_ADDR`, by default 127.0.0.1:9000) shows
//! the durable queues by state, their lag, each item's payload and failed
//! attempts, and the dead letters, with retry and discard.

use std::time::Duration;

use hosted::prelude::*;
use hosted::work::WorkItem;
use hosted_dashboard::{ClusterSource, Dashboard};
use hosted_postgres::{DurableOptions, DurableQueue, Payload, Tx};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Confirmation {
    order: i64,
}

#[derive(Serialize, Deserialize)]
struct Charge {
    order: i64,
    cents: i64,
}

/// Marks the order confirmed in the item's own transaction.
#[hosted_postgres::queued(queue = "orders", name = "send-confirmation")]
async fn send_confirmation(Payload(c): Payload<Confirmation>, tx: Tx) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE durable_example.orders SET confirmed = true WHERE id = $1",
        &[&c.order],
    )
    .await?;
    tracing::info!(order = c.order, "order confirmed");
    Ok(())
}

/// Fails its first attempt, to show the retry.
#[hosted_postgres::queued(
    queue = "payments",
    name = "charge-card",
    max_attempts = 5,
    backoff = "500ms..5s"
)]
async fn charge_card(Payload(charge): Payload<Charge>, item: WorkItem) -> anyhow::Result<()> {
    if item.attempt() == 1 {
        anyhow::bail!("the card network timed out (first attempt)");
    }
    tracing::info!(
        order = charge.order,
        cents = charge.cents,
        attempt = item.attempt(),
        "card charged"
    );
    Ok(())
}

/// Places an order and enqueues its follow-up work in one transaction.
#[every("2s")]
async fn place_order(State(queue): State<DurableQueue>) -> anyhow::Result<()> {
    let mut client = queue.pool().get().await?;
    let tx = client.transaction().await?;
    let order: i64 = tx
        .query_one(
            "INSERT INTO durable_example.orders (cents) VALUES (1999) RETURNING id",
            &[],
        )
        .await?
        .get(0);
    send_confirmation::enqueue(&queue, Confirmation { order })
        .key(format!("confirm:{order}"))
        .on(&*tx)
        .await?;
    charge_card::enqueue(&queue, Charge { order, cents: 1999 })
        .on(&*tx)
        .await?;
    tx.commit().await?;
    tracing::info!(order, "order placed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options = DurableOptions::default()
        .schema("durable_example")
        .lease(Duration::from_secs(5))
        .renew_every(Duration::from_secs(1))
        .trust_window(Duration::from_secs(4))
        .rescue_every(Duration::from_secs(1));
    let queue = DurableQueue::connect_with(&url, options).await?;
    queue
        .pool()
        .get()
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS durable_example.orders (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 cents bigint NOT NULL,
                 confirmed boolean NOT NULL DEFAULT false
             )",
        )
        .await?;
    let dashboard_addr =
        std::env::var("DASHBOARD_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".to_owned());
    let dashboard = Dashboard::with_source(ClusterSource::new().durable(queue.clone()))
        .title("durable_orders")
        .bind(&dashboard_addr)
        .await?;
    println!("the dashboard is on http://{}", dashboard.local_addr());
    let report = Host::builder()
        .state(queue.clone())
        .service(dashboard)
        .durable(queue)
        .shutdown_timeout(Duration::from_secs(5))
        .build()?
        .run()
        .await;
    Ok(report.exit_code())
}
