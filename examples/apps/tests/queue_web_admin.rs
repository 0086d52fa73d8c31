//! The queue_web example's admin API, on the host's handle: the jobs are
//! listed, one is triggered (its run shows in the log), paused and
//! resumed; an unknown job is a 404.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::start_example;

/// A request to `address` (`http://host:port`): the status line and body.
fn request(address: &str, method: &str, path: &str) -> (String, String) {
    let authority = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).expect("connect to the example");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_admin_routes_list_trigger_pause_and_resume_jobs() {
    let mut example = start_example("queue_web", &[("QUEUE_WEB_ADDR", "127.0.0.1:0")]);
    let address = example.wait_for_capture("serving the task queue on ");
    example.wait_for("host started");

    let (status, body) = request(&address, "GET", "/admin/jobs");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""name":"prune-finished""#), "{body}");

    // Its first tick ran at the start; a trigger runs it once more.
    let (status, body) = request(&address, "POST", "/admin/jobs/prune-finished/trigger");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""run":2"#), "{body}");
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

    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    assert_eq!(status.code(), Some(0), "{output}");
}
