//! Exactly once, in one process: eight hosts, each with its own pool and a
//! wall clock skewed by up to ±700 ms, share one database. Every run writes
//! (job, tick, instance, fence) to a table without a unique constraint, so
//! a tick that ran twice shows as two rows, and one that never ran as a gap.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hosted::cluster::Missed;
use hosted::testing::TestClock;
use hosted::{Host, Job, Overlap, RunningHost};
use hosted_postgres::Cluster;
use support::pg::{fast, record, Recorder, TestDb};

/// Where runs write what they did.
async fn observed_table(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE observed (job text, tick timestamptz, instance text, fence bigint,
                                    at timestamptz DEFAULT clock_timestamp())",
        )
        .await
        .unwrap();
}

async fn start_host(db: &TestDb, skew_ms: i64, jobs: Vec<Job>) -> (RunningHost, Cluster) {
    let cluster = Cluster::connect_with(&db.url, fast()).await.unwrap();
    // Runs write through a pool of their own, with a connect timeout for a
    // loaded machine rather than the cluster's 500 ms: a run that could not
    // record itself would look like a tick that never ran.
    let recorder = Recorder {
        pool: Cluster::connect_with(&db.url, fast().connect_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .pool()
            .clone(),
        instance: cluster.instance_id().to_owned(),
    };
    let clock = TestClock::at(Utc::now() + TimeDelta::milliseconds(skew_ms));
    let mut builder = Host::builder()
        .without_registered()
        .clock(&clock)
        .state(recorder)
        .cluster(cluster.clone());
    for job in jobs {
        builder = builder.job(job);
    }
    (builder.build().unwrap().start().await.unwrap(), cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_hosts_with_skewed_clocks_run_every_tick_exactly_once() {
    let db = TestDb::create().await;
    observed_table(&db).await;
    let mut hosts = Vec::new();
    for skew in [-700, -500, -300, -100, 100, 300, 500, 700] {
        let jobs = vec![
            // Overlapping: under load a run and its completion can outlast
            // 100 ms, and a job that does not overlap then rightly skips
            // (and counts) the next tick; that has a test of its own below.
            Job::every("every-100ms", Duration::from_millis(100), record).overlap(Overlap::Allow),
            Job::cron("each-second", "* * * * * *", record),
            // Jitter is a function of the job and the tick: every instance
            // computes the same instant.
            Job::every("jittered", Duration::from_millis(200), record)
                .jitter(Duration::from_millis(50)),
        ];
        hosts.push(start_host(&db, skew, jobs).await);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut granted = 0;
    let mut taken = 0;
    let mut stats = Vec::new();
    for (host, cluster) in hosts {
        let handle = host.handle();
        let report = host.stop().await;
        assert!(report.is_clean(), "{report}");
        granted += cluster.stats().granted;
        taken += cluster.stats().taken;
        let s = cluster.stats();
        stats.push(format!(
            "granted {} taken {} running {} unavailable {}, skipped {:?}, failed {:?}",
            s.granted,
            s.taken,
            s.running,
            s.unavailable,
            handle.jobs().iter().map(|j| j.skipped).collect::<Vec<_>>(),
            handle.jobs().iter().map(|j| j.failed).collect::<Vec<_>>()
        ));
    }

    let client = db.client().await;
    let twice = client
        .query(
            "SELECT job, tick, count(*) FROM observed GROUP BY job, tick HAVING count(*) > 1",
            &[],
        )
        .await
        .unwrap();
    assert!(
        twice.is_empty(),
        "ticks that ran more than once: {:?}",
        twice
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, chrono::DateTime<Utc>>(1)))
            .collect::<Vec<_>>()
    );
    for (job, step_ms, at_least) in [("every-100ms", 100, 25), ("each-second", 1000, 2)] {
        let row = client
            .query_one(
                "SELECT count(*), (extract(epoch FROM max(tick) - min(tick)) * 1000)::float8,
                        count(DISTINCT instance)
                 FROM observed WHERE job = $1",
                &[&job],
            )
            .await
            .unwrap();
        let (runs, span_ms): (i64, f64) = (row.get(0), row.get::<_, f64>(1));
        assert!(runs >= at_least, "{job}: only {runs} run(s)");
        let expected = (span_ms / f64::from(step_ms)).round() as i64 + 1;
        let gaps: Vec<String> = client
            .query(
                "SELECT tick, before, instance FROM (
                     SELECT tick, lag(tick) OVER (ORDER BY tick) AS before, instance FROM observed WHERE job = $1
                 ) g WHERE tick - before > $2::float8 * interval '1 millisecond'",
                &[&job, &(f64::from(step_ms) * 1.5)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{} after {}", r.get::<_, chrono::DateTime<Utc>>(0), r.get::<_, chrono::DateTime<Utc>>(1)))
            .collect();
        if runs != expected {
            // What the cluster knows of the ticks that did not run: whether
            // they were claimed, by whom, and how they ended.
            let claims: Vec<String> = client
                .query(
                    "SELECT tick, instance, state FROM hosted.runs WHERE job = $1
                       AND tick NOT IN (SELECT tick FROM observed WHERE job = $1)
                     UNION ALL
                     SELECT tick, instance, 'running' FROM hosted.running WHERE job = $1
                       AND tick NOT IN (SELECT tick FROM observed WHERE job = $1)
                     ORDER BY 1",
                    &[&job],
                )
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            format!(
                                "{} claimed by {}: {}",
                                r.get::<_, chrono::DateTime<Utc>>(0),
                                r.get::<_, String>(1),
                                r.get::<_, String>(2)
                            )
                        })
                        .collect()
                })
                .unwrap_or_else(|e| vec![e.to_string()]);
            panic!(
                "{job}: {runs} ticks ran, {expected} between the first and the last; gaps {gaps:?}; claims of ticks that did not run: {claims:?}; {stats:?}"
            );
        }
        // Every claim has a fencing number of its own.
        let fences: i64 = client
            .query_one(
                "SELECT count(DISTINCT fence) FROM observed WHERE job = $1",
                &[&job],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(fences, runs, "{job}: two claims shared a fencing number");
    }
    // Claims go out ahead of the tick; the runs wait for its instant (on
    // the database's clock, which every host follows whatever its own).
    let early: f64 = client
        .query_one(
            "SELECT coalesce(max(extract(epoch FROM tick - at)), 0)::float8 * 1000 FROM observed",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(early < 5.0, "a run started {early:.1} ms before its tick");
    // Jittered ticks: one run each, the same instant on every instance
    // (else each instance's own instant would run once, and the ticks
    // would be counted several times).
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT date_trunc('second', tick) + floor(extract(milliseconds FROM tick)::int % 1000 / 200) * interval '200 milliseconds'),
                    (extract(epoch FROM max(tick) - min(tick)) * 1000)::float8
             FROM observed WHERE job = 'jittered'",
            &[],
        )
        .await
        .unwrap();
    let (runs, slots, span_ms): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        runs, slots,
        "two runs of the jittered job fell in one 200 ms slot"
    );
    assert!(
        (runs - ((span_ms / 200.0).round() as i64 + 1)).abs() <= 1,
        "{runs} runs over {span_ms} ms"
    );
    assert!(granted > 0 && taken > 0, "granted {granted}, taken {taken}");
}

