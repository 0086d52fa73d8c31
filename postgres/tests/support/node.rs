//! Starting the node program (`node/main.rs`) the process tests kill and
//! pause, and reading what it printed.

use std::process::Command;

use hosted_tests::process::Process;

use crate::pg::TestDb;

/// A runtime of one worker thread, for a test that drives processes from
/// synchronous code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Starts `node <kind> <database url> <mode>` (`program` is the test's
/// `env!("CARGO_BIN_EXE_node")`: only tests know it) as process `n`, and
/// waits until it has joined.
pub fn start(program: &str, db: &TestDb, kind: &str, mode: &str, n: usize) -> Process {
    let mut process = Process::spawn(
        &format!("node {kind} {n}"),
        Command::new(program)
            .args([kind, db.url.as_str(), mode])
            .env("RUST_LOG", "error"),
    );
    process.wait_for("joined");
    process
}

/// The instance id the node printed when it joined.
pub fn instance_of(process: &Process) -> String {
    process
        .output_so_far()
        .lines()
        .find_map(|l| l.strip_prefix("joined ").map(str::to_owned))
        .expect("the joined line")
}
