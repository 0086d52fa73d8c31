//! Cluster-wide controls: pause and resume on one instance hold on every
//! instance; a trigger on one runs the job once, somewhere; the cluster
//! lists its instances and each job's last run wherever it ran.

use std::time::Duration;

use hosted::{HandleError, Host, Job, Run, RunningHost, State};
use hosted_postgres::deadpool_postgres::Pool;
use hosted_postgres::{Cluster, Error};
use support::pg::{fast, TestDb};

#[derive(Clone)]
struct Recorder {
    pool: Pool,
    instance: String,
}

async fn record(run: Run, State(r): State<Recorder>) -> Result<(), String> {
    let client = r.pool.get().await.map_err(|e| e.to_string())?;
    client
        .execute(
            "INSERT INTO observed (job, tick, instance) VALUES ($1, $2, $3)",
            &[&run.job(), &run.scheduled(), &r.instance],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn host(db: &TestDb) -> (RunningHost, Cluster) {
    let cluster = Cluster::connect_with(&db.url, fast()).await.unwrap();
    let recorder = Recorder {
        pool: cluster.pool().clone(),
        instance: cluster.instance_id().to_owned(),
    };
    let host = Host::builder()
        .without_registered()
        .state(recorder)
        .job(Job::every("ticker", Duration::from_millis(100), record))
        .job(Job::cron("yearly", "0 0 1 1 *", record))
        .cluster(cluster.clone())
        .build()
        .unwrap();
    (host.start().await.unwrap(), cluster)
}

async fn runs_of(db: &tokio_postgres::Client, job: &str) -> i64 {
    db.query_one("SELECT count(*) FROM observed WHERE job = $1", &[&job])
        .await
        .unwrap()
        .get(0)
}

use hosted_postgres::tokio_postgres;

/// Whether `job` reaches `n` runs within 5 s (a loaded machine starts
/// the ticks later than a quiet one).
async fn runs_at_least(db: &tokio_postgres::Client, job: &str, n: i64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while runs_of(db, job).await < n {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_trigger_on_one_instance_hold_for_the_whole_cluster() {
    let db = TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE observed (job text, tick timestamptz, instance text)")
        .await
        .unwrap();
    let (a, cluster_a) = host(&db).await;
    let (b, cluster_b) = host(&db).await;
    assert!(
        runs_at_least(&client, "ticker", 3).await,
        "the ticker does not run"
    );

    // Paused on A: no instance runs it, and B's own view says so.
    cluster_a.pause("ticker").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = runs_of(&client, "ticker").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        runs_of(&client, "ticker").await,
        paused_at,
        "a paused job ran"
    );
    assert!(
        b.handle().job("ticker").unwrap().paused,
        "B does not show the pause"
    );

    cluster_b.resume("ticker").await.unwrap();
    assert!(
        runs_at_least(&client, "ticker", paused_at + 3).await,
        "the resumed job does not run"
    );
    assert!(
        !a.handle().job("ticker").unwrap().paused,
        "A still shows the pause"
    );

    // Triggered on A: runs once, on one of the two.
    assert_eq!(runs_of(&client, "yearly").await, 0);
    cluster_a.trigger("yearly").await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        runs_of(&client, "yearly").await,
        1,
        "a trigger runs the job exactly once"
    );
    // The host's own trigger would run it here, outside the cluster's
    // claim: it says to go through the cluster.
    assert_eq!(
        a.handle().trigger("yearly"),
        Err(HandleError::Clustered("yearly".to_owned()))
    );

    let instances = cluster_b.instances().await.unwrap();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances
        .iter()
        .all(|i| i.stopped.is_none() && i.pid == std::process::id() as i32));
    let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
    assert!(ids.contains(&cluster_a.instance_id()) && ids.contains(&cluster_b.instance_id()));

    let jobs = cluster_b.jobs().await.unwrap();
    let yearly = jobs.iter().find(|j| j.name == "yearly").expect("yearly");
    let last = yearly.last_run.as_ref().expect("yearly's last run");
    assert!(ids.contains(&last.instance.as_str()));
    assert_eq!(last.state, "succeeded");
    let history = cluster_a.runs("ticker", 5).await.unwrap();
    assert_eq!(history.len(), 5);
    assert!(
        history.windows(2).all(|w| w[0].fence > w[1].fence),
        "newest first: {history:?}"
    );

    assert!(matches!(
        cluster_a.pause("no-such-job").await,
        Err(Error::UnknownJob(_))
    ));
    assert!(matches!(
        cluster_a.trigger("no-such-job").await,
        Err(Error::UnknownJob(_))
    ));

    assert!(a.stop().await.is_clean());
    let instances = cluster_b.instances().await.unwrap();
    let gone = instances
        .iter()
        .find(|i| i.id == cluster_a.instance_id())
        .unwrap();
    assert!(
        gone.stopped.is_some(),
        "a stopped instance is marked stopped"
    );
    assert!(b.stop().await.is_clean());
}

/// Eight instances starting at once on an empty database: the schema is
/// created once (the migration takes an advisory lock), and every instance
/// joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_instances_starting_at_once_create_the_schema_once() {
    let db = TestDb::create().await;
    let starts = (0..8).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move {
            let cluster = Cluster::connect_with(&url, fast()).await.unwrap();
            let host = Host::builder()
                .without_registered()
                .job(Job::every("tick", Duration::from_secs(1), || async {}))
                .cluster(cluster)
                .build()
                .unwrap();
            host.start().await.map_err(|report| report.to_string())
        })
    });
    let mut hosts = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        hosts.push(start.await.unwrap().expect("every instance starts"));
    }
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT version) FROM hosted.schema_version",
            &[],
        )
        .await
        .unwrap();
    let (applied, versions): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        applied, versions,
        "a version of the schema was applied more than once"
    );
    let instances: i64 = client
        .query_one(
            "SELECT count(*) FROM hosted.instances WHERE stopped_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(instances, 8);
    for host in hosts {
        assert!(host.stop().await.is_clean());
    }
}

