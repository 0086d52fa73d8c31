//! The [`Source`] of a host on its own: [`HostHandle`] and the handle a
//! [`WebServer`](hosted::web::WebServer) serves with each request, read into
//! the dashboard's views.

use crate::source::{
    Action, BoxFuture, JobDetail, JobPage, JobQuery, JobView, NextFire, QueueView, RunView,
    ServiceView, Source, SourceError, Summary,
};
use hosted::{HostHandle, JobKind, JobStatus, Outcome};

pub(crate) fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Every => "every",
        JobKind::Cron => "cron",
        JobKind::Service => "service",
        JobKind::Queued => "queued",
    }
}

pub(crate) fn outcome_name(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Succeeded => ("succeeded", None),
        Outcome::Failed(error) => ("failed", Some(error.clone())),
        Outcome::Panicked(message) => ("panicked", Some(message.clone())),
        Outcome::Aborted => ("aborted", None),
        Outcome::Cancelled => ("cancelled", None),
        Outcome::NotRun => ("not run", None),
    }
}

pub(crate) fn run_view(run: &hosted::FinishedRun) -> RunView {
    let (outcome, error) = outcome_name(&run.outcome);
    RunView {
        number: Some(run.number),
        scheduled: Some(run.scheduled),
        started: run.started,
        took: Some(run.took),
        outcome: outcome.to_owned(),
        error,
        instance: None,
    }
}

pub(crate) fn job_view(host: &HostHandle, job: JobStatus) -> JobView {
    JobView {
        next: next_fires(host, &job.name),
        kind: kind_name(job.kind),
        last_run: job.last_run.as_ref().map(run_view),
        name: job.name,
        schedule: job.schedule,
        description: job.description,
        time_zone: job.time_zone,
        next_run: job.next_run,
        enabled: job.enabled,
        paused: job.paused,
        runs: job.runs,
        succeeded: job.succeeded,
        failed: job.failed,
        skipped: job.skipped,
        running: job.running,
        defined_at: job.defined_at,
    }
}

pub(crate) fn service_view(job: JobStatus, stopping: bool) -> ServiceView {
    let last_error = job
        .last_run
        .as_ref()
        .and_then(|run| outcome_name(&run.outcome).1);
    let failed_last = job
        .last_run
        .as_ref()
        .is_some_and(|run| run.outcome.is_failure());
    let state = if job.running > 0 {
        "running"
    } else if stopping || job.last_run.is_none() {
        "stopped"
    } else if failed_last {
        // A service that failed and is not running either waits for its
        // restart or has stopped the host.
        "restarting"
    } else {
        "stopped"
    };
    ServiceView {
        restarts: job.runs.saturating_sub(1),
        kind: "background",
        name: job.name,
        state,
        last_error,
        defined_at: job.defined_at,
    }
}

pub(crate) fn next_fires(host: &HostHandle, name: &str) -> Vec<NextFire> {
    host.next_runs(name, 5)
        .unwrap_or_default()
        .into_iter()
        .map(|run| NextFire {
            local: run.local,
            offset_changes: run.offset_changes,
        })
        .collect()
}

pub(crate) fn local_queues(host: &HostHandle) -> Vec<QueueView> {
    host.queues()
        .into_iter()
        .map(|q| QueueView {
            name: q.name,
            durable: false,
            depth: q.depth as u64,
            in_flight: q.in_flight,
            lag: Some(q.lag),
            completed: Some(q.completed),
            failed: Some(q.failed),
            refused: Some(q.refused + q.not_run),
            ..QueueView::default()
        })
        .collect()
}

pub(crate) fn local_services(host: &HostHandle) -> Vec<ServiceView> {
    let stopping = host.is_stopping();
    let lifecycle = host.lifecycle_services().into_iter().map(|s| ServiceView {
        name: s.name,
        kind: "lifecycle",
        state: s.state,
        restarts: 0,
        last_error: s.error,
        defined_at: s.defined_at,
    });
    lifecycle
        .chain(
            host.services()
                .into_iter()
                .map(|job| service_view(job, stopping)),
        )
        .collect()
}

pub(crate) fn local_failures(host: &HostHandle, limit: usize) -> Vec<(String, RunView)> {
    host.recent_failures(limit)
        .into_iter()
        .map(|(name, run)| (name, run_view(&run)))
        .collect()
}

pub(crate) fn local_summary(host: &HostHandle) -> Summary {
    let s = host.summary();
    Summary {
        scheduled: s.scheduled,
        services: s.services,
        running: s.running,
        paused: s.paused,
        failing: s.failing,
    }
}

