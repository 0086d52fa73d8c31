//! Cluster scheduling on PostgreSQL: three instances (three hosts in this
//! process, each with its own pool) share N jobs that run every second,
//! against one in-process host with the same N jobs, in the same run.
//!
//! For each size it prints: the share of ticks that ran exactly once, the
//! duplicates and misses, the p50 and p99 lateness of both, the database
//! statements and commits per tick, and the CPU per tick of this process
//! and of the database server, each beside the in-process host's.
//!
//! `CLUSTER_SIZES` (default `1000,10000`), `CLUSTER_SECONDS` (default 12)
//! and `CLUSTER_PG` (default `postgres://postgres@127.0.0.1:5432`) change
//! the sizes, the length of each phase and the server. The bench creates a
//! database of its own and drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::{Host, Job, Run, State};
use hosted_benches::{cpu_time, cpu_time_of, env_count, Histogram};
use hosted_postgres::tokio_postgres::{self, NoTls};
use hosted_postgres::{Cluster, ClusterOptions};

/// What the runs of one phase saw.
#[derive(Clone, Default)]
struct Seen {
    /// Runs by (job, tick in milliseconds).
    runs: Arc<Mutex<HashMap<(u32, i64), u32>>>,
    late: Arc<Histogram>,
}

async fn observe(run: Run, State(seen): State<Seen>) {
    let late = (Utc::now() - run.scheduled()).to_std().unwrap_or_default();
    seen.late.record(late);
    let job: u32 = run.job()[4..].parse().unwrap_or(u32::MAX);
    *seen
        .runs
        .lock()
        .unwrap()
        .entry((job, run.scheduled().timestamp_millis()))
        .or_default() += 1;
}

fn jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| Job::every(format!("job-{i}"), Duration::from_secs(1), observe))
        .collect()
}

/// CPU time of every `postgres` process on this machine: the server's.
fn database_cpu() -> Duration {
    let mut total = Duration::ZERO;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return total;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        total += cpu_time_of(&path);
    }
    total
}

async fn commits(client: &tokio_postgres::Client, db: &str) -> i64 {
    client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await
        .unwrap()
        .get(0)
}

struct Figures {
    /// Every (job, tick) that ran in the phase, window or not.
    all_ticks: u64,
    ticks: u64,
    once: u64,
    twice: u64,
    missed: u64,
    p50: u64,
    p99: u64,
    cpu: Duration,
    db_cpu: Duration,
}

/// Counts, over the ticks from `from` to `to`, those that ran once, more
/// than once, and never.
fn tally(seen: &Seen, n: usize, from: DateTime<Utc>, to: DateTime<Utc>) -> (u64, u64, u64, u64) {
    let runs = seen.runs.lock().unwrap();
    let mut ticks: Vec<i64> = runs
        .keys()
        .map(|(_, t)| *t)
        .filter(|t| *t >= from.timestamp_millis() && *t < to.timestamp_millis())
        .collect();
    ticks.sort_unstable();
    ticks.dedup();
    let (mut once, mut twice, mut missed) = (0, 0, 0);
    for tick in &ticks {
        for job in 0..n as u32 {
            match runs.get(&(job, *tick)).copied().unwrap_or(0) {
                0 => missed += 1,
                1 => once += 1,
                _ => twice += 1,
            }
        }
    }
    (ticks.len() as u64 * n as u64, once, twice, missed)
}

