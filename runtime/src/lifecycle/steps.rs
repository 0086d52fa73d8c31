//! One phase of the services' steps, in order or at once, with a record of
//! which steps are running, done, or finished past the deadline.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::ServiceSlot;
use crate::base::outcome::{panic_message, Outcome};
use crate::base::report::HostError;
use crate::base::report::Phase;

/// The steps in progress, for naming them when they are abandoned; the
/// steps finished, so that the ones never begun can be told apart; and the
/// steps that finished after the stop's deadline (a step that blocked its
/// thread cannot be abandoned, only named). Keyed by the service's place in
/// the host's list, so each step costs the same however many services the
/// host has.
#[derive(Default)]
pub(super) struct InFlight(Mutex<Steps>);

/// One service's step, by name.
type Step = (Arc<str>, Phase);

/// One service's step, by the service's index.
pub(super) type Key = (usize, Phase);

#[derive(Default)]
struct Steps {
    /// Steps begun so far: orders the running ones.
    begun: u64,
    /// Each step's place in the order begun, name, and start.
    running: HashMap<Key, (u64, Arc<str>, Instant)>,
    done: HashSet<Key>,
    deadline: Option<Instant>,
    late: Vec<Step>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Steps> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Steps that finish after `deadline` are late.
    pub(super) fn set_deadline(&self, deadline: Instant) {
        self.lock().deadline = Some(deadline);
    }

    pub(super) fn enter(&self, slot: &ServiceSlot, phase: Phase) {
        let mut steps = self.lock();
        steps.begun += 1;
        let order = steps.begun;
        steps.running.insert(
            (slot.index, phase),
            (order, slot.name.clone(), Instant::now()),
        );
    }

    pub(super) fn leave(&self, slot: &ServiceSlot, phase: Phase) {
        let mut steps = self.lock();
        if let Some((_, name, began)) = steps.running.remove(&(slot.index, phase)) {
            steps.done.insert((slot.index, phase));
            // Late: begun before the deadline, finished after it.
            let now = Instant::now();
            if steps
                .deadline
                .is_some_and(|deadline| began <= deadline && now > deadline)
            {
                steps.late.push((name, phase));
            }
        }
    }

    /// The steps still in progress, in the order they began, now
    /// abandoned.
    pub(super) fn take_running(&self) -> Vec<(usize, Step)> {
        let mut running: Vec<(u64, usize, Step)> = self
            .lock()
            .running
            .drain()
            .map(|((index, phase), (order, name, _))| (order, index, (name, phase)))
            .collect();
        running.sort_unstable_by_key(|(order, ..)| *order);
        running
            .into_iter()
            .map(|(_, index, step)| (index, step))
            .collect()
    }

    pub(super) fn is_done(&self, index: usize, phase: Phase) -> bool {
        self.lock().done.contains(&(index, phase))
    }

    /// The steps that finished after the deadline.
    pub(super) fn take_late(&self) -> Vec<Step> {
        std::mem::take(&mut self.lock().late)
    }
}

/// Runs `phase` on the services it applies to: all of them at startup (in
/// order, stopping at the first error unless concurrent), the started ones
/// at stop (in reverse order, every one). Returns the errors in order.
pub(super) async fn run_phase(
    services: &mut [ServiceSlot],
    phase: Phase,
    token: &CancellationToken,
    concurrently: bool,
    in_flight: &InFlight,
) -> Vec<HostError> {
    let startup = phase.is_startup();
    let step = |slot| run_step(slot, phase, token.clone(), in_flight);
    let slots: Vec<&mut ServiceSlot> = if startup {
        services.iter_mut().collect()
    } else {
        services.iter_mut().rev().filter(|s| s.started).collect()
    };
    if concurrently {
        let results = futures_util::future::join_all(slots.into_iter().map(step)).await;
        return results.into_iter().flatten().collect();
    }
    let mut errors = Vec::new();
    for slot in slots {
        if let Some(error) = step(slot).await {
            errors.push(error);
            if startup {
                break;
            }
        }
    }
    errors
}

/// Runs one step of one service, catching a panic.
async fn run_step(
    slot: &mut ServiceSlot,
    phase: Phase,
    token: CancellationToken,
    in_flight: &InFlight,
) -> Option<HostError> {
    in_flight.enter(slot, phase);
    if matches!(phase, Phase::Starting | Phase::Start) {
        slot.status.set("starting", None);
    } else if matches!(phase, Phase::Stopping | Phase::Stop) {
        slot.status.set("stopping", None);
    }
    let span = tracing::info_span!("service", name = %slot.name, %phase);
    let result = AssertUnwindSafe(slot.service.call(phase, token))
        .catch_unwind()
        .instrument(span)
        .await;
    in_flight.leave(slot, phase);
    let outcome = match result {
        Ok(Ok(())) => {
            match phase {
                Phase::Start => {
                    slot.started = true;
                    slot.status.set("running", None);
                }
                Phase::Stop => slot.status.set("stopped", None),
                _ => {}
            }
            return None;
        }
        Ok(Err(error)) => Outcome::Failed(error),
        Err(panic) => Outcome::Panicked(panic_message(&*panic)),
    };
    tracing::error!(service = %slot.name, %phase, error = %outcome, "service {phase} failed");
    slot.status
        .set("failed", Some(format!("{phase}: {outcome}")));
    Some(HostError {
        name: slot.name.to_string(),
        phase,
        outcome,
    })
}
