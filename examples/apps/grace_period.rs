//! Run with: cargo run -p hosted-example-apps --example grace_period
//!
//! The grace-period manager of eShopOnContainers' ordering service, from
//! the reference on hosted services, in Rust: a background job that finds
//! orders whose grace period is over, moves them on, and publishes an
//! integration event for each.
//!
//! What to watch for:
//!
//! - a real SQLite database (embedded, through `sqlx`) with an `orders`
//!   table, which `place-orders` fills with a new order every 1.5 s;
//! - `grace-period` runs at the interval read from `grace_period.toml`
//!   (2 s, overriding the attribute's 30 s), inside a transaction that is a
//!   scoped value: made for each run, committed when the run succeeds
//!   (then its events are published), rolled back when it fails;
//! - `order-events`, a long-running service, consumes the integration
//!   events from a channel and logs them;
//! - Ctrl+C stops everything within the configured 5 s.
//!
//! Point `GRACE_PERIOD_CONFIG` at another file to change the settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use hosted::prelude::*;
use hosted::{FromRef, HostConfig, Outcome};
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, Mutex};

/// The example's settings file: its own keys, and the host's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    grace_period: String,
    host: HostConfig,
}

/// An integration event, as the ordering service publishes them.
#[derive(Debug)]
enum IntegrationEvent {
    GracePeriodConfirmed { order_id: i64 },
}

/// Where integration events go: a channel that `order-events` drains.
#[derive(Clone)]
struct EventBus {
    tx: mpsc::UnboundedSender<IntegrationEvent>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<IntegrationEvent>>>,
}

#[derive(Clone)]
struct GracePeriod(Duration);

/// Everything the jobs share; each field is a `State<_>` of its own.
#[derive(Clone, FromRef)]
struct AppState {
    pool: SqlitePool,
    events: EventBus,
    grace: GracePeriod,
}

/// One unit of work: a transaction, and the events to publish once it has
/// committed. A scoped value: one per run.
#[derive(Clone)]
struct UnitOfWork(Arc<Mutex<Work>>);

struct Work {
    tx: Option<Transaction<'static, Sqlite>>,
    events: Vec<IntegrationEvent>,
}

impl UnitOfWork {
    async fn begin(pool: SqlitePool) -> sqlx::Result<UnitOfWork> {
        // IMMEDIATE takes the write lock now (waiting for it up to the busy
        // timeout) rather than at the first write, when SQLite could only
        // refuse: two writers, `place-orders` and this, share the database.
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(UnitOfWork(Arc::new(Mutex::new(Work {
            tx: Some(tx),
            events: Vec::new(),
        }))))
    }

    /// After the run: commit and publish on success, roll back otherwise.
    async fn end(self, outcome: Outcome, bus: EventBus) -> anyhow::Result<()> {
        let mut work = self.0.lock().await;
        let tx = work
            .tx
            .take()
            .context("the transaction was already closed")?;
        if outcome.is_success() {
            tx.commit().await?;
            for event in work.events.drain(..) {
                let _ = bus.tx.send(event);
            }
        } else {
            tx.rollback().await?;
            tracing::warn!(%outcome, "rolled back");
        }
        Ok(())
    }
}

#[every("30s", name = "grace-period")]
async fn grace_period_manager(
    Scoped(work): Scoped<UnitOfWork>,
    State(GracePeriod(grace)): State<GracePeriod>,
) -> anyhow::Result<()> {
    let cutoff = Utc::now() - chrono::TimeDelta::from_std(grace)?;
    let mut work = work.0.lock().await;
    let Work { tx, events } = &mut *work;
    let tx = tx.as_mut().context("no transaction")?;
    let due: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'submitted' AND created_at <= ? ORDER BY id",
    )
    .bind(cutoff.timestamp_millis())
    .fetch_all(&mut **tx)
    .await?;
    for &order_id in &due {
        sqlx::query("UPDATE orders SET status = 'awaiting_validation' WHERE id = ?")
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
        events.push(IntegrationEvent::GracePeriodConfirmed { order_id });
    }
    tracing::info!(confirmed = due.len(), "checked the grace period");
    Ok(())
}

#[every("1500ms", name = "place-orders")]
async fn place_orders(run: Run, State(pool): State<SqlitePool>) -> anyhow::Result<()> {
    let id = sqlx::query("INSERT INTO orders (status, created_at) VALUES ('submitted', ?)")
        .bind(run.scheduled().timestamp_millis())
        .execute(&pool)
        .await?
        .last_insert_rowid();
    tracing::info!(order = id, "order placed");
    Ok(())
}

#[hosted_service(name = "order-events")]
async fn order_events(stop: CancellationToken, State(bus): State<EventBus>) {
    let mut rx = bus.rx.lock().await;
    while let Some(Some(event)) = stop.run_until_cancelled(rx.recv()).await {
        match event {
            IntegrationEvent::GracePeriodConfirmed { order_id } => {
                tracing::info!(
                    order = order_id,
                    "grace period confirmed: order awaits validation"
                );
            }
        }
    }
}

async fn database(file: &std::path::Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             status TEXT NOT NULL,
             created_at INTEGER NOT NULL
         )",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

fn settings() -> anyhow::Result<Settings> {
    let path = std::env::var("GRACE_PERIOD_CONFIG")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/grace_period.toml").into());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    toml::from_str(&text).with_context(|| format!("parsing {path}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_target(false)
        .init();

    let settings = settings()?;
    let grace =
        hosted::parse_duration(&settings.grace_period).context("`grace_period` in the settings")?;
    let file = std::env::temp_dir().join(format!("hosted-grace-period-{}.db", std::process::id()));
    let pool = database(&file).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let events = EventBus {
        tx,
        rx: Arc::new(Mutex::new(rx)),
    };

    let report = Host::builder()
        .only_jobs(["grace-period", "place-orders", "order-events"])
        .state(AppState {
            pool,
            events: events.clone(),
            grace: GracePeriod(grace),
        })
        .scoped_with_teardown(
            |State(pool): State<SqlitePool>| UnitOfWork::begin(pool),
            move |work: UnitOfWork, outcome: Outcome| work.end(outcome, events.clone()),
        )
        .config(settings.host)
        .build()?
        .run()
        .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    Ok(report.exit_code())
}
