//! Background work for async Rust services: fixed-rate timers, cron jobs and
//! long-running services, declared with one attribute each, started with the
//! process and stopped gracefully.
//!
//! ```toml
//! [dependencies]
//! hosted = "0.1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tracing = "0.1"
//! tracing-subscriber = { version = "0.3", features = ["env-filter"] }
//! anyhow = "1"
//! ```
//!
//! The host reports through [`tracing`](https://docs.rs/tracing): its start
//! line, every failed run, every stop step. Install a subscriber (below, the
//! common one from `tracing-subscriber`) or a program prints nothing.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use hosted::prelude::*;
//!
//! #[every("5s")]
//! async fn heartbeat(run: Run) {
//!     tracing::info!(n = run.number(), "alive");
//! }
//!
//! #[cron("0 3 * * *", tz = "Europe/Berlin")]
//! async fn nightly(State(db): State<Db>) -> anyhow::Result<()> {
//!     db.vacuum().await
//! }
//!
//! #[hosted_service]
//! async fn consume(stop: CancellationToken) -> anyhow::Result<()> {
//!     stop.cancelled().await; // a real consumer would select on its input too
//!     Ok(())
//! }
//!
//! # #[derive(Clone)] struct Db;
//! # impl Db { async fn vacuum(&self) -> anyhow::Result<()> { Ok(()) } }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     tracing_subscriber::fmt()
//!         .with_env_filter(
//!             tracing_subscriber::EnvFilter::try_from_default_env()
//!                 .unwrap_or_else(|_| "info".into()),
//!         )
//!         .init();
//!     Host::builder()
//!         .state(Db)
//!         .shutdown_timeout(Duration::from_secs(10))
//!         .build()                 // checks every job's schedule and arguments
//!         .expect("host configuration")
//!         .run()                   // until SIGINT/SIGTERM or a failed service
//!         .await
//!         .exit_code()
//! }
//! ```
//!
//! # How it works
//!
//! Each attribute leaves your fn as written (you can still call it and unit
//! test it) and adds a constant registration beside it, collected at link
//! time through [`inventory`](https://docs.rs/inventory); there is no central
//! list to maintain. The schedule is parsed at compile time, so a bad
//! duration, cron line or time zone is a compile error on the literal.
//!
//! **Jobs in a library crate.** The linker keeps a library crate only if
//! the binary uses something of it; a crate that holds nothing but jobs is
//! left out, and its registrations with it. A binary that depends on such a
//! crate names it once, and its jobs are back:
//!
//! ```ignore
//! use my_jobs as _; // in main.rs: links the crate, and its jobs with it
//! ```
//!
//! A host that takes the registered jobs and finds none and no service
//! warns about this at start; one whose jobs are all added by hand says so
//! with [`HostBuilder::without_registered`].
//!
//! [`HostBuilder::build`] gathers the registrations (all of them, or those
//! chosen with [`HostBuilder::only_jobs`] and [`HostBuilder::only_module`]),
//! plus [`Job`]s added by hand, and checks what each job's arguments need:
//! a job that takes `State<Pool>` on a host without a `Pool` is an error from
//! `build()` naming the job, not a panic at its first run.
//!
//! [`Host::run`] starts one scheduler task that owns every deadline; an
//! idle job costs about 280 bytes and no task. `every` jobs without jitter
//! that share a period wait in a first-in, first-out lane (the job fired at
//! the front is due again after all the others, so a tick costs O(1)); cron
//! and jittered jobs wait in a binary heap. The scheduler wakes on one
//! timer: on Linux a timerfd registered with tokio's reactor, which fires
//! within tens of microseconds where tokio's timer rounds every deadline up
//! to the next millisecond; tokio's own timer under paused time (as in
//! tests) and elsewhere. It wakes at most once a millisecond, and at most
//! every 2 ms after a wake-up that fired fewer than 8 runs (never longer
//! than a job's own shortest gap between ticks), and fires everything due
//! by then: a wake-up costs the same whatever it fires, so a dense
//! schedule shares it, and a tick of a schedule sparser than that runs
//! within tens of microseconds. A due run's arguments are built and the run is
//! polled once on the scheduler's task: one that finishes without waiting
//! (most do) costs no task at all; one that waits continues in a task of
//! its own, and a job whose first step holds the scheduler for more than a
//! millisecond gets a task from its next run on, with a warning.
//! `BENCHMARKS.md` has the figures. Services (`#[hosted_service]`) are
//! spawned at start. On SIGINT, SIGTERM or SIGQUIT every job's
//! [`CancellationToken`] is cancelled at once and everything gets the
//! shutdown timeout, in total, to finish; what is still running then is
//! aborted and named in the [`Report`], whose
//! [`exit_code`](Report::exit_code) tells the process how it went.
//!
//! # Semantics
//!
//! - **`every`** runs on a fixed grid from the host's start: tick `k` is due
//!   at `start + initial_delay + k * period` (plus jitter), so the first run
//!   is at start (after the initial delay) and no drift ever accumulates.
//! - **Overlap**: a tick that comes due while the job's previous run is
//!   still going is skipped and counted (and logged once, at debug level,
//!   when the next run starts); the next run is the next tick on the
//!   schedule. `overlap = "allow"` starts concurrent runs instead.
//! - **`cron`** lines are read in the job's time zone (UTC unless `tz`
//!   says otherwise), with Vixie cron's fields and day rule and cronie's
//!   handling of daylight saving time (see [`cron`](macro@cron) for the
//!   rules, and for what differs from cronie). In short: a line whose
//!   minute and hour fields (and seconds, with 6 fields) do not begin with
//!   `*` is *fixed-time* and runs each of its times once, a time inside the
//!   spring-forward gap right after the jump and a time inside the repeated
//!   autumn hour on its first pass; any other line follows real time.
//! - **Wall-clock steps**: a cron job never fires before its time on the wall
//!   clock, even if the clock is set back; it never fires twice for one fire
//!   time; if the clock jumps ahead over fire times, the first runs late and
//!   the others are counted as skipped and logged as a warning.
//! - **Clusters**: with [`HostBuilder::cluster`] (the crate
//!   `hosted-postgres`), each tick of a scheduled job is claimed through the
//!   cluster's store and runs on one instance; `every` grids are anchored at
//!   the Unix epoch and the wall clock follows the cluster's, so every
//!   instance computes and fires the same instants. See [`cluster`] for the
//!   seam and the per-job options (`scope`, `on_crash`, `missed`).
//! - **Failures**: a run that returns `Err` or panics is logged with the
//!   job's name and counted, and the schedule goes on. A background service
//!   that fails stops the host (or, per service, is ignored or restarted
//!   with backoff: see [`FailurePolicy`]), and [`Report::exit_code`] is
//!   non-zero. A service that returns `Ok` early is simply done; one that
//!   returns [`Cancelled`] after stop began was cancelled, not failed.
//!
//! # Arguments
//!
//! A job's parameters are resolved by type ([`FromRun`]):
//!
//! | argument | what it is |
//! |---|---|
//! | [`Run`] | the job's name, kind, run number and scheduled time |
//! | [`CancellationToken`] | the host's stop token |
//! | [`State<T>`] | a clone of the `T` given to [`HostBuilder::state`], or derived from one through [`FromRef`] (`#[derive(FromRef)]` on an app state struct) |
//! | [`Scoped<T>`] | a value made for this run by the factory given to [`HostBuilder::scoped`], and handed to its teardown after the run with the run's [`Outcome`] |
//! | [`TaskQueue`] | the host's default work queue (see [`HostBuilder::queue`]) |
//! | [`Lifetime`], [`HostHandle`] | the host's events and controls |
//!
//! `build()` checks every job's arguments and reports every missing state
//! or factory at once; a type that is none of these is a compile error on
//! the parameter.
//!
//! # Configuration
//!
//! A job's schedule, options and enabled flag can be overridden by name at
//! build time, by hand ([`HostBuilder::configure`]) or from any serde source
//! ([`HostBuilder::config`] with a [`HostConfig`], e.g. from a TOML file).
//! Invalid values are `build()` errors naming the job and the key; a
//! disabled job is listed but never runs.
//!
//! # Work queues
//!
//! [`HostBuilder::queue`] adds a bounded queue of async work items (the
//! queued background tasks of ASP.NET Core): [`TaskQueue::enqueue`] waits
//! while it is full, `try_enqueue` hands the item back, and both hand it
//! back once stop has begun. Its workers run as a background service; an
//! item's error or panic is logged with its label and counted, never
//! stopping a worker. At stop, items in flight see their token cancelled,
//! waiting items drain within the shutdown timeout (or, by option, are
//! dropped), and whatever never ran is counted in the [`Report`] and logged
//! with its label.
//!
//! With the `axum` feature, `web::WebServer` serves an axum app
//! as a lifecycle service of the same host: one runtime, one signal
//! handler; it stops accepting when stop begins and finishes requests in
//! flight within the timeout.
//!
//! # Lifecycle
//!
//! Three kinds of work share one lifecycle: lifecycle services
//! ([`HostedService`]: `start` returns once the service is up, `stop` gets
//! the deadline), background services (`#[hosted_service]` on an `async
//! fn`), and scheduled jobs (`#[every]`, `#[cron]`).
//!
//! **Startup**: every service's `starting` hook, then every `start`, then
//! every `started` hook, in start order (services added with
//! [`HostBuilder::service`] in the order added, then declared ones by
//! module and name; `order = N` on a declared service moves it, lowest
//! first, with builder services at 0). Then the [`Lifetime`]'s `started`
//! event fires, and the background services, the scheduler and the queues'
//! workers start. A step that fails, panics or outlives
//! [`HostBuilder::startup_timeout`] aborts startup: later steps never run,
//! the services already started are stopped in reverse order, `started`
//! never fires, and [`Host::run`] returns a report naming every service that
//! failed (exit code 2). A stop requested during startup (a signal, a
//! handle, a lifetime, even before `run()`) abandons it the same way, at
//! once: the start token fires, and `started` never does. So `stopping`
//! never fires before `started`. After a good startup the start token lives
//! until the host stops.
//!
//! **Stop** begins on SIGINT, SIGTERM or SIGQUIT, a stop request (from a
//! [`HostHandle`], a [`Lifetime`], a job), or a failed service; asking again
//! changes nothing. Under one deadline ([`HostBuilder::shutdown_timeout`],
//! 30 s by default): the `stopping` event (every job's token is cancelled at
//! once), the `stopping` hooks, the end of every background run, every
//! `stop`, the `stopped` hooks (services in reverse start order), the
//! `stopped` event. Every step runs even when an earlier one failed, and the
//! errors are collected in order. At the deadline the token given to `stop`
//! fires; whatever still runs is dropped and named in the [`Report`]; steps
//! never begun get one poll each. A step that blocks its thread cannot be
//! dropped: the host waits for it and names it as finished past the
//! deadline ([`Report::past_deadline`]). A second signal does the same at
//! once. A [`RunningHost`] dropped without being stopped aborts everything.
//! Phases run one service at a time unless
//! [`HostBuilder::start_concurrently`] or [`HostBuilder::stop_concurrently`]
//! says otherwise.
//!
//! **Exit codes** ([`Report::code`]): 0 clean, 1 a background service
//! failed, 2 startup failed, 3 a stop step failed, 4 something was aborted.
//!
//! ## Where this differs from Microsoft.Extensions.Hosting
//!
//! | Microsoft.Extensions.Hosting | `hosted` | why |
//! |---|---|---|
//! | `StopAsync` of each service gets a token; a service that ignores it can hold the host past the timeout | one deadline for the whole stop; at the deadline what still runs is dropped and named in the report | a stop that cannot hang is the point of a timeout |
//! | an exception in one `StopAsync` is logged and the others still run, and `StopAsync` throws an `AggregateException` | every step runs; every error is collected, in order, into the [`Report`], with its own exit code (3) | errors are values, and the exit code says which kind of failure happened |
//! | `BackgroundServiceExceptionBehavior` is host-wide (`StopHost` or `Ignore`) | [`FailurePolicy`] per service, with `Restart` (exponential backoff with jitter and a budget) | services differ: a cache refresher can restart, a consumer must stop the host |
//! | `OperationCanceledException` after the stopping token fired is not a failure | [`Cancelled`] (or an error wrapping it) after stop began is not a failure; returned while the host is not stopping, it is | the same rule, with a type instead of an exception |
//! | `ApplicationStarted` and friends are `CancellationToken`s that never fire if startup fails | [`Lifetime::started`] resolves to `false` when the host stops without having started | a waiter is never left hanging |
//! | services are resolved from the DI container, in registration order | builder services in the order added, then declared ones in a stable order; `order = N` overrides | a declarative registration has no registration order of its own, so it gets a stable one |
//! | `BackgroundService.ExecuteAsync` starts inside `StartAsync`, interleaved with other services' starts | background services and scheduled jobs start after every `start` has returned | they may depend on any lifecycle service being up |
//! | SIGINT and SIGTERM; a second Ctrl+C is ignored by default | SIGINT, SIGTERM and SIGQUIT; a second signal aborts at once | a user pressing Ctrl+C twice means it |
//!
//! # Seeing it
//!
//! [`HostHandle`] reads it all: jobs with their schedules, next fires and
//! counters (paged and searched with [`HostHandle::jobs_page`]), each job's
//! last runs, the services and their states, the queues with their depth
//! and lag. The crate `hosted-dashboard` shows it as web pages, with
//! trigger, pause and resume, mounted beside an axum app or on an address
//! of its own.
//!
//! # Tracing
//!
//! Every line a job, a service or a queue item writes is inside a span
//! that names it, at level `INFO`, so that a subscriber (an OpenTelemetry
//! pipeline, `tracing-subscriber`'s console) gets the fields without the
//! user's code repeating them:
//!
//! | span | fields | around |
//! |---|---|---|
//! | `run` | `job`, `kind` (`every`, `cron`), `run` (its number), `scheduled` (RFC 3339, milliseconds) | a run of a scheduled job |
//! | `service` | `name`, and `restart` (1, 2, …) once restarted | a background service (`#[hosted_service]` fn) |
//! | `service` | `name`, `phase` (`starting`, `start`, `started`, `stopping`, `stop`, `stopped`) | a step of a lifecycle service ([`HostedService`]) |
//! | `item` | `queue`, `item` (its label) | an item of a [`TaskQueue`] |
//! | `item` | `queue`, `handler`, `item` (its id), `attempt` | an attempt of a durable queue's item (`hosted-postgres`) |
//!
//! A line outside its span (the span filtered out) carries `job` itself.
//! The host's own lines (start, stop, skipped ticks, restarts) name what
//! they are about in fields of the same names.
//!
//! # Metrics
//!
//! With the feature `metrics`, the host records through the
//! [`metrics`](https://docs.rs/metrics) facade: install the exporter you run
//! (`metrics-exporter-prometheus`, an OpenTelemetry bridge, StatsD) with
//! that crate's builder before the host starts; without one, nothing is
//! recorded. Names, units and labels follow Prometheus' conventions, and
//! label values are job, service and queue names and a few outcomes, never
//! a run's number or an item's label.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `hosted_job_runs_total` | counter | `job`, `outcome` | finished runs; `outcome` is `succeeded`, `failed` (also panicked and aborted) or `cancelled` |
//! | `hosted_job_run_duration_seconds` | histogram | `job` | how long each run took |
//! | `hosted_job_tick_lateness_seconds` | histogram | `job` | how long after it was due each run started |
//! | `hosted_job_ticks_skipped_total` | counter | `job` | ticks skipped: the previous run was still going, or the host stalled |
//! | `hosted_job_runs_running` | gauge | `job` | runs going now |
//! | `hosted_job_ticks_claimed_elsewhere_total` | counter | `job` | with a cluster: ticks another instance claimed and ran |
//! | `hosted_job_ticks_unclaimed_total` | counter | `job` | with a cluster: ticks not claimed because its store was out of reach |
//! | `hosted_job_stale_completions_total` | counter | `job` | with a cluster: completions rejected because the run's lease had run out |
//! | `hosted_service_restarts_total` | counter | `service` | restarts of a background service |
//! | `hosted_queue_depth` | gauge | `queue` | items waiting |
//! | `hosted_queue_lag_seconds` | gauge | `queue` | how long the oldest waiting item has waited (to within the second between two publications) |
//! | `hosted_queue_in_flight` | gauge | `queue` | items running |
//! | `hosted_queue_items_total` | counter | `queue`, `outcome` | items by outcome: `completed`, `failed`, `refused`, `not_run` |
//!
//! `job` covers every job: scheduled ones, background services and durable
//! queue handlers (whose runs are attempts). The histograms are recorded
//! as each run ends; the counters and gauges are read from the counters
//! the host keeps anyway and published every second, and once more when
//! the host has stopped. On a [`TestClock`](testing::TestClock) or paused
//! time they are published when [`TestHost::advance`](testing::TestHost::advance)
//! returns instead of every second of test time.
//!
//! Seven series a job suit a host of tens or hundreds of jobs. A host of
//! 100,000 would hand its exporter 700,000 series, which cost more than the
//! jobs themselves (BENCHMARKS.md measures it): `HostBuilder::metrics_per_job(false)`
//! publishes one set for the whole host instead, without the `job` label
//! (the runs, skipped ticks and running runs of every job summed, every
//! run in one pair of histograms, the services' restarts summed); queues
//! keep their label.

