//! The queue_web example in a real browser: headless Chromium, driven
//! through WebDriver (chromedriver), clicks "Add task", watches the tasks
//! queue, run and finish, then stops the host and checks the drain.
//!
//! Needs Chromium and chromedriver: found through `CHROME` and
//! `CHROMEDRIVER` when set, else on `PATH` (`chromium`, `chromium-browser`
//! or `google-chrome`; `chromedriver`). `.ci/run` installs Debian's
//! `chromium` and `chromium-driver`. Without them this test fails: it never
//! skips.

mod browser;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use browser::Driver;
use fantoccini::{Client, Locator};
use support::start_example;

/// The states of the task rows on the page, in order, read in one script
/// call: the page redraws its rows every 300 ms.
async fn states(browser: &Client) -> Vec<String> {
    let rows = browser
        .execute(
            "return Array.from(document.querySelectorAll('#tasks tr')).map(r => r.className);",
            vec![],
        )
        .await
        .expect("read the rows");
    serde_json::from_value(rows).expect("a list of class names")
}

/// Polls the page until `done` holds for the row states, for 20 s at most.
async fn until(browser: &Client, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let began = Instant::now();
    loop {
        let seen = states(browser).await;
        if done(&seen) {
            return seen;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "waited 20 s for {what}; rows: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_added_in_the_browser_queue_run_finish_and_drain_at_stop() {
    let mut example = start_example(
        "queue_web",
        &[("QUEUE_WEB_ADDR", "127.0.0.1:0"), ("STEP_MS", "300")],
    );
    let address = example.wait_for_capture("serving the task queue on ");
    let driver = Driver::start();
    let browser = driver.session().await;
    browser.goto(&address).await.expect("open the page");

    // Three clicks: one task runs while the others wait in the queue.
    let add = browser
        .find(Locator::Id("add"))
        .await
        .expect("the Add task button");
    for _ in 0..3 {
        add.click().await.expect("click Add task");
    }
    let seen = until(&browser, "a running task and queued ones", |s| {
        s.len() == 3 && s.iter().any(|c| c == "running") && s.iter().any(|c| c == "queued")
    })
    .await;
    assert_eq!(seen[0], "running", "one worker: the first task runs first");
    until(&browser, "three finished tasks", |s| {
        s.len() == 3 && s.iter().all(|c| c == "finished")
    })
    .await;
    let completed = browser
        .find(Locator::Id("completed"))
        .await
        .expect("the completed count")
        .text()
        .await
        .expect("its text");
    assert_eq!(completed, "3");

    // Three more, then stop the host while they run and wait: the running
    // one is interrupted after its step, the waiting ones drain.
    for _ in 0..3 {
        add.click().await.expect("click Add task");
    }
    until(&browser, "task 4 running", |s| {
        s.len() == 6 && s[3] == "running"
    })
    .await;
    // At once, while task 4 is in its first steps: closing the browser
    // first can take longer than a task's steps on a busy machine.
    example.signal(libc::SIGTERM);
    browser.close().await.expect("close the browser");
    drop(driver);
    let (status, output) = example.exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; output:\n{output}"
    );
    assert!(
        output.contains("stop requested: interrupted after step"),
        "{output}"
    );
    assert!(output.contains("finished task=5"), "{output}");
    assert!(output.contains("finished task=6"), "{output}");
    assert!(output.contains("stopped: 0 task(s) never ran"), "{output}");
}
