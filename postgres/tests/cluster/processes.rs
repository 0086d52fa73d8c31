//! Exactly once, across processes: five `node cluster` processes share a
//! database; two are killed with SIGKILL in the middle of a run, and one is
//! stopped with SIGSTOP past its lease and then continued. Every run writes
//! a `start` row (and a `finish` row) to a table without a unique
//! constraint: a tick that ran twice shows as two `start` rows, one that
//! never ran as a gap.
//!
//! The tests take turns: each starts five processes, and on two cores two
//! sets at once would make the timings meaningless.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use support::node::runtime;
use support::pg::TestDb;
use support::process::Process;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long after SIGSTOP the process is continued: past its lease (1.5 s)
/// and the rescue that follows (every 300 ms).
const STOPPED_FOR: Duration = Duration::from_millis(2500);

struct Outcome {
    /// Ticks with more than one `start` row.
    twice: Vec<(String, i64)>,
    /// Distinct ticks run, and the ticks the grid has from the first to the
    /// last.
    distinct: i64,
    expected: i64,
    /// The completions the stopped process had rejected.
    stale: u64,
    /// States of the stopped process's runs in the cluster's history.
    stopped_runs: Vec<String>,
}

fn node(db: &TestDb, mode: &str, n: usize) -> Process {
    support::node::start(env!("CARGO_BIN_EXE_node"), db, "cluster", mode, n)
}

