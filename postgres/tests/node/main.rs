//! The node processes the tests of `hosted-postgres` start, kill and
//! pause, as one program: `node cluster <database url> <mode>` is an
//! instance of a clustered service (`cluster.rs`), `node queue <database
//! url> <mode>` a worker process of a durable queue (`queue.rs`). Each
//! prints `joined <instance id>` once it runs and what it did on stdout,
//! logs on stderr, and stops on SIGTERM.

mod cluster;
mod queue;

use std::io::Write as _;
use std::process::ExitCode;

use hosted_postgres::deadpool_postgres::Pool;

/// What a node's jobs write with: its pool, and its instance's id.
#[derive(Clone)]
struct Node {
    pool: Pool,
    instance: String,
}

/// Prints a line for the test to read, at once.
fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..4) {
        Some([kind, url, mode]) if kind == "cluster" => cluster::run(url, mode).await,
        Some([kind, url, mode]) if kind == "queue" => queue::run(url, mode).await,
        _ => {
            eprintln!("usage: node cluster|queue <database url> <mode>");
            ExitCode::from(2)
        }
    }
}
