//! Run with: cargo bench -p hosted-benches --bench precision
//!
//! How late ticks run, each contender in a fresh process (the 10 ms
//! scenario in `PRECISION_RUNS` of them, 3 by default: the table gives the
//! median and the range of p50 and p99, the largest max, and the median
//! drift):
//!
//! 1. One job every 10 ms for 1,000 ticks: lateness p50 / p99 / max, and
//!    the drift of the last tick (its time since the first, less the whole
//!    periods between them; ticks skipped after a stall are counted apart). `hosted`: `Job::every`; `tokio`: `tokio::time::interval`
//!    with `MissedTickBehavior::Skip`; `tcs`: tokio-cron-scheduler's
//!    `Job::new_repeated_async`. apalis-cron ticks in whole seconds and
//!    cannot take a 10 ms period.
//! 2. A cron job with seconds (`* * * * * *`) for 20 ticks: lateness
//!    against the whole wall-clock second. `tokio`: `sleep_until` the next
//!    whole second; `tcs`: `Job::new_async`; `apalis`: an apalis-cron
//!    worker whose schedule ticks every whole second.
//!
//! Lateness is taken in the job's body: against `Run::scheduled()` for
//! hosted's `every`, the `Instant` that `Interval::tick` returns for tokio,
//! the grid from the time the job was added for tokio-cron-scheduler (which
//! says nothing of when a tick was due), and the whole second for cron.
//!
//! `PRECISION_TICKS=1000` and `PRECISION_CRON_TICKS=20` shorten a run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hosted::{Host, Job, Run};
use hosted_benches::{child, cores, env_count, micros, SecondsAhead};
use tokio::sync::Notify;

const PERIOD: Duration = Duration::from_millis(10);

/// What the body of each tick records.
#[derive(Default)]
struct Samples {
    /// (lateness, when it ran)
    ticks: Mutex<Vec<(Duration, Instant)>>,
    done: Notify,
    want: usize,
}

impl Samples {
    fn new(want: usize) -> Arc<Samples> {
        Arc::new(Samples {
            ticks: Mutex::new(Vec::with_capacity(want)),
            done: Notify::new(),
            want,
        })
    }

    fn record(&self, late: Duration) {
        let now = Instant::now();
        let mut ticks = self.ticks.lock().expect("samples");
        if ticks.len() < self.want {
            ticks.push((late, now));
            if ticks.len() == self.want {
                self.done.notify_one();
            }
        }
    }
}

fn since(due: SystemTime) -> Duration {
    SystemTime::now().duration_since(due).unwrap_or_default()
}

