//! The pages, as HTML that maud escapes as it writes: plain links and
//! forms that work without JavaScript, and a `<main>` the refresh script
//! replaces with the same page's newer content.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::source::{
    AuditEntry, InstanceView, ItemQuery, ItemView, JobDetail, JobPage, JobQuery, JobView, NextFire,
    QueueView, RunView, ServiceView, Summary,
};
use crate::{Caller, Flash, Shared};

/// The navigation: path and label.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/services", "Services"),
    ("/queues", "Queues"),
    ("/dead", "Dead letters"),
    ("/instances", "Instances"),
    ("/audit", "Audit"),
];

fn layout(
    shared: &Shared,
    caller: &Caller,
    current: &str,
    heading: &str,
    content: Markup,
) -> Response {
    if caller.fragment {
        return Html(content.into_string()).into_response();
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (heading) " · " (shared.title) }
                link rel="stylesheet" href=(caller.link("/assets/app.css"));
                script src=(caller.link("/assets/app.js")) defer {}
            }
            body data-refresh=(shared.refresh_ms) {
                header.top {
                    a.brand href=(caller.link("/")) { (shared.title) }
                    nav {
                        @for (path, label) in NAV {
                            a href=(caller.link(path)) aria-current=[(*path == current).then_some("page")] { (label) }
                        }
                    }
                    span.who title="signed in as" {
                        (caller.who)
                        @if !caller.write { " · read-only" }
                    }
                }
                main id="content" { (content) }
                footer {
                    span id="live" { "Updated " time datetime=(Utc::now().to_rfc3339()) { (Utc::now().format("%H:%M:%S UTC")) } }
                    " · "
                    a href="" { "Refresh" }
                    noscript { " · JavaScript is off: reload to see changes." }
                }
            }
        }
    };
    Html(page.into_string()).into_response()
}

/// An error page: 401, 403, 404, 503.
pub(crate) fn refusal(status: StatusCode, why: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("");
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status.as_u16()) " " (reason) }
            }
            body {
                h1 { (status.as_u16()) " " (reason) }
                p { (why) }
            }
        }
    };
    (status, Html(page.into_string())).into_response()
}

/// A job's name as one segment of a path.
pub(crate) fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn query_value(value: &str) -> String {
    path_segment(value)
}

fn at(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S")) } }
}

fn maybe_at(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => at(t),
        None => html! { span.muted { "—" } },
    }
}

