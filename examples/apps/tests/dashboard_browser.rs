//! The dashboard in a real browser (headless Chromium through
//! chromedriver): the queue_web example's, mounted beside its app, where a
//! job is run, paused and resumed from its page and its run appears
//! without a reload; the same example behind a bearer token, which a
//! browser without it cannot open; a page of another origin whose form
//! posts to the dashboard and is refused; and a dashboard of a cluster and
//! its durable queue on PostgreSQL, where a dead letter is retried and
//! succeeds.
//!
//! Each test saves screenshots of the pages it visits in
//! `target/tmp/dashboard-screenshots/`.

mod browser;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use browser::Driver;
use fantoccini::{Client, Locator};
use hosted::{Host, Job};
use hosted_dashboard::{ClusterSource, Dashboard};
use hosted_postgres::tokio_postgres::{self, NoTls};
use hosted_postgres::{Cluster, ClusterOptions, DurableOptions, DurableQueue, Payload};
use serde::{Deserialize, Serialize};
use support::start_example;

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    browser
        .set_window_size(1360, 900)
        .await
        .expect("size the window");
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("save the screenshot");
}

/// The text of the page's `<main>`, read in one script call: the refresh
/// script replaces its content.
async fn main_text(browser: &Client) -> String {
    text_of(browser, "main").await
}

