//! The background work queue: order with one worker, parallelism with N,
//! backpressure, failure isolation, awaited outcomes, named queues, and
//! shutdown (refusal, cancellation in flight, drain, the count of what never
//! ran).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::TestHost;
use hosted::{Outcome, Problem, QueueOptions, Refused};
use tokio::time::Instant;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A host with one queue: the default one, set up by `options`.
async fn host(options: QueueOptions) -> (TestHost, TaskQueue) {
    let host = Host::builder()
        .without_registered()
        .queue(options)
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let queue = host.queue("default").unwrap();
    (TestHost::start(host).await, queue)
}

/// Enqueues `count` items that take 1 s each, letting the worker take what
/// it can after each.
async fn enqueue_slow(test: &TestHost, queue: &TaskQueue, count: usize) {
    for i in 0..count {
        queue
            .enqueue_detached(format!("slow {i}"), |_stop| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
            })
            .await
            .unwrap();
        test.advance(Duration::ZERO).await;
    }
}

/// Enqueues an item from a task of its own; the task returns how long the
/// enqueue waited and the queue's depth right after.
fn enqueue_patiently(queue: &TaskQueue) -> tokio::task::JoinHandle<(Duration, usize)> {
    let queue = queue.clone();
    tokio::spawn(async move {
        let began = Instant::now();
        queue
            .enqueue_detached("patient", |_stop| async {})
            .await
            .unwrap();
        (began.elapsed(), queue.stats().depth)
    })
}

#[tokio::test(start_paused = true)]
async fn one_worker_runs_items_in_order() {
    let (test, queue) = host(QueueOptions::default()).await;
    let log = Log::default();
    for i in 0..5 {
        let log = log.clone();
        queue
            .enqueue_detached(format!("item {i}"), move |_stop| async move {
                tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
                log.push(format!("{i}"));
            })
            .await
            .unwrap();
    }
    test.advance(Duration::from_secs(1)).await;
    assert_eq!(log.entries(), ["0", "1", "2", "3", "4"]);
    assert_eq!(queue.stats().completed, 5);
    assert!(test.stop().await.is_clean());
}

