//! Durable queues on one PostgreSQL, in one run: `hosted`'s
//! `DurableQueue`, graphile_worker (the Rust port of Graphile Worker) and
//! apalis-postgres, each on a database of its own on the same server.
//!
//! For each contender:
//! - **burn-down**: `DURABLE_ITEMS` (100,000) items enqueued in batches of
//!   1,000, then worked off by 1 and by 2 instances of `DURABLE_WORKERS`
//!   (16) concurrent workers each (the instances share the process, each
//!   with a pool of its own); items per second from the first start to
//!   the last completion, and the commits and WAL bytes the server wrote
//!   per item (`pg_stat_database.xact_commit`, `pg_current_wal_lsn()`);
//! - **pickup latency**: one instance, idle, `DURABLE_SAMPLES` (300) items
//!   enqueued one at a time, 20 ms apart: from the enqueue's call to the
//!   handler's start, p50 and p99.
//!
//! Each contender runs with LISTEN/NOTIFY where it has it, graphile_worker
//! with its local queue (batch fetching), and the other settings at their
//! defaults. Run with:
//! `cargo run --release --manifest-path benches/durable-peers/Cargo.toml`.
//! `PEERS_PG` (default `postgres://postgres@127.0.0.1:5432`) names the
//! server; `DURABLE_CONTENDERS` (`hosted,graphile,apalis`) picks contenders.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Items done, across every contender's handler.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Where a handler sends the instant it started, in the latency runs.
static STARTED: Mutex<Option<mpsc::UnboundedSender<Instant>>> = Mutex::new(None);

fn note_start() {
    if let Some(tx) = STARTED.lock().unwrap().as_ref() {
        let _ = tx.send(Instant::now());
    }
    DONE.fetch_add(1, Ordering::Relaxed);
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Item {
    n: u64,
}

// ---- hosted ----

#[hosted_postgres::queued(queue = "bench", name = "bench-item")]
async fn hosted_item(hosted_postgres::Payload(_item): hosted_postgres::Payload<Item>) {
    note_start();
}

// ---- graphile_worker ----

impl graphile_worker::TaskHandler for Item {
    const IDENTIFIER: &'static str = "bench_item";

    async fn run(
        self,
        _ctx: graphile_worker::WorkerContext,
    ) -> impl graphile_worker::IntoTaskHandlerResult {
        note_start();
        Ok::<(), String>(())
    }
}

// ---- apalis ----

async fn apalis_item(_item: Item) -> Result<(), apalis::prelude::BoxDynError> {
    note_start();
    Ok(())
}

fn base() -> String {
    std::env::var("PEERS_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&format!("{}/postgres", base()), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL (PEERS_PG)");
    tokio::spawn(connection);
    client
}

/// A fresh database for one measurement.
async fn fresh(name: &str) -> String {
    let admin = admin().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{}/{name}", base())
}

async fn drop_db(name: &str) {
    let _ = admin()
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// The server's commits in `db` and its WAL position.
async fn server_counters(db: &str) -> (i64, i64) {
    let admin = admin().await;
    // Statistics are flushed at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let row = admin
        .query_one(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)::int8,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8",
            &[&db],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[derive(Clone, Copy)]
enum Contender {
    Hosted,
    Graphile,
    Apalis,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Hosted => "hosted",
            Contender::Graphile => "graphile_worker",
            Contender::Apalis => "apalis-postgres",
        }
    }
}

/// A running instance of a contender's workers; dropped to stop it.
enum Instance {
    Hosted(hosted::RunningHost),
    Graphile(
        std::sync::Arc<graphile_worker::Worker>,
        tokio::task::JoinHandle<()>,
    ),
    Apalis(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
}

impl Instance {
    async fn stop(self) {
        match self {
            Instance::Hosted(host) => {
                let _ = host.stop().await;
            }
            Instance::Graphile(worker, task) => {
                worker.request_shutdown();
                let _ = task.await;
            }
            Instance::Apalis(stop, task) => {
                let _ = stop.send(());
                let _ = task.await;
            }
        }
    }
}

async fn setup(contender: Contender, url: &str) {
    match contender {
        Contender::Hosted => {
            hosted_postgres::DurableQueue::connect(url).await.unwrap();
        }
        Contender::Graphile => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let worker = graphile_worker::WorkerOptions::default()
                .pg_pool(pool)
                .schema("graphile_worker")
                .define_job::<Item>()
                .init()
                .await
                .unwrap();
            drop(worker);
        }
        Contender::Apalis => {
            let pool = apalis_postgres::PgPool::connect(url).await.unwrap();
            apalis_postgres::PostgresStorage::<()>::setup(&pool)
                .await
                .unwrap();
        }
    }
}

async fn enqueue(contender: Contender, url: &str, from: u64, count: u64) {
    match contender {
        Contender::Hosted => {
            let queue = hosted_postgres::DurableQueue::connect(url).await.unwrap();
            hosted_item::enqueue_many(&queue, (from..from + count).map(|n| Item { n }))
                .await
                .unwrap();
        }
        Contender::Graphile => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let utils = graphile_worker::WorkerUtils::new(pool, "graphile_worker".to_owned());
            let jobs: Vec<graphile_worker::RawJobSpec> = (from..from + count)
                .map(|n| graphile_worker::RawJobSpec {
                    identifier: "bench_item".to_owned(),
                    payload: serde_json::to_value(Item { n }).unwrap(),
                    spec: graphile_worker::JobSpec::default(),
                })
                .collect();
            utils.add_raw_jobs(&jobs).await.unwrap();
        }
        Contender::Apalis => {
            use apalis::prelude::TaskSink;
            let pool = apalis_postgres::PgPool::connect(url).await.unwrap();
            let mut storage = apalis_postgres::PostgresStorage::<Item>::new(&pool);
            storage
                .push_bulk((from..from + count).map(|n| Item { n }).collect())
                .await
                .unwrap();
        }
    }
}

