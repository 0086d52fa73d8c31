//! The grace-period example as a real process, with short settings: orders
//! are placed, their grace period ends, the events are consumed, and SIGTERM
//! stops it with exit code 0.

#[path = "../../tests/support/mod.rs"]
mod support;

use support::start_example;

#[test]
fn orders_pass_their_grace_period_and_the_events_are_consumed() {
    let settings =
        std::env::temp_dir().join(format!("grace-period-test-{}.toml", std::process::id()));
    std::fs::write(
        &settings,
        r#"
        grace_period = "300ms"

        [host]
        shutdown_timeout = "2s"

        [host.jobs.grace-period]
        every = "200ms"

        [host.jobs.place-orders]
        every = "100ms"
        "#,
    )
    .expect("write the settings");
    let path = settings.to_string_lossy().into_owned();
    let mut example = start_example("grace_period", &[("GRACE_PERIOD_CONFIG", &path)]);
    example.wait_for("host started");
    example.wait_for("order placed");
    example.wait_for("grace period confirmed: order awaits validation");
    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    let _ = std::fs::remove_file(&settings);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; output:\n{output}"
    );
    assert!(output.contains("received SIGTERM"), "{output}");
    assert!(!output.contains("rolled back"), "{output}");
}