/// The lag is how long the oldest waiting item has waited, to within the
/// time between two reads of the stats; none waiting, none.
#[tokio::test(start_paused = true)]
async fn the_lag_is_the_oldest_waiting_items_wait() {
    let (test, queue) = host(QueueOptions::default().workers(1)).await;
    // Three items of 1 s each: one runs, two wait.
    enqueue_slow(&test, &queue, 3).await;
    assert_eq!(queue.stats().lag, Duration::ZERO, "first seen now");
    test.advance(Duration::from_millis(600)).await;
    assert_eq!(queue.stats().lag, Duration::from_millis(600));
    // The first is done at 1 s: the second runs, the third has waited.
    test.advance(Duration::from_millis(900)).await;
    let stats = queue.stats();
    assert_eq!((stats.depth, stats.lag), (1, Duration::from_millis(1_500)));
    test.advance(Duration::from_secs(2)).await;
    assert_eq!(queue.stats().lag, Duration::ZERO, "nothing waits");
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn n_workers_run_n_items_at_once() {
    let (test, queue) = host(QueueOptions::default().workers(4).capacity(16)).await;
    let began = Instant::now();
    let mut handles = Vec::new();
    for i in 0..8 {
        handles.push(
            queue
                .enqueue(format!("item {i}"), |_stop| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                })
                .await
                .unwrap(),
        );
    }
    test.advance(Duration::from_millis(500)).await;
    assert_eq!(queue.stats().in_flight, 4);
    for handle in handles {
        assert_eq!(handle.await, Outcome::Succeeded);
    }
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(2),
        "8 items of 1 s on 4 workers"
    );
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_enqueue_wait_and_try_enqueue_hand_back() {
    let (test, queue) = host(QueueOptions::default().capacity(2)).await;
    // One item runs (for 1 s), two wait: the queue is full.
    enqueue_slow(&test, &queue, 3).await;
    assert_eq!(queue.stats().depth, 2);
    let refused = queue.try_enqueue("extra", |_stop| async {}).unwrap_err();
    assert!(matches!(refused, Refused::Full(_)));
    let _work = refused.into_inner(); // handed back, not lost

    // `enqueue` waits for room: the first item ends at 1 s.
    let waiter = enqueue_patiently(&queue);
    test.advance(Duration::from_secs(5)).await;
    assert_eq!(waiter.await.unwrap().0, Duration::from_secs(1));
    let stats = queue.stats();
    assert_eq!((stats.completed, stats.refused), (4, 1));
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn behind_slow_items_a_waiting_producer_gets_in_as_soon_as_one_is_taken() {
    let (test, queue) = host(QueueOptions::default().capacity(4)).await;
    // One item runs and four wait, each for 1 s: the queue is full.
    enqueue_slow(&test, &queue, 5).await;
    assert_eq!(queue.stats().depth, 4);
    let waiter = enqueue_patiently(&queue);
    test.advance(Duration::from_secs(10)).await;
    // At 1 s an item is taken and has to wait for its timer: the producer
    // is let in, not kept waiting until half the queue has drained (that
    // is for quick items; see the queue's unit tests).
    assert_eq!(waiter.await.unwrap(), (Duration::from_secs(1), 4));
    assert!(test.stop().await.is_clean());
}

/// Producers and workers on several threads, small queues, items that
/// finish at once and items that yield: every item runs, and no producer is
/// left waiting for a wake-up that never comes (the test would time out).
#[test]
fn on_many_threads_no_producer_misses_its_wake_up() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for capacity in [1, 2, 3, 8] {
            for workers in [1, 2, 3] {
                let queue =
                    TaskQueue::new(QueueOptions::default().capacity(capacity).workers(workers));
                let host = Host::builder()
                    .without_registered()
                    .queue(queue.clone())
                    .build()
                    .unwrap();
                let running = host.start().await.unwrap();
                let ran = Arc::new(AtomicU64::new(0));
                let producers: Vec<_> = (0..4_u64)
                    .map(|producer| {
                        let (queue, ran) = (queue.clone(), ran.clone());
                        tokio::spawn(async move {
                            for i in 0..5_000_u64 {
                                let ran = ran.clone();
                                let item = move |_stop| async move {
                                    if (i + producer) % 7 == 0 {
                                        tokio::task::yield_now().await;
                                    }
                                    ran.fetch_add(1, Ordering::Relaxed);
                                };
                                assert!(queue.enqueue_detached("item", item).await.is_ok());
                            }
                        })
                    })
                    .collect();
                let all = async {
                    for producer in producers {
                        producer.await.unwrap();
                    }
                };
                tokio::time::timeout(Duration::from_secs(60), all)
                    .await
                    .unwrap_or_else(|_| {
                        panic!("capacity {capacity}, {workers} workers: a producer never got in")
                    });
                let report = running.stop().await;
                assert!(report.is_clean(), "{report}");
                assert_eq!(ran.load(Ordering::Relaxed), 20_000);
            }
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_producer_waiting_for_room_when_stop_begins_gets_its_item_back() {
    let (test, queue) = host(QueueOptions::default().capacity(1)).await;
    enqueue_slow(&test, &queue, 2).await;
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let marker = String::from("the item's own data");
            queue
                .enqueue("patient", move |_stop| async move { drop(marker) })
                .await
        })
    };
    test.advance(Duration::from_millis(10)).await;
    assert!(!waiter.is_finished(), "the producer waits for room");
    test.handle().request_stop();
    test.advance(Duration::ZERO).await;
    let refused = waiter.await.unwrap().unwrap_err();
    assert!(matches!(refused, Refused::Stopping(_)));
    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.queues()[0].refused, 1);
    assert_eq!(report.queues()[0].completed, 2);
}

