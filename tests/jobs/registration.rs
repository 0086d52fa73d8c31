//! Registration: the macros leave the fn callable, register it through
//! `inventory` without the user depending on it, and a host takes all
//! registered jobs, a chosen subset by name or module, and jobs added by
//! hand. Also the built-in argument types.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::prelude::*;
use hosted::testing::{TestClock, TestHost};
use hosted::JobKind;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[every("1s")]
async fn add_one(State(counter): State<Counter>) -> anyhow::Result<()> {
    counter.0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn the_annotated_fn_is_still_a_plain_fn() {
    let counter = Counter::default();
    add_one(State(counter.clone())).await.unwrap();
    add_one(State(counter.clone())).await.unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
}

mod billing {
    use hosted::prelude::*;

    #[every("1h")]
    pub(crate) async fn invoice() {}

    pub(crate) mod reminders {
        use hosted::prelude::*;

        #[cron("0 9 * * 1")]
        pub(crate) async fn remind() {}
    }
}

mod billing_extra {
    use hosted::prelude::*;

    #[every("1h")]
    async fn not_billing() {}
}

#[tokio::test]
async fn a_host_takes_all_registered_jobs_by_default() {
    let host = Host::builder()
        .state(Counter::default())
        .state(Seen::default())
        .build()
        .unwrap();
    let names: Vec<&str> = host.job_names().collect();
    for name in [
        "add_one",
        "invoice",
        "remind",
        "not_billing",
        "inspect",
        "service_args",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    // Registered jobs come in a stable order: by module, then name.
    assert_eq!(names[..3], ["add_one", "inspect", "service_args"]);
}

#[tokio::test]
async fn a_host_can_take_the_jobs_of_one_module() {
    let host = Host::builder()
        .only_module("registration::billing")
        .build()
        .unwrap();
    let names: Vec<&str> = host.job_names().collect();
    assert_eq!(
        names,
        ["invoice", "remind"],
        "`billing_extra` is not inside `billing`"
    );
}

#[tokio::test]
async fn names_and_modules_combine() {
    let host = Host::builder()
        .only_module("registration::billing::reminders")
        .only_jobs(["add_one"])
        .state(Counter::default())
        .build()
        .unwrap();
    let names: Vec<&str> = host.job_names().collect();
    assert_eq!(names, ["add_one", "remind"]);
}

#[tokio::test(start_paused = true)]
async fn jobs_added_by_hand_run_beside_registered_ones() {
    let counter = Counter::default();
    let seen = Arc::new(AtomicU64::new(0));
    let seen_in_job = seen.clone();
    let host = Host::builder()
        .only_jobs(["add_one"])
        .state(counter.clone())
        .job(Job::every(
            "by-hand",
            Duration::from_millis(500),
            move |run: Run| {
                let seen = seen_in_job.clone();
                async move {
                    seen.store(run.number(), Ordering::SeqCst);
                }
            },
        ))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(2)).await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    let jobs: Vec<(String, JobKind)> = test
        .handle()
        .jobs()
        .into_iter()
        .map(|j| (j.name, j.kind))
        .collect();
    assert_eq!(
        jobs,
        [
            ("add_one".into(), JobKind::Every),
            ("by-hand".into(), JobKind::Every)
        ]
    );
    assert!(test.stop().await.is_clean());
}

/// What a job saw in one run: name, kind, number, scheduled time, and
/// whether its token was cancelled.
type Sighting = (String, JobKind, u64, DateTime<Utc>, bool);

/// What `inspect` and `service_args` saw, run by run.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Sighting>>>);

impl Seen {
    fn record(&self, run: &Run, stop: &CancellationToken) {
        self.0.lock().unwrap().push((
            run.job().to_owned(),
            run.kind(),
            run.number(),
            run.scheduled(),
            stop.is_cancelled(),
        ));
    }
}

#[every("10s", name = "inspect")]
async fn inspect_arguments(run: Run, stop: CancellationToken, State(seen): State<Seen>) {
    seen.record(&run, &stop);
}

#[hosted_service]
async fn service_args(run: Run, stop: CancellationToken, State(seen): State<Seen>) {
    seen.record(&run, &stop);
    stop.cancelled().await;
}

#[tokio::test(start_paused = true)]
async fn jobs_receive_run_info_their_token_and_state() {
    let start: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
    let clock = TestClock::at(start);
    let seen = Seen::default();
    let host = Host::builder()
        .only_jobs(["inspect", "service_args"])
        .state(seen.clone())
        .clock(&clock)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(10)).await;
    assert!(test.stop().await.is_clean());

    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort_by_key(|s| (s.3, s.0.clone()));
    let ten = start + chrono::TimeDelta::seconds(10);
    assert_eq!(
        seen,
        [
            ("inspect".into(), JobKind::Every, 1, start, false),
            ("service_args".into(), JobKind::Service, 1, start, false),
            ("inspect".into(), JobKind::Every, 2, ten, false),
        ]
    );
}
