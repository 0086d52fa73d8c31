//! The foundation: what needs nothing else of the crate. Each file imports
//! only those named before it.

pub(crate) mod clock;
pub(crate) mod kind;
pub(crate) mod outcome;
pub(crate) mod queue;
pub(crate) mod report;
pub(crate) mod timer;