/// Lateness past the last whole wall-clock second.
fn past_second() -> Duration {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_nanos(u64::from(now.subsec_nanos()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let ticks: usize = args[at + 3].parse().expect("ticks");
        runtime.block_on(scenario(&args[at + 1], &args[at + 2], ticks));
        return;
    }
    let ticks = env_count("PRECISION_TICKS", 1_000).to_string();
    let cron_ticks = env_count("PRECISION_CRON_TICKS", 20).to_string();
    let runs = env_count("PRECISION_RUNS", 3).max(1);
    println!(
        "precision: every 10 ms for {ticks} ticks ({runs} fresh processes each: median (min to max)); cron `* * * * * *` for {cron_ticks} ticks (1 process); {} cores",
        cores()
    );
    println!(
        "{:<18} {:>7} {:>10} {:>26} {:>26} {:>10} {:>22}",
        "scenario", "who", "ticks", "p50", "p99", "max", "drift"
    );
    for (scenario, count, who, runs) in [
        ("every 10ms", &ticks, &["hosted", "tokio", "tcs"][..], runs),
        (
            "cron every second",
            &cron_ticks,
            &["hosted", "tokio", "tcs", "apalis"][..],
            1,
        ),
    ] {
        for who in who {
            let results: Vec<_> = (0..runs)
                .map(|_| child(&["--child", scenario, who, count]))
                .collect();
            let column = |key: &str| -> Vec<f64> {
                let mut values: Vec<f64> = results
                    .iter()
                    .filter_map(|r| r.get(key).and_then(|v| v.parse().ok()))
                    .collect();
                values.sort_by(f64::total_cmp);
                values
            };
            let spread = |key: &str| {
                let values = column(key);
                match values.len() {
                    0 => "-".to_owned(),
                    1 => micros(&values[0].to_string()),
                    n => format!(
                        "{} ({} to {})",
                        micros(&values[n / 2].to_string()),
                        micros(&values[0].to_string()),
                        micros(&values[n - 1].to_string())
                    ),
                }
            };
            let fired: f64 = column("ticks").iter().sum();
            let skipped: f64 = column("skipped").iter().sum();
            let drift = column("drift_us");
            println!(
                "{:<18} {:>7} {:>10} {:>26} {:>26} {:>10} {:>22}",
                scenario,
                who,
                format!("{:.0}/{}", fired / runs as f64, count),
                spread("p50_us"),
                spread("p99_us"),
                column("max_us")
                    .last()
                    .map_or("-".to_owned(), |m| micros(&m.to_string())),
                match drift.len() {
                    0 => "-".to_owned(),
                    n => format!(
                        "{}{}",
                        micros(&drift[n / 2].to_string()),
                        if skipped > 0.0 {
                            format!(" ({skipped:.0} skipped)")
                        } else {
                            String::new()
                        }
                    ),
                },
            );
        }
    }
}

async fn scenario(scenario: &str, who: &str, want: usize) {
    let samples = Samples::new(want);
    let cron = scenario.starts_with("cron");
    // Long enough for every tick plus the slowest peer's first one.
    let limit = if cron {
        Duration::from_secs(want as u64 + 5)
    } else {
        PERIOD * (want as u32) + Duration::from_secs(5)
    };
    let keep = match (cron, who) {
        (false, "hosted") => Keep::Hosted(hosted_every(samples.clone()).await),
        (false, "tokio") => Keep::Task(tokio_every(samples.clone())),
        (false, "tcs") => Keep::Tcs(tcs(samples.clone(), None).await),
        (true, "hosted") => Keep::Hosted(hosted_cron(samples.clone()).await),
        (true, "tokio") => Keep::Task(tokio_cron(samples.clone())),
        (true, "tcs") => Keep::Tcs(tcs(samples.clone(), Some("* * * * * *")).await),
        (true, "apalis") => Keep::Task(apalis(samples.clone())),
        other => panic!("unknown contender {other:?}"),
    };
    let _ = tokio::time::timeout(limit, samples.done.notified()).await;
    drop(keep);
    let ticks = samples.ticks.lock().expect("samples").clone();
    let mut late: Vec<f64> = ticks.iter().map(|(l, _)| l.as_secs_f64() * 1e6).collect();
    late.sort_by(f64::total_cmp);
    let q = |q: f64| {
        late.get(((late.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or("-".to_owned(), |v| format!("{v:.0}"))
    };
    let mut line = format!(
        "ticks={} p50_us={} p99_us={} max_us={}",
        ticks.len(),
        q(0.5),
        q(0.99),
        late.last().map_or("-".to_owned(), |v| format!("{v:.0}")),
    );
    if !cron && ticks.len() >= 2 {
        // The last tick against the grid of the first: periods are counted
        // from the time between them, so a tick skipped after a stall (run
        // once late, the rest skipped) is not mistaken for drift.
        let (first, last) = (ticks[0].1, ticks[ticks.len() - 1].1);
        let span = (last - first).as_secs_f64();
        let periods = (span / PERIOD.as_secs_f64()).round();
        let drift = (span - periods * PERIOD.as_secs_f64()) * 1e6;
        let skipped = (periods as usize + 1).saturating_sub(ticks.len());
        line += &format!(" drift_us={drift:.0} skipped={skipped}");
    }
    println!("{line}");
}

enum Keep {
    Hosted(#[allow(dead_code)] hosted::RunningHost),
    Task(#[allow(dead_code)] tokio::task::JoinHandle<()>),
    Tcs(#[allow(dead_code)] tokio_cron_scheduler::JobScheduler),
}

async fn hosted_every(samples: Arc<Samples>) -> hosted::RunningHost {
    Host::builder()
        .without_registered()
        .job(Job::every("tick", PERIOD, move |run: Run| {
            let samples = samples.clone();
            async move { samples.record(since(run.scheduled().into())) }
        }))
        .build()
        .expect("host")
        .start()
        .await
        .expect("start")
}

async fn hosted_cron(samples: Arc<Samples>) -> hosted::RunningHost {
    Host::builder()
        .without_registered()
        .job(Job::cron("tick", "* * * * * *", move || {
            let samples = samples.clone();
            async move { samples.record(past_second()) }
        }))
        .build()
        .expect("host")
        .start()
        .await
        .expect("start")
}

fn tokio_every(samples: Arc<Samples>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let due = interval.tick().await;
            samples.record(due.elapsed());
        }
    })
}

fn tokio_cron(samples: Arc<Samples>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let into = past_second();
            let next = tokio::time::Instant::now() + (Duration::from_secs(1) - into);
            tokio::time::sleep_until(next).await;
            samples.record(past_second());
        }
    })
}

async fn tcs(samples: Arc<Samples>, cron: Option<&str>) -> tokio_cron_scheduler::JobScheduler {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await.expect("scheduler");
    let added = Instant::now();
    let job = match cron {
        Some(line) => Job::new_async(line, move |_, _| {
            let samples = samples.clone();
            Box::pin(async move { samples.record(past_second()) })
        }),
        None => Job::new_repeated_async(PERIOD, move |_, _| {
            let samples = samples.clone();
            Box::pin(async move {
                let into = added.elapsed().as_nanos() % PERIOD.as_nanos();
                samples.record(Duration::from_nanos(into as u64));
            })
        }),
    }
    .expect("job");
    scheduler.add(job).await.expect("add");
    scheduler.start().await.expect("start");
    scheduler
}

fn apalis(samples: Arc<Samples>) -> tokio::task::JoinHandle<()> {
    use apalis::prelude::{Data, Monitor, WorkerBuilder};
    use apalis_cron::{CronScheduler, Tick};
    let monitor = Monitor::new().register(move |_| {
        WorkerBuilder::new("tick")
            .backend(CronScheduler::new(SecondsAhead(1)))
            .data(samples.clone())
            .build(
                |tick: Tick<chrono::Utc>, samples: Data<Arc<Samples>>| async move {
                    let due = SystemTime::UNIX_EPOCH + Duration::from_secs(tick.get_timestamp());
                    samples.record(since(due));
                },
            )
    });
    tokio::spawn(async move {
        let _ = monitor.run().await;
    })
}
