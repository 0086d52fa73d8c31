//! The host's lifetime events, to await from anywhere.

use std::fmt;
use std::sync::Arc;

use crate::base::report::StopReason;
use crate::model::context::RunContext;
use crate::model::extract::{ExtractError, FromRun};
use crate::model::shared::HostShared;

/// The host's lifetime events, `IHostApplicationLifetime` in .NET: await
/// them from anywhere, and request a stop. Cloneable; jobs can take it as an
/// argument, and [`Host::lifetime`](crate::Host::lifetime) gives one before the host runs.
///
/// The events fire in this order, on every runtime: `started` (after every
/// service's `started` hook, just before the background jobs begin),
/// `stopping` (when stop begins, before any `stopping` hook), `stopped`
/// (after every `stopped` hook, just before `run()` returns). A stop
/// requested during startup abandons it: `started` then never fires, and
/// [`started`](Lifetime::started) resolves to `false`.
#[derive(Clone)]
pub struct Lifetime {
    shared: Arc<HostShared>,
}

impl fmt::Debug for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifetime")
            .field("started", &self.is_started())
            .field("stopping", &self.is_stopping())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Lifetime {
    pub(crate) fn new(shared: Arc<HostShared>) -> Lifetime {
        Lifetime { shared }
    }

    /// Waits for the `started` event. Returns `true` once the host has
    /// started, or `false` if it began to stop without ever starting (a
    /// failed or interrupted startup).
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: it only observes.
    pub async fn started(&self) -> bool {
        tokio::select! {
            biased;
            () = self.shared.started.cancelled() => true,
            () = self.shared.stopped.cancelled() => self.is_started(),
        }
    }

    /// Waits for the `stopping` event.
    pub async fn stopping(&self) {
        self.shared.stop.cancelled().await;
    }

    /// Waits for the `stopped` event.
    pub async fn stopped(&self) {
        self.shared.stopped.cancelled().await;
    }

    /// Whether `started` has fired.
    pub fn is_started(&self) -> bool {
        self.shared.started.is_cancelled()
    }

    /// Whether `stopping` has fired.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Whether `stopped` has fired.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.is_cancelled()
    }

    /// Requests a graceful stop; asking again changes nothing.
    pub fn stop(&self) {
        self.shared.request_stop(StopReason::Requested);
    }
}

impl FromRun for Lifetime {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        Ok(Lifetime::new(cx.host.clone()))
    }
}