async fn start(contender: Contender, url: &str, workers: usize) -> Instance {
    match contender {
        Contender::Hosted => {
            let options = hosted_postgres::DurableOptions::default()
                .pool_size(workers.max(4))
                .queue(
                    "bench",
                    hosted_postgres::QueueLimits {
                        per_instance: workers,
                        cluster: None,
                    },
                );
            let queue = hosted_postgres::DurableQueue::connect_with(url, options)
                .await
                .unwrap();
            let host = hosted::Host::builder()
                .only_jobs(["bench-item"])
                .durable(queue)
                .build()
                .unwrap();
            Instance::Hosted(host.start().await.unwrap())
        }
        Contender::Graphile => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(workers.max(4) as u32)
                .connect_with(sqlx::postgres::PgConnectOptions::from_str(url).unwrap())
                .await
                .unwrap();
            // Its local queue (batch fetching): without it, a worker runs
            // one job per notification or poll tick (1 s), so a queue filled
            // before the workers start drains at `workers` jobs a second.
            let worker = std::sync::Arc::new(
                graphile_worker::WorkerOptions::default()
                    .pg_pool(pool)
                    .schema("graphile_worker")
                    .concurrency(workers)
                    .local_queue(
                        graphile_worker::LocalQueueConfig::default().with_size(workers * 4),
                    )
                    .define_job::<Item>()
                    .init()
                    .await
                    .unwrap(),
            );
            let running = worker.clone();
            let task = tokio::spawn(async move {
                let _ = running.run().await;
            });
            Instance::Graphile(worker, task)
        }
        Contender::Apalis => {
            use apalis::prelude::*;
            let pool = apalis_postgres::PgPool::connect_with(
                sqlx::postgres::PgConnectOptions::from_str(url).unwrap(),
            )
            .await
            .unwrap();
            let backend = apalis_postgres::PostgresStorage::<Item>::new(&pool).with_pubsub();
            let worker = WorkerBuilder::new(format!(
                "bench-{}",
                INSTANCE.fetch_add(1, Ordering::Relaxed)
            ))
            .backend(backend)
            .concurrency(workers)
            .build(apalis_item);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = worker
                    .run_until(async move {
                        let _ = stopped.await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await;
            });
            Instance::Apalis(stop, task)
        }
    }
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

struct BurnDown {
    enqueue_per_s: f64,
    per_s: f64,
    commits: f64,
    wal: f64,
}

