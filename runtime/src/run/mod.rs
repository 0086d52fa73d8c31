//! Running: the scheduler that owns every deadline (`scheduler.rs`), how a
//! due or claimed tick becomes a run (`tick.rs`), one run whatever started
//! it (`execute.rs`), a background service's life (`supervise.rs`), and
//! the host's side of the seams (`host_side.rs`). Each file imports only
//! those named before it.

pub(crate) mod execute;
pub(crate) mod host_side;
pub(crate) mod scheduler;
pub(crate) mod supervise;
pub(crate) mod tick;
