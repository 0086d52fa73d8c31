//! Bad input to a cluster: each a clear error that says what to do, never
//! a panic, and never a host that runs without coordination.

use std::time::Duration;

use hosted::cluster::{Fence, Placement};
use hosted::{Host, Job, Problem};
use hosted_postgres::{Cluster, ClusterOptions, Error};
use support::pg::{admin, base_url, fast, TestDb};

fn message(result: Result<Cluster, Error>) -> String {
    match result {
        Ok(_) => panic!("connected"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn an_unreachable_server_a_bad_url_an_unknown_user_and_a_missing_database_are_clear_errors() {
    let unreachable = message(Cluster::connect("postgres://postgres@127.0.0.1:1/app").await);
    assert!(
        unreachable.contains("could not reach PostgreSQL at 127.0.0.1:1")
            && unreachable.contains("check that the server runs"),
        "{unreachable}"
    );
    let url = message(Cluster::connect("postgres://127.0.0.1:not-a-port/app").await);
    assert!(url.starts_with("invalid PostgreSQL URL"), "{url}");
    let user = message(
        Cluster::connect(&format!(
            "{}/postgres",
            base_url().replace("postgres@", "no_such_user_hosted@")
        ))
        .await,
    );
    assert!(
        user.contains("no_such_user_hosted") && user.contains("check the user and password"),
        "{user}"
    );
    let database =
        message(Cluster::connect(&format!("{}/no_such_database_hosted", base_url())).await);
    assert!(database.contains("create the database first"), "{database}");
}

#[tokio::test]
async fn options_out_of_range_are_refused() {
    let wide = ClusterOptions::default()
        .lease(Duration::from_secs(10))
        .trust_window(Duration::from_secs(10));
    let error = message(Cluster::connect_with("postgres://x@127.0.0.1/x", wide).await);
    assert!(
        error.contains("trust window") && error.contains("not shorter than the lease"),
        "{error}"
    );
    let schema = message(
        Cluster::connect_with(
            "postgres://x@127.0.0.1/x",
            ClusterOptions::default().schema("Jobs; DROP"),
        )
        .await,
    );
    assert!(
        schema.contains("not a lowercase SQL identifier"),
        "{schema}"
    );
}

#[tokio::test]
async fn a_user_who_may_not_create_the_schema_fails_the_host_start_with_what_to_grant() {
    let db = TestDb::create().await;
    let role = format!("{}_limited", db.name);
    let admin = admin().await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             REVOKE CREATE ON DATABASE {db} FROM PUBLIC;",
            db = db.name
        ))
        .await
        .unwrap();
    let url = format!(
        "{}/{}",
        base_url().replace("postgres@", &format!("{role}@")),
        db.name
    );
    let cluster = Cluster::connect_with(&url, fast())
        .await
        .expect("the user may connect");
    let host = Host::builder()
        .without_registered()
        .job(Job::every("tick", Duration::from_secs(1), || async {}))
        .cluster(cluster)
        .build()
        .unwrap();
    let report = host
        .start()
        .await
        .expect_err("a host must not run without coordination");
    assert_eq!(report.code(), hosted::Report::EXIT_START_FAILED, "{report}");
    let error = &report.errors()[0];
    assert_eq!(error.name, "cluster");
    let text = error.outcome.to_string();
    assert!(
        text.contains("could not create the schema `hosted`")
            && text.contains("GRANT CREATE ON DATABASE"),
        "{text}"
    );
    drop(db);
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .unwrap();
}

#[test]
fn cluster_options_that_do_not_fit_the_job_are_build_errors_that_name_it() {
    let fenced = Host::builder()
        .without_registered()
        .job(Job::every(
            "export",
            Duration::from_secs(60),
            |Fence(_): Fence| async {},
        ))
        .build()
        .expect_err("Fence needs a cluster");
    assert!(
        matches!(
            &fenced.problems()[0],
            Problem::InvalidCluster { job, message } if job == "export" && message.contains("HostBuilder::cluster")
        ),
        "{fenced}"
    );
    let singleton_job = Host::builder()
        .without_registered()
        .job(Job::every("tick", Duration::from_secs(1), || async {}).scope(Placement::Singleton))
        .build()
        .expect_err("a scheduled job cannot be a singleton");
    assert!(
        singleton_job
            .to_string()
            .contains("job `tick`: a scheduled job cannot have `scope = \"singleton\"`"),
        "{singleton_job}"
    );
    let cluster_service = Host::builder()
        .without_registered()
        .job(Job::service("consume", || async {}).scope(Placement::Cluster))
        .build()
        .expect_err("a service is a singleton or runs everywhere");
    assert!(
        cluster_service.to_string().contains("use `\"singleton\"`"),
        "{cluster_service}"
    );
}
