//! The dashboard's [`Source`] for a `hosted-postgres` cluster and its
//! durable queue, beside the serving host's own services and in-process
//! queues.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hosted::HostHandle;
use hosted_postgres::{
    AuditRecord, Cluster, ClusterJobCounts, ClusterJobStatus, DurableQueue, ItemFilter, ItemRecord,
    QueueCounts, RunRecord,
};

use crate::local::{
    local_act, local_failures, local_job, local_jobs, local_queues, local_services, local_summary,
};
use crate::source::{
    Action, AuditEntry, BoxFuture, InstanceView, ItemQuery, ItemSelector, ItemView, JobDetail,
    JobPage, JobQuery, JobView, QueueView, RunView, ServiceView, Source, SourceError, Summary,
};

/// A cluster and its durable queue, as the dashboard shows them: jobs
/// with their last run wherever it ran and their history from the
/// database, pauses and triggers across the cluster, the instances,
/// durable queues by state with their dead letters, and an audit table.
/// The serving host (found on the request, or given with
/// [`host`](ClusterSource::host)) adds its schedules, services and
/// in-process queues.
///
/// The dashboard's reads are bounded: each waits at most
/// [`timeout`](ClusterSource::timeout) (2 s by default), lists are limited,
/// the jobs page reads only its own page's jobs (by primary key), failures
/// come through an index of failures alone, the durable queue's items by
/// state are counted exactly only while its tables hold fewer than 100,000
/// rows (by the catalog's estimate) and are estimated from a sample of
/// about that many rows beyond, and these counts and the jobs' are read at
/// most once a second however many pages are open. To keep
/// the dashboard off the pool the instance works with, give it handles of
/// its own, on a small pool with a short statement timeout:
///
/// ```no_run
/// use std::time::Duration;
/// use hosted_dashboard::{ClusterSource, Dashboard};
/// use hosted_postgres::{Cluster, ClusterOptions, DurableOptions, DurableQueue};
///
/// # async fn run(url: &str) -> Result<(), hosted_postgres::Error> {
/// let read = |o: ClusterOptions| o.pool_size(2).statement_timeout(Duration::from_secs(2));
/// let cluster = Cluster::connect_with(url, read(ClusterOptions::default())).await?;
/// let queue = DurableQueue::connect_with(
///     url,
///     DurableOptions::default().pool_size(2).statement_timeout(Duration::from_secs(2)),
/// )
/// .await?;
/// let dashboard = Dashboard::with_source(ClusterSource::new().cluster(cluster).durable(queue));
/// # drop(dashboard); Ok(()) }
/// ```
pub struct ClusterSource {
    host: OnceLock<HostHandle>,
    cluster: Option<Cluster>,
    durable: Option<DurableQueue>,
    timeout: Duration,
    counts: Reused<Vec<QueueCounts>>,
    job_counts: Reused<ClusterJobCounts>,
}

/// A value read from the database, reused for [`COUNTS_FOR`].
struct Reused<T>(Mutex<Option<(Instant, T)>>);

impl<T: Clone> Reused<T> {
    fn new() -> Reused<T> {
        Reused(Mutex::new(None))
    }