#[tokio::test(start_paused = true)]
async fn an_item_that_cancels_its_token_cancels_no_other_item() {
    let (test, queue) = host(QueueOptions::default().workers(2)).await;
    // A long item on one worker, waiting on its token...
    let log = Log::default();
    let long = {
        let log = log.clone();
        queue
            .enqueue("long", |stop: CancellationToken| async move {
                log.push(tokio::select! {
                    () = stop.cancelled() => "cancelled",
                    () = tokio::time::sleep(Duration::from_secs(5)) => "ran its 5 s",
                });
            })
            .await
            .unwrap()
    };
    test.advance(Duration::ZERO).await;
    // ...while an item on the other cancels its own.
    let canceller = queue
        .enqueue("canceller", |stop: CancellationToken| async move {
            stop.cancel();
        })
        .await
        .unwrap();
    assert_eq!(canceller.await, Outcome::Succeeded);
    let (seen, next) = tokio::sync::oneshot::channel();
    queue
        .enqueue_detached("next", move |stop: CancellationToken| async move {
            let _ = seen.send(stop.is_cancelled());
        })
        .await
        .unwrap();
    test.advance(Duration::ZERO).await;
    assert!(
        !next.await.unwrap(),
        "the next item's token is not cancelled"
    );
    test.advance(Duration::from_secs(6)).await;
    assert_eq!(long.await, Outcome::Succeeded);
    assert_eq!(log.entries(), ["ran its 5 s"]);
    assert_eq!(queue.stats().completed, 3);
    assert!(!test.handle().is_stopping());
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn failures_and_panics_are_counted_and_never_stop_the_worker() {
    let (test, queue) = host(QueueOptions::default()).await;
    let failed = queue
        .enqueue("fails", |_stop| async { Err::<(), _>("smtp said no") })
        .await
        .unwrap();
    let panicked = queue
        .enqueue("panics", |_stop| async { panic!("bug") as () })
        .await
        .unwrap();
    let fine = queue.enqueue("fine", |_stop| async {}).await.unwrap();
    assert_eq!(failed.await, Outcome::Failed("smtp said no".into()));
    assert_eq!(panicked.await, Outcome::Panicked("bug".into()));
    assert_eq!(fine.await, Outcome::Succeeded);
    let stats = queue.stats();
    assert_eq!((stats.completed, stats.failed), (1, 2));
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn named_queues_are_independent() {
    let host = Host::builder()
        .without_registered()
        .queue(QueueOptions::default())
        .queue(QueueOptions::named("emails").workers(2))
        .build()
        .unwrap();
    let default = host.queue("default").unwrap();
    let emails = host.queue("emails").unwrap();
    let test = TestHost::start(host).await;
    // The default queue's only worker is busy for an hour...
    default
        .enqueue_detached("long", |stop: CancellationToken| async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        })
        .await
        .unwrap();
    // ...and the emails queue goes on.
    let sent = emails.enqueue("mail", |_stop| async {}).await.unwrap();
    assert_eq!(sent.await, Outcome::Succeeded);
    let names: Vec<String> = test.handle().queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["default", "emails"]);
    assert_eq!(test.handle().queue("emails").unwrap().stats().completed, 1);
    assert!(test.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn at_stop_new_items_are_refused_in_flight_items_are_cancelled_and_waiting_ones_drained() {
    let (test, queue) = host(QueueOptions::default()).await;
    let log = Log::default();
    let in_flight = {
        let log = log.clone();
        queue
            .enqueue("in flight", move |stop: CancellationToken| async move {
                stop.cancelled().await;
                log.push("in flight saw its token cancelled");
            })
            .await
            .unwrap()
    };
    let mut waiting = Vec::new();
    for i in 0..3 {
        let log = log.clone();
        waiting.push(
            queue
                .enqueue(
                    format!("waiting {i}"),
                    move |deadline: CancellationToken| async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        log.push(format!(
                            "waiting {i} ran, deadline fired: {}",
                            deadline.is_cancelled()
                        ));
                    },
                )
                .await
                .unwrap(),
        );
    }
    test.advance(Duration::from_millis(10)).await;
    let handle = test.handle();
    handle.request_stop();
    let refused = queue.enqueue("late", |_stop| async {}).await.unwrap_err();
    assert!(matches!(refused, Refused::Stopping(_)));

    let report = test.stop().await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.stop_took(),
        Duration::from_secs(3),
        "the drain ran within the timeout"
    );
    assert_eq!(in_flight.await, Outcome::Succeeded);
    for handle in waiting {
        assert_eq!(handle.await, Outcome::Succeeded);
    }
    assert_eq!(
        log.entries(),
        [
            "in flight saw its token cancelled",
            "waiting 0 ran, deadline fired: false",
            "waiting 1 ran, deadline fired: false",
            "waiting 2 ran, deadline fired: false",
        ]
    );
    assert_eq!(report.not_run(), 0);
    assert_eq!(report.queues()[0].refused, 1);
}

