//! Building a host: the builder, the selection of registered jobs, and the
//! checks `build()` makes before anything runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::extract::StateMap;
use crate::lifecycle::{HostShared, RunningHost};
use crate::registry::{registered, Candidate, Job, JobKind, Origin};
use crate::runner::{JobDef, JobStats};
use crate::schedule::Schedule;

/// The default of [`HostBuilder::shutdown_timeout`]: 30 seconds, as in
/// Microsoft.Extensions.Hosting.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A configured host, ready to [`run`](Host::run).
///
/// Built by [`Host::builder`]; every job's schedule and arguments have been
/// checked.
pub struct Host {
    pub(crate) shared: Arc<HostShared>,
    pub(crate) shutdown_timeout: Duration,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("jobs", &self.job_names().collect::<Vec<_>>())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A builder that takes every job registered with `#[every]`, `#[cron]`
    /// and `#[hosted_service]` in this binary, unless told otherwise.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The names of the host's jobs, in start order.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.shared.jobs.iter().map(|job| &*job.name)
    }

    /// Starts every job and returns at once with a handle on the running
    /// host. Installs no signal handler: stop it with
    /// [`RunningHost::stop`] or a [`HostHandle`](crate::HostHandle). For a
    /// process's main, [`run`](Host::run) does all of it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn start(self) -> RunningHost {
        RunningHost::start(self)
    }
}

/// Configures a [`Host`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hosted::Host;
///
/// let host = Host::builder()
///     .state(String::from("shared"))
///     .shutdown_timeout(Duration::from_secs(10))
///     .build()
///     .expect("host configuration");
/// # drop(host);
/// ```
#[must_use]
pub struct HostBuilder {
    state: StateMap,
    duplicate_state: Vec<&'static str>,
    jobs: Vec<Job>,
    selection: Option<Chosen>,
    shutdown_timeout: Duration,
    pub(crate) clock: Clock,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            state: StateMap::default(),
            duplicate_state: Vec::new(),
            jobs: Vec::new(),
            selection: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            clock: Clock::System,
        }
    }
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("jobs", &self.jobs)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

/// The registered jobs a host takes when `only_jobs`, `only_module` or
/// `without_registered` was called; without them it takes all.
#[derive(Default)]
struct Chosen {
    names: Vec<String>,
    modules: Vec<String>,
}

