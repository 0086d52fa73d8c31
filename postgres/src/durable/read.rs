//! What operators and the dashboard read: counts, items, dead letters,
//! and this instance's counters.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Durable, DurableQueue};
use crate::error::Error;
use crate::state::ItemState;

impl DurableQueue {
    /// Each queue's items by state and its lag, from the live table (which
    /// holds only what waits and runs) and the dead letters' index.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        self.counts_sampling(None, None).await
    }

    /// [`counts`](DurableQueue::counts) for a page that is looked at
    /// often: a table that holds more than `exact_below` rows, by
    /// PostgreSQL's own estimate (`pg_class.reltuples`, read from the
    /// catalog), is sampled (`TABLESAMPLE SYSTEM`, about `exact_below` rows
    /// read) rather than counted, and its counts are marked
    /// [`estimated`](QueueCounts::estimated). A dashboard thus costs the
    /// database the same whether a million items wait or a hundred.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn estimated_counts(&self, exact_below: u64) -> Result<Vec<QueueCounts>, Error> {
        let client = self.client().await?;
        let sizes = client
            .query_one(&self.inner.sql.table_sizes, &[])
            .await
            .map_err(|e| self.failed(e))?;
        drop(client);
        // The percent of a table's pages to read, if it is too large to
        // count.
        let sample = |rows: f64| {
            (rows > exact_below as f64)
                .then(|| ((exact_below.max(1) as f64 / rows) * 100.0).clamp(0.001, 100.0))
        };
        self.counts_sampling(sample(sizes.get(0)), sample(sizes.get(1)))
            .await
    }

    /// The counts, each table counted whole or, given a percent, sampled.
    async fn counts_sampling(
        &self,
        live_sample: Option<f64>,
        dead_sample: Option<f64>,
    ) -> Result<Vec<QueueCounts>, Error> {
        let client = self.client().await?;
        let sql = &self.inner.sql;
        let live = match live_sample {
            None => client.query(&sql.counts, &[]).await,
            Some(percent) => {
                client
                    .query(&sql.counts_sampled, &[&(percent as f32)])
                    .await
            }
        }
        .map_err(|e| self.failed(e))?;
        let dead = match dead_sample {
            None => client.query(&sql.dead_counts, &[]).await,
            Some(percent) => {
                client
                    .query(&sql.dead_counts_sampled, &[&(percent as f32)])
                    .await
            }
        }
        .map_err(|e| self.failed(e))?;
        let mut counts: Vec<QueueCounts> = live
            .iter()
            .map(|row| QueueCounts {
                queue: row.get(0),
                due: row.get::<_, i64>(1) as u64,
                scheduled: row.get::<_, i64>(2) as u64,
                running: row.get::<_, i64>(3) as u64,
                retrying: row.get::<_, i64>(4) as u64,
                dead: 0,
                lag: Duration::from_secs_f64(row.get::<_, f64>(5).max(0.0)),
                estimated: live_sample.is_some(),
            })
            .collect();
        for row in &dead {
            let queue: String = row.get(0);
            let n = row.get::<_, i64>(1) as u64;
            match counts.iter_mut().find(|c| c.queue == queue) {
                Some(c) => {
                    c.dead = n;
                    c.estimated |= dead_sample.is_some();
                }
                None => counts.push(QueueCounts {
                    queue,
                    dead: n,
                    estimated: dead_sample.is_some(),
                    ..QueueCounts::default()
                }),
            }
        }
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(counts)
    }

    /// One item by id, live or finished (until pruned).
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn item(&self, id: i64) -> Result<Option<ItemRecord>, Error> {
        let client = self.client().await?;
        let rows = client
            .query(&self.inner.sql.item, &[&id])
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows.first().map(ItemRecord::from_row))
    }

    /// The newest dead letters of `queue` (of every queue: `None`), at
    /// most `limit`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub async fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ItemRecord>, Error> {
        let client = self.client().await?;
        let rows = client
            .query(&self.inner.sql.dead, &[&queue, &limit])
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows.iter().map(ItemRecord::from_row).collect())
    }

    /// What this instance sent, ran and was told.
    pub fn stats(&self) -> DurableStats {
        self.inner.worker.stats()
    }
}

/// Which items [`DurableQueue::retry`], [`discard`](DurableQueue::discard)
/// and [`cancel`](DurableQueue::cancel) act on: every condition given must
/// hold; none given matches every item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemFilter {
    pub(super) ids: Option<Vec<i64>>,
    pub(super) queue: Option<String>,
    pub(super) handler: Option<String>,
}

