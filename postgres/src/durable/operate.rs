//! What operators do to items: retry dead letters, discard them, cancel
//! items waiting or running.

use super::{DurableQueue, ItemFilter};
use crate::error::Error;

impl DurableQueue {
    /// Runs dead (or cancelled) items that match `filter` again, at once,
    /// with one more attempt; returns how many.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn retry(&self, filter: &ItemFilter) -> Result<u64, Error> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &self.inner.sql.retry_dead,
                &[
                    &filter.ids,
                    &filter.queue,
                    &filter.handler,
                    &self.inner.channel,
                ],
            )
            .await
            .map_err(|e| self.failed(e))?;
        let retried = row.get::<_, i64>(0) as u64;
        tracing::info!(retried, filter = %filter, "retried dead items");
        Ok(retried)
    }

    /// Discards dead letters that match `filter` (kept as discarded until
    /// pruned); returns how many.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn discard(&self, filter: &ItemFilter) -> Result<u64, Error> {
        let client = self.client().await?;
        let n = client
            .execute(
                &self.inner.sql.discard,
                &[&filter.ids, &filter.queue, &filter.handler],
            )
            .await
            .map_err(|e| self.failed(e))?;
        tracing::info!(discarded = n, filter = %filter, "discarded dead items");
        Ok(n)
    }

    /// Cancels live items that match `filter`: a waiting one ends at once,
    /// a running one has its token cancelled by its instance within
    /// [`DurableOptions::renew_every`](crate::DurableOptions::renew_every) and ends cancelled unless it
    /// succeeds first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn cancel(&self, filter: &ItemFilter) -> Result<CancelCounts, Error> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &self.inner.sql.cancel,
                &[&filter.ids, &filter.queue, &filter.handler],
            )
            .await
            .map_err(|e| self.failed(e))?;
        let cancelled = CancelCounts {
            waiting: row.get::<_, i64>(0) as u64,
            running: row.get::<_, i64>(1) as u64,
        };
        tracing::info!(waiting = cancelled.waiting, running = cancelled.running, filter = %filter, "cancelled items");
        Ok(cancelled)
    }
}

/// What [`DurableQueue::cancel`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelCounts {
    /// Waiting items, ended at once.
    pub waiting: u64,
    /// Running items, flagged: their instances cancel them.
    pub running: u64,
}

/// The old name of [`CancelCounts`], kept for one release.
///
/// ```
/// # #![allow(deprecated)]
/// fn counts(old: hosted_postgres::Cancelled) -> hosted_postgres::CancelCounts {
///     old
/// }
/// ```
#[deprecated(
    since = "0.2.0",
    note = "renamed `CancelCounts`, apart from `hosted::Cancelled` (the error of a cancelled run)"
)]
pub type Cancelled = CancelCounts;