impl HostBuilder {
    /// Registers a shared value, handed to jobs that take `State<T>`. One
    /// value per type; registering a type twice is a `build()` error.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        if !self.state.insert(value) {
            self.duplicate_state.push(std::any::type_name::<T>());
        }
        self
    }

    /// Adds a job built by hand, beside the registered ones.
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Takes only the registered jobs with these names (and those chosen by
    /// [`only_module`](Self::only_module)). A name that matches no
    /// registered job is a `build()` error.
    pub fn only_jobs<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.selection_mut()
            .names
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Takes only the registered jobs defined in module `path` or below it,
    /// e.g. `"my_app::billing"` (and those chosen by
    /// [`only_jobs`](Self::only_jobs)).
    pub fn only_module(mut self, path: impl Into<String>) -> Self {
        self.selection_mut().modules.push(path.into());
        self
    }

    /// Takes none of the registered jobs: only those added with
    /// [`job`](Self::job).
    pub fn without_registered(mut self) -> Self {
        self.selection_mut();
        self
    }

    fn selection_mut(&mut self) -> &mut Chosen {
        self.selection.get_or_insert_with(Chosen::default)
    }

    /// How long a stop may take in total before what is still running is
    /// aborted (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Checks the configuration and builds the host.
    ///
    /// # Errors
    ///
    /// Every problem found, at once: two jobs with one name, a job argument
    /// that needs state nobody registered, an invalid schedule or time zone
    /// of a job added by hand, a name given to `only_jobs` that no job has, a
    /// state type registered twice.
    pub fn build(mut self) -> Result<Host, BuildError> {
        let mut problems = Vec::new();
        let candidates = self.select(&mut problems);

        let mut seen: HashMap<Arc<str>, Origin> = HashMap::new();
        let mut jobs = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            if let Some(first) = seen.get(&candidate.name) {
                problems.push(Problem::DuplicateName {
                    name: candidate.name.to_string(),
                    first: first.to_string(),
                    second: candidate.origin.to_string(),
                });
                continue;
            }
            seen.insert(candidate.name.clone(), candidate.origin.clone());
            for (type_id, type_name) in &candidate.dependencies.states {
                if !self.state.contains(*type_id) {
                    problems.push(Problem::MissingState {
                        job: candidate.name.to_string(),
                        type_name,
                    });
                }
            }
            let kind = match candidate.schedule {
                crate::registry::ScheduleSpec::Every { .. } => JobKind::Every,
                crate::registry::ScheduleSpec::Cron { .. } => JobKind::Cron,
                crate::registry::ScheduleSpec::Service => JobKind::Service,
            };
            match Schedule::from_spec(candidate.schedule, &candidate.name) {
                Ok(schedule) => jobs.push(Arc::new(JobDef {
                    name: candidate.name,
                    kind,
                    origin: candidate.origin,
                    schedule,
                    overlap: candidate.overlap,
                    invoke: candidate.invoke,
                    stats: JobStats::default(),
                })),
                Err(message) => problems.push(Problem::InvalidSchedule {
                    job: candidate.name.to_string(),
                    message,
                }),
            }
        }
        for type_name in self.duplicate_state {
            problems.push(Problem::DuplicateState { type_name });
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        Ok(Host {
            shared: Arc::new(HostShared::new(self.state, self.clock, jobs)),
            shutdown_timeout: self.shutdown_timeout,
        })
    }

    /// The registered jobs the selection takes, then the explicit ones.
    fn select(&mut self, problems: &mut Vec<Problem>) -> Vec<Candidate> {
        let all = registered();
        let chosen: Vec<_> = match &self.selection {
            None => all,
            Some(Chosen { names, modules }) => {
                for name in names {
                    if !all.iter().any(|r| r.name == name) {
                        problems.push(Problem::UnknownJob {
                            name: name.clone(),
                            known: all.iter().map(|r| r.name).collect(),
                        });
                    }
                }
                all.into_iter()
                    .filter(|r| {
                        names.iter().any(|n| n == r.name)
                            || modules.iter().any(|m| in_module(r.module, m))
                    })
                    .collect()
            }
        };
        chosen
            .into_iter()
            .map(Candidate::from_registration)
            .chain(self.jobs.drain(..).map(Candidate::from_job))
            .collect()
    }
}

fn in_module(module: &str, prefix: &str) -> bool {
    module == prefix
        || module
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The configuration could not become a host; lists every problem found.
#[derive(Debug)]
pub struct BuildError {
    problems: Vec<Problem>,
}

impl BuildError {
    /// Each problem, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems in the host configuration:", all.len())?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// One problem `build()` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Two jobs have one name.
    DuplicateName {
        /// The name.
        name: String,
        /// Where the first was defined.
        first: String,
        /// Where the second was defined.
        second: String,
    },
    /// A job takes `State<T>` but no `T` was registered.
    MissingState {
        /// The job.
        job: String,
        /// The state's type.
        type_name: &'static str,
    },
    /// A job's schedule or time zone is invalid.
    InvalidSchedule {
        /// The job.
        job: String,
        /// What is wrong, and the fix.
        message: String,
    },
    /// `only_jobs` named a job that is not registered.
    UnknownJob {
        /// The name given.
        name: String,
        /// The names that are registered.
        known: Vec<&'static str>,
    },
    /// `state` was called twice with one type.
    DuplicateState {
        /// The type.
        type_name: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DuplicateName { name, first, second } => write!(
                f,
                "two jobs are named `{name}` ({first} and {second}); job names must be unique per host: rename one with `name = \"...\"`"
            ),
            Problem::MissingState { job, type_name } => write!(
                f,
                "job `{job}` takes `State<{type_name}>`, but the host has no `{type_name}`; register one with `Host::builder().state(value)`"
            ),
            Problem::InvalidSchedule { job, message } => write!(f, "job `{job}`: {message}"),
            Problem::UnknownJob { name, known } => {
                write!(f, "`only_jobs` names `{name}`, but no registered job has that name")?;
                if known.is_empty() {
                    write!(f, "; no jobs are registered in this binary")
                } else if known.len() <= 12 {
                    write!(f, "; registered jobs: {}", known.join(", "))
                } else {
                    write!(f, "; {} jobs are registered, e.g. {}", known.len(), known[..12].join(", "))
                }
            }
            Problem::DuplicateState { type_name } => write!(
                f,
                "state of type `{type_name}` registered twice; register it once (wrap distinct values in distinct types)"
            ),
        }
    }
}
