//! A first host: two timers, a cron job, a long-running service and a
//! lifecycle service, with their log lines on the console.

use std::time::Duration;

use hosted::prelude::*;
use tracing_subscriber::EnvFilter;

#[every("5s")] // fixed rate on a grid: no drift
async fn heartbeat(run: Run) {
    tracing::info!(n = run.number(), "alive");
}

#[every("30s", jitter = "2s", name = "refresh-cache")]
async fn refresh(State(cache): State<Cache>, stop: CancellationToken) -> anyhow::Result<()> {
    cache.refresh(&stop).await
}

#[cron("*/5 * * * *", tz = "Europe/Berlin")] // 5 fields, or 6 with seconds first
async fn grace_period(State(db): State<Db>) -> anyhow::Result<()> {
    db.confirm_expired_orders().await
}

#[hosted_service(on_failure = "restart", backoff = "1s..5m")] // long-running, like BackgroundService
async fn consume(stop: CancellationToken, State(bus): State<Bus>) -> anyhow::Result<()> {
    bus.consume_until(stop).await
}

#[hosted_service(order = -1)] // a lifecycle service, like IHostedService
#[derive(Default)]
struct Migrations;

impl HostedService for Migrations {
    type Error = anyhow::Error;
    async fn start(&mut self, _cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("migrated");
        Ok(())
    }
    async fn stop(&mut self, _deadline: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The host reports through `tracing`: without a subscriber it is silent.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    Host::builder()
        .state(Cache) // shared, cloned into State<T>
        .state(Db)
        .state(Bus)
        .shutdown_timeout(Duration::from_secs(10))
        .build() // checks every job's schedule and arguments
        .expect("host configuration")
        .run() // until SIGINT/SIGTERM or a failed service
        .await
        .exit_code()
}

// Stand-ins for your application's own types.
#[derive(Clone)]
struct Cache;
#[derive(Clone)]
struct Db;
#[derive(Clone)]
struct Bus;

impl Cache {
    async fn refresh(&self, _stop: &CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Db {
    async fn confirm_expired_orders(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Bus {
    async fn consume_until(&self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        Ok(())
    }
}