pub(crate) fn local_jobs(host: &HostHandle, query: &JobQuery) -> JobPage {
    let page = host.jobs_page(&query.search, query.offset, query.limit);
    JobPage {
        total: page.total,
        jobs: page
            .jobs
            .into_iter()
            .map(|job| job_view(host, job))
            .collect(),
    }
}

pub(crate) fn local_job(host: &HostHandle, name: &str, runs: usize) -> Option<JobDetail> {
    let job = host.job(name)?;
    let mut history = if runs == 0 {
        Vec::new()
    } else {
        host.runs(name).unwrap_or_default()
    };
    history.truncate(runs);
    Some(JobDetail {
        job: job_view(host, job),
        runs: history.iter().map(run_view).collect(),
    })
}

pub(crate) fn local_act(host: &HostHandle, action: &Action) -> Result<String, SourceError> {
    match action {
        Action::Trigger(job) => {
            let run = host.trigger(job)?;
            Ok(format!("started run {run} of {job}"))
        }
        Action::Pause(job) => host
            .pause(job)
            .map(|()| format!("paused {job}"))
            .map_err(Into::into),
        Action::Resume(job) => host
            .resume(job)
            .map(|()| format!("resumed {job}"))
            .map_err(Into::into),
        Action::Retry(_) | Action::Discard(_) => Err(SourceError::refused(
            "this host has no durable queue: there are no dead letters to act on",
        )),
    }
}

impl Source for HostHandle {
    fn summary(&self) -> BoxFuture<'_, Result<Summary, SourceError>> {
        Box::pin(async move { Ok(local_summary(self)) })
    }

    fn jobs<'a>(&'a self, query: &'a JobQuery) -> BoxFuture<'a, Result<JobPage, SourceError>> {
        Box::pin(async move { Ok(local_jobs(self, query)) })
    }

    fn job<'a>(
        &'a self,
        name: &'a str,
        runs: usize,
    ) -> BoxFuture<'a, Result<Option<JobDetail>, SourceError>> {
        Box::pin(async move { Ok(local_job(self, name, runs)) })
    }

    fn failures(&self, limit: usize) -> BoxFuture<'_, Result<Vec<(String, RunView)>, SourceError>> {
        Box::pin(async move { Ok(local_failures(self, limit)) })
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<ServiceView>, SourceError>> {
        Box::pin(async move { Ok(local_services(self)) })
    }

    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueView>, SourceError>> {
        Box::pin(async move { Ok(local_queues(self)) })
    }

    fn act<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move { local_act(self, action) })
    }
}

/// The host that serves the dashboard, found on the first request (a
/// [`WebServer`](hosted::web::WebServer) hands every request the host's
/// handle): the source of [`Dashboard::new`](crate::Dashboard::new),
/// which is built before the host it shows.
#[derive(Default)]
pub(crate) struct ServingHost {
    host: std::sync::OnceLock<HostHandle>,
}

impl ServingHost {
    fn host(&self) -> Result<&HostHandle, SourceError> {
        self.host.get().ok_or_else(|| {
            SourceError::failed(
                "the dashboard is not served by a host: add the router to a hosted::web::WebServer service of the host, or give the dashboard the host's handle (Dashboard::with_source(host.handle()))",
            )
        })
    }
}

impl Source for ServingHost {
    fn attach(&self, host: &HostHandle) {
        let _ = self.host.set(host.clone());
    }

    fn summary(&self) -> BoxFuture<'_, Result<Summary, SourceError>> {
        Box::pin(async move { Ok(local_summary(self.host()?)) })
    }

    fn jobs<'a>(&'a self, query: &'a JobQuery) -> BoxFuture<'a, Result<JobPage, SourceError>> {
        Box::pin(async move { Ok(local_jobs(self.host()?, query)) })
    }

    fn job<'a>(
        &'a self,
        name: &'a str,
        runs: usize,
    ) -> BoxFuture<'a, Result<Option<JobDetail>, SourceError>> {
        Box::pin(async move { Ok(local_job(self.host()?, name, runs)) })
    }

    fn failures(&self, limit: usize) -> BoxFuture<'_, Result<Vec<(String, RunView)>, SourceError>> {
        Box::pin(async move { Ok(local_failures(self.host()?, limit)) })
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<ServiceView>, SourceError>> {
        Box::pin(async move { Ok(local_services(self.host()?)) })
    }

    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueView>, SourceError>> {
        Box::pin(async move { Ok(local_queues(self.host()?)) })
    }

    fn act<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move { local_act(self.host()?, action) })
    }
}