/// Waits until one of the running `nodes` starts a run, then sends it
/// `signal` at once: the run is then in its 300 ms of work. Returns which.
fn signal_mid_run(nodes: &mut [Option<Process>], signal: i32) -> usize {
    for process in nodes.iter_mut().flatten() {
        process.skip_printed();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        for (n, slot) in nodes.iter_mut().enumerate() {
            if let Some(process) = slot {
                if process.printed("start work") {
                    process.signal(signal);
                    return n;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no node started a run within 20 s");
}

fn run_scenario(mode: &str) -> Outcome {
    let rt = runtime();
    let db = rt.block_on(TestDb::create());
    rt.block_on(async {
        db.client()
            .await
            .batch_execute(
                "CREATE TABLE observed (job text, tick timestamptz, instance text, fence bigint, phase text)",
            )
            .await
            .unwrap();
    });
    let mut nodes: Vec<Option<Process>> = (0..5).map(|n| Some(node(&db, mode, n))).collect();
    std::thread::sleep(Duration::from_millis(1000));

    for _ in 0..2 {
        let n = signal_mid_run(&mut nodes, libc::SIGKILL);
        let (status, _) = nodes[n].take().expect("running").exit();
        assert!(!status.success(), "node {n} was killed");
    }
    let paused = signal_mid_run(&mut nodes, libc::SIGSTOP);
    let stopped_id = nodes[paused]
        .as_ref()
        .expect("running")
        .output_so_far()
        .lines()
        .find_map(|l| l.strip_prefix("joined ").map(str::to_owned))
        .expect("the joined line");
    std::thread::sleep(STOPPED_FOR);
    nodes[paused]
        .as_ref()
        .expect("running")
        .signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(1500));

    let mut stale = 0;
    for (n, process) in nodes.into_iter().enumerate() {
        let Some(process) = process else { continue };
        process.signal(libc::SIGTERM);
        let (status, output) = process.exit();
        assert!(status.success(), "node {n} exited with {status}:\n{output}");
        if n == paused {
            stale = output
                .lines()
                .find_map(|l| l.strip_prefix("stale ").and_then(|s| s.parse().ok()))
                .expect("the stale line");
        }
    }

    rt.block_on(async {
        let client = db.client().await;
        let twice = client
            .query(
                "SELECT tick::text, count(*) FROM observed WHERE phase = 'start'
                 GROUP BY tick HAVING count(*) > 1 ORDER BY tick",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let row = client
            .query_one(
                "SELECT count(DISTINCT tick),
                        round(extract(epoch FROM max(tick) - min(tick)) * 2)::bigint + 1
                 FROM observed WHERE phase = 'start'",
                &[],
            )
            .await
            .unwrap();
        let stopped_runs = client
            .query(
                "SELECT state FROM hosted.runs WHERE instance = $1 ORDER BY id",
                &[&stopped_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        Outcome {
            twice,
            distinct: row.get(0),
            expected: row.get(1),
            stale,
            stopped_runs,
        }
    })
}

#[test]
fn with_on_crash_skip_no_tick_runs_twice_and_the_paused_process_is_fenced_off() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_scenario("skip");
    assert!(
        outcome.twice.is_empty(),
        "ticks that ran twice: {:?}",
        outcome.twice
    );
    // The killed runs had started (their `start` rows are there): no tick
    // was lost either.
    assert_eq!(outcome.distinct, outcome.expected, "a tick never ran");
    assert!(
        outcome.stale >= 1,
        "the stopped process's late completion was not rejected"
    );
    assert!(
        outcome.stopped_runs.iter().any(|s| s == "lost"),
        "the stopped process's run was not marked lost: {:?}",
        outcome.stopped_runs
    );
}

#[test]
fn with_on_crash_rerun_the_killed_and_paused_runs_run_again_and_none_is_lost() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = run_scenario("rerun");
    assert_eq!(outcome.distinct, outcome.expected, "a tick never ran");
    // The two killed runs and the stopped one ran again elsewhere; nothing
    // else ran twice.
    assert!(
        (3..=3).contains(&outcome.twice.len()),
        "expected the 3 interrupted ticks to run twice: {:?}",
        outcome.twice
    );
    assert!(
        outcome.twice.iter().all(|(_, n)| *n == 2),
        "{:?}",
        outcome.twice
    );
    assert!(
        outcome.stale >= 1,
        "the stopped process's late completion was not rejected"
    );
}

/// The holder of a singleton service is killed: another instance takes it
/// over within the lease time; stopped gracefully, it hands over at once.
/// Never two at once: each holder writes when it began and ended.
#[test]
fn a_singleton_moves_to_another_instance_when_its_holder_dies_or_stops() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let db = rt.block_on(TestDb::create());
    let client = rt.block_on(async {
        let client = db.client().await;
        client
            .batch_execute(
                "CREATE TABLE holders (id bigserial PRIMARY KEY, instance text, began timestamptz, ended timestamptz)",
            )
            .await
            .unwrap();
        client
    });
    let mut nodes: Vec<(String, Option<Process>)> = (0..3)
        .map(|n| {
            let mut process = Process::spawn(
                &format!("cluster-node {n}"),
                Command::new(env!("CARGO_BIN_EXE_node"))
                    .args(["cluster", db.url.as_str(), "singleton"])
                    .env("RUST_LOG", "error"),
            );
            let id = process.wait_for_capture("joined ");
            (id, Some(process))
        })
        .collect();
    // The current holder, once one holds it, and the wall time (the
    // database's) it took to appear after `since`.
    let holder_after = |since: chrono::DateTime<chrono::Utc>| -> (String, Duration) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rows = rt
                .block_on(client.query(
                    "SELECT instance, extract(epoch FROM began - $1)::float8 FROM holders
                     WHERE began > $1 AND ended IS NULL ORDER BY began",
                    &[&since],
                ))
                .unwrap();
            assert!(rows.len() <= 1, "two holders at once: {rows:?}");
            if let Some(row) = rows.first() {
                return (
                    row.get(0),
                    Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0)),
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no instance took the singleton over"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let db_now = || -> chrono::DateTime<chrono::Utc> {
        rt.block_on(client.query_one("SELECT clock_timestamp()", &[]))
            .unwrap()
            .get(0)
    };
    let start = db_now() - chrono::TimeDelta::seconds(60);
    let (first, _) = holder_after(start);

    // Killed: its lease (1.5 s) runs out, and another takes over.
    let killed_at = db_now();
    let victim = nodes
        .iter_mut()
        .find(|(id, _)| *id == first)
        .expect("the holder");
    victim.1.as_ref().expect("running").signal(libc::SIGKILL);
    drop(victim.1.take());
    let (second, took) = holder_after(killed_at);
    assert_ne!(second, first);
    assert!(
        took < Duration::from_millis(2500),
        "took over after {took:?}"
    );
    assert!(
        took > Duration::from_millis(500),
        "took over after {took:?}, before the lease ran out"
    );

    // Stopped gracefully: it gives the lease back, and another takes it at
    // its next try.
    let stopped_at = db_now();
    let holder = nodes
        .iter_mut()
        .find(|(id, _)| *id == second)
        .expect("the holder");
    let process = holder.1.take().expect("running");
    process.signal(libc::SIGTERM);
    let (status, output) = process.exit();
    assert!(status.success(), "{output}");
    let (third, took) = holder_after(stopped_at);
    assert_ne!(third, second);
    assert!(
        took < Duration::from_millis(1000),
        "took over after {took:?}"
    );

    // Never two at once: each holder began after the one before ended (or
    // was killed).
    let rows = rt
        .block_on(client.query(
            "SELECT instance, began, coalesce(ended, $1) FROM holders ORDER BY began",
            &[&killed_at],
        ))
        .unwrap();
    for pair in rows.windows(2) {
        let ended: chrono::DateTime<chrono::Utc> = pair[0].get(2);
        let began: chrono::DateTime<chrono::Utc> = pair[1].get(1);
        assert!(
            began >= ended,
            "{} began at {began} before {} ended at {ended}",
            pair[1].get::<_, String>(0),
            pair[0].get::<_, String>(0)
        );
    }
    for (_, process) in nodes {
        if let Some(process) = process {
            process.signal(libc::SIGTERM);
            let _ = process.exit();
        }
    }
}
