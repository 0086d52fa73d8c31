//! Run with: cargo bench -p hosted-benches --bench queue
//!
//! The background work queue against a bare `tokio::sync::mpsc` channel
//! with worker tasks (one worker owns the receiver; several share it behind
//! a mutex), in the same run, on a multi-threaded runtime:
//!
//! - 1,000,000 no-op items, enqueued and drained with 1 and with 8 workers;
//! - 100,000 items that each sleep 1 ms, with 8 and with 256 workers;
//! - bytes per queued item: 1,000,000 items queued, none running.
//!
//! Both sides move the same work item, a boxed async closure; each item
//! bumps a shared counter so the end of the drain is seen the same way.
//! The no-op scenarios alternate the two sides for several rounds and
//! report medians (the ratio is the median of each round's ratio): on a
//! shared 2-core machine one round swings by 2x. Each
//! scenario also reports the process's CPU time per item on each side (all
//! threads, producer and workers), which swings much less.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hosted::{Host, QueueOptions, TaskQueue};
use hosted_benches::{bytes_in_use, cores, cpu_time, median, Counting};
use tokio::sync::{mpsc, Mutex, Notify};

#[global_allocator]
static ALLOC: Counting = Counting;

type BareItem = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

const CAPACITY: usize = 1_024;

/// Counts finished items; wakes the bench when all `total` are done.
#[derive(Clone)]
struct Done {
    count: Arc<AtomicU64>,
    all: Arc<Notify>,
    total: u64,
}

impl Done {
    fn new(total: u64) -> Done {
        Done {
            count: Arc::default(),
            all: Arc::default(),
            total,
        }
    }

    fn one(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.total {
            self.all.notify_one();
        }
    }
}

async fn work(done: Done, sleep: bool) {
    if sleep {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    done.one();
}

/// Pushes `items` items with `push` and returns items per second, from the
/// first push to the last item done.
async fn measure(items: u64, mut push: impl AsyncFnMut(Done)) -> f64 {
    let done = Done::new(items);
    let finished = done.all.notified();
    tokio::pin!(finished);
    finished.as_mut().enable();
    let began = Instant::now();
    for _ in 0..items {
        push(done.clone()).await;
    }
    finished.await;
    items as f64 / began.elapsed().as_secs_f64()
}

/// Items per second through the hosted queue.
async fn hosted(items: u64, workers: usize, sleep: bool) -> f64 {
    let queue = TaskQueue::new(QueueOptions::default().capacity(CAPACITY).workers(workers));
    let running = Host::builder()
        .without_registered()
        .queue(queue.clone())
        .build()
        .expect("host")
        .start()
        .await
        .expect("start");
    let rate = measure(items, async |done| {
        if queue
            .enqueue_detached("item", move |_stop| work(done, sleep))
            .await
            .is_err()
        {
            panic!("the queue refused an item");
        }
    })
    .await;
    let report = running.stop().await;
    assert!(report.is_clean(), "{report}");
    rate
}

/// Items per second through a bare channel and worker tasks.
async fn bare(items: u64, workers: usize, sleep: bool) -> f64 {
    let (tx, rx) = mpsc::channel::<BareItem>(CAPACITY);
    let mut handles = Vec::new();
    if workers == 1 {
        let mut rx = rx;
        handles.push(tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                item().await;
            }
        }));
    } else {
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = rx.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let item = rx.lock().await.recv().await;
                    match item {
                        Some(item) => item().await,
                        None => return,
                    }
                }
            }));
        }
    }
    let rate = measure(items, async |done| {
        let item: BareItem = Box::new(move || Box::pin(work(done, sleep)));
        if tx.send(item).await.is_err() {
            panic!("the channel closed");
        }
    })
    .await;
    drop(tx);
    for handle in handles {
        handle.await.expect("worker");
    }
    rate
}

/// Bytes per item with `items` no-op items queued and no worker running.
fn bytes_per_item_hosted(items: usize) -> f64 {
    let before = bytes_in_use();
    let queue = TaskQueue::new(QueueOptions::default().capacity(items));
    for _ in 0..items {
        if queue
            .try_enqueue_detached("item", |_stop| async {})
            .is_err()
        {
            panic!("the queue refused an item");
        }
    }
    let per_item = (bytes_in_use() - before) as f64 / items as f64;
    drop(queue);
    per_item
}

fn bytes_per_item_bare(items: usize) -> f64 {
    let before = bytes_in_use();
    let (tx, rx) = mpsc::channel::<BareItem>(items);
    for _ in 0..items {
        let item: BareItem = Box::new(|| Box::pin(async {}));
        if tx.try_send(item).is_err() {
            panic!("the channel refused an item");
        }
    }
    let per_item = (bytes_in_use() - before) as f64 / items as f64;
    drop((tx, rx));
    per_item
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "queue throughput, {} worker threads, capacity {CAPACITY}",
        cores()
    );
    println!(
        "{:<34} {:>14} {:>14} {:>6}   {:>12} {:>12} {:>6}",
        "scenario", "hosted items/s", "bare items/s", "ratio", "hosted CPU", "bare CPU", "ratio"
    );
    let scenarios: [(&str, u64, usize, bool, usize); 4] = [
        ("1,000,000 no-op, 1 worker", 1_000_000, 1, false, 15),
        ("1,000,000 no-op, 8 workers", 1_000_000, 8, false, 15),
        ("100,000 x 1 ms sleep, 8 workers", 100_000, 8, true, 1),
        ("100,000 x 1 ms sleep, 256 workers", 100_000, 256, true, 1),
    ];
    // `QUEUE_SCENARIOS=1,2` runs only those (counted from 1).
    let only = std::env::var("QUEUE_SCENARIOS").ok();
    for (i, (name, items, workers, sleep, rounds)) in scenarios.into_iter().enumerate() {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|n| n == (i + 1).to_string()))
        {
            continue;
        }
        // Warm up both sides once, then alternate them round by round.
        runtime.block_on(hosted(items / 10, workers, sleep));
        runtime.block_on(bare(items / 10, workers, sleep));
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        // CPU time of the whole process (both sides' threads), per item,
        // over all rounds: steadier than the rates on a shared machine.
        let (mut our_cpu, mut their_cpu) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let began = cpu_time();
            ours.push(runtime.block_on(hosted(items, workers, sleep)));
            let between = cpu_time();
            theirs.push(runtime.block_on(bare(items, workers, sleep)));
            our_cpu += between - began;
            their_cpu += cpu_time() - between;
        }
        // The ratio is the median of each round's own ratio: a round of
        // each side run back to back shares the machine's mood of the
        // moment, which drifts over a run.
        let mut ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        let ratio = median(&mut ratios);
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        let per_item = |cpu: Duration| cpu.as_nanos() as f64 / (items * rounds as u64) as f64;
        let (our_cpu, their_cpu) = (per_item(our_cpu), per_item(their_cpu));
        println!(
            "{name:<34} {ours:>14.0} {theirs:>14.0} {ratio:>6.2}   {:>9.0} ns {:>9.0} ns {:>6.2}",
            our_cpu,
            their_cpu,
            our_cpu / their_cpu,
        );
    }
    let ours = bytes_per_item_hosted(1_000_000);
    let theirs = bytes_per_item_bare(1_000_000);
    println!(
        "{:<34} {ours:>14.1} {theirs:>14.1} {:>6.2}",
        "bytes per queued item",
        ours / theirs
    );
}