/// A job with `missed = "once"` runs the last tick that fell while no
/// instance ran; one with the default does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_whole_cluster_was_down_missed_once_runs_the_last_missed_tick() {
    let db = TestDb::create().await;
    observed_table(&db).await;
    let jobs = || {
        vec![
            Job::every("catch-up", Duration::from_millis(200), record).missed(Missed::Once),
            Job::every("skip", Duration::from_millis(200), record),
        ]
    };
    let (host, _) = start_host(&db, 0, jobs()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(host.stop().await.is_clean());
    let client = db.client().await;
    let last_before: chrono::DateTime<Utc> = client
        .query_one("SELECT max(tick) FROM observed", &[])
        .await
        .unwrap()
        .get(0);
    // The whole cluster is down for five ticks.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (host, _) = start_host(&db, 0, jobs()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(host.stop().await.is_clean());

    let ticks = |job: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT tick FROM observed WHERE job = $1 AND tick > $2 ORDER BY tick",
                    &[&job, &last_before],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, chrono::DateTime<Utc>>(0))
                .collect::<Vec<_>>()
        }
    };
    let caught_up = ticks("catch-up").await;
    let skipped = ticks("skip").await;
    assert!(
        caught_up.len() >= 2 && !skipped.is_empty(),
        "{caught_up:?} {skipped:?}"
    );
    // The first run after the outage is the last missed tick: a tick of
    // the outage, within one period before the first tick on the schedule
    // from the restart on. (That first tick may be skipped, if the catch-up
    // run still holds its lease: the job does not overlap.)
    let missed = caught_up[0];
    let first_scheduled = skipped[0];
    assert!(
        missed - last_before > TimeDelta::milliseconds(200),
        "{caught_up:?}"
    );
    assert!(missed < first_scheduled, "{caught_up:?} {skipped:?}");
    assert!(
        first_scheduled - missed <= TimeDelta::milliseconds(200),
        "{caught_up:?} {skipped:?}"
    );
    // The default passes the missed ticks: nothing ran during the outage.
    assert!(
        first_scheduled - last_before > TimeDelta::milliseconds(800),
        "{skipped:?}"
    );
}

/// A job that does not overlap, on two instances: a tick that comes while
/// the previous run holds its lease, on either instance, is skipped and
/// counted; no two runs ever go on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_while_a_run_holds_its_lease_on_another_instance_is_skipped_and_counted() {
    let db = TestDb::create().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE spans (instance text, tick timestamptz, began timestamptz, ended timestamptz)")
        .await
        .unwrap();
    async fn slow(
        run: hosted::Run,
        hosted::State(r): hosted::State<Recorder>,
    ) -> Result<(), String> {
        let began = Utc::now();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let client = r.pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO spans VALUES ($1, $2, $3, $4)",
                &[&r.instance, &run.scheduled(), &began, &Utc::now()],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    let mut hosts = Vec::new();
    for skew in [-300, 300] {
        let job = Job::every("slow", Duration::from_millis(100), slow);
        hosts.push(start_host(&db, skew, vec![job]).await);
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut skipped = 0;
    for (host, _) in hosts {
        let handle = host.handle();
        assert!(host.stop().await.is_clean());
        skipped += handle.job("slow").unwrap().skipped;
    }
    let rows = db
        .client()
        .await
        .query(
            "SELECT instance, began, ended FROM spans ORDER BY began",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 4, "{} runs", rows.len());
    for pair in rows.windows(2) {
        let ended: chrono::DateTime<Utc> = pair[0].get(2);
        let began: chrono::DateTime<Utc> = pair[1].get(1);
        assert!(
            began >= ended - TimeDelta::milliseconds(2),
            "a run on {} began at {began}, before the one on {} ended at {ended}",
            pair[1].get::<_, String>(0),
            pair[0].get::<_, String>(0)
        );
    }
    assert!(
        skipped >= 8,
        "only {skipped} tick(s) skipped while runs held their lease"
    );
}
