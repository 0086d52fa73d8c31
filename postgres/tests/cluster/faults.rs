//! Faults between an instance and the database: its connections killed by
//! the server (`pg_terminate_backend`), and the database out of reach for
//! longer than the trust window, through a proxy that the test cuts (every
//! connection dropped at once and new ones refused, as when the server
//! restarts, only longer). No tick runs twice; the instance recovers on its
//! own and says what it missed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hosted::cluster::Placement;
use hosted::{CancellationToken, Host, Job, Overlap, RunningHost};
use hosted_postgres::Cluster;
use support::pg::{fast, record, Recorder, TestDb};
use support::{wait_for, wait_until};
use tokio::net::{TcpListener, TcpStream};

async fn host(url: &str, db: &TestDb, extra: Option<Job>) -> (RunningHost, Cluster) {
    let cluster = Cluster::connect_with(url, fast()).await.unwrap();
    // Runs write through a pool of their own, straight to the database:
    // the record of what ran must not depend on the fault under test.
    let recorder = Recorder {
        pool: Cluster::connect_with(&db.url, fast())
            .await
            .unwrap()
            .pool()
            .clone(),
        instance: cluster.instance_id().to_owned(),
    };
    let mut builder = Host::builder()
        .without_registered()
        .state(recorder)
        // Overlapping runs: a job that does not overlap would rightly skip
        // the ticks that fall while a cut-off instance's last lease runs
        // out, and these tests check that no tick is missing.
        .job(Job::every("every-100ms", Duration::from_millis(100), record).overlap(Overlap::Allow))
        .cluster(cluster.clone());
    if let Some(job) = extra {
        builder = builder.job(job);
    }
    (builder.build().unwrap().start().await.unwrap(), cluster)
}

async fn observed_table(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE observed (job text, tick timestamptz, instance text, fence bigint)",
        )
        .await
        .unwrap();
}

/// No tick twice, and none missing between the first and the last, but
/// for ticks that `faulted` claimed and never finished: a claim that the
/// database committed while the fault took its answer away. The tick is
/// then claimed and not run, which is what `on_crash = "skip"` promises (at
/// most once); such a claim is on record, still in `running` or rescued into
/// `runs` as lost, and only claims in flight at the fault can be in it.
async fn assert_exactly_once(db: &TestDb, faulted: &str) {
    let client = db.client().await;
    let twice: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT tick FROM observed GROUP BY job, tick HAVING count(*) > 1) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(twice, 0, "ticks ran twice");
    let missing: Vec<(DateTime<Utc>, Option<String>)> = client
        .query(
            "WITH bounds AS (SELECT min(tick) AS first, max(tick) AS last FROM observed),
             due AS (SELECT generate_series(first, last, interval '100 milliseconds') AS tick FROM bounds),
             claims AS (
                 SELECT tick, instance FROM hosted.running WHERE job = 'every-100ms'
                 UNION ALL
                 SELECT tick, instance FROM hosted.runs WHERE job = 'every-100ms' AND state = 'lost'
             )
             SELECT due.tick, (SELECT min(instance) FROM claims WHERE claims.tick = due.tick)
             FROM due WHERE NOT EXISTS (SELECT 1 FROM observed o WHERE o.tick = due.tick)
             ORDER BY due.tick",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let unexplained: Vec<_> = missing
        .iter()
        .filter(|(_, claimed_by)| claimed_by.as_deref() != Some(faulted))
        .collect();
    assert!(
        unexplained.is_empty(),
        "ticks are missing that no claim of {faulted} explains: {unexplained:?}"
    );
    assert!(
        missing.len() <= 2,
        "more ticks claimed and lost than claims in flight at one fault: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_connections_the_server_kills_reconnects_and_nothing_runs_twice() {
    let db = TestDb::create().await;
    observed_table(&db).await;
    let (a, cluster_a) = host(&db.url, &db, None).await;
    let (b, _) = host(&db.url, &db, None).await;
    let admin = db.client().await;
    let name = format!("hosted {}", cluster_a.instance_id());
    let (admin_ref, name_ref, stats) = (&admin, &name, &cluster_a);
    // Both instances claim, and this one holds connections to kill.
    wait_for(
        Duration::from_secs(10),
        move || async move {
            let open: i64 = admin_ref
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[name_ref],
                )
                .await
                .unwrap()
                .get(0);
            open >= 1 && stats.stats().claim_statements >= 2
        },
        || format!("{:?}", cluster_a.stats()),
    )
    .await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) t",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "killed {killed} connection(s)");
    let before = cluster_a.stats().statements;
    wait_until(
        Duration::from_secs(10),
        || cluster_a.stats().statements > before + 5,
        || format!("{:?}", cluster_a.stats()),
    )
    .await;
    let after = cluster_a.stats();
    assert!(a.stop().await.is_clean());
    assert!(b.stop().await.is_clean());
    // It went on talking to the database on new connections.
    assert!(after.statements > before + 5, "{after:?}");
    // A claim sent on a connection at the instant the server killed it
    // fails, and its tick is counted as not claimed here (the other
    // instance claims it); more than that would mean no reconnect.
    assert!(cluster_a.stats().unavailable <= 1, "{after:?}");
    assert_exactly_once(&db, cluster_a.instance_id()).await;
}