impl ItemFilter {
    /// Every item (of the state the action applies to).
    pub fn all() -> ItemFilter {
        ItemFilter::default()
    }

    /// The item with `id`.
    pub fn id(id: i64) -> ItemFilter {
        ItemFilter::default().ids([id])
    }

    /// Items with one of `ids`.
    pub fn ids(mut self, ids: impl IntoIterator<Item = i64>) -> ItemFilter {
        self.ids = Some(ids.into_iter().collect());
        self
    }

    /// Items of `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> ItemFilter {
        self.queue = Some(queue.into());
        self
    }

    /// Items of the handler named `name`.
    pub fn handler(mut self, name: impl Into<String>) -> ItemFilter {
        self.handler = Some(name.into());
        self
    }

    /// Items of handler `H`.
    pub fn of<H: Durable>(self) -> ItemFilter {
        self.handler(H::NAME)
    }
}

impl fmt::Display for ItemFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(ids) = &self.ids {
            parts.push(format!("ids {ids:?}"));
        }
        if let Some(queue) = &self.queue {
            parts.push(format!("queue `{queue}`"));
        }
        if let Some(handler) = &self.handler {
            parts.push(format!("handler `{handler}`"));
        }
        if parts.is_empty() {
            f.write_str("all")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A queue's items by state, as [`DurableQueue::counts`] reads them.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Waiting and due.
    pub due: u64,
    /// Waiting for a later instant (delayed, or backing off).
    pub scheduled: u64,
    /// Running, on any instance.
    pub running: u64,
    /// Waiting after at least one failed attempt.
    pub retrying: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// How long the oldest due item has waited.
    pub lag: Duration,
    /// Whether these are estimates from a sample of a large table
    /// ([`DurableQueue::estimated_counts`]); the lag is then the oldest of
    /// the sample's due items: at least that.
    pub estimated: bool,
}

/// One item, as [`DurableQueue::item`] and
/// [`dead_letters`](DurableQueue::dead_letters) read it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemRecord {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its handler's name.
    pub handler: String,
    /// Its payload, as JSON.
    pub payload: String,
    /// Its priority.
    pub priority: i16,
    /// Where it stands.
    pub state: ItemState,
    /// Attempts so far.
    pub attempt: u32,
    /// Attempts it may have.
    pub max_attempts: u32,
    /// Its idempotency key.
    pub key: Option<String>,
    /// When it was enqueued.
    pub enqueued: DateTime<Utc>,
    /// When it is (or was last) due.
    pub run_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Why it finished as it did, for a dead letter.
    pub error: Option<String>,
    /// Its failed attempts, as a JSON array of `{attempt, at, error,
    /// instance}`.
    pub attempts: String,
}

impl ItemRecord {
    fn from_row(row: &tokio_postgres::Row) -> ItemRecord {
        ItemRecord {
            id: row.get(0),
            queue: row.get(1),
            handler: row.get(2),
            payload: row.get(3),
            priority: row.get(4),
            state: ItemState::from_store(row.get(5)),
            attempt: row.get::<_, i32>(6).max(0) as u32,
            max_attempts: row.get::<_, i32>(7).max(0) as u32,
            key: row.get(8),
            enqueued: row.get(9),
            run_at: row.get(10),
            started: row.get(11),
            finished: row.get(12),
            error: row.get(13),
            attempts: row.get(14),
        }
    }
}

/// Counters of one instance's durable queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableStats {
    /// Items this instance enqueued (new ones, not duplicates).
    pub enqueued: u64,
    /// Enqueues whose key was held: [`Enqueued::Duplicate`](crate::Enqueued::Duplicate).
    pub duplicates: u64,
    /// Claim statements sent.
    pub claims: u64,
    /// Items claimed.
    pub claimed: u64,
    /// Items that succeeded here.
    pub succeeded: u64,
    /// Failed attempts put back to wait with a backoff.
    pub retried: u64,
    /// Items dead-lettered here (attempts spent, or a payload that cannot
    /// be read).
    pub dead: u64,
    /// Items that ended cancelled here.
    pub cancelled: u64,
    /// Completions rejected because the claim was no longer current (the
    /// lease ran out and the item was handed out again).
    pub stale: u64,
    /// Leases lost while their items ran: their tokens were cancelled.
    pub lost: u64,
    /// Items handed back at stop without counting an attempt.
    pub released: u64,
    /// Items of dead instances this instance handed out again.
    pub rescued: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Times the listener connected (1 plus its reconnects).
    pub listens: u64,
    /// Outages: times the database stopped answering.
    pub outages: u64,
}
