//! Run with: cargo bench -p hosted-benches --bench scale
//!
//! Many jobs every second, with their phases spread evenly over the second,
//! for a steady window (10 s by default): registration time, bytes per
//! idle job (counting allocator), process CPU time (user + sys) during the
//! window, peak RSS, ticks fired against expected, and p99 lateness.
//!
//! Contenders, each in a fresh process (CPU and peak RSS are its own):
//! - `hosted`: jobs built with `Job::every(..).initial_delay(phase)`;
//! - `tokio`: a task per job looping on `tokio::time::interval_at` with
//!   `MissedTickBehavior::Skip`;
//! - `tcs`: tokio-cron-scheduler's `Job::new_repeated_async` (no phase
//!   option: its jobs are due a period after they were added);
//! - `apalis`: an apalis worker per job on an apalis-cron backend whose
//!   schedule ticks every whole second (its ticks are whole seconds, so no
//!   phases either). A schedule of our own rather than a parsed cron line:
//!   the same ticks, and cheaper than the `cron` crate's iterator.
//!
//! With `--features metrics`, `SCALE_PER_JOB=0` builds the host with
//! `metrics_per_job(false)`. Sizes and window: `SCALE_SIZES=1000,10000,100000`, `SCALE_SECS=10`,
//! `SCALE_CONTENDERS=hosted,tokio,tcs,apalis`, `SCALE_RUNS=3` (fresh
//! processes per contender and size; the table gives medians, and the
//! range of the CPU ratio and of p99 lateness over the runs).
//!
//! Lateness is measured in each tick's body against the time the tick was
//! due: `Run::scheduled()` for hosted, the `Instant` that `Interval::tick`
//! returns for tokio, the whole second of the apalis tick, and for
//! tokio-cron-scheduler (which says nothing of when a tick was due) the
//! offset into the current period since the job was added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use hosted::{Host, Job, Run};
use hosted_benches::{
    bytes_in_use, child, cores, count_bytes, cpu_time, env_count, median, micros, peak_rss, spread,
    Counting, Histogram, SecondsAhead,
};

#[global_allocator]
static ALLOC: Counting = Counting;

const PERIOD: Duration = Duration::from_secs(1);

/// Samples of ticks whose due time fell in the steady window.
static LATE: LazyLock<Histogram> = LazyLock::new(Histogram::default);
/// The steady window `[start, end)` in Unix nanoseconds (wall clock) and in
/// nanoseconds since `ANCHOR` (monotonic clock); `end` is `MAX` while open.
static WALL_START: AtomicU64 = AtomicU64::new(u64::MAX);
static WALL_END: AtomicU64 = AtomicU64::new(u64::MAX);
static MONO_START: AtomicU64 = AtomicU64::new(u64::MAX);
static MONO_END: AtomicU64 = AtomicU64::new(u64::MAX);
static ANCHOR: LazyLock<Instant> = LazyLock::new(Instant::now);