/// A job that a later release of the service no longer has keeps its row
/// (and its history); a schema newer than this release is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_jobs_that_are_gone_stay_and_a_newer_schema_is_refused() {
    let db = TestDb::create().await;
    for name in ["old-job", "new-job"] {
        let cluster = Cluster::connect_with(&db.url, fast()).await.unwrap();
        let host = Host::builder()
            .without_registered()
            .job(Job::every(name, Duration::from_secs(1), || async {}))
            .cluster(cluster)
            .build()
            .unwrap();
        assert!(host.start().await.unwrap().stop().await.is_clean());
    }
    let client = db.client().await;
    let names: Vec<String> = client
        .query("SELECT name FROM hosted.jobs ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["new-job", "old-job"]);

    client
        .batch_execute("INSERT INTO hosted.schema_version (version) VALUES (99)")
        .await
        .unwrap();
    let cluster = Cluster::connect_with(&db.url, fast()).await.unwrap();
    let host = Host::builder()
        .without_registered()
        .job(Job::every("new-job", Duration::from_secs(1), || async {}))
        .cluster(cluster)
        .build()
        .unwrap();
    let report = host.start().await.expect_err("a newer schema");
    assert!(
        report
            .to_string()
            .contains("is at version 99, newer than this release"),
        "{report}"
    );
}

/// What an operator's page reads: one page's jobs by name, the jobs
/// counted, the latest failures through their own index, and the audit
/// table, with the instance that recorded each action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_reads_a_page_of_jobs_its_failures_and_its_audit_log() {
    let db = TestDb::create().await;
    let cluster = Cluster::connect_with(&db.url, fast()).await.unwrap();
    let host = Host::builder()
        .without_registered()
        .job(Job::every("steady", Duration::from_millis(100), || async {}))
        .job(Job::every(
            "failing",
            Duration::from_millis(100),
            |run: Run| async move { Err::<(), _>(format!("run {} broke", run.number())) },
        ))
        .cluster(cluster.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let failures = loop {
        let failures = cluster.failures(5).await.unwrap();
        if failures.len() >= 2 || tokio::time::Instant::now() > deadline {
            break failures;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failures.len() >= 2, "{failures:?}");
    assert!(failures.iter().all(|(job, run)| job == "failing"
        && run.state == "failed"
        && run.error.as_deref().is_some_and(|e| e.ends_with("broke"))));
    assert!(
        failures
            .windows(2)
            .all(|w| w[0].1.started >= w[1].1.started),
        "newest first: {failures:?}"
    );

    let page = cluster
        .jobs_named(&["steady".to_owned(), "no-such-job".to_owned()])
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "{page:?}");
    assert_eq!(page[0].name, "steady");
    assert!(page[0].last_run.is_some());

    cluster.pause("steady").await.unwrap();
    let counts = cluster.job_counts().await.unwrap();
    assert_eq!((counts.jobs, counts.paused), (2, 1), "{counts:?}");

    let action = hosted_postgres::AuditRecord::new("alice", "pause", "steady", "ok: paused");
    cluster.audit(&action).await.unwrap();
    let action = hosted_postgres::AuditRecord::new("bob", "trigger", "failing", "ok");
    cluster.audit(&action).await.unwrap();
    let log = cluster.audit_log(10).await.unwrap();
    let who: Vec<&str> = log.iter().map(|r| r.who.as_str()).collect();
    assert_eq!(who, ["bob", "alice"], "newest first");
    assert!(log.iter().all(|r| r.instance == cluster.instance_id()));
    assert_eq!(log[1].target, "steady");
    let _ = host.stop().await;
}
