//! The model: what a job, a run and its context are, and what a running
//! host shares.
//!
//! These files refer to one another, and that loop is inherent: a run's
//! [`RunContext`](context::RunContext) holds the host's shared state
//! (`shared`), which holds the jobs (`job`), whose handlers (`registry`)
//! take the context through the extractors (`extract`, `scope`), and a
//! job's schedule (`schedule`) and a service's registration (`service`)
//! are read where jobs are registered. Nothing here runs anything: the
//! `run` layer above does.

pub(crate) mod context;
pub(crate) mod extract;
pub(crate) mod job;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod registry;
pub(crate) mod schedule;
pub(crate) mod scope;
pub(crate) mod service;
pub(crate) mod shared;
