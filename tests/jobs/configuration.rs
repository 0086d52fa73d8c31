//! Schedules from configuration: a job's schedule, options and enabled flag
//! overridden by name, from TOML, from a struct, or by hand; invalid values
//! are `build()` errors naming the job and the key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};
use hosted::{HandleError, HostConfig, JobConfig, Problem};

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

#[every("30s", name = "grace-period")]
async fn grace_period() {}

#[cron("0 * * * *")]
async fn hourly_report() {}

#[hosted_service]
async fn mailer(stop: CancellationToken) {
    stop.cancelled().await
}

const JOBS: [&str; 3] = ["grace-period", "hourly_report", "mailer"];

#[tokio::test(start_paused = true)]
async fn a_toml_file_overrides_schedules_and_disables_jobs() {
    let config: HostConfig = toml::from_str(
        r#"
        shutdown_timeout = "3s"

        [jobs.grace-period]
        every = "10s"
        initial_delay = "5s"

        [jobs.hourly_report]
        cron = "*/15 * * * *"
        tz = "Europe/Berlin"

        [jobs.mailer]
        enabled = false
        "#,
    )
    .unwrap();
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(JOBS)
        .config(config)
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(30 * 60)).await;

    let grace: Vec<i64> = test
        .runs_of("grace-period")
        .iter()
        .take(3)
        .map(|r| (r.scheduled - t0()).num_seconds())
        .collect();
    assert_eq!(grace, [5, 15, 25]);
    let report: Vec<String> = test
        .runs_of("hourly_report")
        .iter()
        .map(|r| r.scheduled.format("%H:%M").to_string())
        .collect();
    assert_eq!(report, ["12:15", "12:30"]);
    let status = test.status("hourly_report");
    assert_eq!(status.schedule, "cron */15 * * * * (Europe/Berlin)");

    // Disabled: listed, never run, not triggerable.
    let mailer = test.status("mailer");
    assert_eq!((mailer.enabled, mailer.runs, mailer.running), (false, 0, 0));
    assert_eq!(
        test.handle().trigger("grace-period").map(|_| ()),
        Ok(()),
        "an enabled job can be triggered"
    );
    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
}

#[every("1s")]
async fn disabled_tick() {}

#[tokio::test(start_paused = true)]
async fn a_disabled_scheduled_job_never_runs_and_cannot_be_triggered() {
    let host = Host::builder()
        .only_jobs(["disabled_tick"])
        .configure("disabled_tick", |job| job.enabled = Some(false))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(10)).await;
    let status = test.status("disabled_tick");
    assert_eq!(
        (status.enabled, status.runs, status.next_run),
        (false, 0, None)
    );
    assert_eq!(
        test.handle().trigger("disabled_tick"),
        Err(HandleError::Disabled("disabled_tick".into()))
    );
    assert!(test.stop().await.is_clean());
}

/// An application's own configuration, with the host's nested in it.
#[derive(serde::Deserialize)]
struct AppConfig {
    grace_period_minutes: u32,
    host: HostConfig,
}

#[tokio::test(start_paused = true)]
async fn configuration_nested_in_an_applications_own_struct() {
    let config: AppConfig = toml::from_str(
        r#"
        grace_period_minutes = 5

        [host.jobs.grace-period]
        every = "1m"
        overlap = "allow"
        "#,
    )
    .unwrap();
    assert_eq!(config.grace_period_minutes, 5);
    let host = Host::builder()
        .only_jobs(["grace-period"])
        .config(config.host)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    assert_eq!(test.status("grace-period").schedule, "every 1m");
    assert!(test.stop().await.is_clean());
}

#[tokio::test]
async fn later_settings_override_earlier_ones_key_by_key() {
    let mut first = HostConfig::default();
    let mut job = JobConfig::default();
    job.every = Some("1m".into());
    job.jitter = Some("5s".into());
    first.jobs.insert("grace-period".into(), job);
    let host = Host::builder()
        .only_jobs(["grace-period"])
        .config(first)
        .configure("grace-period", |job| job.every = Some("2m".into()))
        .build()
        .unwrap();
    let running = host.start().await.unwrap();
    let status = running.handle().job("grace-period").unwrap();
    assert_eq!(status.description, "every 2 minutes, up to 5 seconds late");
    assert!(running.stop().await.is_clean());
}

#[tokio::test]
async fn invalid_values_are_build_errors_naming_the_job_and_the_key() {
    let config: HostConfig = toml::from_str(
        r#"
        shutdown_timeout = "soon"

        [jobs.grace-period]
        every = "5 parsecs"
        tz = "Europe/Berlin"
        overlap = "sometimes"

        [jobs.hourly_report]
        cron = "61 * * * *"

        [jobs.mailer]
        every = "1s"

        [jobs.no-such-job]
        enabled = false
        "#,
    )
    .unwrap();
    let error = Host::builder()
        .only_jobs(JOBS)
        .config(config)
        .build()
        .unwrap_err();
    let keys: Vec<(String, &str)> = error
        .problems()
        .iter()
        .map(|p| match p {
            Problem::InvalidConfig { job, key, .. } => (job.clone(), *key),
            Problem::InvalidHostConfig { key, .. } => (String::new(), *key),
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            (String::new(), "shutdown_timeout"),
            ("grace-period".into(), "every"),
            ("grace-period".into(), "tz"),
            ("grace-period".into(), "overlap"),
            ("hourly_report".into(), "cron"),
            ("mailer".into(), "every"),
            ("no-such-job".into(), "jobs"),
        ]
    );
    let text = error.to_string();
    assert!(
        text.contains(
            "configuration of job `grace-period`, key `every`: `5 parsecs`: spaces are not part"
        ),
        "{text}"
    );
    assert!(
        text.contains("key `cron`: invalid minute field `61`"),
        "{text}"
    );
    assert!(text.contains("key `every`: the job is a service"), "{text}");
}

#[test]
fn unknown_keys_are_rejected_when_deserializing() {
    let error = toml::from_str::<HostConfig>(
        r#"
        [jobs.grace-period]
        evry = "1m"
        "#,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("unknown field `evry`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_registered_job_this_host_does_not_take_is_ignored() {
    let host = Host::builder()
        .only_jobs(["grace-period"])
        .configure("hourly_report", |job| job.cron = Some("@daily".into()))
        .build();
    assert!(host.is_ok());
}

#[tokio::test(start_paused = true)]
async fn typed_setters_configure_a_job_in_code() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .only_jobs(["grace-period", "hourly_report"])
        .clock(&clock)
        .configure("grace-period", |job| {
            job.every(Duration::from_secs(10))
                .initial_delay(Duration::from_millis(2_500))
                .overlap(hosted::Overlap::Allow);
        })
        .configure("hourly_report", |job| {
            job.cron("*/20 * * * *").tz("Europe/Berlin").enabled(false);
        })
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(30)).await;
    let offsets: Vec<i64> = test
        .runs_of("grace-period")
        .iter()
        .map(|r| (r.scheduled - t0()).num_milliseconds())
        .collect();
    assert_eq!(offsets, [2_500, 12_500, 22_500]);
    let report = test.status("hourly_report");
    assert!(!report.enabled);
    assert!(report.schedule.contains("*/20"), "{}", report.schedule);
    assert!(test.stop().await.is_clean());
}

#[test]
fn a_typed_duration_with_a_fraction_of_a_millisecond_is_a_build_error() {
    let error = Host::builder()
        .only_jobs(["grace-period"])
        .configure("grace-period", |job| {
            job.every(Duration::from_micros(1_500));
        })
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("grace-period"), "{text}");
    assert!(text.contains("fractions are not part"), "{text}");
}