#[tokio::test(start_paused = true)]
async fn what_the_deadline_cuts_off_is_counted_as_never_run() {
    let host = Host::builder()
        .without_registered()
        .queue(QueueOptions::default())
        .shutdown_timeout(Duration::from_millis(2_500))
        .build()
        .unwrap();
    let queue = host.queue("default").unwrap();
    let test = TestHost::start(host).await;
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(
            queue
                .enqueue(format!("job {i}"), |_token| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                })
                .await
                .unwrap(),
        );
    }
    test.advance(Duration::from_millis(10)).await;
    let report = test.stop().await;
    // Stop begins at 10 ms with item 0 running (until 1 s); the drain runs
    // item 1 (1-2 s); item 2 is cut off at the 2.51 s deadline; 3 and 4 never
    // run.
    let outcomes: Vec<Outcome> = futures_outcomes(handles).await;
    assert_eq!(
        outcomes,
        [
            Outcome::Succeeded,
            Outcome::Succeeded,
            Outcome::Aborted,
            Outcome::NotRun,
            Outcome::NotRun
        ]
    );
    assert_eq!(report.not_run(), 2);
    assert_eq!(report.code(), hosted::Report::EXIT_ABORTED);
    assert!(
        report
            .to_string()
            .contains("2 item(s) of queue `default` never ran"),
        "{report}"
    );
}

async fn futures_outcomes(handles: Vec<hosted::Queued>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await);
    }
    outcomes
}

#[tokio::test(start_paused = true)]
async fn without_drain_waiting_items_are_not_run_but_counted() {
    let (test, queue) = host(QueueOptions::default().drain(false)).await;
    let mut handles = Vec::new();
    for i in 0..4 {
        handles.push(
            queue
                .enqueue(format!("job {i}"), |token: CancellationToken| async move {
                    token.cancelled().await;
                })
                .await
                .unwrap(),
        );
    }
    test.advance(Duration::from_millis(10)).await;
    let report = test.stop().await;
    assert_eq!(
        futures_outcomes(handles).await,
        [
            Outcome::Succeeded,
            Outcome::NotRun,
            Outcome::NotRun,
            Outcome::NotRun
        ]
    );
    assert_eq!(report.not_run(), 3);
    assert!(report.is_clean(), "{report}");
}

#[every("1s")]
async fn producer(queue: TaskQueue) -> anyhow::Result<()> {
    queue
        .enqueue_detached("from a job", |_stop| async {})
        .await
        .map_err(|refused| anyhow::anyhow!("{refused}"))
}

