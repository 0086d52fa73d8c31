//! `Scoped<T>`: a value per run from an async factory, an optional teardown
//! with the run's outcome, distinct values for concurrent runs, and
//! failures that name the factory and the job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::TestHost;
use hosted::{Outcome, Problem};

/// A unit of work: its id is the order in which the factory made it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Session(u64);

/// What the factory and the teardown saw.
#[derive(Clone, Default)]
struct Ledger {
    made: Arc<AtomicU64>,
    closed: Arc<Mutex<Vec<(u64, Outcome)>>>,
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
}

fn with_sessions(builder: hosted::HostBuilder, ledger: &Ledger) -> hosted::HostBuilder {
    let closed = ledger.closed.clone();
    builder.state(ledger.clone()).scoped_with_teardown(
        |State(ledger): State<Ledger>| async move {
            Ok::<_, String>(Session(ledger.made.fetch_add(1, Ordering::SeqCst) + 1))
        },
        move |session: Session, outcome: Outcome| {
            let closed = closed.clone();
            async move { closed.lock().unwrap().push((session.0, outcome)) }
        },
    )
}

/// Runs 1 succeeds, 2 fails, 3 panics, and so on.
#[every("1s")]
async fn unit_of_work(
    run: Run,
    Scoped(session): Scoped<Session>,
    Scoped(again): Scoped<Session>,
    State(ledger): State<Ledger>,
) -> Result<(), String> {
    assert_eq!(session, again, "one run gets one value");
    ledger.seen.lock().unwrap().push((run.number(), session.0));
    match run.number() % 3 {
        1 => Ok(()),
        2 => Err("constraint violated".into()),
        _ => panic!("bug in run {}", run.number()),
    }
}

#[tokio::test(start_paused = true)]
async fn factory_and_teardown_run_once_per_run_with_its_outcome() {
    let ledger = Ledger::default();
    let host = with_sessions(Host::builder().only_jobs(["unit_of_work"]), &ledger)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(2_500)).await;
    assert!(test.stop().await.is_clean());

    assert_eq!(ledger.made.load(Ordering::SeqCst), 3);
    assert_eq!(*ledger.seen.lock().unwrap(), [(1, 1), (2, 2), (3, 3)]);
    let closed = ledger.closed.lock().unwrap().clone();
    assert_eq!(
        closed,
        [
            (1, Outcome::Succeeded),
            (2, Outcome::Failed("constraint violated".into())),
            (3, Outcome::Panicked("bug in run 3".into())),
        ]
    );
}

#[every("1s", overlap = "allow")]
async fn overlapping_work(Scoped(session): Scoped<Session>, State(ledger): State<Ledger>) {
    let id = session.0;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // Still this run's own value after others started.
    assert_eq!(session.0, id);
    ledger.seen.lock().unwrap().push((id, id));
}

#[tokio::test(start_paused = true)]
async fn concurrent_runs_never_share_a_value() {
    let ledger = Ledger::default();
    let host = Host::builder()
        .only_jobs(["overlapping_work"])
        .state(ledger.clone())
        .scoped(|State(ledger): State<Ledger>| async move {
            Ok::<_, String>(Session(ledger.made.fetch_add(1, Ordering::SeqCst) + 1))
        })
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(2_500)).await;
    assert_eq!(test.status("overlapping_work").running, 3);
    test.advance(Duration::from_secs(4)).await;
    assert!(test.stop().await.is_clean());
    let mut ids: Vec<u64> = ledger.seen.lock().unwrap().iter().map(|s| s.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7, "seven runs, seven sessions: {ids:?}");
}

#[derive(Clone)]
struct Flaky;

#[every("1s")]
async fn needs_flaky(Scoped(_flaky): Scoped<Flaky>, State(ledger): State<Ledger>) {
    ledger.made.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn a_failing_factory_fails_the_run_names_the_factory_and_the_job_and_skips_the_body() {
    let ledger = Ledger::default();
    let host = Host::builder()
        .only_jobs(["needs_flaky"])
        .state(ledger.clone())
        .scoped(|| async { Err::<Flaky, _>("connection refused") })
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(1_500)).await;
    let status = test.status("needs_flaky");
    assert_eq!((status.runs, status.failed), (2, 2));
    assert_eq!(ledger.made.load(Ordering::SeqCst), 0, "the body never ran");
    let last = status.last_run.unwrap();
    assert_eq!(
        last.outcome,
        Outcome::Failed(
            "the `Scoped<scoped_values::Flaky>` factory failed for job `needs_flaky`: connection refused"
                .into()
        )
    );
    assert!(test.stop().await.is_clean());
}

#[derive(Clone)]
struct Tx;

#[every("1s")]
async fn commits(Scoped(_tx): Scoped<Tx>) {}

#[tokio::test(start_paused = true)]
async fn a_failing_teardown_fails_a_successful_run() {
    let host = Host::builder()
        .only_jobs(["commits"])
        .scoped_with_teardown(
            || async { Ok::<_, String>(Tx) },
            |_tx: Tx, _outcome: Outcome| async { Err::<(), _>("commit failed: disk full") },
        )
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(10)).await;
    let last = test.status("commits").last_run.unwrap();
    assert_eq!(
        last.outcome,
        Outcome::Failed(
            "the `Scoped<scoped_values::Tx>` teardown failed: commit failed: disk full".into()
        )
    );
    assert!(test.stop().await.is_clean());
}

#[derive(Clone)]
struct Pool;

#[tokio::test]
async fn build_reports_every_missing_factory_and_state_at_once() {
    let error = Host::builder()
        .only_jobs(["commits", "needs_flaky"])
        .scoped(|State(_pool): State<Pool>| async { Ok::<_, String>(Flaky) })
        .scoped(|Scoped(_tx): Scoped<Tx>| async { Ok::<_, String>(Session(0)) })
        .build()
        .unwrap_err();
    let problems = error.problems();
    assert_eq!(
        problems,
        [
            Problem::MissingScoped {
                job: "commits".into(),
                type_name: "scoped_values::Tx",
            },
            Problem::MissingState {
                job: "needs_flaky".into(),
                type_name: "scoped_values::Ledger",
            },
            Problem::FactoryMissingState {
                type_name: "scoped_values::Flaky",
                state: "scoped_values::Pool",
            },
            Problem::ScopedInFactory {
                type_name: "scoped_values::Session",
                takes: "scoped_values::Tx",
            },
        ]
    );
    assert!(error
        .to_string()
        .contains("register one with `Host::builder().scoped("));
}

/// A value per run that cannot fail to be made.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RequestId(u64);

#[every("1s")]
async fn tagged(Scoped(id): Scoped<RequestId>, run: Run, State(seen): State<Arc<Mutex<Vec<u64>>>>) {
    assert_eq!(id, RequestId(run.number() * 10));
    seen.lock().unwrap().push(id.0);
}

#[tokio::test(start_paused = true)]
async fn an_infallible_factory_needs_no_result() {
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let host = Host::builder()
        .only_jobs(["tagged"])
        .state(seen.clone())
        .scoped_infallible(|run: Run| async move { RequestId(run.number() * 10) })
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(2)).await;
    assert_eq!(*seen.lock().unwrap(), [10, 20, 30]);
    assert_eq!(test.status("tagged").failed, 0);
    assert!(test.stop().await.is_clean());
}