async fn phase(
    n: usize,
    seconds: u64,
    url: Option<&str>,
    instances: usize,
) -> (Figures, Vec<hosted_postgres::ClusterStats>) {
    let seen = Seen::default();
    let mut hosts = Vec::new();
    let mut clusters = Vec::new();
    for _ in 0..instances {
        let mut builder = Host::builder()
            .without_registered()
            .state(seen.clone())
            .shutdown_timeout(Duration::from_secs(30));
        for job in jobs(n) {
            builder = builder.job(job);
        }
        if let Some(url) = url {
            let options = ClusterOptions::default().pool_size(4);
            let cluster = Cluster::connect_with(url, options).await.expect("connect");
            clusters.push(cluster.clone());
            builder = builder.cluster(cluster);
        }
        hosts.push(
            builder
                .build()
                .expect("a valid host")
                .start()
                .await
                .expect("start"),
        );
    }
    // Two seconds to settle, then the measured window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    seen.late.clear();
    let (cpu0, db0, from) = (cpu_time(), database_cpu(), Utc::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu, db_cpu, to) = (cpu_time() - cpu0, database_cpu() - db0, Utc::now());
    let stats = clusters.iter().map(Cluster::stats).collect();
    for host in hosts {
        let _ = host.stop().await;
    }
    // Whole seconds inside the window.
    let from = DateTime::from_timestamp(from.timestamp() + 1, 0).unwrap();
    let to = DateTime::from_timestamp(to.timestamp(), 0).unwrap();
    let (ticks, once, twice, missed) = tally(&seen, n, from, to);
    let all_ticks = seen.runs.lock().unwrap().len() as u64;
    let figures = Figures {
        all_ticks,
        ticks,
        once,
        twice,
        missed,
        p50: seen.late.quantile(0.5).unwrap_or(0),
        p99: seen.late.quantile(0.99).unwrap_or(0),
        cpu,
        db_cpu,
    };
    (figures, stats)
}

fn per_tick(d: Duration, ticks: u64) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6 / ticks.max(1) as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("CLUSTER_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds = env_count("CLUSTER_SECONDS", 12) as u64;
    let base = std::env::var("CLUSTER_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let name = format!("hosted_bench_{}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(&format!("{base}/postgres"), NoTls)
        .await
        .expect("PostgreSQL (set CLUSTER_PG)");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{base}/{name}");

    println!("cluster scheduling: 3 instances x N jobs every 1 s vs one in-process host, {seconds} s windows");
    for n in sizes {
        let (local, _) = phase(n, seconds, None, 1).await;
        let commits_before = commits(&admin, &name).await;
        let (cluster, stats) = phase(n, seconds, Some(&url), 3).await;
        let commits_after = commits(&admin, &name).await;
        let statements: u64 = stats.iter().map(|s| s.statements).sum();
        let claims: u64 = stats.iter().map(|s| s.claim_statements).sum();
        let ticks = cluster.ticks.max(1);
        println!("\nN = {n}: {} ticks in the window", cluster.ticks);
        println!(
            "  cluster:    exactly once {:.3} %, {} ran twice, {} missed; lateness p50 {} µs, p99 {} µs",
            cluster.once as f64 * 100.0 / ticks as f64,
            cluster.twice,
            cluster.missed,
            cluster.p50,
            cluster.p99
        );
        println!(
            "  in-process: exactly once {:.3} %, lateness p50 {} µs, p99 {} µs",
            local.once as f64 * 100.0 / local.ticks.max(1) as f64,
            local.p50,
            local.p99
        );
        println!(
            "  p99 lateness added by the cluster: {:.1} ms",
            (cluster.p99 as f64 - local.p99 as f64) / 1000.0
        );
        let all = cluster.all_ticks.max(1) as f64;
        println!(
            "  per tick, all 3 instances, the whole phase: {:.4} statements ({:.4} claim statements), {:.4} commits",
            statements as f64 / all,
            claims as f64 / all,
            (commits_after - commits_before) as f64 / all,
        );
        println!(
            "  CPU per tick: this process {} (in-process host {}), database server {} (in-process: {})",
            per_tick(cluster.cpu, ticks),
            per_tick(local.cpu, local.ticks),
            per_tick(cluster.db_cpu, ticks),
            per_tick(local.db_cpu, local.ticks),
        );
    }
    drop(admin);
    let (admin, connection) = tokio_postgres::connect(&format!("{base}/postgres"), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