#![cfg_attr(docsrs, feature(doc_cfg))]

// The macros' expansion names `::hosted`; this lets the crate's own tests
// use them.
#[allow(unused_extern_crates)]
extern crate self as hosted;

// The modules, in layers from the bottom up. Each layer is a folder (or a
// file, at the top) and imports only from the layers below it; inside a
// folder, a file imports only the files its `mod.rs` names before it, and
// that `mod.rs`. The one exception is the model, whose eight files
// (context, shared, job, registry, extract, scope, schedule, service)
// refer to one another: a run's context holds the host's shared state,
// which holds the jobs, whose handlers take the context (see
// `model/mod.rs`). `.ci/layers.py` checks this against
// `.ci/runtime-layers.txt` on every CI run.
//
// - `base`: what needs nothing else of the crate: outcomes, the wall
//   clock, the scheduler's timer, the in-process queue, the kinds of job,
//   and the report `run()` returns;
// - `seams`: the traits a backend implements (a cluster's coordinator, a
//   durable work source), their data, and the handles they reach the host
//   through;
// - `model`: what a job, a run and its context are, the host's shared
//   state, the arguments a run can take, schedules, scoped values and
//   services;
// - `observe`: metrics, read from the model (feature `metrics`);
// - `run`: turning a due tick, a claimed tick or a queued item into a
//   run, the scheduler that owns every deadline, the supervision of
//   services;
// - `lifecycle`: start, the lifetime events, stop, signals;
// - `handle`: the handle on a running host, and its views;
// - `host`: the builder and `build()`;
// - `web` and `testing` at the top, imported by none of the others.
mod base;
mod handle;
mod host;
mod lifecycle;
mod model;
mod observe;
mod run;
mod seams;
pub mod testing;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod web;