fn in_window(at: u64, start: &AtomicU64, end: &AtomicU64) -> bool {
    at >= start.load(Ordering::Relaxed) && at < end.load(Ordering::Relaxed)
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A tick due at wall time `due`.
fn record_wall(due: SystemTime) {
    if in_window(unix_nanos(due), &WALL_START, &WALL_END) {
        LATE.record(SystemTime::now().duration_since(due).unwrap_or_default());
    }
}

/// A tick due at `due` on the monotonic clock.
fn record_mono(due: Instant) {
    let at = due.saturating_duration_since(*ANCHOR).as_nanos() as u64;
    if in_window(at, &MONO_START, &MONO_END) {
        LATE.record(due.elapsed());
    }
}

/// A tick whose due time the contender does not say, `late` after it
/// (counted by when it ran).
fn record_unknown(late: Duration) {
    if in_window(
        Instant::now().saturating_duration_since(*ANCHOR).as_nanos() as u64,
        &MONO_START,
        &MONO_END,
    ) {
        LATE.record(late);
    }
}

fn open_window(start: bool) {
    let (wall, mono) = (&[&WALL_START, &WALL_END], &[&MONO_START, &MONO_END]);
    let i = usize::from(!start);
    wall[i].store(unix_nanos(SystemTime::now()), Ordering::Relaxed);
    mono[i].store(
        Instant::now().saturating_duration_since(*ANCHOR).as_nanos() as u64,
        Ordering::Relaxed,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let contender = args[at + 1].clone();
        let jobs: usize = args[at + 2].parse().expect("job count");
        let secs: u64 = args[at + 3].parse().expect("seconds");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(scenario(&contender, jobs, Duration::from_secs(secs)));
        return;
    }
    let sizes = env_list("SCALE_SIZES", "1000,10000,100000");
    let contenders = env_list("SCALE_CONTENDERS", "hosted,tokio,tcs,apalis");
    let secs = std::env::var("SCALE_SECS").unwrap_or_else(|_| "10".to_owned());
    let runs = env_count("SCALE_RUNS", 3).max(1);
    println!(
        "scale: jobs every 1 s, phases spread, {secs} s steady window, {} cores, {runs} fresh processes each: median (min to max)",
        cores()
    );
    println!(
        "{:>7} {:>7} {:>12} {:>10} {:>9} {:>18} {:>9} {:>17} {:>22}",
        "jobs",
        "who",
        "register ms",
        "B/job",
        "CPU %",
        "CPU/tokio",
        "RSS MB",
        "ticks fired",
        "p99 late"
    );
    for size in &sizes {
        // Run by run, every contender once, so that each run's ratio to
        // raw tokio compares processes that ran minutes apart at most.
        let mut results: Vec<Vec<std::collections::BTreeMap<String, String>>> =
            vec![Vec::new(); contenders.len()];
        for _ in 0..runs {
            for (who, results) in contenders.iter().zip(&mut results) {
                results.push(child(&["--child", who, size, &secs]));
            }
        }
        let figure = |r: &std::collections::BTreeMap<String, String>, key: &str| -> f64 {
            r[key].parse().unwrap_or(f64::NAN)
        };
        let tokio = contenders.iter().position(|who| who == "tokio");
        for (who, runs) in contenders.iter().zip(&results) {
            let column = |key: &str| -> Vec<f64> { runs.iter().map(|r| figure(r, key)).collect() };
            let ratio = match tokio {
                Some(t) => {
                    let mut ratios: Vec<f64> = runs
                        .iter()
                        .zip(&results[t])
                        .map(|(ours, tokio)| figure(ours, "cpu_pct") / figure(tokio, "cpu_pct"))
                        .collect();
                    spread(&mut ratios, 2)
                }
                None => "-".to_owned(),
            };
            let mut p99: Vec<f64> = column("p99_us");
            p99.sort_by(f64::total_cmp);
            let (fired, expected): (f64, f64) = (
                column("fired").iter().sum(),
                column("expected").iter().sum(),
            );
            println!(
                "{:>7} {:>7} {:>12.1} {:>10.0} {:>9.1} {:>18} {:>9.1} {:>17} {:>22}",
                size,
                who,
                median(&mut column("register_ms")),
                median(&mut column("bytes_per_job")),
                median(&mut column("cpu_pct")),
                ratio,
                median(&mut column("rss_mb")),
                format!(
                    "{:.0}/{:.0} ({:.0}%)",
                    fired / runs.len() as f64,
                    expected / runs.len() as f64,
                    fired / expected * 100.0
                ),
                format!(
                    "{} ({} to {})",
                    micros(&median(&mut p99).to_string()),
                    micros(&p99[0].to_string()),
                    micros(&p99[p99.len() - 1].to_string())
                ),
            );
        }
    }
}

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// One contender in this process: register, settle, measure the window,
/// print one line of `key=value` pairs.
async fn scenario(who: &str, jobs: usize, window: Duration) {
    // With the feature, hosted records its metrics into a Prometheus
    // exporter, as a service that exposes `/metrics` would. Histograms get
    // fixed buckets: the exporter's default summaries keep sketches of
    // tens of kilobytes a series, which 200,000 series (two a job) do not
    // fit in memory. The exporter's upkeep, which folds recorded samples
    // into the buckets, runs every 5 s; rendering for a scrape is left out,
    // as the exporter's cost rather than the recording's.
    // `SCALE_RECORDER=none` installs no recorder: what hosted's own
    // recording costs, into the facade's no-op handles.
    #[cfg(feature = "metrics")]
    if who == "hosted" && std::env::var("SCALE_RECORDER").as_deref() != Ok("none") {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1, 1.0, 10.0])
            .expect("buckets")
            .install_recorder()
            .expect("the only recorder");
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
    LazyLock::force(&ANCHOR);
    LazyLock::force(&LATE);
    count_bytes(true);
    let before = bytes_in_use();
    let began = Instant::now();
    let running = match who {
        "hosted" => Running::Hosted(hosted(jobs).await),
        "tokio" => Running::Tokio(raw_tokio(jobs)),
        "tcs" => Running::Tcs(tcs(jobs).await),
        "apalis" => Running::Apalis(apalis(jobs)),
        other => panic!("unknown contender {other}"),
    };
    let register = began.elapsed();
    // Two periods to settle: every job has ticked, the runtime has grown
    // whatever it grows.
    tokio::time::sleep(2 * PERIOD).await;
    let bytes = bytes_in_use() - before;
    // Time is measured without the allocator's counting (see `Counting`).
    count_bytes(false);
    let cpu_before = cpu_time();
    let wall_before = Instant::now();
    open_window(true);
    tokio::time::sleep(window).await;
    open_window(false);
    let cpu = cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    // Ticks due just before the end may still be on their way.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let fired = LATE.count();
    // Every job is due once a period: the window's exact length decides.
    let expected = (jobs as f64 * wall.as_secs_f64() / PERIOD.as_secs_f64()).round() as u64;
    println!(
        "register_ms={:.1} bytes_per_job={} cpu_pct={:.2} rss_mb={:.1} fired={fired} expected={expected} fired_pct={:.0} p50_us={} p99_us={} max_us={}",
        register.as_secs_f64() * 1e3,
        bytes / jobs as isize,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        peak_rss() as f64 / 1048576.0,
        fired as f64 / expected as f64 * 100.0,
        LATE.quantile(0.5).map_or("-".into(), |v| v.to_string()),
        LATE.quantile(0.99).map_or("-".into(), |v| v.to_string()),
        LATE.max().map_or("-".into(), |v| v.to_string()),
    );
    drop(running);
}

