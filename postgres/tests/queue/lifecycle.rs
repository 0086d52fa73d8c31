//! The durable queue with the host's lifecycle: no item runs before the
//! host has started; at stop an instance stops claiming, gives running
//! items the shutdown timeout and hands back what did not finish without
//! counting an attempt; a notification wakes an idle worker at once, with
//! no poll; a cluster-wide limit holds across instances; finished items
//! are pruned after their retention; and `build()` checks a handler's
//! arguments like any job's.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::{CancellationToken, Host, Problem, State};
use hosted_postgres::{tokio_postgres, DurableQueue, Payload, QueueLimits};
use support::pg::{durable_fast, TestDb};
use support::{wait_for, wait_until};

#[derive(Clone, Default)]
struct Probe {
    running: Arc<AtomicI32>,
    most: Arc<AtomicI32>,
    done: Arc<AtomicU32>,
}

/// Runs for `ms` milliseconds, ignoring the token.
#[hosted_postgres::queued(queue = "work", name = "sleeps")]
async fn sleeps(Payload(ms): Payload<u64>, State(probe): State<Probe>) {
    let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    probe.running.fetch_sub(1, Ordering::SeqCst);
    probe.done.fetch_add(1, Ordering::SeqCst);
}

/// Waits for the token, then ends as cancelled.
#[hosted_postgres::queued(queue = "work", name = "until-stopped")]
async fn until_stopped(token: CancellationToken) -> Result<(), hosted::Cancelled> {
    token.cancelled().await;
    Err(hosted::Cancelled)
}

async fn queue(db: &TestDb, options: hosted_postgres::DurableOptions) -> DurableQueue {
    DurableQueue::connect_with(&db.url, options).await.unwrap()
}

fn host(queue: &DurableQueue, jobs: &[&str], probe: &Probe) -> hosted::HostBuilder {
    Host::builder()
        .only_jobs(jobs.iter().copied())
        .state(probe.clone())
        .durable(queue.clone())
}

