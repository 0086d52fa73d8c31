//! One instance of a clustered service, for the tests that kill, pause and
//! restart processes (`cluster/processes.rs`).
//!
//! `node cluster <database url> <mode>`, where the mode is `skip` or `rerun`
//! (the `on_crash` of the job `work`) or `singleton`. It prints `joined
//! <instance id>` once it runs, `start <job> <tick>` as each run starts, and
//! at exit `stale <n>`: the completions the cluster rejected.
//!
//! `work` runs every 500 ms for 300 ms and overlaps (a run's lease held by
//! a dead instance does not hold up the next tick); each run writes a
//! `start` row, then a `finish` row, to `observed`. In `singleton` mode
//! the service `leader` writes `(instance, began, ended)` to `holders`.

use std::process::ExitCode;

use crate::{say, Node};
use std::time::Duration;

use hosted::cluster::{Fence, OnCrash, Placement};
use hosted::{CancellationToken, Host, Job, Overlap, Run, State};
use hosted_postgres::Cluster;

async fn work(run: Run, Fence(fence): Fence, State(node): State<Node>) -> Result<(), String> {
    let tick = run.scheduled().to_rfc3339();
    let write = |phase: &'static str| {
        let node = node.clone();
        let job = run.job().to_owned();
        let tick = run.scheduled();
        async move {
            let client = node.pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    "INSERT INTO observed (job, tick, instance, fence, phase) VALUES ($1, $2, $3, $4, $5)",
                    &[&job, &tick, &node.instance, &fence, &phase],
                )
                .await
                .map_err(|e| e.to_string())
        }
    };
    write("start").await?;
    say(format!("start {} {tick}", run.job()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    write("finish").await?;
    Ok(())
}

async fn leader(stop: CancellationToken, State(node): State<Node>) -> Result<(), String> {
    let client = node.pool.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "INSERT INTO holders (instance, began) VALUES ($1, clock_timestamp()) RETURNING id",
            &[&node.instance],
        )
        .await
        .map_err(|e| e.to_string())?;
    let id: i64 = row.get(0);
    say(format!("leading {}", node.instance));
    stop.cancelled().await;
    client
        .execute(
            "UPDATE holders SET ended = clock_timestamp() WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs the node until SIGTERM.
pub(crate) async fn run(url: &str, mode: &str) -> ExitCode {
    let options = hosted_postgres::ClusterOptions::default()
        .lease(Duration::from_millis(1500))
        .renew_every(Duration::from_millis(300))
        .trust_window(Duration::from_millis(1200))
        .poll_every(Duration::from_millis(100))
        .rescue_every(Duration::from_millis(300));
    let cluster = Cluster::connect_with(url, options).await.expect("connect");
    let node = Node {
        pool: cluster.pool().clone(),
        instance: cluster.instance_id().to_owned(),
    };
    let mut builder = Host::builder()
        .without_registered()
        .state(node)
        .shutdown_timeout(Duration::from_secs(5))
        .cluster(cluster.clone());
    builder = match mode {
        "singleton" => builder.job(Job::service("leader", leader).scope(Placement::Singleton)),
        _ => builder.job(
            Job::every("work", Duration::from_millis(500), work)
                .overlap(Overlap::Allow)
                .on_crash(if mode == "rerun" {
                    OnCrash::Rerun
                } else {
                    OnCrash::Skip
                }),
        ),
    };
    let host = builder.build().expect("configuration");
    let running = match host.start().await {
        Ok(running) => running,
        Err(report) => {
            eprintln!("{report}");
            return ExitCode::from(3);
        }
    };
    say(format!("joined {}", cluster.instance_id()));
    let handle = running.handle();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    term.recv().await;
    let report = running.stop().await;
    let stale: u64 = handle.jobs().iter().map(|j| j.stale_completions).sum();
    say(format!("stale {stale}"));
    ExitCode::from(report.code())
}