#[tokio::test(start_paused = true)]
async fn jobs_take_the_default_queue_and_build_checks_it_exists() {
    let error = Host::builder().only_jobs(["producer"]).build().unwrap_err();
    assert_eq!(
        error.problems(),
        [Problem::MissingQueue {
            job: "producer".into(),
            queue: "default",
        }]
    );
    let host = Host::builder()
        .only_jobs(["producer"])
        .queue(QueueOptions::default())
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(2_500)).await;
    assert_eq!(test.handle().queues()[0].completed, 3);
    assert!(test.stop().await.is_clean());
}

#[tokio::test]
async fn bad_queue_options_are_build_errors() {
    let error = Host::builder()
        .without_registered()
        .queue(QueueOptions::default().capacity(0))
        .queue(QueueOptions::named("x").workers(0))
        .queue(QueueOptions::named("x"))
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("queue `default`: the capacity is zero"),
        "{text}"
    );
    assert!(text.contains("queue `x`: it has no workers"), "{text}");
    assert!(
        text.contains("queue `x`: two queues have this name"),
        "{text}"
    );
}

/// Regression: an item whose closure panicked before returning its future
/// killed its worker; its handle said `NotRun`, nothing was counted, and
/// the next item never ran.
#[tokio::test(start_paused = true)]
async fn a_closure_that_panics_before_its_future_is_a_failed_item_and_the_worker_goes_on() {
    let (test, queue) = host(QueueOptions::default()).await;
    #[allow(unreachable_code)]
    let panicked = queue
        .enqueue("panics at once", |_stop| -> std::future::Ready<()> {
            panic!("no future today")
        })
        .await
        .unwrap();
    let next = queue.enqueue("next", |_stop| async {}).await.unwrap();
    test.advance(Duration::ZERO).await;
    assert_eq!(panicked.await, Outcome::Panicked("no future today".into()));
    assert_eq!(next.await, Outcome::Succeeded);
    let stats = queue.stats();
    assert_eq!((stats.failed, stats.completed), (1, 1));
    assert!(test.stop().await.is_clean());
}

/// Regression: a future that panicked while being dropped killed its
/// worker.
#[tokio::test(start_paused = true)]
async fn a_future_that_panics_when_dropped_is_a_failed_item_and_the_worker_goes_on() {
    /// Ready at once; its destructor panics (an `async` block would drop
    /// what it holds as it completes, inside its last poll).
    struct PanicsOnDrop;
    impl std::future::Future for PanicsOnDrop {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("dropped badly");
        }
    }
    let (test, queue) = host(QueueOptions::default()).await;
    let first = queue
        .enqueue("panics when dropped", |_stop| PanicsOnDrop)
        .await
        .unwrap();
    let next = queue.enqueue("next", |_stop| async {}).await.unwrap();
    test.advance(Duration::ZERO).await;
    match first.await {
        Outcome::Panicked(message) => assert!(message.contains("dropped badly"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(next.await, Outcome::Succeeded);
    assert_eq!(queue.stats().failed, 1);
    assert!(test.stop().await.is_clean());
}

/// Regression: an item that kept its token and cancelled it after it
/// ended cancelled whatever item its worker ran next.
#[tokio::test(start_paused = true)]
async fn a_token_cancelled_after_its_item_ended_cancels_no_later_item() {
    let (test, queue) = host(QueueOptions::default()).await;
    let (keep, kept) = tokio::sync::oneshot::channel();
    queue
        .enqueue_detached(
            "keeps its token",
            move |stop: CancellationToken| async move {
                let _ = keep.send(stop);
            },
        )
        .await
        .unwrap();
    test.advance(Duration::ZERO).await;
    let kept = kept.await.unwrap();
    let (seen, later) = tokio::sync::oneshot::channel();
    queue
        .enqueue_detached("later", move |stop: CancellationToken| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = seen.send(stop.is_cancelled());
        })
        .await
        .unwrap();
    test.advance(Duration::from_millis(1)).await;
    kept.cancel();
    test.advance(Duration::from_millis(200)).await;
    assert!(
        !later.await.unwrap(),
        "the later item's token was cancelled"
    );
    assert!(test.stop().await.is_clean());
}