async fn burn_down(
    contender: Contender,
    instances: usize,
    workers: usize,
    items: u64,
) -> Option<BurnDown> {
    let db = format!(
        "durable_bench_{}_{instances}",
        contender.name().replace('-', "_")
    );
    let url = fresh(&db).await;
    setup(contender, &url).await;
    let began = Instant::now();
    for batch in 0..items.div_ceil(1_000) {
        let from = batch * 1_000;
        enqueue(contender, &url, from, 1_000.min(items - from)).await;
    }
    let enqueue_per_s = items as f64 / began.elapsed().as_secs_f64();
    let (commits_before, wal_before) = server_counters(&db).await;
    DONE.store(0, Ordering::SeqCst);
    let began = Instant::now();
    let mut running = Vec::new();
    for _ in 0..instances {
        running.push(start(contender, &url, workers).await);
    }
    let limit = Duration::from_secs(env_or("DURABLE_LIMIT_SECS", 180));
    let deadline = began + limit;
    while DONE.load(Ordering::Relaxed) < items {
        if Instant::now() > deadline {
            eprintln!(
                "{} with {instances} instance(s): {} of {items} done after {limit:?}; giving up",
                contender.name(),
                DONE.load(Ordering::Relaxed)
            );
            for instance in running {
                instance.stop().await;
            }
            drop_db(&db).await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = began.elapsed();
    // Let the last completions commit before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (commits_after, wal_after) = server_counters(&db).await;
    for instance in running {
        instance.stop().await;
    }
    drop_db(&db).await;
    Some(BurnDown {
        enqueue_per_s,
        per_s: items as f64 / took.as_secs_f64(),
        commits: (commits_after - commits_before) as f64 / items as f64,
        wal: (wal_after - wal_before) as f64 / items as f64,
    })
}

async fn latency(contender: Contender, samples: u64) -> (Duration, Duration) {
    let db = format!("durable_latency_{}", contender.name().replace('-', "_"));
    let url = fresh(&db).await;
    setup(contender, &url).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    *STARTED.lock().unwrap() = Some(tx);
    let running = start(contender, &url, 4).await;
    // Let the workers go idle, listening.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while rx.try_recv().is_ok() {}
    let enqueuer = Enqueuer::new(contender, &url).await;
    let mut waits = Vec::new();
    for n in 0..samples {
        let sent = Instant::now();
        enqueuer.one(n).await;
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(at)) => waits.push(at.saturating_duration_since(sent)),
            _ => {
                eprintln!("{}: item {n} did not start within 10 s", contender.name());
                waits.push(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *STARTED.lock().unwrap() = None;
    running.stop().await;
    drop_db(&db).await;
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Enqueues single items through a connection kept open, as a service does.
enum Enqueuer {
    Hosted(hosted_postgres::DurableQueue),
    Graphile(graphile_worker::WorkerUtils),
    Apalis(tokio::sync::Mutex<apalis_postgres::PostgresStorage<Item>>),
}

impl Enqueuer {
    async fn new(contender: Contender, url: &str) -> Enqueuer {
        match contender {
            Contender::Hosted => {
                Enqueuer::Hosted(hosted_postgres::DurableQueue::connect(url).await.unwrap())
            }
            Contender::Graphile => Enqueuer::Graphile(graphile_worker::WorkerUtils::new(
                sqlx::PgPool::connect(url).await.unwrap(),
                "graphile_worker".to_owned(),
            )),
            Contender::Apalis => {
                Enqueuer::Apalis(tokio::sync::Mutex::new(apalis_postgres::PostgresStorage::<
                    Item,
                >::new(
                    &apalis_postgres::PgPool::connect(url).await.unwrap(),
                )))
            }
        }
    }

    async fn one(&self, n: u64) {
        match self {
            Enqueuer::Hosted(queue) => {
                hosted_item::enqueue(queue, Item { n }).await.unwrap();
            }
            Enqueuer::Graphile(utils) => {
                utils
                    .add_raw_job(
                        "bench_item",
                        Item { n },
                        graphile_worker::JobSpec::default(),
                    )
                    .await
                    .unwrap();
            }
            Enqueuer::Apalis(storage) => {
                use apalis::prelude::TaskSink;
                storage.lock().await.push(Item { n }).await.unwrap();
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let items = env_or("DURABLE_ITEMS", 100_000);
    let workers = env_or("DURABLE_WORKERS", 16) as usize;
    let samples = env_or("DURABLE_SAMPLES", 300);
    let contenders: Vec<Contender> = std::env::var("DURABLE_CONTENDERS")
        .unwrap_or_else(|_| "hosted,graphile,apalis".to_owned())
        .split(',')
        .filter_map(|c| match c.trim() {
            "hosted" => Some(Contender::Hosted),
            "graphile" => Some(Contender::Graphile),
            "apalis" => Some(Contender::Apalis),
            _ => None,
        })
        .collect();
    let _ = ONCE.set(());
    println!("durable queues on one PostgreSQL: {items} items, {workers} workers per instance, {samples} latency samples");
    println!();
    println!("| contender | enqueue items/s | 1 instance items/s | 2 instances items/s | commits/item | WAL bytes/item | pickup p50 | pickup p99 |");
    println!("|---|---|---|---|---|---|---|---|");
    for contender in contenders {
        let one = burn_down(contender, 1, workers, items).await;
        let two = burn_down(contender, 2, workers, items).await;
        let (p50, p99) = latency(contender, samples).await;
        let rate = |b: &Option<BurnDown>| {
            b.as_ref()
                .map_or("failed".to_owned(), |b| format!("{:.0}", b.per_s))
        };
        let (enq, commits, wal) =
            one.as_ref()
                .map_or(("-".to_owned(), "-".to_owned(), "-".to_owned()), |b| {
                    (
                        format!("{:.0}", b.enqueue_per_s),
                        format!("{:.2}", b.commits),
                        format!("{:.0}", b.wal),
                    )
                });
        println!(
            "| {} | {enq} | {} | {} | {commits} | {wal} | {:.2} ms | {:.2} ms |",
            contender.name(),
            rate(&one),
            rate(&two),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        );
    }
}

static ONCE: OnceLock<()> = OnceLock::new();
