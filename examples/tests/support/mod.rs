//! Running an example as a real process, through the workspace's
//! [`Process`] helper (`tests/support/process.rs`, std only, included by path so
//! that the examples' tests cost no extra crate to build).
//!
//! `cargo test` builds the package's examples before running its tests; the
//! binaries are found beside the test's own executable.

use std::path::PathBuf;
use std::process::{Command, Stdio};

#[path = "../../../tests/support/process.rs"]
#[allow(dead_code, unreachable_pub)]
mod process;

pub(crate) use process::Process;

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

/// Starts the example `name` with `env` set, logging at info level without
/// colours.
#[allow(dead_code)]
pub(crate) fn start_example(name: &str, env: &[(&str, &str)]) -> Process {
    Process::spawn(
        name,
        Command::new(binary(name))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stderr(Stdio::inherit()),
    )
}

/// Starts the example `name` as a newcomer runs it: no `RUST_LOG`.
#[allow(dead_code)]
pub(crate) fn start_example_as_is(name: &str) -> Process {
    Process::spawn(
        name,
        Command::new(binary(name))
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stderr(Stdio::inherit()),
    )
}
