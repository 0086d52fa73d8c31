//! The metric handles a host resolves once at start (feature `metrics`);
//! `observe::telemetry` fills and publishes them.

use metrics::{Counter, Gauge, Histogram};

pub(crate) struct HostMetrics {
    /// By job index; or one for every job, with no `job` label
    /// (`HostBuilder::metrics_per_job(false)`).
    pub(crate) jobs: Box<[JobMetrics]>,
    pub(crate) per_job: bool,
    /// Without per-job metrics: the services' restarts, summed.
    pub(crate) restarts: Option<Counter>,
    pub(crate) queues: Box<[QueueMetrics]>,
}

pub(crate) struct JobMetrics {
    pub(crate) duration: Histogram,
    pub(crate) lateness: Histogram,
    pub(crate) succeeded: Counter,
    pub(crate) failed: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) skipped: Counter,
    pub(crate) running: Gauge,
    /// With a cluster, or for a service, its extra counters.
    pub(crate) extra: Option<Box<Extra>>,
}

pub(crate) enum Extra {
    Cluster {
        elsewhere: Counter,
        unclaimed: Counter,
        stale: Counter,
    },
    Service {
        restarts: Counter,
    },
}

pub(crate) struct QueueMetrics {
    pub(crate) depth: Gauge,
    pub(crate) lag: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) refused: Counter,
    pub(crate) not_run: Counter,
}
