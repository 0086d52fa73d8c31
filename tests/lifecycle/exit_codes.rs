//! Signals and exit codes against a real child process (`bin/probe_host.rs`):
//! SIGINT, SIGTERM and SIGQUIT stop gracefully with code 0; a second SIGINT
//! aborts at once; each kind of failure has its own code.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hosted::Report;
use hosted_tests::process::Process;

/// `probe-host` running `scenario`.
fn probe(scenario: &str) -> Process {
    Process::spawn(
        "probe-host",
        Command::new(env!("CARGO_BIN_EXE_probe-host"))
            .arg(scenario)
            .stderr(Stdio::null()),
    )
}

/// The probe's exit code.
fn exit_code(probe: Process) -> Option<i32> {
    probe.exit().0.code()
}

fn graceful_on(signal: i32) {
    let mut probe = probe("clean");
    probe.wait_for_line("started");
    probe.signal(signal);
    probe.wait_for_line("stopping");
    assert_eq!(exit_code(probe), Some(0));
}

#[test]
fn sigint_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGINT);
}

#[test]
fn sigterm_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGTERM);
}

#[test]
fn sigquit_stops_gracefully_with_code_0() {
    graceful_on(libc::SIGQUIT);
}

#[test]
fn a_second_sigint_aborts_at_once() {
    let mut probe = probe("stuck");
    probe.wait_for_line("started");
    probe.signal(libc::SIGINT);
    probe.wait_for_line("stopping");
    let began = Instant::now();
    probe.signal(libc::SIGINT);
    assert_eq!(exit_code(probe), Some(i32::from(Report::EXIT_ABORTED)));
    // The shutdown timeout is 60 s: the second signal cut it short.
    assert!(began.elapsed() < Duration::from_secs(15));
}

/// Regression: a service that ignored its token, stopped by SIGTERM, made
/// the process exit 0 in 18 of 30 runs: the report was read before the
/// aborted run had recorded itself.
#[test]
fn a_service_that_ignores_its_token_always_exits_with_code_4() {
    for round in 0..30 {
        let mut probe = probe("ignores-token");
        probe.wait_for_line("started");
        probe.signal(libc::SIGTERM);
        assert_eq!(
            exit_code(probe),
            Some(i32::from(Report::EXIT_ABORTED)),
            "round {round}"
        );
    }
}

#[test]
fn a_stop_past_the_timeout_is_aborted_with_code_4() {
    let mut probe = probe("timeout");
    probe.wait_for_line("started");
    probe.signal(libc::SIGTERM);
    assert_eq!(exit_code(probe), Some(i32::from(Report::EXIT_ABORTED)));
}

#[test]
fn a_failed_start_exits_with_code_2() {
    let probe = probe("fail-start");
    assert_eq!(exit_code(probe), Some(i32::from(Report::EXIT_START_FAILED)));
}

#[test]
fn a_failed_service_exits_with_code_1() {
    let mut probe = probe("fail-service");
    probe.wait_for_line("started");
    assert_eq!(
        exit_code(probe),
        Some(i32::from(Report::EXIT_SERVICE_FAILED))
    );
}

#[test]
fn a_failed_stop_exits_with_code_3() {
    let mut probe = probe("stop-error");
    probe.wait_for_line("started");
    probe.signal(libc::SIGTERM);
    assert_eq!(exit_code(probe), Some(i32::from(Report::EXIT_STOP_FAILED)));
}

/// The first ticks of the `jitter` scenario's three jobs, in seconds from
/// now.
fn first_ticks() -> Vec<i64> {
    let mut probe = probe("jitter");
    let line = probe.wait_for_capture("offsets: ");
    assert_eq!(probe.exit().0.code(), Some(0));
    line.trim_matches(['[', ']'])
        .split(", ")
        .map(|n| n.parse().expect("a number of seconds"))
        .collect()
}

#[test]
fn two_processes_of_one_service_draw_different_jitter() {
    let (first, second) = (first_ticks(), first_ticks());
    assert_eq!(first.len(), 3);
    // Up to 59 minutes of jitter each: the same seed would give the same
    // offsets to within the second between the two starts.
    assert!(
        first.iter().zip(&second).any(|(a, b)| (a - b).abs() > 5),
        "lockstep: {first:?} and {second:?}"
    );
}
