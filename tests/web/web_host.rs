//! The web host shares the host's shutdown: when stop begins the server
//! stops accepting, and a request in flight finishes within the timeout.
//! Real sockets on loopback, so real (short) time.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hosted::web::WebServer;
use hosted::Host;

/// A GET over a plain socket: the status line, or the connection error.
fn get_status(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    hosted_tests::http::request(&addr.to_string(), "GET", path).map(|(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_accepting_at_stop_and_finishes_requests_in_flight() {
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
    let web = WebServer::bind("127.0.0.1:0", router).await.unwrap();
    let addr = web.local_addr();
    let running = Host::builder()
        .without_registered()
        .service(web)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();

    let fast = tokio::task::spawn_blocking(move || get_status(addr, "/fast"));
    assert_eq!(fast.await.unwrap().unwrap(), "HTTP/1.1 200 OK");

    let slow = tokio::task::spawn_blocking(move || get_status(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = running.stop().await;

    assert!(report.is_clean(), "{report}");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        "HTTP/1.1 200 OK",
        "in flight: finished"
    );
    assert!(
        report.stop_took() >= Duration::from_millis(150),
        "the stop waited for the request in flight: {:?}",
        report.stop_took()
    );
    let after = tokio::task::spawn_blocking(move || get_status(addr, "/fast"));
    assert!(after.await.unwrap().is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_deadline_is_answered_503_and_the_stop_reports_it() {
    let router = Router::new().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never"
        }),
    );
    let web = WebServer::bind("127.0.0.1:0", router).await.unwrap();
    let addr = web.local_addr();
    let running = Host::builder()
        .without_registered()
        .service(web)
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let stuck = tokio::task::spawn_blocking(move || get_status(addr, "/stuck"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = running.stop().await;
    assert_eq!(report.code(), hosted::Report::EXIT_STOP_FAILED, "{report}");
    assert!(
        report
            .to_string()
            .contains("still in flight at the shutdown deadline"),
        "{report}"
    );
    assert_eq!(
        stuck.await.unwrap().unwrap(),
        "HTTP/1.1 503 Service Unavailable",
        "the request was cut off, not left hanging"
    );
    assert!(
        report.stop_took() < Duration::from_secs(2),
        "{:?}",
        report.stop_took()
    );
}

/// Regression: when the deadline had passed before the web server's `stop`
/// began (a service stopped before it hung), the stop claimed that requests
/// were in flight and answered 503 though none were: exit code 3 and a
/// false message in about half the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reached_after_the_deadline_claims_no_request_that_was_not_there() {
    use hosted::Phase;
    use hosted_tests::{Act, Journal, Probe};
    let journal = Journal::default();
    for round in 0..40 {
        let router = Router::new().route("/fast", get(|| async { "fast" }));
        let web = WebServer::bind("127.0.0.1:0", router).await.unwrap();
        let running = Host::builder()
            .without_registered()
            .service(web)
            // Stopped before the web server, and past the deadline.
            .service(Probe::new("hangs", &journal).at(Phase::Stop, Act::Hang))
            .shutdown_timeout(Duration::from_millis(30))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let report = running.stop().await;
        assert!(report.errors().is_empty(), "round {round}: {report}");
        assert_eq!(
            report.code(),
            hosted::Report::EXIT_ABORTED,
            "round {round}: {report}"
        );
        let aborted: Vec<&str> = report.aborted().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(aborted, ["hangs"], "round {round}: {report}");
    }
}

/// A request over a plain socket: the status line and the body.
fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    hosted_tests::http::request(&addr.to_string(), method, path).expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_served_by_the_host_get_its_handle_and_can_trigger_a_job() {
    use axum::extract::Path;
    use axum::routing::post;
    use axum::Extension;
    use hosted::{HostHandle, Job};

    let router = Router::new()
        .route(
            "/jobs",
            get(|Extension(host): Extension<HostHandle>| async move {
                host.jobs()
                    .iter()
                    .map(|job| job.name.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        )
        .route(
            "/jobs/{name}/trigger",
            post(
                |Extension(host): Extension<HostHandle>, Path(name): Path<String>| async move {
                    match host.trigger(&name) {
                        Ok(run) => (axum::http::StatusCode::ACCEPTED, format!("run {run}")),
                        Err(e) => (axum::http::StatusCode::CONFLICT, e.to_string()),
                    }
                },
            ),
        );
    let web = WebServer::bind("127.0.0.1:0", router).await.unwrap();
    let addr = web.local_addr();
    let host = Host::builder()
        .without_registered()
        .job(Job::cron("yearly-report", "0 0 1 1 *", || async {}))
        .service(web)
        .build()
        .unwrap();
    // The handle exists before the host runs; it cannot trigger yet.
    let handle = host.handle();
    assert_eq!(
        handle.trigger("yearly-report"),
        Err(hosted::HandleError::NotStarted)
    );
    let running = host.start().await.unwrap();

    let listed = tokio::task::spawn_blocking(move || request(addr, "GET", "/jobs"));
    assert_eq!(
        listed.await.unwrap(),
        ("HTTP/1.1 200 OK".to_owned(), "yearly-report".to_owned())
    );
    let triggered =
        tokio::task::spawn_blocking(move || request(addr, "POST", "/jobs/yearly-report/trigger"));
    let (status, body) = triggered.await.unwrap();
    assert_eq!(status, "HTTP/1.1 202 Accepted", "{body}");
    assert_eq!(body, "run 1");
    for _ in 0..100 {
        if handle.job("yearly-report").unwrap().succeeded == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.job("yearly-report").unwrap().succeeded, 1);
    assert!(running.stop().await.is_clean());
}

#[derive(Clone)]
struct Greeting(&'static str);

/// A job in a module that serves routes, with axum's `State` in scope.
async fn greets(axum::extract::State(greeting): axum::extract::State<Greeting>) {
    assert_eq!(greeting.0, "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_takes_axums_state_like_hosteds_and_build_checks_it_is_there() {
    use hosted::Job;

    let missing = Host::builder()
        .without_registered()
        .job(Job::every("greets", Duration::from_secs(3600), greets))
        .build()
        .unwrap_err();
    assert!(
        missing.to_string().contains("Greeting"),
        "the error names the missing state: {missing}"
    );

    let running = Host::builder()
        .without_registered()
        .state(Greeting("hello"))
        .job(Job::every("greets", Duration::from_secs(3600), greets))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let handle = running.handle();
    for _ in 0..100 {
        if handle.job("greets").unwrap().succeeded == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.job("greets").unwrap().succeeded, 1);
    assert!(running.stop().await.is_clean());
}
