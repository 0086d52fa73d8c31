//! The typed model of one annotated fn. It cannot hold an invalid state: a
//! schedule is one enum, durations are already parsed and the cron line and
//! time zone already checked, so expansion cannot fail.

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Every,
    Cron,
    /// `#[hosted_service]` on an `async fn`.
    Service,
    /// `#[hosted_service]` on a type that implements `HostedService`.
    ServiceType,
    /// `#[queued]` (re-exported by `hosted-postgres`): a handler of durable
    /// work items.
    Queued,
}

impl Kind {
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Kind::Every => "every",
            Kind::Cron => "cron",
            Kind::Service | Kind::ServiceType => "hosted_service",
            Kind::Queued => "queued",
        }
    }

    /// The attribute, as errors name it.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Kind::Every => "`#[every]`",
            Kind::Cron => "`#[cron]`",
            Kind::Service => "`#[hosted_service]` on an `async fn`",
            Kind::ServiceType => "`#[hosted_service]` on a type",
            Kind::Queued => "`#[queued]`",
        }
    }

    pub(crate) fn example(self) -> &'static str {
        match self {
            Kind::Every => "`#[every(\"5s\")]`",
            Kind::Cron => "`#[cron(\"*/5 * * * *\")]`",
            Kind::Service | Kind::ServiceType => "`#[hosted_service]`",
            Kind::Queued => "`#[queued(queue = \"mail\")]`",
        }
    }
}

/// A validated job: what `expand.rs` turns into a registration.
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) trigger: Trigger,
    pub(crate) overlap: Overlap,
    pub(crate) cluster: Cluster,
    /// The path of the runtime crate, `::hosted` unless `crate = "..."`;
    /// for `#[queued]`, of `hosted-postgres`.
    pub(crate) krate: syn::Path,
    pub(crate) func: syn::ItemFn,
    /// `true`: no `name = "..."` was given. A queued handler's name is then
    /// the fn's path (`module_path!()` and the fn's name).
    pub(crate) default_name: bool,
}

pub(crate) enum Trigger {
    Every {
        /// The literal as written, shown in listings and logs.
        source: String,
        period_ms: u64,
        initial_delay_ms: u64,
        jitter_ms: u64,
    },
    Cron {
        line: String,
        zone: Zone,
    },
    Service(OnFailure),
    Queued(Box<Queued>),
}

/// A queued handler's options, and its payload's type.
pub(crate) struct Queued {
    pub(crate) queue: String,
    pub(crate) max_attempts: u32,
    /// Zero: no limit.
    pub(crate) timeout_ms: u64,
    pub(crate) backoff_min_ms: u64,
    pub(crate) backoff_max_ms: u64,
    pub(crate) priority: i16,
    /// The `T` of its `Payload<T>` argument; `()` without one.
    pub(crate) payload: syn::Type,
}

/// What a failing background service does.
pub(crate) enum OnFailure {
    Stop,
    Ignore,
    Restart {
        min_ms: u64,
        max_ms: u64,
        max_restarts: u32,
    },
}

/// `#[hosted_service]` on a type: a registration of a lifecycle service.
pub(crate) struct ServiceType {
    pub(crate) name: String,
    pub(crate) order: i32,
    /// `None`: built with `Default`.
    pub(crate) constructor: Option<(syn::Path, proc_macro2::Span)>,
    pub(crate) krate: syn::Path,
    pub(crate) ident: syn::Ident,
    pub(crate) item: syn::Item,
}

pub(crate) enum Zone {
    Utc,
    Local,
    /// An IANA name that `chrono-tz` knows, checked at compile time.
    Named(String),
}

/// Where a job runs once the host has a cluster, and what a crash or an
/// outage of the whole cluster does to its ticks.
pub(crate) struct Cluster {
    pub(crate) scope: Scope,
    /// `true`: `on_crash = "rerun"`.
    pub(crate) rerun: bool,
    /// `true`: `missed = "once"`.
    pub(crate) catch_up: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Cluster,
    Instance,
    Singleton,
}

#[derive(Clone, Copy)]
pub(crate) enum Overlap {
    Skip,
    Allow,
}
