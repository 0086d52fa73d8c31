//! Run with: cargo run -p hosted-example-apps --example queue_web
//!
//! The queued background tasks of the reference, as a web page: each click
//! on "Add task" enqueues a work item; one worker runs the items in order,
//! each in three 5-second steps that it logs; the page shows queued,
//! running and finished tasks with their progress, and the queue's depth.
//!
//! The page is served by axum as a service of the same host: one runtime,
//! one signal handler. Open the address it prints, add a few tasks, then
//! press Ctrl+C: the server stops accepting, the running task stops after
//! its current step, the waiting ones drain (within the 60 s shutdown
//! timeout), and the process exits with code 0. Tasks still
//! waiting at the deadline are counted and logged, never dropped silently.
//!
//! Beside the page, an admin API on the host's own handle (which the
//! routes get as `Extension<HostHandle>`): `GET /admin/jobs` lists the jobs
//! with their schedule, next run and counters, and
//! `POST /admin/jobs/{name}/trigger` (or `/pause`, `/resume`) acts on one:
//! `curl -X POST localhost:3000/admin/jobs/prune-finished/trigger` prunes
//! the list of finished tasks now instead of at the next minute.
//!
//! `GET /admin/runs/{name}` gives a job's last runs (when each was
//! due and started, how long it took, how it ended), and `GET /metrics`
//! the host's metrics in Prometheus' text format: runs by job and outcome,
//! run durations, skipped ticks, the queue's depth and items by outcome
//! (`hosted`'s feature `metrics`, recorded by `metrics-exporter-prometheus`).
//!
//! `/dashboard` is the host's dashboard (`hosted-dashboard`), mounted
//! beside the app: jobs with their schedules and runs, the service, the
//! queue, and buttons to run, pause and resume jobs. It answers loopback
//! callers only, unless `DASHBOARD_TOKEN` (a bearer token) or
//! `DASHBOARD_PASSWORD` (basic authentication as `admin`) is set. Two jobs
//! give it something to show: `refresh-rates`, every 10 s, fails one run in
//! three; `nightly-report` is a cron job at 02:30 in Berlin, whose next
//! fires cross a daylight saving change in spring and autumn.
//!
//! `QUEUE_WEB_ADDR` changes the address (default 127.0.0.1:3000; port 0
//! picks a free one) and `STEP_MS` the length of a step (default 5000).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hosted::web::WebServer;
use hosted::{
    CancellationToken, HandleError, Host, HostHandle, Job, QueueOptions, Refused, Run, TaskQueue,
};
use hosted_dashboard::{Authorizer, Dashboard};
use serde::Serialize;

const STEPS: u32 = 3;

/// What the page shows of one task.
#[derive(Clone, Serialize)]
struct TaskView {
    id: u64,
    state: &'static str,
    step: u32,
    steps: u32,
}

#[derive(Clone)]
struct App {
    queue: TaskQueue,
    tasks: Arc<Mutex<BTreeMap<u64, TaskView>>>,
    next_id: Arc<AtomicU64>,
    step: Duration,
}

impl App {
    fn set(&self, id: u64, state: &'static str, step: u32) {
        if let Some(task) = self.tasks.lock().expect("tasks lock").get_mut(&id) {
            task.state = state;
            task.step = step;
        }
    }
}

/// One task: three steps, each logged. After each step it checks its
/// token: the task running when stop begins sees it cancelled and stops
/// early; tasks drained after that get a token that fires only at the
/// shutdown deadline, so they run to the end.
async fn run_task(app: App, id: u64, token: CancellationToken) {
    for step in 1..=STEPS {
        app.set(id, "running", step);
        tracing::info!(task = id, "step {step}/{STEPS}");
        tokio::time::sleep(app.step).await;
        if token.is_cancelled() && step < STEPS {
            app.set(id, "interrupted", step);
            tracing::info!(
                task = id,
                "stop requested: interrupted after step {step}/{STEPS}"
            );
            return;
        }
    }
    app.set(id, "finished", STEPS);
    tracing::info!(task = id, "finished");
}