    /// The value, if it was read less than [`COUNTS_FOR`] ago.
    fn fresh(&self) -> Option<T> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(at, _)| at.elapsed() < COUNTS_FOR)
            .map(|(_, value)| value.clone())
    }

    fn keep(&self, value: &T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), value.clone()));
    }

    /// The next look reads it again.
    fn forget(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Larger tables are sampled, not counted ([`DurableQueue::estimated_counts`]).
const EXACT_BELOW: u64 = 100_000;

/// How long the durable queue's counts, and the cluster's jobs counted by
/// state, are reused: however many pages are open, each is read at most
/// once a second.
const COUNTS_FOR: Duration = Duration::from_secs(1);

impl Default for ClusterSource {
    fn default() -> ClusterSource {
        ClusterSource::new()
    }
}

impl ClusterSource {
    /// A source with neither cluster nor durable queue yet.
    pub fn new() -> ClusterSource {
        ClusterSource {
            host: OnceLock::new(),
            cluster: None,
            durable: None,
            timeout: Duration::from_secs(2),
            counts: Reused::new(),
            job_counts: Reused::new(),
        }
    }

    /// Shows this cluster.
    pub fn cluster(mut self, cluster: Cluster) -> ClusterSource {
        self.cluster = Some(cluster);
        self
    }

    /// Shows this durable queue.
    pub fn durable(mut self, queue: DurableQueue) -> ClusterSource {
        self.durable = Some(queue);
        self
    }

    /// The host beside the cluster, when the dashboard is not served by
    /// it (by default it is found on the request).
    pub fn host(self, host: HostHandle) -> ClusterSource {
        let _ = self.host.set(host);
        self
    }

    /// How long a read waits for the database (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> ClusterSource {
        self.timeout = timeout;
        self
    }

    fn local(&self) -> Option<&HostHandle> {
        self.host.get()
    }

    async fn bounded<T>(
        &self,
        what: &str,
        read: impl std::future::Future<Output = Result<T, hosted_postgres::Error>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(SourceError::failed(format!(
                "could not read {what}: {error}"
            ))),
            Err(_) => Err(SourceError::failed(format!(
                "could not read {what}: the database did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn durable_counts(&self, queue: &DurableQueue) -> Result<Vec<QueueCounts>, SourceError> {
        if let Some(counts) = self.counts.fresh() {
            return Ok(counts);
        }
        let counts = self
            .bounded(
                "the durable queue's counts",
                queue.estimated_counts(EXACT_BELOW),
            )
            .await?;
        self.counts.keep(&counts);
        Ok(counts)
    }

    async fn cluster_job_counts(&self, cluster: &Cluster) -> Result<ClusterJobCounts, SourceError> {
        if let Some(counts) = self.job_counts.fresh() {
            return Ok(counts);
        }
        let counts = self
            .bounded("the jobs' counts", cluster.job_counts())
            .await?;
        self.job_counts.keep(&counts);
        Ok(counts)
    }

    async fn cluster_job(&self, name: &str) -> Result<Option<ClusterJobStatus>, SourceError> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let named = [name.to_owned()];
        let found = self.bounded("the job", cluster.jobs_named(&named)).await?;
        Ok(found.into_iter().next())
    }
}

fn run_of(run: &RunRecord) -> RunView {
    RunView {
        number: None,
        scheduled: Some(run.tick),
        started: run.started,
        took: run.finished.and_then(|f| (f - run.started).to_std().ok()),
        outcome: run.state.as_str().to_owned(),
        error: run.error.clone(),
        instance: Some(run.instance.clone()),
    }
}

/// A job the cluster knows and this host does not define.
fn remote_job(job: &ClusterJobStatus) -> JobView {
    JobView {
        name: job.name.clone(),
        kind: match job.kind.as_str() {
            "every" => "every",
            "cron" => "cron",
            "service" => "service",
            _ => "queued",
        },
        schedule: "defined on other instances".to_owned(),
        description: String::new(),
        time_zone: None,
        next_run: None,
        last_run: job.last_run.as_ref().map(run_of),
        enabled: true,
        paused: job.paused,
        runs: 0,
        succeeded: 0,
        failed: 0,
        skipped: 0,
        running: u32::from(job.last_run.as_ref().is_some_and(|r| r.state == "running")),
        defined_at: "another instance".to_owned(),
        next: Vec::new(),
    }
}

/// This host's view of a job, with what the cluster knows: paused on
/// every instance, and its last run wherever it ran.
fn overlay(job: &mut JobView, cluster: &ClusterJobStatus) {
    job.paused |= cluster.paused;
    if let Some(run) = &cluster.last_run {
        job.last_run = Some(run_of(run));
        if run.state == "running" {
            job.running = job.running.max(1);
        }
    }
}

fn item_of(item: ItemRecord) -> ItemView {
    ItemView {
        id: item.id,
        queue: item.queue,
        handler: item.handler,
        payload: item.payload,
        priority: item.priority,
        state: item.state.as_str().to_owned(),
        attempt: item.attempt,
        max_attempts: item.max_attempts,
        key: item.key,
        enqueued: item.enqueued,
        run_at: item.run_at,
        finished: item.finished,
        error: item.error,
        attempts: item.attempts,
    }
}

fn filter_of(selector: &ItemSelector) -> ItemFilter {
    let mut filter = ItemFilter::all();
    if let Some(id) = selector.id {
        filter = filter.ids([id]);
    }
    if let Some(queue) = &selector.queue {
        filter = filter.queue(queue.clone());
    }
    if let Some(handler) = &selector.handler {
        filter = filter.handler(handler.clone());
    }
    filter
}

impl Source for ClusterSource {
    fn attach(&self, host: &HostHandle) {
        let _ = self.host.set(host.clone());
    }

    fn summary(&self) -> BoxFuture<'_, Result<Summary, SourceError>> {
        Box::pin(async move {
            let mut summary = self.local().map(local_summary).unwrap_or_default();
            if let Some(cluster) = &self.cluster {
                let counts = self.cluster_job_counts(cluster).await?;
                summary.paused = summary.paused.max(counts.paused as usize);
                summary.running = summary.running.max(counts.running as usize);
            }
            Ok(summary)
        })
    }

    fn jobs<'a>(&'a self, query: &'a JobQuery) -> BoxFuture<'a, Result<JobPage, SourceError>> {
        Box::pin(async move {
            let mut page = match self.local() {
                Some(host) => local_jobs(host, query),
                None => JobPage::default(),
            };
            if let Some(cluster) = &self.cluster {
                let names: Vec<String> = page.jobs.iter().map(|j| j.name.clone()).collect();
                let known = self.bounded("the jobs", cluster.jobs_named(&names)).await?;
                for job in &mut page.jobs {
                    if let Some(found) = known.iter().find(|k| k.name == job.name) {
                        overlay(job, found);
                    }
                }
            }
            Ok(page)
        })
    }

    fn job<'a>(
        &'a self,
        name: &'a str,
        runs: usize,
    ) -> BoxFuture<'a, Result<Option<JobDetail>, SourceError>> {
        Box::pin(async move {
            let local = |runs| self.local().and_then(|host| local_job(host, name, runs));
            let Some(cluster) = &self.cluster else {
                return Ok(local(runs));
            };
            let Some(known) = self.cluster_job(name).await? else {
                return Ok(local(runs));
            };
            // The runs come from the cluster's history: this host's own
            // are not read.
            let history = self
                .bounded("the job's runs", cluster.runs(name, runs as i64))
                .await?;
            let mut job = match local(0) {
                Some(detail) => detail.job,
                None => remote_job(&known),
            };
            overlay(&mut job, &known);
            Ok(Some(JobDetail {
                job,
                runs: history.iter().map(run_of).collect(),
            }))
        })
    }

    fn failures(&self, limit: usize) -> BoxFuture<'_, Result<Vec<(String, RunView)>, SourceError>> {
        Box::pin(async move {
            let mut failed = match &self.cluster {
                Some(cluster) => self
                    .bounded("the failed runs", cluster.failures(limit as i64))
                    .await?
                    .into_iter()
                    .map(|(job, run)| (job, run_of(&run)))
                    .collect(),
                None => Vec::new(),
            };
            // Jobs of this instance alone (`scope = "instance"`) fail here
            // without a row in the cluster's history.
            if let Some(host) = self.local() {
                for (job, run) in local_failures(host, limit) {
                    if !failed.iter().any(|(j, _)| *j == job) {
                        failed.push((job, run));
                    }
                }
            }
            failed.sort_by_key(|(_, run)| std::cmp::Reverse(run.started));
            failed.truncate(limit);
            Ok(failed)
        })
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<ServiceView>, SourceError>> {
        Box::pin(async move { Ok(self.local().map(local_services).unwrap_or_default()) })
    }

    fn queues(&self) -> BoxFuture<'_, Result<Vec<QueueView>, SourceError>> {
        Box::pin(async move {
            let mut queues = self.local().map(local_queues).unwrap_or_default();
            if let Some(durable) = &self.durable {
                for counts in self.durable_counts(durable).await? {
                    queues.push(QueueView {
                        name: counts.queue,
                        durable: true,
                        depth: counts.due,
                        in_flight: counts.running,
                        scheduled: counts.scheduled,
                        retrying: counts.retrying,
                        dead: counts.dead,
                        lag: Some(counts.lag),
                        estimated: counts.estimated,
                        ..QueueView::default()
                    });
                }
            }
            Ok(queues)
        })
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<InstanceView>, SourceError>> {
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Ok(Vec::new());
            };
            let pid = std::process::id() as i32;
            Ok(self
                .bounded("the instances", cluster.instances())
                .await?
                .into_iter()
                .map(|i| InstanceView {
                    this: i.id == cluster.instance_id() || (i.pid == pid && i.stopped.is_none()),
                    id: i.id,
                    host_name: i.host_name,
                    pid: i.pid,
                    started: i.started,
                    heartbeat: Some(i.heartbeat),
                    stopped: i.stopped,
                })
                .collect())
        })
    }

    fn has_items(&self) -> bool {
        self.durable.is_some()
    }

    fn dead_letters<'a>(
        &'a self,
        query: &'a ItemQuery,
    ) -> BoxFuture<'a, Result<Vec<ItemView>, SourceError>> {
        Box::pin(async move {
            let Some(durable) = &self.durable else {
                return Ok(Vec::new());
            };
            let items = self
                .bounded(
                    "the dead letters",
                    durable.dead_letters(query.queue.as_deref(), query.limit as i64),
                )
                .await?;
            Ok(items
                .into_iter()
                .filter(|item| query.handler.as_ref().is_none_or(|h| *h == item.handler))
                .map(item_of)
                .collect())
        })
    }

    fn item(&self, id: i64) -> BoxFuture<'_, Result<Option<ItemView>, SourceError>> {
        Box::pin(async move {
            let Some(durable) = &self.durable else {
                return Ok(None);
            };
            Ok(self
                .bounded("the item", durable.item(id))
                .await?
                .map(item_of))
        })
    }

    fn act<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move {
            let refuse = |e: hosted_postgres::Error| SourceError::refused(e.to_string());
            match action {
                Action::Trigger(job) | Action::Pause(job) | Action::Resume(job) => {
                    let cluster = match &self.cluster {
                        Some(cluster) if self.cluster_job(job).await?.is_some() => cluster,
                        _ => {
                            let host = self.local().ok_or_else(|| {
                                SourceError::refused(format!("no host here runs `{job}`"))
                            })?;
                            return local_act(host, action);
                        }
                    };
                    match action {
                        Action::Trigger(_) => cluster.trigger(job).await.map_err(refuse).map(|()| {
                            format!("triggered {job}: one instance runs it within its poll interval")
                        }),
                        Action::Pause(_) => cluster
                            .pause(job)
                            .await
                            .map_err(refuse)
                            .map(|()| format!("paused {job} on every instance")),
                        _ => cluster
                            .resume(job)
                            .await
                            .map_err(refuse)
                            .map(|()| format!("resumed {job} on every instance")),
                    }
                }
                Action::Retry(selector) | Action::Discard(selector) => {
                    let durable = self.durable.as_ref().ok_or_else(|| {
                        SourceError::refused("the dashboard shows no durable queue")
                    })?;
                    let filter = filter_of(selector);
                    let result = if matches!(action, Action::Retry(_)) {
                        durable
                            .retry(&filter)
                            .await
                            .map(|n| format!("{n} item(s) of {selector} will run again"))
                    } else {
                        durable
                            .discard(&filter)
                            .await
                            .map(|n| format!("discarded {n} item(s) of {selector}"))
                    };
                    self.counts.forget();
                    result.map_err(refuse)
                }
            }
        })
    }

    fn record<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Ok(false);
            };
            let record = AuditRecord::new(&entry.who, &entry.action, &entry.target, &entry.result);
            self.bounded("the audit table", cluster.audit(&record))
                .await?;
            Ok(true)
        })
    }

    fn audit_log(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Option<Vec<AuditEntry>>, SourceError>> {
        Box::pin(async move {
            let Some(cluster) = &self.cluster else {
                return Ok(None);
            };
            let log = self
                .bounded("the audit table", cluster.audit_log(limit as i64))
                .await?;
            Ok(Some(
                log.into_iter()
                    .map(|r| AuditEntry {
                        at: r.at,
                        who: r.who,
                        action: r.action,
                        target: format!("{} (from {})", r.target, r.instance),
                        result: r.result,
                    })
                    .collect(),
            ))
        })
    }
}
