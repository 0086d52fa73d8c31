//! Building a host: the builder (`builder.rs`), `build()` and its checks
//! (`build.rs`), the problems it reports (`problem.rs`), and configuration
//! by name (`config.rs`).

mod build;
mod builder;
pub(crate) mod config;
mod problem;

pub use self::builder::{
    HostBuilder, DEFAULT_RUN_HISTORY, DEFAULT_RUN_HISTORY_BUDGET, DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use self::problem::{BuildError, Problem};