async fn add_task(State(app): State<App>) -> impl IntoResponse {
    let id = app.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    app.tasks.lock().expect("tasks lock").insert(
        id,
        TaskView {
            id,
            state: "queued",
            step: 0,
            steps: STEPS,
        },
    );
    let worker_app = app.clone();
    match app
        .queue
        .try_enqueue_detached(format!("task {id}"), move |token| {
            run_task(worker_app, id, token)
        }) {
        Ok(()) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))),
        Err(refused) => {
            app.tasks.lock().expect("tasks lock").remove(&id);
            let status = match refused {
                Refused::Full(_) => StatusCode::TOO_MANY_REQUESTS,
                Refused::Stopping(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, Json(serde_json::json!({ "error": "not queued" })))
        }
    }
}

async fn list_tasks(State(app): State<App>) -> Json<serde_json::Value> {
    let tasks: Vec<TaskView> = app
        .tasks
        .lock()
        .expect("tasks lock")
        .values()
        .cloned()
        .collect();
    let stats = app.queue.stats();
    Json(serde_json::json!({
        "tasks": tasks,
        "queue": {
            "capacity": stats.capacity,
            "depth": stats.depth,
            "in_flight": stats.in_flight,
            "completed": stats.completed,
        },
    }))
}

/// A job of the host: keeps the last ten finished tasks on the page. It
/// takes axum's `State`, which hosted accepts with its `axum` feature.
async fn prune_finished(State(app): State<App>) {
    let mut tasks = app.tasks.lock().expect("tasks lock");
    let done: Vec<u64> = tasks
        .values()
        .filter(|task| matches!(task.state, "finished" | "interrupted"))
        .map(|task| task.id)
        .collect();
    let pruned = done.len().saturating_sub(10);
    for id in &done[..pruned] {
        tasks.remove(id);
    }
    tracing::info!("pruned {pruned} finished task(s)");
}

/// `GET /admin/jobs`: every job of the host, from its handle.
async fn list_jobs(Extension(host): Extension<HostHandle>) -> Json<serde_json::Value> {
    let jobs: Vec<serde_json::Value> = host
        .jobs()
        .into_iter()
        .map(|job| {
            serde_json::json!({
                "name": job.name,
                "schedule": job.description,
                "next_run": job.next_run.map(|at| at.to_rfc3339()),
                "runs": job.runs,
                "failed": job.failed,
                "paused": job.paused,
            })
        })
        .collect();
    Json(serde_json::json!({ "jobs": jobs }))
}

/// `POST /admin/jobs/{name}/{action}`: trigger, pause or resume a job.
async fn act_on_job(
    Extension(host): Extension<HostHandle>,
    Path((name, action)): Path<(String, String)>,
) -> (StatusCode, Json<serde_json::Value>) {
    let done = match action.as_str() {
        "trigger" => host
            .trigger(&name)
            .map(|run| serde_json::json!({ "run": run })),
        "pause" => host
            .pause(&name)
            .map(|()| serde_json::json!({ "paused": true })),
        "resume" => host
            .resume(&name)
            .map(|()| serde_json::json!({ "paused": false })),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "no such action" })),
            )
        }
    };
    match done {
        Ok(body) => (StatusCode::OK, Json(body)),
        Err(error) => {
            let status = match error {
                HandleError::UnknownJob(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                Json(serde_json::json!({ "error": error.to_string() })),
            )
        }
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// A job's last runs, newest first.
async fn job_runs(
    Extension(handle): Extension<HostHandle>,
    Path(name): Path<String>,
) -> impl IntoResponse {
    let Some(runs) = handle.runs(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no job named `{name}`") })),
        );
    };
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            serde_json::json!({
                "number": run.number,
                "scheduled": run.scheduled.to_rfc3339(),
                "started": run.started.to_rfc3339(),
                "took_ms": run.took.as_secs_f64() * 1e3,
                "outcome": run.outcome.to_string(),
            })
        })
        .collect();
    (StatusCode::OK, Json(serde_json::json!(runs)))
}

/// Fails one run in three, as an upstream that times out now and then.
async fn refresh_rates(run: Run) -> Result<(), String> {
    if run.number().is_multiple_of(3) {
        return Err("the rates service timed out after 2 s".to_owned());
    }
    tracing::info!("exchange rates refreshed");
    Ok(())
}

