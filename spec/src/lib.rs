//! The schedule grammar of [`hosted`](https://docs.rs/hosted): durations,
//! backoff ranges, cron lines and time zones.
//!
//! One implementation serves both sides of the compile/run line: the macros
//! check attribute literals with it at compile time, and the runtime checks
//! jobs built by hand and schedules loaded from configuration with it, so a
//! value means the same thing, and fails with the same message, wherever it
//! is written. Use it through `hosted`; this crate has no API of its own to
//! keep stable.

mod cron;
mod duration;
mod error;
mod zone;

pub use crate::cron::{parse_cron, CronLine};
pub use crate::duration::{parse_backoff, parse_millis};
pub use crate::error::{Grammar, ParseError};
pub use crate::zone::{parse_zone, Zone};