/// `980 µs`, `12.3 ms`, `4.2 s`, `3 min 5 s`.
pub(crate) fn took(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.001 {
        format!("{} µs", d.as_micros())
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

fn outcome(run: &RunView) -> Markup {
    let class = match run.outcome.as_str() {
        "succeeded" => "ok",
        "running" => "info",
        "cancelled" | "not run" => "muted",
        _ => "bad",
    };
    html! { span class={"badge " (class)} { (run.outcome) } }
}

fn flash(flash: &Flash) -> Markup {
    html! {
        @if let Some(done) = &flash.done { p.flash.ok role="status" { (done) } }
        @if let Some(error) = &flash.error { p.flash.bad role="alert" { (error) } }
    }
}

fn action(
    caller: &Caller,
    path: &str,
    label: &str,
    class: &str,
    hidden: &[(&str, String)],
) -> Markup {
    html! {
        form.inline method="post" action=(caller.link(path)) {
            input type="hidden" name="csrf" value=(caller.csrf);
            @for (name, value) in hidden { input type="hidden" name=(name) value=(value); }
            button class=(class) type="submit" disabled[!caller.write] title=[(!caller.write).then_some("read-only access")] { (label) }
        }
    }
}

fn next_fires(next: &[NextFire], limit: usize) -> Markup {
    html! {
        @if next.is_empty() { span.muted { "—" } }
        ol.fires {
            @for fire in next.iter().take(limit) {
                li {
                    time datetime=(fire.local.to_rfc3339()) { (fire.local.format("%Y-%m-%d %H:%M:%S %:z")) }
                    @if fire.offset_changes { " " span.badge.warn title="the zone's offset from UTC changes before this run (daylight saving time)" { "DST" } }
                }
            }
        }
    }
}

fn job_state(job: &JobView) -> Markup {
    html! {
        @if !job.enabled { span.badge.muted { "disabled" } " " }
        @if job.paused { span.badge.warn { "paused" } " " }
        @if job.running > 0 { span.badge.info { "running" } " " }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn overview(
    shared: &Shared,
    caller: &Caller,
    summary: &Summary,
    failures: &[(String, RunView)],
    services: &[ServiceView],
    queues: &[(QueueView, Option<f64>)],
    instances: &[InstanceView],
    actions: &[AuditEntry],
    has_items: bool,
) -> Response {
    let running_services = services.iter().filter(|s| s.state == "running").count();
    let depth: u64 = queues.iter().map(|(q, _)| q.depth).sum();
    let in_flight: u64 = queues.iter().map(|(q, _)| q.in_flight).sum();
    let dead: u64 = queues.iter().map(|(q, _)| q.dead).sum();
    let live = instances.iter().filter(|i| i.stopped.is_none()).count();
    let content = html! {
        h1 { "Overview" }
        section.cards {
            a.card href=(caller.link("/jobs")) {
                span.label { "Scheduled jobs" }
                span.value { (summary.scheduled) }
                span.detail { (summary.running) " running · " (summary.paused) " paused" }
            }
            a.card.bad[summary.failing > 0] href=(caller.link("/jobs")) {
                span.label { "Failing" }
                span.value { (summary.failing) }
                span.detail { "last run failed" }
            }
            a.card href=(caller.link("/services")) {
                span.label { "Services" }
                span.value { (running_services) " / " (services.len()) }
                span.detail { "running" }
            }
            a.card href=(caller.link("/queues")) {
                span.label { "Queued items" }
                span.value { (depth) }
                span.detail { (in_flight) " running" @if has_items { " · " (dead) " dead" } }
            }
            @if !instances.is_empty() {
                a.card href=(caller.link("/instances")) {
                    span.label { "Instances" }
                    span.value { (live) }
                    span.detail { "in the cluster" }
                }
            }
        }
        h2 { "Recent failures" }
        @if failures.is_empty() {
            p.muted { "No job's last run failed." }
        } @else {
            table {
                thead { tr { th { "Job" } th { "Started" } th { "Outcome" } th { "Error" } } }
                tbody {
                    @for (name, run) in failures {
                        tr {
                            td { a href=(caller.link(&format!("/jobs/{}", path_segment(name)))) { (name) } }
                            td { (at(run.started)) }
                            td { (outcome(run)) }
                            td.error { (run.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if !services.is_empty() {
            h2 { "Services" }
            (services_table(services))
        }
        h2 { "Queues" }
        (queues_table(caller, queues, has_items))
        @if !instances.is_empty() {
            h2 { "Instances" }
            (instances_table(instances))
        }
        h2 { "Latest actions" }
        (audit_table(actions))
    };
    layout(shared, caller, "/", "Overview", content)
}

pub(crate) fn jobs(
    shared: &Shared,
    caller: &Caller,
    query: &JobQuery,
    page: usize,
    per_page: usize,
    found: &JobPage,
) -> Response {
    let pages = found.total.div_ceil(per_page).max(1);
    let first = if found.jobs.is_empty() {
        0
    } else {
        query.offset + 1
    };
    let last = query.offset + found.jobs.len();
    let link = |page: usize| {
        let mut link = caller.link(&format!("/jobs?page={page}"));
        if !query.search.is_empty() {
            link += &format!("&q={}", query_value(&query.search));
        }
        link
    };
    let content = html! {
        h1 { "Jobs" }
        form.search method="get" action=(caller.link("/jobs")) role="search" {
            input type="search" name="q" value=(query.search) placeholder="Find a job by name" aria-label="Find a job by name";
            button type="submit" { "Search" }
        }
        p.muted {
            @if found.total == 0 { "No job matches." }
            @else if found.jobs.is_empty() { "No jobs on this page: there are " (found.total) "." }
            @else { "Jobs " (first) "–" (last) " of " (found.total) }
        }
        @if !found.jobs.is_empty() {
            table.jobs {
                thead { tr { th { "Name" } th { "Kind" } th { "Schedule" } th { "Zone" } th { "Next runs" } th { "Last run" } th.num { "Runs" } th.num { "Failed" } th.num { "Skipped" } th { "State" } } }
                tbody {
                    @for job in &found.jobs {
                        tr {
                            td { a href=(caller.link(&format!("/jobs/{}", path_segment(&job.name)))) { (job.name) } }
                            td { (job.kind) }
                            td { code { (job.schedule) } br; span.muted { (job.description) } }
                            td { (job.time_zone.as_deref().unwrap_or(if job.is_scheduled() { "UTC" } else { "—" })) }
                            td { (next_fires(&job.next, 5)) }
                            td {
                                @if let Some(run) = &job.last_run { (outcome(run)) " " (at(run.started)) }
                                @else { span.muted { "never" } }
                            }
                            td.num { (job.runs) }
                            td.num { (job.failed) }
                            td.num { (job.skipped) }
                            td { (job_state(job)) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="pages" {
            @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
            span { "Page " (page) " of " (pages) }
            @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
        }
    };
    layout(shared, caller, "/jobs", "Jobs", content)
}

pub(crate) fn job(
    shared: &Shared,
    caller: &Caller,
    detail: &JobDetail,
    notice: &Flash,
) -> Response {
    let job = &detail.job;
    let segment = path_segment(&job.name);
    let content = html! {
        h1 { (job.name) " " (job_state(job)) }
        (flash(notice))
        @if job.is_scheduled() && job.enabled {
            div.actions {
                (action(caller, &format!("/jobs/{segment}/trigger"), "Run now", "primary", &[]))
                @if job.paused {
                    (action(caller, &format!("/jobs/{segment}/resume"), "Resume", "", &[]))
                } @else {
                    (action(caller, &format!("/jobs/{segment}/pause"), "Pause", "", &[]))
                }
            }
        }
        dl.facts {
            dt { "Kind" } dd { (job.kind) }
            dt { "Schedule" } dd { code { (job.schedule) } " — " (job.description) }
            dt { "Zone" } dd { (job.time_zone.as_deref().unwrap_or("UTC")) }
            dt { "Next runs" } dd { (next_fires(&job.next, 5)) }
            dt { "Runs" } dd { (job.runs) " started · " (job.succeeded) " succeeded · " (job.failed) " failed · " (job.skipped) " skipped · " (job.running) " running now" }
            dt { "Defined at" } dd { code { (job.defined_at) } }
        }
        h2 { "Run history" }
        @if detail.runs.is_empty() {
            p.muted { "No run has finished yet." }
        } @else {
            table.runs {
                thead { tr { th.num { "Run" } th { "Due" } th { "Started" } th.num { "Late" } th.num { "Took" } th { "Outcome" } th { "Instance" } th { "Error" } } }
                tbody {
                    @for run in &detail.runs {
                        tr.failed[run.is_failure()] {
                            td.num { @if let Some(n) = run.number { (n) } }
                            td { (maybe_at(run.scheduled)) }
                            td { (at(run.started)) }
                            td.num {
                                @if let Some(due) = run.scheduled {
                                    (took((run.started - due).to_std().unwrap_or_default()))
                                }
                            }
                            td.num { @if let Some(d) = run.took { (took(d)) } @else { "…" } }
                            td { (outcome(run)) }
                            td { (run.instance.as_deref().unwrap_or("this host")) }
                            td.error { (run.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    layout(shared, caller, "/jobs", &job.name, content)
}

fn services_table(services: &[ServiceView]) -> Markup {
    html! {
        @if services.is_empty() { p.muted { "No background services." } }
        @else {
            table {
                thead { tr { th { "Service" } th { "Kind" } th { "State" } th.num { "Restarts" } th { "Last error" } th { "Defined at" } } }
                tbody {
                    @for service in services {
                        tr {
                            td { (service.name) }
                            td { (service.kind) }
                            td {
                                @let class = match service.state { "running" => "ok", "restarting" | "failed" => "bad", _ => "muted" };
                                span class={"badge " (class)} { (service.state) }
                            }
                            td.num { (service.restarts) }
                            td.error { (service.last_error.as_deref().unwrap_or("")) }
                            td { code { (service.defined_at) } }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn services(shared: &Shared, caller: &Caller, services: &[ServiceView]) -> Response {
    let content = html! { h1 { "Services" } (services_table(services)) };
    layout(shared, caller, "/services", "Services", content)
}

fn queues_table(caller: &Caller, queues: &[(QueueView, Option<f64>)], has_items: bool) -> Markup {
    html! {
        @if queues.is_empty() { p.muted { "No queues." } }
        @else {
            table {
                thead { tr {
                    th { "Queue" } th { "Kind" } th.num { "Waiting" } th.num { "Running" }
                    @if has_items { th.num { "Scheduled" } th.num { "Retrying" } th.num { "Dead" } }
                    th.num { "Lag" } th.num { "Per second" } th.num { "Finished" } th.num { "Failed" } th.num { "Refused" }
                } }
                tbody {
                    @for (queue, rate) in queues {
                        @let about = if queue.estimated { "≈ " } else { "" };
                        tr title=[queue.estimated.then_some("estimated from a sample of a large table")] {
                            td { (queue.name) }
                            td { @if queue.durable { "durable" } @else { "in-process" } }
                            td.num { (about) (queue.depth) }
                            td.num { (about) (queue.in_flight) }
                            @if has_items {
                                td.num { @if queue.durable { (about) (queue.scheduled) } }
                                td.num { @if queue.durable { (about) (queue.retrying) } }
                                td.num {
                                    @if queue.durable {
                                        @if queue.dead > 0 { a href=(caller.link(&format!("/dead?queue={}", query_value(&queue.name)))) { (about) (queue.dead) } }
                                        @else { "0" }
                                    }
                                }
                            }
                            td.num { @if let Some(lag) = queue.lag { (took(lag)) } @else { span.muted { "—" } } }
                            td.num { @if let Some(rate) = rate { (format!("{rate:.1}")) } @else { span.muted { "—" } } }
                            td.num { @if let Some(n) = queue.completed { (n) } @else { span.muted { "—" } } }
                            td.num { @if let Some(n) = queue.failed { (n) } @else { span.muted { "—" } } }
                            td.num { @if let Some(n) = queue.refused { (n) } @else { span.muted { "—" } } }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn queues(
    shared: &Shared,
    caller: &Caller,
    queues: &[(QueueView, Option<f64>)],
    has_items: bool,
) -> Response {
    let content = html! {
        h1 { "Queues" }
        (queues_table(caller, queues, has_items))
        @if has_items { p { a href=(caller.link("/dead")) { "Dead letters →" } } }
    };
    layout(shared, caller, "/queues", "Queues", content)
}

pub(crate) fn dead_letters(
    shared: &Shared,
    caller: &Caller,
    query: &ItemQuery,
    items: &[ItemView],
    has_items: bool,
    notice: &Flash,
) -> Response {
    let filter = [
        ("queue", query.queue.clone().unwrap_or_default()),
        ("handler", query.handler.clone().unwrap_or_default()),
    ];
    let content = html! {
        h1 { "Dead letters" }
        (flash(notice))
        @if !has_items {
            p.muted { "This host has no durable queue, and so no dead letters." }
        } @else {
            form.search method="get" action=(caller.link("/dead")) {
                input type="text" name="queue" value=(filter[0].1) placeholder="queue" aria-label="queue";
                input type="text" name="handler" value=(filter[1].1) placeholder="handler" aria-label="handler";
                button type="submit" { "Filter" }
            }
            @if items.is_empty() {
                p.muted { "No dead letters match." }
            } @else {
                div.actions {
                    span { "Everything that matches (" (items.len()) @if items.len() >= query.limit { "+" } "): " }
                    (action(caller, "/dead/retry", "Retry all", "primary", &filter))
                    (action(caller, "/dead/discard", "Discard all", "danger", &filter))
                }
                table {
                    thead { tr { th.num { "Item" } th { "Queue" } th { "Handler" } th.num { "Attempts" } th { "Died" } th { "Error" } th { "" } } }
                    tbody {
                        @for item in items {
                            tr {
                                td.num { a href=(caller.link(&format!("/items/{}", item.id))) { (item.id) } }
                                td { (item.queue) }
                                td { (item.handler) }
                                td.num { (item.attempt) " / " (item.max_attempts) }
                                td { (maybe_at(item.finished)) }
                                td.error { (item.error.as_deref().unwrap_or("")) }
                                td.row-actions {
                                    (action(caller, "/dead/retry", "Retry", "", &[("id", item.id.to_string())]))
                                    (action(caller, "/dead/discard", "Discard", "danger", &[("id", item.id.to_string())]))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(shared, caller, "/dead", "Dead letters", content)
}

pub(crate) fn item(shared: &Shared, caller: &Caller, item: &ItemView) -> Response {
    let content = html! {
        h1 { "Item " (item.id) " " span class={"badge " (if item.state == "dead" { "bad" } else { "info" })} { (item.state) } }
        @if item.state == "dead" {
            div.actions {
                (action(caller, "/dead/retry", "Retry", "primary", &[("id", item.id.to_string())]))
                (action(caller, "/dead/discard", "Discard", "danger", &[("id", item.id.to_string())]))
            }
        }
        dl.facts {
            dt { "Queue" } dd { (item.queue) }
            dt { "Handler" } dd { (item.handler) }
            dt { "Attempts" } dd { (item.attempt) " of " (item.max_attempts) }
            dt { "Priority" } dd { (item.priority) }
            dt { "Key" } dd { (item.key.as_deref().unwrap_or("—")) }
            dt { "Enqueued" } dd { (at(item.enqueued)) }
            dt { "Due" } dd { (at(item.run_at)) }
            dt { "Finished" } dd { (maybe_at(item.finished)) }
            dt { "Error" } dd.error { (item.error.as_deref().unwrap_or("—")) }
        }
        h2 { "Payload" }
        pre.payload { (pretty_json(&item.payload)) }
        h2 { "Failed attempts" }
        pre.payload { (pretty_json(&item.attempts)) }
    };
    layout(
        shared,
        caller,
        "/dead",
        &format!("Item {}", item.id),
        content,
    )
}

/// The payload indented, when it is JSON (it always is, from a durable
/// queue); as it is otherwise.
fn pretty_json(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| payload.to_owned())
}

fn instances_table(instances: &[InstanceView]) -> Markup {
    html! {
        table {
            thead { tr { th { "Instance" } th { "Host" } th.num { "Pid" } th { "Joined" } th { "Heartbeat" } th { "State" } } }
            tbody {
                @for instance in instances {
                    tr {
                        td { code { (instance.id) } @if instance.this { " " span.badge.info { "this one" } } }
                        td { (instance.host_name) }
                        td.num { (instance.pid) }
                        td { (at(instance.started)) }
                        td { (maybe_at(instance.heartbeat)) }
                        td {
                            @if let Some(stopped) = instance.stopped { span.badge.muted { "stopped" } " " (at(stopped)) }
                            @else { span.badge.ok { "running" } }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn instances(shared: &Shared, caller: &Caller, instances: &[InstanceView]) -> Response {
    let content = html! {
        h1 { "Instances" }
        @if instances.is_empty() { p.muted { "This host runs on its own, not in a cluster." } }
        @else { (instances_table(instances)) }
    };
    layout(shared, caller, "/instances", "Instances", content)
}

fn audit_table(actions: &[AuditEntry]) -> Markup {
    html! {
        @if actions.is_empty() { p.muted { "No actions taken through the dashboard yet." } }
        @else {
            table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "On" } th { "Result" } } }
                tbody {
                    @for entry in actions {
                        tr {
                            td { (at(entry.at)) }
                            td { (entry.who) }
                            td { (entry.action) }
                            td { (entry.target) }
                            td { (entry.result) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn audit(shared: &Shared, caller: &Caller, actions: &[AuditEntry]) -> Response {
    let content = html! { h1 { "Audit" } (audit_table(actions)) };
    layout(shared, caller, "/audit", "Audit", content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_indented_and_strings_kept_whole() {
        assert_eq!(
            pretty_json(r#"{"a":[1,2]}"#),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
        assert_eq!(pretty_json("not json"), "not json");
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(took(Duration::from_micros(980)), "980 µs");
        assert_eq!(took(Duration::from_micros(12_300)), "12.3 ms");
        assert_eq!(took(Duration::from_millis(4_200)), "4.2 s");
        assert_eq!(took(Duration::from_secs(185)), "3 min 5 s");
    }

    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(path_segment("app::jobs::prune"), "app::jobs::prune");
    }
}
