//! The queue_web example's admin API, on the host's handle: the jobs are
//! listed, one is triggered (its run shows in the log), paused and
//! resumed; an unknown job is a 404; its last runs are listed; `/metrics`
//! serves the host's metrics in Prometheus' text format.

#[path = "../../tests/support/mod.rs"]
mod support;

use support::start_example;

#[path = "../../../tests/support/http.rs"]
#[allow(unreachable_pub)]
mod http;

/// A request to `address` (`http://host:port`): the status line and body.
fn request(address: &str, method: &str, path: &str) -> (String, String) {
    http::request(address, method, path).expect("a response")
}

#[test]
fn the_admin_routes_list_trigger_pause_and_resume_jobs() {
    let mut example = start_example("queue_web", &[("QUEUE_WEB_ADDR", "127.0.0.1:0")]);
    let address = example.wait_for_capture("serving the task queue on ");
    example.wait_for("host started");

    let (status, body) = request(&address, "GET", "/admin/jobs");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""name":"prune-finished""#), "{body}");

    // Its first tick is due at the start; a trigger runs it once more,
    // before or after that tick: two runs in all.
    let (status, body) = request(&address, "POST", "/admin/jobs/prune-finished/trigger");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""run":"#), "{body}");
    // The first may have come before the start line.
    if example
        .output_so_far()
        .matches("pruned 0 finished task(s)")
        .count()
        == 0
    {
        example.wait_for("pruned 0 finished task(s)");
    }
    example.wait_for("pruned 0 finished task(s)");

    let (status, body) = request(&address, "POST", "/admin/jobs/prune-finished/pause");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let (_, listed) = request(&address, "GET", "/admin/jobs");
    assert!(listed.contains(r#""paused":true"#), "{listed}");
    let (status, _) = request(&address, "POST", "/admin/jobs/prune-finished/resume");
    assert_eq!(status, "HTTP/1.1 200 OK");

    let (status, body) = request(&address, "POST", "/admin/jobs/no-such-job/trigger");
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");
    assert!(body.contains("no job named `no-such-job`"), "{body}");

    let (status, body) = request(&address, "GET", "/admin/runs/prune-finished");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let runs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let runs = runs.as_array().expect("a list");
    assert_eq!(runs.len(), 2, "the tick and the trigger: {body}");
    assert_eq!(runs[0]["number"], 2, "newest first: {body}");
    assert_eq!(runs[0]["outcome"], "succeeded", "{body}");

    // Counters are published every second: within a few, the two runs.
    let want = r#"hosted_job_runs_total{job="prune-finished",outcome="succeeded"} 2"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let metrics = loop {
        let (status, body) = request(&address, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        if body.contains(want) || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(metrics.contains(want), "{metrics}");
    assert!(
        metrics.contains("# TYPE hosted_job_run_duration_seconds summary"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"hosted_queue_depth{queue="default"} 0"#),
        "{metrics}"
    );

    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    assert_eq!(status.code(), Some(0), "{output}");
}
