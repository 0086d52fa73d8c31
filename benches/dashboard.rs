//! The dashboard's server time at 100,000 jobs: each page requested
//! through the router (authentication, the source, rendering, the body
//! collected), as an operator's browser would, on a host whose jobs are
//! all scheduled.
//!
//! Beside it, the cost of what a page must not do: the status of every job
//! (`HostHandle::jobs`), which a dashboard that lists and filters in the
//! page handler would pay on every request.
//!
//! `cargo bench -p hosted-benches --bench dashboard`; `DASHBOARD_JOBS`
//! changes the number of jobs (default 100,000), `DASHBOARD_ROUNDS` the
//! requests per page (default 30).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use hosted::{Host, Job};
use hosted_dashboard::Dashboard;
use tower::ServiceExt as _;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median and the slowest of `times`, in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    (
        millis(times[times.len() / 2]),
        millis(times[times.len() - 1]),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env("DASHBOARD_JOBS", 100_000);
    let rounds = env("DASHBOARD_ROUNDS", 30).max(1);
    let mut builder = Host::builder().without_registered();
    for i in 0..jobs {
        // Every hour, first in an hour: the bench measures pages, not runs.
        let job = if i % 10 == 0 {
            Job::cron(format!("report-{i:06}"), "0 30 2 * * *", || async {}).tz("Europe/Berlin")
        } else {
            Job::every(
                format!("sync-{i:06}"),
                Duration::from_secs(3600),
                || async {},
            )
            .initial_delay(Duration::from_secs(3600))
        };
        builder = builder.job(job);
    }
    let host = builder
        .build()
        .expect("the host")
        .start()
        .await
        .expect("it starts");
    let handle = host.handle();
    let router = Dashboard::with_source(handle.clone()).router();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let last_page = jobs.div_ceil(50);

    println!("dashboard, {jobs} jobs: server time per request over {rounds} requests");
    println!(
        "{:<34} {:>10} {:>10} {:>10}",
        "page", "median ms", "max ms", "KiB"
    );
    let pages = [
        ("/jobs (first page)".to_owned(), "/jobs".to_owned()),
        (
            format!("/jobs?page={last_page} (last page)"),
            format!("/jobs?page={last_page}"),
        ),
        (
            "/jobs?q=sync-09999 (search)".to_owned(),
            "/jobs?q=sync-09999".to_owned(),
        ),
        ("/ (overview)".to_owned(), "/".to_owned()),
        (
            "/jobs/report-000010 (a job)".to_owned(),
            "/jobs/report-000010".to_owned(),
        ),
        ("/services".to_owned(), "/services".to_owned()),
    ];
    for (label, uri) in pages {
        let mut times = Vec::with_capacity(rounds);
        let mut size = 0;
        for _ in 0..rounds {
            let mut request = Request::get(uri.as_str())
                .header(header::HOST, "127.0.0.1:9000")
                .body(Body::empty())
                .unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            let began = Instant::now();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            times.push(began.elapsed());
            size = body.len();
        }
        let (median, max) = summary(&mut times);
        println!(
            "{label:<34} {median:>10.2} {max:>10.2} {:>10.1}",
            size as f64 / 1024.0
        );
    }

    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let began = Instant::now();
        let all = handle.jobs();
        times.push(began.elapsed());
        assert_eq!(all.len(), jobs);
    }
    let (median, max) = summary(&mut times);
    println!(
        "{:<34} {median:>10.2} {max:>10.2} {:>10}",
        "(every job's status, for scale)", "-"
    );
    let _ = host.stop().await;
}