pub use crate::seams::{cluster, work};

pub use crate::base::kind::{JobKind, Overlap};
pub use crate::base::outcome::{Cancelled, IntoOutcome, Outcome};
pub use crate::base::queue::{QueueOptions, QueueStats, Queued, Refused, TaskQueue, DEFAULT_QUEUE};
pub use crate::base::report::Phase;
pub use crate::base::report::{Aborted, HostError, Report, StopReason, Work};
pub use crate::handle::{
    HandleError, HostHandle, JobStatus, JobSummary, JobsPage, LifecycleStatus, NextRun,
};
pub use crate::host::config::{parse_duration, HostConfig, JobConfig, ParseDurationError};
pub use crate::host::{
    BuildError, HostBuilder, Problem, DEFAULT_RUN_HISTORY, DEFAULT_RUN_HISTORY_BUDGET,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use crate::lifecycle::{Host, Lifetime, RunningHost};
pub use crate::model::context::{Run, RunContext};
pub use crate::model::extract::{Dependencies, ExtractError, FromRef, FromRun, RunFuture, State};
pub use crate::model::job::FinishedRun;
#[allow(deprecated)]
pub use crate::model::job::LastRun;
pub use crate::model::registry::{Backoff, FailurePolicy, Handler, Job};
pub use crate::model::scope::{ScopeFactory, Scoped};
pub use crate::model::service::HostedService;
/// Derives [`FromRef`] for each field of an app state struct; see there.
pub use hosted_macros::FromRef;
pub use tokio_util::sync::CancellationToken;

/// Runs an async fn at a fixed rate, on a grid from the host's start.
///
/// ```
/// use hosted::prelude::*;
///
/// #[every("5s")]
/// async fn heartbeat(run: Run) {
///     tracing::info!(n = run.number(), "alive");
/// }
/// ```
///
/// The period is a sequence of integers with units `ms`, `s`, `m`, `h` and
/// `d`: `"250ms"`, `"1m30s"`, `"1d"`. Tick `k` is due at
/// `start + initial_delay + k * period + jitter(k)`.
///
/// # Options
///
/// - `name = "..."`: the job's name (default: the fn's name); unique per
///   host.
///
///   ```
///   # use hosted::prelude::*;
///   #[every("30s", name = "refresh-cache")]
///   async fn refresh() {}
///   ```
/// - `initial_delay = "..."`: moves the whole grid later, so the first run
///   is at `start + initial_delay`.
///
///   ```
///   # use hosted::prelude::*;
///   #[every("1h", initial_delay = "1h")] // first run an hour after start
///   async fn hourly_cleanup() {}
///   ```
/// - `jitter = "..."`: moves each tick later by a pseudo-random amount up to
///   this bound, to spread load across instances; shorter than the period.
///   Each process draws its own amounts (a test on a `TestClock` gets the
///   same ones every run; [`HostBuilder::seed`] picks them), except for
///   ticks claimed through a cluster, whose instant every instance agrees
///   on.
///
///   ```
///   # use hosted::prelude::*;
///   #[every("30s", jitter = "2s")]
///   async fn poll() {}
///   ```
/// - `overlap = "skip" | "allow"`: what a tick does while the previous run
///   is still going: be skipped and counted (default), or start another run.
///
///   ```
///   # use hosted::prelude::*;
///   #[every("1s", overlap = "allow")]
///   async fn fan_out() {}
///   ```
/// - `crate = "..."`: the path to `hosted`, if you re-export it.
///
///   ```
///   # use hosted::prelude::*;
///   # mod my_reexports { pub mod hosted { pub use ::hosted::*; } }
///   #[every("1s", crate = "my_reexports::hosted")]
///   async fn tick() {}
///   ```
///
/// The fn must be an `async fn` without generics or `self`; its arguments
/// are any [`FromRun`] types, and it returns `()` or `Result<(), E>` with
/// `E: Display`. Mistakes are compile errors:
///
/// ```compile_fail
/// # use hosted::prelude::*;
/// #[every("0s")] // the period must be greater than zero
/// async fn never() {}
/// ```
///
/// ```compile_fail
/// # use hosted::prelude::*;
/// #[every("5 seconds")] // units are ms, s, m, h, d
/// async fn wordy() {}
/// ```
#[doc(inline)]
pub use hosted_macros::every;

/// Runs an async fn on a cron schedule, in a time zone.
///
/// ```
/// use hosted::prelude::*;
///
/// #[cron("*/5 * * * *")] // every five minutes, UTC
/// async fn sweep() {}
///
/// #[cron("0 30 9 * * 1-5", tz = "Europe/Berlin")] // 09:30:00 on weekdays, Berlin time
/// async fn standup() {}
///
/// #[cron("@hourly")]
/// async fn rollup() {}
/// ```
///
/// The line has 5 fields (minute, hour, day of month, month, day of week) or
/// 6 with seconds first, or is one of `@yearly`, `@annually`, `@monthly`,
/// `@weekly`, `@daily` (also `@midnight`), `@hourly`. Weekdays are POSIX:
/// `1` is Monday, `0` and `7` are Sunday, and names (`MON`) work too;
/// `SUN-SUN` and `0-SUN` mean Sunday, `MON-SUN` the whole week. The line is
/// checked field by field at compile time, and a bad field is named.
///
/// # The cron rules
///
/// As Vixie cron and cronie:
///
/// - **Days.** The day-of-month and day-of-week fields are combined with
///   AND when either of them begins with `*` (so `*/2` counts as
///   unrestricted), and with OR only when both are restricted:
///   `0 0 */2 * 1` runs at midnight on odd days that are Mondays
///   (2026-12-07, 2026-12-21, …), while `0 0 13 * 5` runs on the 13th and
///   on every Friday.
/// - **Fixed-time or wildcard.** A line is *fixed-time* when none of its
///   minute and hour fields begins with `*`: `30 2 * * *`, `15 1-3 * * *`,
///   `0,30 2 * * *`, `0 0-23 * * *`, `@daily`. It is a *wildcard* line
///   otherwise: `*/15 * * * *`, `0 */2 * * *`, `@hourly`.
/// - **Daylight saving time.** A fixed-time line runs each of its times
///   once. A time inside the spring-forward gap runs right after the jump
///   (02:30 in Berlin on 2026-03-29 runs at 03:00 CEST; with `0,30 2 * * *`
///   both 02:00 and 02:30 run there, in order, and a run that finds the
///   previous one still going is skipped and counted, as any overlapping
///   tick). A time inside the repeated autumn hour runs on its first pass
///   only. A wildcard line follows real time: nothing runs for local times
///   that do not exist, and a repeated hour runs on both passes.
///
/// - **Steps and lists.** As in cronie, a step longer than its range takes
///   the range's first value alone (`*/90 * * * *` runs at minute 0 of
///   every hour, `0 */25 * * *` at midnight), and `*` in a list is the
///   whole range (`0 0 * * 1,*` runs every day; the day-of-week field still
///   counts as restricted, since it does not begin with `*`).
///
/// Where `hosted` differs from cronie:
///
/// - 6-field lines have seconds; the fixed-time rule then counts the
///   seconds field too (`0 30 2 * * *` is fixed-time, `*/30 30 2 * * *` is
///   not).
/// - `croner`'s extensions work: `L` (last day of the month), `LW` (its last
///   weekday), `15W` (the weekday nearest the 15th) in the day of month;
///   `5L` (the last Friday) and `1#2` (the second Monday) in the day of
///   week; `?` for `*` in either day field; `+` before the day of week asks
///   for AND whatever the day of month says.
/// - A line that can never fire (`0 0 31 2 *`) is rejected, not accepted to
///   sit idle; so are `@reboot` (use `#[hosted_service]`), an empty list
///   item (`1,,2`), a bare `L` or `+` in the day of week, a step without a
///   range (`5/15`: write `5-59/15`) and a range that runs backwards.
/// - cronie's time-change handling applies to jumps of up to 3 hours; here
///   the rules above apply to every transition of the zone, and steps of
///   the wall clock itself (NTP, a VM resumed) are handled apart: see the
///   crate docs.
///
/// # Options
///
/// - `tz = "..."`: an IANA time zone (`"America/New_York"`), `"UTC"` (the
///   default), or `"local"` for the machine's zone.
///
///   ```
///   # use hosted::prelude::*;
///   #[cron("0 0 * * *", tz = "local")] // local midnight
///   async fn midnight() {}
///   ```
/// - `name`, `overlap` and `crate`, as for [`every`].
///
///   ```
///   # use hosted::prelude::*;
///   #[cron("* * * * * *", name = "per-second", overlap = "allow")]
///   async fn per_second() {}
///   ```
///
/// ```compile_fail
/// # use hosted::prelude::*;
/// #[cron("0 0 * * *", tz = "Mars/Olympus_Mons")] // unknown time zone
/// async fn martian_midnight() {}
/// ```
///
/// ```compile_fail
/// # use hosted::prelude::*;
/// #[cron("0 0 31 2 *")] // never fires: there is no February 31st
/// async fn never() {}
/// ```
#[doc(inline)]
pub use hosted_macros::cron;

/// Runs an async fn for the host's whole life, like .NET's
/// `BackgroundService.ExecuteAsync`; or, on a type that implements
/// [`HostedService`], registers that type as a lifecycle service.
///
/// It starts with the host and gets the host's stop token; it should return
/// soon after the token is cancelled. Returning `Ok` early is fine: the
/// service is simply done. Returning `Err` or panicking stops the host with a
/// non-zero exit code.
///
/// ```
/// use std::time::Duration;
/// use hosted::prelude::*;
///
/// #[hosted_service]
/// async fn consume(stop: CancellationToken) -> anyhow::Result<()> {
///     loop {
///         tokio::select! {
///             () = stop.cancelled() => return Ok(()),
///             () = tokio::time::sleep(Duration::from_secs(1)) => { /* poll a queue */ }
///         }
///     }
/// }
/// ```
///
/// # Options on an `async fn`
///
/// - `name` and `crate`, as for [`every`].
///
///   ```
///   # use hosted::prelude::*;
///   #[hosted_service(name = "orders-consumer")]
///   async fn consume(stop: CancellationToken) { stop.cancelled().await }
///   ```
/// - `on_failure = "stop" | "ignore" | "restart"`: what an `Err` or a panic
///   does (see [`FailurePolicy`]); with `"restart"`, `backoff = "1s..5m"`
///   (first and longest delay, default `"1s..1m"`) and `max_restarts = N`
///   (failures in a row that are restarted, default 5).
///
///   ```
///   # use hosted::prelude::*;
///   #[hosted_service(on_failure = "restart", backoff = "500ms..30s", max_restarts = 10)]
///   async fn tail_log(stop: CancellationToken) -> anyhow::Result<()> {
///       stop.cancelled().await;
///       Ok(())
///   }
///   ```
///
/// # On a type
///
/// The type implements [`HostedService`]; the host builds it with
/// `Default`, or with `constructor = "path::to::fn"`: a fn that returns
/// the service and takes the host's states as `State<T>` arguments (each
/// checked by `build()`, like a job's). Options: `name` (default: the
/// type's name), `order = N` (lower starts first; default 0) and `crate`.
///
/// ```
/// use hosted::prelude::*;
///
/// #[derive(Clone)]
/// struct Settings { database_url: String }
///
/// #[hosted_service(order = -1, constructor = "Pool::connect")]
/// struct Pool { url: String }
///
/// impl Pool {
///     fn connect(State(settings): State<Settings>) -> Pool {
///         Pool { url: settings.database_url }
///     }
/// }
///
/// impl HostedService for Pool {
///     type Error = std::io::Error;
///     async fn start(&mut self, _cancel: CancellationToken) -> Result<(), Self::Error> { Ok(()) }
///     async fn stop(&mut self, _deadline: CancellationToken) -> Result<(), Self::Error> { Ok(()) }
/// }
/// ```
///
/// ```compile_fail
/// # use hosted::prelude::*;
/// #[hosted_service]
/// fn not_async(stop: CancellationToken) {} // needs `async fn`
/// ```
#[doc(inline)]
pub use hosted_macros::hosted_service;

/// The names most programs need: `use hosted::prelude::*;`.
pub mod prelude {
    pub use crate::{
        cron, every, hosted_service, CancellationToken, Host, HostHandle, HostedService, Job,
        Lifetime, QueueOptions, Report, Run, Scoped, State, TaskQueue,
    };
}

/// Not public API: the paths the macros' expansion uses.
#[doc(hidden)]
pub mod __private {
    pub use crate::base::kind::Overlap;
    pub use crate::base::outcome::IntoOutcome;
    pub use crate::model::context::RunContext;
    pub use crate::model::extract::{
        any_state, AnyState, Dependencies, ExtractError, FromRun, RunFuture, SubState,
    };
    pub use crate::model::registry::{
        Backoff, CronSpec, EverySpec, FailurePolicy, QueuedSpec, Registration, Trigger, ZoneSpec,
    };
    pub use crate::model::service::{
        construct, constructor_dependencies, erase, ErasedService, HostedService,
        ServiceRegistration,
    };
    pub use crate::seams::cluster::{ClusterJobOptions, Missed, OnCrash, Placement};
    pub use inventory;
}