async fn attempts(client: &tokio_postgres::Client, id: i64) -> (String, i32) {
    let row = client
        .query_one(
            "SELECT state, attempt FROM hosted.items WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_shutdown_deadline_unfinished_items_go_back_without_an_attempt() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let q = queue(&db, durable_fast()).await;
    let probe = Probe::default();
    let stubborn = sleeps::enqueue(&q, 60_000).await.unwrap();
    let polite = until_stopped::enqueue(&q, ()).await.unwrap();
    let quick = sleeps::enqueue(&q, 100).await.unwrap();
    let running = host(&q, &["sleeps", "until-stopped"], &probe)
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // The quick item done, the other two running when the stop begins.
    let q_ref = &q;
    let state = move |id: i64| async move {
        q_ref
            .item(id)
            .await
            .unwrap()
            .map(|item| item.state.as_str())
    };
    let (stubborn_id, polite_id, quick_id) = (stubborn.id(), polite.id(), quick.id());
    wait_for(
        Duration::from_secs(10),
        move || async move {
            state(stubborn_id).await == Some("running")
                && state(polite_id).await == Some("running")
                && state(quick_id).await == Some("succeeded")
        },
        || "the items were not claimed and the quick one done".to_owned(),
    )
    .await;
    let report = running.stop().await;
    assert!(
        !report.is_clean(),
        "the stubborn item was aborted: {report}"
    );
    // Both unfinished items wait again, their attempt not counted.
    assert_eq!(
        attempts(&client, stubborn.id()).await,
        ("waiting".to_owned(), 0)
    );
    assert_eq!(
        attempts(&client, polite.id()).await,
        ("waiting".to_owned(), 0)
    );
    assert_eq!(
        q.item(quick.id()).await.unwrap().unwrap().state,
        "succeeded"
    );
    assert_eq!(q.stats().released, 2);
    // Another instance takes them at once.
    let other = queue(&db, durable_fast()).await;
    let again = host(&other, &["until-stopped"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while attempts(&client, polite.id()).await.0 != "running"
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        attempts(&client, polite.id()).await,
        ("running".to_owned(), 1)
    );
    assert!(again.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_an_idle_worker_without_a_poll() {
    let db = TestDb::create().await;
    // A fallback poll far away: only the notification can wake it.
    let q = queue(&db, durable_fast().poll_every(Duration::from_secs(60))).await;
    let probe = Probe::default();
    let running = host(&q, &["sleeps"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // Let the worker go idle, waiting, with the listener up.
    wait_until(
        Duration::from_secs(10),
        || q.stats().listens >= 1 && q.stats().claims >= 1,
        || format!("{:?}", q.stats()),
    )
    .await;
    for n in 1..=3 {
        let began = tokio::time::Instant::now();
        sleeps::enqueue(&q, 0).await.unwrap();
        while probe.done.load(Ordering::SeqCst) < n {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "no wake-up within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Let the debounce pass so that each enqueue notifies on its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(q.stats().notifications >= 3);
    assert!(running.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_limit_holds_across_instances() {
    let db = TestDb::create().await;
    let limits = QueueLimits {
        per_instance: 4,
        cluster: Some(2),
    };
    let probe = Probe::default();
    let a = queue(&db, durable_fast().queue("work", limits)).await;
    let b = queue(&db, durable_fast().queue("work", limits)).await;
    sleeps::enqueue_many(&a, std::iter::repeat_n(50, 20))
        .await
        .unwrap();
    let first = host(&a, &["sleeps"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let second = host(&b, &["sleeps"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while probe.done.load(Ordering::SeqCst) < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(probe.done.load(Ordering::SeqCst), 20);
    assert_eq!(
        probe.most.load(Ordering::SeqCst),
        2,
        "never more than the cluster's limit at once"
    );
    assert!(
        a.stats().claimed > 0 && b.stats().claimed > 0,
        "both instances took part"
    );
    assert_eq!(a.stats().claimed + b.stats().claimed, 20);
    assert!(first.stop().await.is_clean());
    assert!(second.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_items_are_pruned_after_their_retention_and_dead_letters_after_theirs() {
    let db = TestDb::create().await;
    let client = db.client().await;
    let q = queue(
        &db,
        durable_fast()
            .retention(Duration::from_millis(300))
            .key_window(Duration::from_millis(300)),
    )
    .await;
    let probe = Probe::default();
    let running = host(&q, &["sleeps"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    sleeps::enqueue_many(&q, [0, 0, 0])
        .key_by(|_| "same".to_owned())
        .await
        .unwrap();
    sleeps::enqueue(&q, 0).key("k").await.unwrap();
    // A dead letter of long ago.
    client
        .batch_execute(
            "INSERT INTO hosted.finished (id, queue, handler, payload, priority, state, attempt, max_attempts, fence, enqueued_at, run_at, errors, finished_at)
             VALUES (-1, 'work', 'sleeps', '0', 0, 'dead', 1, 1, 1, now(), now(), '[]', now() - interval '40 days')",
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = client
            .query_one("SELECT (SELECT count(*) FROM hosted.finished) + (SELECT count(*) FROM hosted.item_keys)", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} rows never pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(probe.done.load(Ordering::SeqCst), 2);
    assert!(running.stop().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_item_runs_before_the_host_has_started() {
    let db = TestDb::create().await;
    let q = queue(&db, durable_fast()).await;
    let probe = Probe::default();
    sleeps::enqueue(&q, 0).await.unwrap();
    let running = host(&q, &["sleeps"], &probe)
        .service(SlowStart(probe.clone()))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while probe.done.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.done.load(Ordering::SeqCst), 1);
    assert!(running.stop().await.is_clean());
}

/// A lifecycle service whose start takes 300 ms and fails the test if an
/// item ran before it finished.
struct SlowStart(Probe);

impl hosted::HostedService for SlowStart {
    type Error = String;

    async fn start(&mut self, _cancel: CancellationToken) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        match self.0.done.load(Ordering::SeqCst) {
            0 => Ok(()),
            n => Err(format!("{n} item(s) ran during startup")),
        }
    }

    async fn stop(&mut self, _deadline: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Clone)]
struct Mailer;

#[hosted_postgres::queued(name = "needs-mailer")]
async fn needs_mailer(State(_mailer): State<Mailer>) {}

async fn takes_payload(Payload(_n): Payload<u32>) {}

#[test]
fn build_checks_a_handlers_arguments_and_rejects_item_arguments_elsewhere() {
    let error = Host::builder()
        .only_jobs(["needs-mailer"])
        .build()
        .unwrap_err();
    assert!(
        error
            .problems()
            .iter()
            .any(|p| matches!(p, Problem::MissingState { job, .. } if job == "needs-mailer")),
        "{error}"
    );
    let error = Host::builder()
        .without_registered()
        .job(hosted::Job::every(
            "tick",
            Duration::from_secs(1),
            takes_payload,
        ))
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("`tick`") && text.contains("only queued handlers"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_enqueues_sends_few_notifications_and_the_last_still_wakes_a_worker() {
    let db = TestDb::create().await;
    let q = queue(
        &db,
        durable_fast()
            .poll_every(Duration::from_secs(60))
            .notify_debounce(Duration::from_millis(100)),
    )
    .await;
    let probe = Probe::default();
    let running = host(&q, &["sleeps"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // The worker idle, waiting, with the listener up.
    wait_until(
        Duration::from_secs(10),
        || q.stats().listens >= 1 && q.stats().claims >= 1,
        || format!("{:?}", q.stats()),
    )
    .await;
    for _ in 0..50 {
        sleeps::enqueue(&q, 0).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while probe.done.load(Ordering::SeqCst) < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of 50 ran",
            probe.done.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let notifications = q.stats().notifications;
    assert!(
        (1..10).contains(&notifications),
        "{notifications} notifications for 50 enqueues"
    );
    assert!(running.stop().await.is_clean());
}

/// Outlives its timeout.
#[hosted_postgres::queued(
    queue = "work",
    name = "too-slow",
    timeout = "200ms",
    max_attempts = 2,
    backoff = "10ms..10ms"
)]
async fn too_slow() {
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_timeout_fails_and_is_retried() {
    let db = TestDb::create().await;
    let q = queue(&db, durable_fast()).await;
    let probe = Probe::default();
    let running = host(&q, &["too-slow"], &probe)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let written = too_slow::enqueue(&q, ()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let item = loop {
        let item = q.item(written.id()).await.unwrap().unwrap();
        if item.state == "dead" {
            break item;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            item.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(item.attempt, 2);
    assert_eq!(item.error.as_deref(), Some("timed out after 200ms"));
    assert!(running.stop().await.is_clean());
}
