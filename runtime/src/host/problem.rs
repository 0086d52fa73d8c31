//! What `build()` reports: every problem found, each naming the job or
//! setting and the fix.

use std::fmt;

/// The configuration could not become a host; lists every problem found.
pub struct BuildError {
    pub(super) problems: Vec<Problem>,
}

impl BuildError {
    /// Each problem, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// The readable message, as `Display` gives it: `build().expect("...")`,
/// as most programs write it, prints this, not the problems' fields. The
/// problems themselves are [`BuildError::problems`].
impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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
    /// A declared service's constructor failed.
    ServiceConstructor {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// A declared service's constructor takes a state nobody registered.
    ServiceMissingState {
        /// The service.
        service: String,
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
    /// A job's cluster options do not fit it, or it needs a cluster the
    /// host lacks.
    InvalidCluster {
        /// The job.
        job: String,
        /// What is wrong, and the fix.
        message: &'static str,
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
    /// A `State<T>` could be derived from more than one registered state.
    AmbiguousState {
        /// The sub-state's type.
        type_name: &'static str,
        /// The states it could come from.
        sources: Vec<&'static str>,
    },
    /// A job's setting from configuration is invalid.
    InvalidConfig {
        /// The job.
        job: String,
        /// The key, e.g. `every`.
        key: &'static str,
        /// What is wrong, and the fix.
        message: String,
    },
    /// A host setting is invalid.
    InvalidHostConfig {
        /// The key, e.g. `shutdown_timeout`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A job takes a queue the host does not have.
    MissingQueue {
        /// The job.
        job: String,
        /// The queue's name.
        queue: &'static str,
    },
    /// A queue's options are invalid.
    InvalidQueue {
        /// The queue's name.
        queue: String,
        /// What is wrong.
        message: &'static str,
    },
    /// A job takes `Scoped<T>` but no factory makes a `T`.
    MissingScoped {
        /// The job.
        job: String,
        /// The scoped value's type.
        type_name: &'static str,
    },
    /// A scope factory takes `State<T>` but no `T` was registered.
    FactoryMissingState {
        /// The type the factory makes.
        type_name: &'static str,
        /// The state's type.
        state: &'static str,
    },
    /// Two factories make one type.
    DuplicateScoped {
        /// The type.
        type_name: &'static str,
    },
    /// A factory takes a scoped value itself.
    ScopedInFactory {
        /// The type the factory makes.
        type_name: &'static str,
        /// The scoped type it takes.
        takes: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DuplicateName { name, first, second } => write!(
                f,
                "two jobs are named `{name}` ({first} and {second}); job names must be unique per host: rename one with `name = \"...\"`"
            ),
            Problem::FactoryMissingState { type_name, state } => write!(
                f,
                "the `Scoped<{type_name}>` factory takes `State<{state}>`, but the host has no `{state}`; register one with `Host::builder().state(value)`"
            ),
            Problem::MissingState { job, type_name } => write!(
                f,
                "job `{job}` takes `State<{type_name}>`, but the host has no `{type_name}`; register one with `Host::builder().state(value)`"
            ),
            Problem::ServiceConstructor { service, message } => {
                write!(f, "service `{service}` could not be constructed: {message}")
            }
            Problem::ServiceMissingState { service, type_name } => write!(
                f,
                "service `{service}`'s constructor takes `State<{type_name}>`, but the host has no `{type_name}`; register one with `Host::builder().state(value)`"
            ),
            Problem::InvalidSchedule { job, message } => write!(f, "job `{job}`: {message}"),
            Problem::InvalidCluster { job, message } => write!(f, "job `{job}`: {message}"),
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
            Problem::MissingScoped { job, type_name } => write!(
                f,
                "job `{job}` takes `Scoped<{type_name}>`, but the host has no factory for `{type_name}`; register one with `Host::builder().scoped(|...| async {{ ... }})`"
            ),
            Problem::AmbiguousState { type_name, sources } => write!(
                f,
                "`State<{type_name}>` could come from {}; register the `{type_name}` itself with `Host::builder().state(value)` to choose",
                sources.join(" or ")
            ),
            Problem::InvalidConfig { job, key, message } => {
                write!(f, "configuration of job `{job}`, key `{key}`: {message}")
            }
            Problem::InvalidHostConfig { key, message } => {
                write!(f, "host configuration, key `{key}`: {message}")
            }
            Problem::MissingQueue { job, queue } => write!(
                f,
                "job `{job}` takes the `{queue}` queue, but the host has none; add it with `Host::builder().queue(QueueOptions::default())`"
            ),
            Problem::InvalidQueue { queue, message } => write!(f, "queue `{queue}`: {message}"),
            Problem::DuplicateScoped { type_name } => write!(
                f,
                "two factories make `Scoped<{type_name}>`; register one per type"
            ),
            Problem::ScopedInFactory { type_name, takes } => write!(
                f,
                "the `Scoped<{type_name}>` factory takes `Scoped<{takes}>`; factories take `State`, `Run` and other arguments, not scoped values"
            ),
            Problem::DuplicateState { type_name } => write!(
                f,
                "state of type `{type_name}` registered twice; register it once (wrap distinct values in distinct types)"
            ),
        }
    }
}