/// What a singleton did, and when.
type Events = Arc<Mutex<Vec<(&'static str, DateTime<Utc>)>>>;

/// A TCP proxy to the database that the test can cut: every connection
/// through it dropped at once, and new ones closed as they come.
struct Proxy {
    port: u16,
    cut: Arc<Mutex<CancellationToken>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(target: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut2, down2) = (cut.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if down2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = cut2.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Proxy { port, cut, down }
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_trust_window_an_instance_cut_off_claims_nothing_cancels_its_runs_and_recovers() {
    let db = TestDb::create().await;
    observed_table(&db).await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let through_proxy = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        through_proxy, db.url,
        "the test database's URL names 127.0.0.1:5432"
    );

    // A singleton only A has: it holds its lease until its token fires.
    let lease_events: Events = Arc::default();
    let events = lease_events.clone();
    let watcher = Job::service("watcher", move |stop: CancellationToken| {
        let events = events.clone();
        async move {
            events.lock().unwrap().push(("began", Utc::now()));
            stop.cancelled().await;
            events.lock().unwrap().push(("cancelled", Utc::now()));
        }
    })
    .scope(Placement::Singleton);
    let (a, cluster_a) = host(&through_proxy, &db, Some(watcher)).await;
    let (b, _) = host(&db.url, &db, None).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let handle_a = a.handle();

    let cut_at = Utc::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let unclaimed_in_outage = handle_a.job("every-100ms").unwrap().unclaimed;
    proxy.restore();
    let restored_at = Utc::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unclaimed_after = handle_a.job("every-100ms").unwrap().unclaimed;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let unclaimed_at_end = handle_a.job("every-100ms").unwrap().unclaimed;
    let stats = cluster_a.stats();
    assert!(a.stop().await.is_clean());
    assert!(b.stop().await.is_clean());

    // Cut off, A claimed nothing (B ran every tick), counted what it did not
    // claim, and had one outage; back, it claims again.
    assert!(
        unclaimed_in_outage >= 10,
        "{unclaimed_in_outage} tick(s) unclaimed in 2.5 s"
    );
    assert_eq!(
        unclaimed_after, unclaimed_at_end,
        "still not claiming after the outage"
    );
    assert_eq!(stats.outages, 1, "{stats:?}");
    // Its singleton's token fired once the trust window (1.2 s) passed,
    // before the lease (1.5 s) could run out; it took the lease again after.
    let events = lease_events.lock().unwrap().clone();
    let cancelled = events
        .iter()
        .find(|(what, _)| *what == "cancelled")
        .map(|(_, at)| *at)
        .expect("the singleton's token fired");
    let after_cut = (cancelled - cut_at).to_std().unwrap();
    assert!(
        after_cut >= Duration::from_millis(900) && after_cut <= Duration::from_millis(1500),
        "cancelled {after_cut:?} after the cut"
    );
    assert!(
        events
            .iter()
            .any(|(what, at)| *what == "began" && *at > restored_at),
        "the singleton did not start again after the outage: {events:?}"
    );
    assert_exactly_once(&db, cluster_a.instance_id()).await;
}
