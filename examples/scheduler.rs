//! Run with: cargo run --example scheduler
//!
//! The first example to run: all three macros at work within seconds.
//!
//! - `heartbeat` logs every 2 seconds, on a grid from the host's start;
//! - `slow-report` runs every second but takes 2.5 s: watch the ticks that
//!   fall during a run being skipped (`RUST_LOG=debug` shows the count);
//! - `every_five_seconds` is a cron job with a seconds field, firing on
//!   whole wall-clock seconds (:00, :05, :10, ...);
//! - `flaky` fails every third run: the failure is logged with the job's
//!   name and the schedule goes on;
//! - `consumer` is a long-running service that drains a channel that
//!   `heartbeat` feeds, until the host stops;
//! - `Warmup` is a lifecycle service: its `start` runs before any job, its
//!   `stop` after every job has ended.
//!
//! Press Ctrl+C: every job's token is cancelled, `consumer` finishes what
//! it holds, and the process exits with code 0. A second Ctrl+C aborts at
//! once.

use std::sync::Arc;
use std::time::Duration;

use hosted::prelude::*;
use tokio::sync::{mpsc, Mutex};

/// The channel `heartbeat` feeds and `consumer` drains, shared as state.
#[derive(Clone)]
struct Beats {
    tx: mpsc::Sender<u64>,
    rx: Arc<Mutex<mpsc::Receiver<u64>>>,
}

#[every("2s")]
async fn heartbeat(run: Run, State(beats): State<Beats>) -> anyhow::Result<()> {
    tracing::info!(n = run.number(), "alive");
    beats.tx.send(run.number()).await?;
    Ok(())
}

#[every("1s", name = "slow-report")]
async fn slow_report(run: Run, stop: CancellationToken) {
    tracing::info!(n = run.number(), "report started (takes 2.5 s)");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(2500)) => {
            tracing::info!(n = run.number(), "report done");
        }
        () = stop.cancelled() => tracing::info!(n = run.number(), "report interrupted by stop"),
    }
}

#[cron("*/5 * * * * *")]
async fn every_five_seconds(run: Run) {
    tracing::info!(at = %run.scheduled().format("%H:%M:%S"), "cron fired");
}

#[every("3s", initial_delay = "1s", jitter = "200ms")]
async fn flaky(run: Run) -> Result<(), String> {
    if run.number() % 3 == 0 {
        return Err(format!("run {} fails on purpose", run.number()));
    }
    Ok(())
}

#[hosted_service]
async fn consumer(stop: CancellationToken, State(beats): State<Beats>) -> anyhow::Result<()> {
    let mut rx = beats.rx.lock().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            beat = rx.recv() => match beat {
                Some(n) => tracing::info!(beat = n, "consumed"),
                None => break,
            },
        }
    }
    tracing::info!("consumer stopped cleanly");
    Ok(())
}

/// A lifecycle service: started before the jobs, stopped after them.
#[hosted_service]
#[derive(Default)]
struct Warmup;

impl HostedService for Warmup {
    type Error = std::convert::Infallible;

    async fn start(&mut self, _cancel: CancellationToken) -> Result<(), Self::Error> {
        tracing::info!("warm-up: caches loaded");
        Ok(())
    }

    async fn stop(&mut self, _deadline: CancellationToken) -> Result<(), Self::Error> {
        tracing::info!("warm-up: caches flushed");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();

    let (tx, rx) = mpsc::channel(16);
    let beats = Beats {
        tx,
        rx: Arc::new(Mutex::new(rx)),
    };

    Host::builder()
        .state(beats)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .expect("host configuration")
        .run()
        .await
        .exit_code()
}
