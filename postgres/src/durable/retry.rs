//! How an attempt ends: from the handler's outcome, the item's attempts
//! and a cancel request, whether it succeeded, is retried after a backoff,
//! is dead-lettered, cancelled, or handed back.

use std::time::Duration;

use hosted::work::HandlerOptions;
use hosted::Outcome;

use crate::state::ItemState;

/// How an item's attempt ends in the store.
pub(super) enum Decision {
    /// Moved to `finished` in this state, with this error.
    Finish(ItemState, Option<String>),
    /// Back to wait, after this delay, with this error.
    Retry(String, Duration),
    /// Handed back without counting the attempt (stopped by the host).
    Release,
}

/// A pseudo-random number in `[0, 1)` for an item's backoff: different per
/// item and per claim, so that items that failed together spread out.
pub(super) fn random_unit(id: i64, fence: i64) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(id);
    hasher.write_i64(fence);
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

/// How an attempt that ended with `outcome` ends in the store. `attempts`
/// is this attempt's number and the most the item may have; `unreadable`,
/// why its payload could not be read, if so (it is dead at once); `unit`,
/// a number in [0, 1) that spreads the retry's delay.
pub(super) fn decide(
    outcome: &Outcome,
    (attempt, max_attempts): (u32, u32),
    cancel_asked: bool,
    unreadable: Option<String>,
    options: &HandlerOptions,
    unit: f64,
) -> Decision {
    match outcome {
        Outcome::Succeeded => Decision::Finish(ItemState::Succeeded, None),
        Outcome::Cancelled if cancel_asked => Decision::Finish(ItemState::Cancelled, None),
        Outcome::Cancelled => Decision::Release,
        Outcome::Failed(error) | Outcome::Panicked(error) => {
            let error = match outcome {
                Outcome::Panicked(_) => format!("panicked: {error}"),
                _ => error.clone(),
            };
            match unreadable {
                Some(unreadable) => Decision::Finish(ItemState::Dead, Some(unreadable)),
                None if cancel_asked => Decision::Finish(ItemState::Cancelled, Some(error)),
                None if attempt >= max_attempts => Decision::Finish(ItemState::Dead, Some(error)),
                None => Decision::Retry(error, options.retry_delay(attempt + 1, unit)),
            }
        }
        Outcome::Aborted | Outcome::NotRun => Decision::Release,
    }
}