/// The text of the page's first `selector`, read in one script call.
async fn text_of(browser: &Client, selector: &str) -> String {
    let began = Instant::now();
    loop {
        let read = browser
            .execute(
                "const found = document.querySelector(arguments[0]); return found ? found.innerText : null;",
                vec![serde_json::json!(selector)],
            )
            .await;
        match read {
            Ok(serde_json::Value::String(text)) => return text,
            other => assert!(
                began.elapsed() < Duration::from_secs(10),
                "no {selector} in 10 s: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the page's content until `done` holds, for 20 s at most; the
/// dashboard's script refreshes it every 2 s.
async fn until(browser: &Client, what: &str, done: impl Fn(&str) -> bool) -> String {
    let began = Instant::now();
    loop {
        let text = main_text(browser).await;
        if done(&text) {
            return text;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what}; the page shows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page, clicks what `find` finds, and waits until the next
/// page has loaded (the mark is gone): every button and link here leads to
/// a page of its own.
async fn click_and_wait(browser: &Client, what: &str, locator: Locator<'_>) {
    browser
        .execute("window.__before_click = true;", vec![])
        .await
        .expect("mark the page");
    browser
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {what}: {e}"));
    let began = Instant::now();
    loop {
        let loaded = browser
            .execute(
                "return window.__before_click !== true && document.readyState === 'complete';",
                vec![],
            )
            .await;
        if matches!(loaded, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{what} led to no page in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click_button(browser: &Client, label: &str) {
    let xpath = format!("//main//button[normalize-space()='{label}']");
    click_and_wait(
        browser,
        &format!("the `{label}` button"),
        Locator::XPath(&xpath),
    )
    .await;
}

async fn click_link(browser: &Client, label: &str) {
    click_and_wait(
        browser,
        &format!("the `{label}` link"),
        Locator::LinkText(label),
    )
    .await;
}

/// How many rows the run history of the job page shows.
async fn history_rows(browser: &Client) -> usize {
    let rows = browser
        .execute(
            "return document.querySelectorAll('table.runs tbody tr').length;",
            vec![],
        )
        .await
        .expect("count the rows");
    rows.as_u64().unwrap_or(0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_pauses_and_resumes_a_job_and_sees_its_run_appear() {
    let mut example = start_example("queue_web", &[("QUEUE_WEB_ADDR", "127.0.0.1:0")]);
    let address = example.wait_for_capture("serving the task queue on ");
    let driver = Driver::start();
    let browser = driver.session().await;

    browser
        .goto(&format!("{address}/dashboard"))
        .await
        .expect("open the dashboard");
    let overview = main_text(&browser).await;
    assert!(overview.starts_with("Overview"), "{overview}");
    assert!(overview.contains("SCHEDULED JOBS"), "as styled: {overview}");
    assert!(
        overview.contains("web"),
        "the WebServer service: {overview}"
    );
    assert!(overview.contains("lifecycle"), "{overview}");

    click_link(&browser, "Jobs").await;
    let jobs = main_text(&browser).await;
    for job in ["prune-finished", "refresh-rates", "nightly-report"] {
        assert!(jobs.contains(job), "{jobs}");
    }
    assert!(jobs.contains("Europe/Berlin"), "{jobs}");
    assert!(jobs.contains("every 10 seconds"), "{jobs}");
    screenshot(&browser, "jobs").await;

    click_link(&browser, "prune-finished").await;
    // Its first tick ran as the host started.
    until(&browser, "the first run", |text| text.contains("succeeded")).await;
    let before = history_rows(&browser).await;
    click_button(&browser, "Run now").await;
    let notice = main_text(&browser).await;
    assert!(notice.contains("of prune-finished"), "{notice}");
    assert!(notice.contains("started run"), "{notice}");
    // The run finishes in a moment; the page shows it without a reload.
    let began = Instant::now();
    while history_rows(&browser).await < before + 1 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no new run in the history"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    click_button(&browser, "Pause").await;
    let paused = main_text(&browser).await;
    assert!(paused.contains("paused prune-finished"), "{paused}");
    browser
        .find(Locator::XPath("//main//button[normalize-space()='Resume']"))
        .await
        .expect("a paused job offers Resume");
    click_button(&browser, "Resume").await;
    let resumed = main_text(&browser).await;
    assert!(resumed.contains("resumed prune-finished"), "{resumed}");
    browser
        .find(Locator::XPath("//main//button[normalize-space()='Pause']"))
        .await
        .expect("a running job offers Pause again");

    // refresh-rates fails its third run: run it until it has.
    browser
        .goto(&format!("{address}/dashboard/jobs/refresh-rates"))
        .await
        .expect("open refresh-rates");
    for _ in 0..3 {
        click_button(&browser, "Run now").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    until(&browser, "a failed run", |text| {
        text.contains("the rates service timed out")
    })
    .await;
    screenshot(&browser, "job").await;

    click_link(&browser, "Overview").await;
    let overview = until(&browser, "the failure on the overview", |text| {
        text.contains("the rates service timed out")
    })
    .await;
    assert!(overview.contains("refresh-rates"), "{overview}");
    screenshot(&browser, "overview").await;

    click_link(&browser, "Audit").await;
    let audit = main_text(&browser).await;
    for action in ["trigger", "pause", "resume"] {
        assert!(audit.contains(action), "{audit}");
    }

    // With JavaScript off the page is whole, and reads the same.
    browser
        .goto(&format!("{address}/dashboard/queues"))
        .await
        .expect("open the queues");
    let queues = main_text(&browser).await;
    assert!(
        queues.contains("default") && queues.contains("in-process"),
        "{queues}"
    );

    browser.close().await.expect("close the browser");
    drop(driver);
    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        output.contains("dashboard action"),
        "actions are logged: {output}"
    );
    assert!(output.contains("who=local"), "with who took them: {output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_the_token_gets_401_and_a_form_elsewhere_gets_403() {
    // Behind a bearer token: a browser has no way to send it.
    let mut guarded = start_example(
        "queue_web",
        &[
            ("QUEUE_WEB_ADDR", "127.0.0.1:0"),
            ("DASHBOARD_TOKEN", "t0ken"),
        ],
    );
    let guarded_address = guarded.wait_for_capture("serving the task queue on ");
    // Open, on loopback.
    let mut open = start_example("queue_web", &[("QUEUE_WEB_ADDR", "127.0.0.1:0")]);
    let open_address = open.wait_for_capture("serving the task queue on ");

    let driver = Driver::start();
    let browser = driver.session().await;
    browser
        .goto(&format!("{guarded_address}/dashboard"))
        .await
        .expect("open the guarded dashboard");
    let body = text_of(&browser, "body").await;
    assert!(body.contains("401 Unauthorized"), "{body}");
    let status = browser
        .execute(
            "return fetch(arguments[0]).then(r => r.status);",
            vec![serde_json::json!(format!(
                "{guarded_address}/dashboard/jobs"
            ))],
        )
        .await
        .expect("fetch the jobs page");
    assert_eq!(status, serde_json::json!(401));

    // A page of another origin (another port) with a form that posts to
    // the open dashboard: the browser marks it cross-site, the dashboard
    // refuses it, and the job does not run.
    let open_dashboard = format!("{open_address}/dashboard");
    let evil = evil_page(&format!("{open_dashboard}/jobs/prune-finished/trigger")).await;
    browser.goto(&evil).await.expect("open the other page");
    click_and_wait(&browser, "its button", Locator::Css("button")).await;
    let refused = text_of(&browser, "body").await;
    assert!(refused.contains("403 Forbidden"), "{refused}");
    assert!(refused.contains("cross-origin"), "{refused}");
    browser
        .goto(&format!("{open_dashboard}/jobs/prune-finished"))
        .await
        .expect("open the job");
    let page = main_text(&browser).await;
    assert!(
        page.contains("1 started"),
        "only its first tick ran: {page}"
    );

    browser.close().await.expect("close the browser");
    drop(driver);
    for example in [guarded, open] {
        example.signal(libc::SIGTERM);
        let (status, output) = example.exit();
        assert_eq!(status.code(), Some(0), "{output}");
    }
}

/// Serves, on a port of its own, a page whose form posts to `target`
/// with a made-up CSRF token; returns its address.
async fn evil_page(target: &str) -> String {
    let html = format!(
        r#"<!doctype html><html><body><form method="post" action="{target}"><input type="hidden" name="csrf" value="0123456789abcdef0123456789abcdef"><button type="submit">Win a prize</button></form></body></html>"#
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the other page");
    let address = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

static REFUSE: AtomicBool = AtomicBool::new(true);

#[derive(Serialize, Deserialize)]
struct Parcel {
    to: String,
}

/// Refuses every parcel while [`REFUSE`] holds.
#[hosted_postgres::queued(queue = "parcels", name = "ship-parcel", max_attempts = 1)]
async fn ship_parcel(Payload(parcel): Payload<Parcel>) -> anyhow::Result<()> {
    if REFUSE.load(Ordering::SeqCst) {
        anyhow::bail!("the carrier refused the parcel to {}", parcel.to);
    }
    Ok(())
}

fn base() -> String {
    std::env::var("HOSTED_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

async fn admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(&format!("{}/postgres", base()), NoTls)
        .await
        .expect("PostgreSQL (`.ci/run` starts it)");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_retried_from_the_dashboard_of_a_cluster() {
    let name = format!("hosted_dashboard_browser_{}", std::process::id());
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    admin(&format!("CREATE DATABASE {name}")).await;
    let url = format!("{}/{name}", base());

    let cluster = Cluster::connect_with(
        &url,
        ClusterOptions::default().poll_every(Duration::from_millis(100)),
    )
    .await
    .expect("the cluster");
    let queue = DurableQueue::connect_with(
        &url,
        DurableOptions::default().poll_every(Duration::from_millis(200)),
    )
    .await
    .expect("the durable queue");
    let dashboard = Dashboard::with_source(
        ClusterSource::new()
            .cluster(cluster.clone())
            .durable(queue.clone()),
    )
    .title("parcels")
    .bind("127.0.0.1:0")
    .await
    .expect("the dashboard's address");
    let address = format!("http://{}", dashboard.local_addr());
    let host = Host::builder()
        .cluster(cluster.clone())
        .durable(queue.clone())
        .job(Job::every(
            "count-parcels",
            Duration::from_secs(1),
            || async {},
        ))
        .service(dashboard)
        .build()
        .expect("the host")
        .start()
        .await
        .expect("the host starts");
    let id = ship_parcel::enqueue(
        &queue,
        Parcel {
            to: "Lisbon".into(),
        },
    )
    .await
    .expect("enqueue")
    .id();

    let driver = Driver::start();
    let browser = driver.session().await;
    browser
        .goto(&format!("{address}/dead"))
        .await
        .expect("open the dead letters");
    until(&browser, "the dead letter", |text| {
        text.contains("the carrier refused the parcel to Lisbon")
    })
    .await;
    screenshot(&browser, "dead-letters").await;
    click_link(&browser, &id.to_string()).await;
    let item = main_text(&browser).await;
    assert!(item.contains("\"to\": \"Lisbon\""), "the payload: {item}");
    assert!(item.contains("1 of 1"), "its attempts: {item}");
    screenshot(&browser, "item").await;

    // The carrier takes parcels again; the retry succeeds.
    REFUSE.store(false, Ordering::SeqCst);
    click_button(&browser, "Retry").await;
    let notice = main_text(&browser).await;
    assert!(notice.contains("1 item(s) of item"), "{notice}");
    let began = Instant::now();
    loop {
        let record = queue
            .item(id)
            .await
            .expect("read the item")
            .expect("the item");
        if record.state == "succeeded" {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the retried item is {}",
            record.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .goto(&format!("{address}/items/{id}"))
        .await
        .expect("open the item");
    assert!(main_text(&browser).await.contains("succeeded"));

    browser
        .goto(&format!("{address}/instances"))
        .await
        .expect("open the instances");
    let instances = main_text(&browser).await;
    screenshot(&browser, "instances").await;
    assert!(
        instances.contains("this one") && instances.contains("running"),
        "{instances}"
    );

    // The job's history comes from the cluster, with the instance that ran it.
    browser
        .goto(&format!("{address}/jobs/count-parcels"))
        .await
        .expect("open the job");
    until(&browser, "a run in the cluster's history", |text| {
        text.contains(cluster.instance_id()) && text.contains("succeeded")
    })
    .await;
    click_button(&browser, "Pause").await;
    let paused = main_text(&browser).await;
    assert!(
        paused.contains("paused count-parcels on every instance"),
        "{paused}"
    );

    // Every action is in the cluster's audit table.
    let log = cluster.audit_log(10).await.expect("the audit table");
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["pause", "retry"], "{log:?}");
    assert!(log[1].result.starts_with("ok: 1 item(s)"), "{log:?}");

    browser.close().await.expect("close the browser");
    drop(driver);
    let _ = host.stop().await;
    drop((cluster, queue));
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
