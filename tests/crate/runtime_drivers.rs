//! A host on a tokio runtime built without its drivers: a clear error from
//! `run()` and `start()` that says what to enable, not a panic inside the
//! signal or timer setup.

use std::time::Duration;

use hosted::{Host, Job};

fn host() -> Host {
    Host::builder()
        .without_registered()
        .job(Job::every("tick", Duration::from_millis(10), || async {}))
        .build()
        .unwrap()
}

fn runtime(io: bool, time: bool) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if io {
        builder.enable_io();
    }
    if time {
        builder.enable_time();
    }
    builder.build().unwrap()
}

#[test]
fn run_without_the_io_driver_is_a_startup_error_that_names_the_fix() {
    let report = runtime(false, true).block_on(host().run());
    assert_eq!(report.code(), hosted::Report::EXIT_START_FAILED, "{report}");
    let text = report.to_string();
    assert!(text.contains("enable_all"), "{text}");
    assert!(text.contains("I/O"), "{text}");
}

#[test]
fn run_without_the_time_driver_is_a_startup_error_that_names_the_fix() {
    let report = runtime(true, false).block_on(host().run());
    assert_eq!(report.code(), hosted::Report::EXIT_START_FAILED, "{report}");
    let text = report.to_string();
    assert!(text.contains("enable_all"), "{text}");
    assert!(text.contains("timers"), "{text}");
}

#[test]
fn start_without_the_time_driver_is_a_startup_error_too() {
    let report = runtime(true, false)
        .block_on(host().start())
        .expect_err("no timers, no host");
    assert!(report.to_string().contains("enable_all"), "{report}");
}

#[test]
fn start_without_the_io_driver_is_a_startup_error_too() {
    let report = runtime(false, true)
        .block_on(host().start())
        .expect_err("no I/O, no host");
    assert!(report.to_string().contains("I/O"), "{report}");
}

#[test]
fn on_a_full_runtime_the_check_passes_and_the_host_runs() {
    runtime(true, true).block_on(async {
        let running = host().start().await.expect("start");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let runs = running.handle().job("tick").unwrap().runs;
        assert!(runs >= 2, "{runs} run(s)");
        assert!(running.stop().await.is_clean());
    });
}