/// The dashboard, behind the authorizer the environment asks for.
fn dashboard() -> Dashboard {
    let dashboard = Dashboard::new().title("queue_web");
    if let Ok(token) = std::env::var("DASHBOARD_TOKEN") {
        dashboard.authorizer(Authorizer::bearer(token))
    } else if let Ok(password) = std::env::var("DASHBOARD_PASSWORD") {
        dashboard.authorizer(Authorizer::basic("admin", password))
    } else {
        dashboard
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();

    let addr = std::env::var("QUEUE_WEB_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let step_ms: u64 = std::env::var("STEP_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);

    // Installed before the host starts, which resolves its metrics from it.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let queue = TaskQueue::new(QueueOptions::default().capacity(100).workers(1));
    let app = App {
        queue: queue.clone(),
        tasks: Arc::default(),
        next_id: Arc::default(),
        step: Duration::from_millis(step_ms),
    };
    let router = Router::new()
        .route("/", get(page))
        .route("/tasks", get(list_tasks).post(add_task))
        .route("/admin/jobs", get(list_jobs))
        .route("/admin/runs/{name}", get(job_runs))
        .route("/admin/jobs/{name}/{action}", post(act_on_job))
        .route(
            "/metrics",
            get(move || async move {
                prometheus.run_upkeep();
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    prometheus.render(),
                )
            }),
        )
        .with_state(app.clone())
        .nest("/dashboard", dashboard().router())
        // `nest` serves `/dashboard` and what is under it, not the bare
        // `/dashboard/` a person may type.
        .route(
            "/dashboard/",
            get(|| async { axum::response::Redirect::permanent("/dashboard") }),
        );
    let web = WebServer::bind(&addr, router).await?;
    println!("serving the task queue on http://{}", web.local_addr());
    println!("the dashboard is on http://{}/dashboard", web.local_addr());

    let report = Host::builder()
        .without_registered()
        .state(app)
        .job(Job::every(
            "prune-finished",
            Duration::from_secs(60),
            prune_finished,
        ))
        .job(Job::every(
            "refresh-rates",
            Duration::from_secs(10),
            refresh_rates,
        ))
        .job(
            Job::cron("nightly-report", "0 30 2 * * *", || async {
                tracing::info!("nightly report sent");
            })
            .tz("Europe/Berlin"),
        )
        .queue(queue)
        .service(web)
        .shutdown_timeout(Duration::from_secs(60))
        .build()?
        .run()
        .await;
    println!("stopped: {} task(s) never ran", report.not_run());
    Ok(report.exit_code())
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>hosted: queued background tasks</title>
  <style>
    body { font: 16px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; }
    button { font-size: 1rem; padding: .4rem 1rem; }
    table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
    td, th { border-bottom: 1px solid #ddd; padding: .3rem; text-align: left; }
    tr.queued td { color: #777; } tr.running td { color: #05a; } tr.finished td { color: #080; }
    progress { width: 10rem; }
  </style>
</head>
<body>
  <h1>Queued background tasks</h1>
  <p>Each task runs three steps on the host's queue, one task at a time.</p>
  <button id="add">Add task</button>
  <p>Queue depth: <span id="depth">0</span> waiting, <span id="in-flight">0</span> running,
     <span id="completed">0</span> completed.</p>
  <table>
    <thead><tr><th>Task</th><th>State</th><th>Progress</th></tr></thead>
    <tbody id="tasks"></tbody>
  </table>
  <script>
    async function refresh() {
      try {
        const response = await fetch('/tasks');
        const data = await response.json();
        document.getElementById('depth').textContent = data.queue.depth;
        document.getElementById('in-flight').textContent = data.queue.in_flight;
        document.getElementById('completed').textContent = data.queue.completed;
        const body = document.getElementById('tasks');
        body.innerHTML = '';
        for (const task of data.tasks) {
          const row = document.createElement('tr');
          row.className = task.state;
          row.dataset.id = task.id;
          row.innerHTML = `<td>#${task.id}</td><td class="state">${task.state}</td>` +
            `<td><progress max="${task.steps}" value="${task.step}"></progress> ${task.step}/${task.steps}</td>`;
          body.appendChild(row);
        }
      } catch (e) { /* the server is stopping */ }
    }
    document.getElementById('add').addEventListener('click', async () => {
      await fetch('/tasks', { method: 'POST' });
      refresh();
    });
    setInterval(refresh, 300);
    refresh();
  </script>
</body>
</html>
"#;
