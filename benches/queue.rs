//! Run with: cargo bench -p hosted-benches --bench queue
//!
//! The background work queue against a bare `tokio::sync::mpsc` channel
//! with worker tasks (one worker owns the receiver; several share it behind
//! a mutex), on a multi-threaded runtime:
//!
//! - 1,000,000 no-op items, enqueued and drained with 1 and with 8 workers;
//! - 100,000 items that each sleep 1 ms, with 8 and with 256 workers;
//! - what each item's own cancellation token costs;
//! - bytes per queued item: 1,000,000 items queued, none running.
//!
//! Both sides move the same work item, a boxed async closure; each item
//! bumps a shared counter so the end of the drain is seen the same way.
//!
//! Each scenario runs in `QUEUE_RUNS` (5) fresh processes, one after the
//! other; the table gives the median over them and, for the ratios, the
//! range. Within a process the two sides alternate for several rounds (9
//! for the no-op scenarios): its rates are medians, its rate ratio is the
//! median of each round's own ratio (back-to-back rounds share the
//! machine's mood of the moment), and its CPU per item is the process's
//! user + system time (all threads, producer and workers) over all rounds
//! of each side. `QUEUE_SCENARIOS=1,2` runs only those (counted from 1);
//! `--child N hosted` (or `bare`) runs scenario N (from 0) one side alone,
//! to profile it.
//!
//! The allocator counts bytes only for the last measurement (see
//! `Counting`): counting on every allocation of both threads cost the
//! side that allocates more, hosted, about 17 % of its CPU per item.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hosted::{Host, QueueOptions, TaskQueue};
use hosted_benches::{
    bytes_in_use, child, cores, count_bytes, cpu_time, env_count, median, spread, Counting,
};
use tokio::sync::{mpsc, Mutex, Notify};
use tokio_util::sync::CancellationToken;

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

/// The scenarios: name, items, workers, whether items sleep 1 ms, rounds
/// per process.
const SCENARIOS: [(&str, u64, usize, bool, usize); 4] = [
    ("1,000,000 no-op, 1 worker", 1_000_000, 1, false, 9),
    ("1,000,000 no-op, 8 workers", 1_000_000, 8, false, 9),
    ("100,000 x 1 ms sleep, 8 workers", 100_000, 8, true, 1),
    ("100,000 x 1 ms sleep, 256 workers", 100_000, 256, true, 1),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let scenario: usize = args[at + 1].parse().expect("scenario index");
        let side = args.get(at + 2).map_or("both", String::as_str);
        child_run(SCENARIOS[scenario], side);
        return;
    }
    // `QUEUE_RUNS` fresh processes per scenario (median and range over
    // them); `QUEUE_SCENARIOS=1,2` runs only those (counted from 1).
    let runs = env_count("QUEUE_RUNS", 5).max(1);
    let only = std::env::var("QUEUE_SCENARIOS").ok();
    println!(
        "queue throughput, {} worker threads, capacity {CAPACITY}, {runs} fresh processes a scenario: median (min to max)",
        cores()
    );
    println!(
        "{:<34} {:>14} {:>14} {:>18}   {:>9} {:>9} {:>18}",
        "scenario",
        "hosted items/s",
        "bare items/s",
        "rate ratio",
        "hosted ns",
        "bare ns",
        "CPU ratio"
    );
    for (i, scenario) in SCENARIOS.into_iter().enumerate() {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|n| n == (i + 1).to_string()))
        {
            continue;
        }
        let mut figures: [Vec<f64>; 6] = Default::default();
        for _ in 0..runs {
            let r = child(&["--child", &i.to_string()]);
            for (k, key) in [
                "ours",
                "theirs",
                "ratio",
                "our_cpu",
                "their_cpu",
                "cpu_ratio",
            ]
            .into_iter()
            .enumerate()
            {
                figures[k].push(r[key].parse().expect("a figure"));
            }
        }
        let [ours, theirs, ratio, our_cpu, their_cpu, cpu_ratio] = &mut figures;
        println!(
            "{:<34} {:>14.0} {:>14.0} {:>18}   {:>9.0} {:>9.0} {:>18}",
            scenario.0,
            median(ours),
            median(theirs),
            spread(ratio, 2),
            median(our_cpu),
            median(their_cpu),
            spread(cpu_ratio, 2),
        );
    }
    let (own, shared) = token_costs(2_000_000);
    println!(
        "{:<34} {own:>11.0} ns {shared:>11.0} ns {:>18.2}",
        "token per item: own / shared",
        own / shared
    );
    count_bytes(true);
    let ours = bytes_per_item_hosted(1_000_000);
    let theirs = bytes_per_item_bare(1_000_000);
    count_bytes(false);
    println!(
        "{:<34} {ours:>14.1} {theirs:>14.1} {:>18.2}",
        "bytes per queued item",
        ours / theirs
    );
}

/// What each item's own token costs: nanoseconds per `child_token()` of a
/// worker's token and its drop (what the queue does per item), against a
/// clone of one shared token and its drop (what it did before items got
/// tokens of their own), each the median of 5 rounds of `n` on this
/// thread.
fn token_costs(n: u32) -> (f64, f64) {
    let stop = CancellationToken::new();
    let worker = stop.child_token();
    // As the queue's workers hold one (see `ItemToken` in the queue).
    let _anchor = worker.child_token();
    let time = |f: &dyn Fn() -> CancellationToken| {
        let mut rounds: Vec<f64> = (0..5)
            .map(|_| {
                let began = Instant::now();
                for _ in 0..n {
                    drop(std::hint::black_box(f()));
                }
                began.elapsed().as_nanos() as f64 / f64::from(n)
            })
            .collect();
        median(&mut rounds)
    };
    (time(&|| worker.child_token()), time(&|| worker.clone()))
}

/// One scenario in this process: both sides alternate round by round (or
/// `side` alone, `hosted` or `bare`, for a profile); prints one line of
/// `key=value` pairs.
fn child_run((_, items, workers, sleep, rounds): (&str, u64, usize, bool, usize), side: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (run_ours, run_theirs) = (side != "bare", side != "hosted");
    // Warm up both sides once, then alternate them round by round.
    if run_ours {
        runtime.block_on(hosted(items / 10, workers, sleep));
    }
    if run_theirs {
        runtime.block_on(bare(items / 10, workers, sleep));
    }
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // CPU time of the whole process (both sides' threads), per item, over
    // all rounds: steadier than the rates on a shared machine.
    let (mut our_cpu, mut their_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let began = cpu_time();
        if run_ours {
            ours.push(runtime.block_on(hosted(items, workers, sleep)));
        }
        let between = cpu_time();
        if run_theirs {
            theirs.push(runtime.block_on(bare(items, workers, sleep)));
        }
        our_cpu += between - began;
        their_cpu += cpu_time() - between;
    }
    if !(run_ours && run_theirs) {
        let rates = if run_ours { &mut ours } else { &mut theirs };
        println!("rate={:.0}", median(rates));
        return;
    }
    // The ratio is the median of each round's own ratio: a round of each
    // side run back to back shares the machine's mood of the moment.
    let mut ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
    let ratio = median(&mut ratios);
    let per_item = |cpu: Duration| cpu.as_nanos() as f64 / (items * rounds as u64) as f64;
    let (our_cpu, their_cpu) = (per_item(our_cpu), per_item(their_cpu));
    println!(
        "ours={:.0} theirs={:.0} ratio={ratio:.4} our_cpu={our_cpu:.1} their_cpu={their_cpu:.1} cpu_ratio={:.4}",
        median(&mut ours),
        median(&mut theirs),
        our_cpu / their_cpu,
    );
}
