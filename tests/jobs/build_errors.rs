//! `build()` rejects a bad configuration before anything runs, naming the
//! job, the problem and the fix, and reports every problem at once.

use std::time::Duration;

use hosted::prelude::*;
use hosted::Problem;

#[derive(Clone)]
struct Cache;

#[derive(Clone)]
struct Pool;

#[every("1s")]
async fn needs_cache(State(_cache): State<Cache>) {}

#[cron("0 * * * *")]
async fn needs_pool_and_cache(State(_pool): State<Pool>, State(_cache): State<Cache>) {}

#[every("1s", name = "taken")]
async fn first_taken() {}

#[every("1s", name = "twin")]
async fn twin_a() {}

#[cron("@hourly", name = "twin")]
async fn twin_b() {}

#[tokio::test]
async fn two_registered_jobs_with_one_name_are_rejected_with_both_places() {
    let error = Host::builder().only_jobs(["twin"]).build().unwrap_err();
    let [Problem::DuplicateName {
        name,
        first,
        second,
    }] = error.problems()
    else {
        panic!("{error}");
    };
    assert_eq!(name, "twin");
    assert!(first.contains("build_errors.rs:") && second.contains("build_errors.rs:"));
    assert_ne!(first, second);
    assert!(
        error
            .to_string()
            .contains("rename one with `name = \"...\"`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_state_names_the_job_the_type_and_the_fix() {
    let error = Host::builder()
        .only_jobs(["needs_cache"])
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [Problem::MissingState {
            job: "needs_cache".into(),
            type_name: "build_errors::Cache",
        }]
    );
    assert_eq!(
        error.to_string(),
        "job `needs_cache` takes `State<build_errors::Cache>`, but the host has no \
         `build_errors::Cache`; register one with `Host::builder().state(value)`"
    );
}

/// Regression: `.build().expect("host configuration")`, as the README
/// writes it, printed `BuildError { problems: [MissingState { .. }] }`.
#[tokio::test]
async fn expect_on_a_build_error_prints_the_readable_message() {
    let built = Host::builder().only_jobs(["needs_cache"]).build();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(built.expect("host configuration"));
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert_eq!(
        message,
        "host configuration: job `needs_cache` takes `State<build_errors::Cache>`, but the \
         host has no `build_errors::Cache`; register one with `Host::builder().state(value)`"
    );
}

#[tokio::test]
async fn registered_state_satisfies_the_check() {
    let host = Host::builder()
        .only_jobs(["needs_cache", "needs_pool_and_cache"])
        .state(Cache)
        .state(Pool)
        .build();
    assert!(host.is_ok(), "{host:?}");
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let error = Host::builder()
        .only_jobs([
            "needs_cache",
            "needs_pool_and_cache",
            "taken",
            "no-such-job",
        ])
        .job(Job::every("taken", Duration::from_secs(1), || async {}))
        .job(Job::cron("bad-line", "61 * * * *", || async {}))
        .job(Job::cron("bad-zone", "0 * * * *", || async {}).tz("Mars/Olympus_Mons"))
        .job(Job::every("zero", Duration::ZERO, || async {}))
        .job(
            Job::every("jumpy", Duration::from_secs(1), || async {}).jitter(Duration::from_secs(2)),
        )
        .state(Pool)
        .state(Pool)
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("9 problems in the host configuration:"),
        "{text}"
    );
    let problems = error.problems();
    assert!(matches!(&problems[0], Problem::UnknownJob { name, known }
        if name == "no-such-job" && known.contains(&"needs_cache")));
    assert_eq!(
        problems[1..3],
        [
            Problem::MissingState {
                job: "needs_cache".into(),
                type_name: "build_errors::Cache"
            },
            Problem::MissingState {
                job: "needs_pool_and_cache".into(),
                type_name: "build_errors::Cache"
            },
        ]
    );
    assert!(
        matches!(&problems[3], Problem::DuplicateName { name, first, second }
        if name == "taken" && first.contains("build_errors.rs:") && second == "HostBuilder::job"),
        "{:?}",
        problems[3]
    );
    let schedule_problems: Vec<(String, String)> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::InvalidSchedule { job, message } => Some((job.clone(), message.clone())),
            _ => None,
        })
        .collect();
    let jobs: Vec<&str> = schedule_problems.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(jobs, ["bad-line", "bad-zone", "zero", "jumpy"]);
    assert!(schedule_problems[0]
        .1
        .contains("invalid minute field `61` in cron line `61 * * * *`"));
    assert!(schedule_problems[1]
        .1
        .contains("unknown time zone `Mars/Olympus_Mons`"));
    assert!(schedule_problems[2].1.contains("period is zero"));
    assert!(schedule_problems[3].1.contains("jitter"));
    assert_eq!(
        problems.last(),
        Some(&Problem::DuplicateState {
            type_name: "build_errors::Pool"
        })
    );
}
