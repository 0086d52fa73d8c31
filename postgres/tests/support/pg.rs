//! A PostgreSQL database of its own for each test, dropped afterwards, on
//! the server `.ci/run` makes sure runs (`127.0.0.1:5432`, or the base URL
//! in `HOSTED_TEST_PG`), and the cluster options the tests use: intervals
//! shortened, so that no test sleeps through the defaults.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hosted_postgres::tokio_postgres::{self, NoTls};
use hosted_postgres::ClusterOptions;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The server's base URL, without a database.
pub fn base_url() -> String {
    std::env::var("HOSTED_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database created for one test and dropped (with its connections) when
/// this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!(
            "hosted_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin().await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop a stale test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        TestDb {
            url: format!("{}/{name}", base_url()),
            name,
        }
    }

    /// A plain connection to the test database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// A connection to the server's `postgres` database.
pub async fn admin() -> tokio_postgres::Client {
    connect(&format!("{}/postgres", base_url())).await
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed (`.ci/run` starts it): {e}"));
    tokio::spawn(connection);
    client
}

/// Cluster options with every interval shortened: leases of 1.5 s,
/// renewed every 300 ms, trusted for 1.2 s without contact, triggers and
/// pause flags read every 100 ms, rescues every 300 ms.
pub fn fast() -> ClusterOptions {
    ClusterOptions::default()
        .lease(Duration::from_millis(1500))
        .renew_every(Duration::from_millis(300))
        .trust_window(Duration::from_millis(1200))
        .poll_every(Duration::from_millis(100))
        .rescue_every(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_secs(5))
}

/// Where a test's runs write what they did: a row per run in `observed`
/// (a table the test creates, without a unique constraint, so that a tick
/// that ran twice shows as two rows).
#[derive(Clone)]
pub struct Recorder {
    pub pool: hosted_postgres::deadpool_postgres::Pool,
    pub instance: String,
}

/// A job that writes (job, tick, instance, fence) to `observed`.
pub async fn record(
    run: hosted::Run,
    hosted::cluster::Fence(fence): hosted::cluster::Fence,
    hosted::State(r): hosted::State<Recorder>,
) -> Result<(), String> {
    let client = r.pool.get().await.map_err(|e| e.to_string())?;
    client
        .execute(
            "INSERT INTO observed (job, tick, instance, fence) VALUES ($1, $2, $3, $4)",
            &[&run.job(), &run.scheduled(), &r.instance, &fence],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Durable queue options with every interval shortened: leases of 1.5 s,
/// renewed every 300 ms, trusted for 1.2 s without contact, rescues every
/// 300 ms, a fallback poll every 200 ms and pruning every 200 ms.
pub fn durable_fast() -> hosted_postgres::DurableOptions {
    hosted_postgres::DurableOptions::default()
        .lease(Duration::from_millis(1500))
        .renew_every(Duration::from_millis(300))
        .trust_window(Duration::from_millis(1200))
        .rescue_every(Duration::from_millis(300))
        .poll_every(Duration::from_millis(200))
        .prune_every(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(500))
        .statement_timeout(Duration::from_secs(5))
}
