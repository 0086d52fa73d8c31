//! The scheduler example as a real process: SIGTERM and SIGINT each stop it
//! gracefully with exit code 0.

mod support;

use support::start_example;

fn stops_cleanly_on(signal: i32, name: &str) {
    let mut example = start_example("scheduler", &[]);
    example.wait_for("host started");
    example.signal(signal);
    let (status, output) = example.exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; output:\n{output}"
    );
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