enum Running {
    Hosted(#[allow(dead_code)] hosted::RunningHost),
    Tokio(#[allow(dead_code)] Vec<tokio::task::JoinHandle<()>>),
    Tcs(#[allow(dead_code)] tokio_cron_scheduler::JobScheduler),
    Apalis(#[allow(dead_code)] tokio::task::JoinHandle<()>),
}

fn phase(i: usize, jobs: usize) -> Duration {
    PERIOD * u32::try_from(i).expect("job index") / u32::try_from(jobs).expect("job count")
}

async fn hosted(jobs: usize) -> hosted::RunningHost {
    let mut builder = Host::builder().without_registered();
    for i in 0..jobs {
        let job = Job::every(format!("job{i}"), PERIOD, |run: Run| async move {
            record_wall(run.scheduled().into());
        })
        .initial_delay(phase(i, jobs));
        builder = builder.job(job);
    }
    // `SCALE_PER_JOB=0`: one set of metrics for the host, not seven series
    // a job.
    #[cfg(feature = "metrics")]
    if std::env::var("SCALE_PER_JOB").as_deref() == Ok("0") {
        builder = builder.metrics_per_job(false);
    }
    builder.build().expect("host").start().await.expect("start")
}

fn raw_tokio(jobs: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let start = tokio::time::Instant::now();
    (0..jobs)
        .map(|i| {
            tokio::spawn(async move {
                let mut interval = tokio::time::interval_at(start + phase(i, jobs), PERIOD);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    let due = interval.tick().await;
                    record_mono(due.into_std());
                }
            })
        })
        .collect()
}

async fn tcs(jobs: usize) -> tokio_cron_scheduler::JobScheduler {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await.expect("scheduler");
    for _ in 0..jobs {
        let added = Instant::now();
        let job = Job::new_repeated_async(PERIOD, move |_, _| {
            Box::pin(async move {
                let into = added.elapsed().as_nanos() % PERIOD.as_nanos();
                record_unknown(Duration::from_nanos(into as u64));
            })
        })
        .expect("job");
        scheduler.add(job).await.expect("add");
    }
    scheduler.start().await.expect("start");
    scheduler
}

fn apalis(jobs: usize) -> tokio::task::JoinHandle<()> {
    use apalis::prelude::{Monitor, WorkerBuilder};
    use apalis_cron::{CronScheduler, Tick};
    let mut monitor = Monitor::new();
    for i in 0..jobs {
        monitor = monitor.register(move |_| {
            WorkerBuilder::new(format!("job{i}"))
                .backend(CronScheduler::new(SecondsAhead(1)))
                .build(|tick: Tick<chrono::Utc>| async move {
                    record_wall(SystemTime::UNIX_EPOCH + Duration::from_secs(tick.get_timestamp()));
                })
        });
    }
    tokio::spawn(async move {
        let _ = monitor.run().await;
    })
}
