//! The scheduler example as a real process: SIGTERM and SIGINT each stop it
//! gracefully with exit code 0.
//!
//! `cargo test` builds the package's examples before running its tests; the
//! binary is found beside this test's own executable.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("examples").join("scheduler");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

/// Starts the example and waits until it has logged that the host started;
/// returns the child and a receiver of its remaining output lines.
fn start_example() -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(example_binary())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("host started") => return (child, lines),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the example did not log `host started` within 30 s");
            }
        }
    }
}

fn send(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own
    // child, which has not been waited for yet.
    #[allow(unsafe_code)]
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal})");
}

fn wait_for_exit(mut child: Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the example did not exit within 10 s of the signal");
}

fn stops_cleanly_on(signal: i32, name: &str) {
    let (child, lines) = start_example();
    send(&child, signal);
    let status = wait_for_exit(child);
    // The reader thread ends at EOF, once the exited process's pipe drains.
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; output:\n{}",
        rest.join("\n")
    );
    let output = rest.join("\n");
    assert!(output.contains(&format!("received {name}")), "{output}");
    assert!(output.contains("consumer stopped cleanly"), "{output}");
    assert!(output.contains("warm-up: caches flushed"), "{output}");
    assert!(output.contains("stopped"), "{output}");
}

#[test]
fn sigterm_stops_the_example_with_exit_code_zero() {
    stops_cleanly_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_the_example_with_exit_code_zero() {
    stops_cleanly_on(libc::SIGINT, "SIGINT");
}
