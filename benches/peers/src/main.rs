//! apalis-cron piped into apalis-postgres, as its docs show, run as three
//! instances of one service sharing one database: each instance's cron
//! stream pushes every tick into the shared queue, and the instances'
//! workers take them. Counts how many times each tick ran.
//!
//! `PEERS_PG` (default `postgres://postgres@127.0.0.1:5432`) names the server;
//! the program creates a database of its own and drops it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use apalis_postgres::{PgPool, PostgresStorage};

type Seen = Arc<Mutex<BTreeMap<u64, u32>>>;

async fn count(tick: Tick, seen: Data<Seen>) -> Result<(), BoxDynError> {
    *seen
        .lock()
        .unwrap()
        .entry(tick.get_timestamp())
        .or_default() += 1;
    Ok(())
}

/// Polls every future until all are done.
async fn futures_join_all<F: std::future::Future<Output = ()> + Unpin>(mut all: Vec<F>) {
    std::future::poll_fn(|cx| {
        all.retain_mut(|f| std::pin::Pin::new(f).poll(cx).is_pending());
        if all.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Prints how many of the window's ticks (leaving out the first and last
/// two seconds) ran once, more than once and never.
fn report(who: &str, seen: &BTreeMap<u64, u32>) {
    let ticks: Vec<u64> = seen.keys().copied().collect();
    let (Some(first), Some(last)) = (ticks.get(2).copied(), ticks.iter().rev().nth(2).copied())
    else {
        println!("{who}: no ticks ran");
        return;
    };
    let (mut once, mut more, mut never, mut runs) = (0, 0, 0, 0);
    for t in first..=last {
        let n = seen.get(&t).copied().unwrap_or(0);
        runs += n;
        match n {
            0 => never += 1,
            1 => once += 1,
            _ => more += 1,
        }
    }
    println!(
        "{who}, 3 instances, `* * * * * *`: {} ticks, {runs} runs: {once} once, {more} more than once, {never} never",
        last - first + 1
    );
}

#[tokio::main]
async fn main() {
    let base = std::env::var("PEERS_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let seconds: u64 = std::env::var("PEERS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let name = format!("hosted_peers_{}", std::process::id());
    let (admin, connection) =
        tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{base}/{name}");
    let setup = PgPool::connect(&url).await.unwrap();
    PostgresStorage::<()>::setup(&setup).await.unwrap();

    let seen: Seen = Arc::default();
    let mut workers = Vec::new();
    for instance in 0..3 {
        let pool = PgPool::connect(&url).await.unwrap();
        let schedule = cron::Schedule::from_str("* * * * * *").unwrap();
        let backend = CronScheduler::new(schedule).pipe_to(PostgresStorage::new(&pool));
        let worker = WorkerBuilder::new(format!("instance-{instance}"))
            .backend(backend)
            .data(seen.clone())
            .build(count);
        workers.push(Box::pin(async move {
            let _ = worker.run().await;
        }));
    }
    // Not spawned: the three workers run on this task, until the window ends.
    let _ = tokio::time::timeout(Duration::from_secs(seconds + 4), futures_join_all(workers)).await;
    report(
        "apalis-cron + apalis-postgres",
        &seen.lock().unwrap().clone(),
    );
    drop(setup);

    // tokio-cron-scheduler with its PostgreSQL stores, as its example
    // sets them up, three instances, each adding the service's job.
    std::env::set_var("POSTGRES_URL", &url);
    std::env::set_var("POSTGRES_INIT_METADATA", "true");
    std::env::set_var("POSTGRES_INIT_NOTIFICATIONS", "true");
    let seen: Seen = Arc::default();
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        use tokio_cron_scheduler::{
            Job, JobScheduler, PostgresMetadataStore, PostgresNotificationStore, SimpleJobCode,
            SimpleNotificationCode,
        };
        let scheduler = JobScheduler::new_with_storage_and_code(
            Box::new(PostgresMetadataStore::default()),
            Box::new(PostgresNotificationStore::default()),
            Box::new(SimpleJobCode::default()),
            Box::new(SimpleNotificationCode::default()),
            200,
        )
        .await
        .expect("tokio-cron-scheduler on PostgreSQL");
        let seen = seen.clone();
        let job = Job::new_async("* * * * * *", move |_, _| {
            let seen = seen.clone();
            Box::pin(async move {
                let second = chrono::Utc::now().timestamp() as u64;
                *seen.lock().unwrap().entry(second).or_default() += 1;
            })
        })
        .unwrap();
        scheduler.add(job).await.unwrap();
        scheduler.start().await.unwrap();
        schedulers.push(scheduler);
    }
    tokio::time::sleep(Duration::from_secs(seconds + 4)).await;
    for mut scheduler in schedulers {
        let _ = scheduler.shutdown().await;
    }
    if std::env::var("PEERS_RAW").is_ok() {
        eprintln!("{:?}", seen.lock().unwrap());
    }
    report(
        "tokio-cron-scheduler + its PostgreSQL stores",
        &seen.lock().unwrap().clone(),
    );
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
