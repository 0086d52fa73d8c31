//! Enqueueing: one item or a batch, in one statement, on the queue's pool
//! or inside the caller's transaction, with a delay or an instant, a
//! priority, and an idempotency key with a window.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, ToStatement};

use super::{Durable, DurableQueue};
use crate::error::Error;

/// What an enqueue wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Enqueued {
    /// A new item, with its id.
    New(i64),
    /// Its idempotency key was held by the item with this id, enqueued
    /// within the key's window: nothing was written.
    Duplicate(i64),
}

impl Enqueued {
    /// The item's id: the new one's, or the one holding the key.
    pub fn id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// Whether a new item was written.
    pub fn is_new(self) -> bool {
        matches!(self, Enqueued::New(_))
    }
}

/// When an item is due.
#[derive(Clone, Copy, Debug)]
enum When {
    Now,
    /// In database time, from the statement.
    Delay(Duration),
    At(DateTime<Utc>),
}

/// The options every item of one enqueue shares.
#[derive(Clone, Debug)]
struct Options {
    when: When,
    priority: Option<i16>,
    max_attempts: Option<u32>,
    window: Option<Duration>,
}

impl Options {
    fn new() -> Options {
        Options {
            when: When::Now,
            priority: None,
            max_attempts: None,
            window: None,
        }
    }
}

/// One item to enqueue for handler `H`: set what it needs, then `.await`
/// it (on the queue's pool) or [`on`](Enqueue::on) a transaction of yours.
///
/// # Examples
///
/// ```no_run
/// # use hosted_postgres::{DurableQueue, Payload};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { user_id: i64 }
///
/// #[hosted_postgres::queued(queue = "mail")]
/// async fn send_welcome(Payload(w): Payload<Welcome>) -> anyhow::Result<()> {
///     # let _ = w;
///     Ok(())
/// }
///
/// # async fn example(queue: DurableQueue) -> anyhow::Result<()> {
/// let written = send_welcome::enqueue(&queue, Welcome { user_id: 7 })
///     .key("welcome:7")
///     .delay(std::time::Duration::from_secs(60))
///     .await?;
/// println!("item {}", written.id());
/// # Ok(())
/// # }
/// ```
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct Enqueue<'q, H: Durable> {
    queue: &'q DurableQueue,
    payload: H::Payload,
    key: Option<String>,
    options: Options,
    handler: PhantomData<fn() -> H>,
}

impl<'q, H: Durable> Enqueue<'q, H> {
    /// An item of `payload` for `H` on `queue`.
    pub fn new(queue: &'q DurableQueue, payload: H::Payload) -> Self {
        Enqueue {
            queue,
            payload,
            key: None,
            options: Options::new(),
            handler: PhantomData,
        }
    }

    /// An idempotency key: within its window another enqueue for `H` with
    /// the same key writes nothing and returns [`Enqueued::Duplicate`].
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// How long the key holds ([`DurableOptions::key_window`](super::DurableOptions::key_window)
    /// by default), counted from this enqueue.
    pub fn key_window(mut self, window: Duration) -> Self {
        self.options.window = Some(window);
        self
    }

    /// Due `delay` from now, in database time.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options.when = When::Delay(delay);
        self
    }

    /// Due at `at` (scheduled work); an instant past is due now.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.options.when = When::At(at);
        self
    }

    /// Its priority (the handler's by default): higher runs first.
    pub fn priority(mut self, priority: i16) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// Its attempts (the handler's `max_attempts` by default).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = Some(attempts);
        self
    }

    /// Writes the item inside `client`, a transaction of yours (or a
    /// client): it exists, and wakes a worker, only once that transaction
    /// commits.
    ///
    /// # Errors
    ///
    /// The payload did not serialize, or the statement failed.
    pub async fn on<C: GenericClient + Sync>(self, client: &C) -> Result<Enqueued, Error> {
        let queue = self.queue;
        let rows = Rows::of::<H>(queue, vec![(self.key, self.payload)], &self.options)?;
        let mut written =
            insert(queue, client, queue.inner.sql.enqueue.as_str(), &rows, true).await?;
        Ok(written.remove(0))
    }
}

impl<'q, H: Durable> IntoFuture for Enqueue<'q, H> {
    type Output = Result<Enqueued, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Enqueued, Error>> + Send + 'q>>;

    fn into_future(self) -> Self::IntoFuture {
        let queue = self.queue;
        let rows = Rows::of::<H>(queue, vec![(self.key, self.payload)], &self.options);
        Box::pin(async move {
            let mut written = on_pool(queue, rows?).await?;
            Ok(written.remove(0))
        })
    }
}

/// Many items for handler `H`, written in one statement: `.await` it (on
/// the queue's pool) or [`on`](EnqueueMany::on) a transaction of yours.
/// The results come in the order of the payloads.
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct EnqueueMany<'q, H: Durable> {
    queue: &'q DurableQueue,
    items: Vec<(Option<String>, H::Payload)>,
    options: Options,
    handler: PhantomData<fn() -> H>,
}

impl<'q, H: Durable> EnqueueMany<'q, H> {
    /// Items of `payloads` for `H` on `queue`.
    pub fn new(queue: &'q DurableQueue, payloads: impl IntoIterator<Item = H::Payload>) -> Self {
        EnqueueMany {
            queue,
            items: payloads.into_iter().map(|p| (None, p)).collect(),
            options: Options::new(),
            handler: PhantomData,
        }
    }

    /// Gives each item the idempotency key `key` computes from its
    /// payload. Two items of the batch with one key are one item: the
    /// second is a [`Enqueued::Duplicate`] of the first.
    pub fn key_by(mut self, key: impl Fn(&H::Payload) -> String) -> Self {
        for (slot, payload) in &mut self.items {
            *slot = Some(key(payload));
        }
        self
    }

    /// How long the keys hold.
    pub fn key_window(mut self, window: Duration) -> Self {
        self.options.window = Some(window);
        self
    }

    /// Every item due `delay` from now, in database time.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.options.when = When::Delay(delay);
        self
    }

    /// Every item due at `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.options.when = When::At(at);
        self
    }

    /// Every item's priority.
    pub fn priority(mut self, priority: i16) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// Every item's attempts.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = Some(attempts);
        self
    }

    /// Writes the items inside `client`, a transaction of yours.
    ///
    /// # Errors
    ///
    /// A payload did not serialize, or the statement failed.
    pub async fn on<C: GenericClient + Sync>(self, client: &C) -> Result<Vec<Enqueued>, Error> {
        let rows = Rows::of::<H>(self.queue, self.items, &self.options)?;
        insert(
            self.queue,
            client,
            self.queue.inner.sql.enqueue.as_str(),
            &rows,
            true,
        )
        .await
    }
}

impl<'q, H: Durable> IntoFuture for EnqueueMany<'q, H> {
    type Output = Result<Vec<Enqueued>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Vec<Enqueued>, Error>> + Send + 'q>>;

    fn into_future(self) -> Self::IntoFuture {
        let queue = self.queue;
        let rows = Rows::of::<H>(queue, self.items, &self.options);
        Box::pin(async move { on_pool(queue, rows?).await })
    }
}

/// The columns of one enqueue statement, one element per item sent. Items
/// whose key an earlier item of the batch already carries are not sent:
/// `same_as` maps them to that item.
struct Rows {
    handler: Vec<String>,
    queue: Vec<String>,
    payload: Vec<String>,
    priority: Vec<i16>,
    delay_s: Vec<Option<f64>>,
    at: Vec<Option<DateTime<Utc>>>,
    max_attempts: Vec<i32>,
    key: Vec<Option<String>>,
    window_s: Vec<f64>,
    /// For each item given, the index of the row sent for it, and whether
    /// it is that row's own item (`false`: a repeated key).
    slots: Vec<(usize, bool)>,
}

impl Rows {
    fn of<H: Durable>(
        queue: &DurableQueue,
        items: Vec<(Option<String>, H::Payload)>,
        options: &Options,
    ) -> Result<Rows, Error> {
        let n = items.len();
        let window = options.window.unwrap_or(queue.inner.options.key_window);
        let max_attempts = options.max_attempts.unwrap_or(H::MAX_ATTEMPTS).max(1);
        let (delay, at) = match options.when {
            When::Now => (None, None),
            When::Delay(d) => (Some(d.as_secs_f64()), None),
            When::At(t) => (None, Some(t)),
        };
        let mut rows = Rows {
            handler: Vec::with_capacity(n),
            queue: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            delay_s: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            window_s: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (key, payload) in items {
            if let Some(&row) = key.as_ref().and_then(|k| seen.get(k)) {
                rows.slots.push((row, false));
                continue;
            }
            let json = serde_json::to_string(&payload).map_err(|source| Error::Payload {
                message: format!(
                    "the payload of `{}` did not serialize to JSON: {source}",
                    H::NAME
                ),
                source,
            })?;
            let row = rows.handler.len();
            if let Some(k) = &key {
                seen.insert(k.clone(), row);
            }
            rows.slots.push((row, true));
            rows.handler.push(H::NAME.to_owned());
            rows.queue.push(H::QUEUE.to_owned());
            rows.payload.push(json);
            rows.priority.push(options.priority.unwrap_or(H::PRIORITY));
            rows.delay_s.push(delay);
            rows.at.push(at);
            rows.max_attempts
                .push(i32::try_from(max_attempts).unwrap_or(i32::MAX));
            rows.key.push(key);
            rows.window_s.push(window.as_secs_f64());
        }
        Ok(rows)
    }
}

/// Writes `rows` on a client of the queue's pool, notifying unless a
/// notification for the same queue went out within the debounce.
async fn on_pool(queue: &DurableQueue, rows: Rows) -> Result<Vec<Enqueued>, Error> {
    let client = queue.client().await?;
    let names: Vec<&str> = rows.queue.iter().map(String::as_str).collect();
    let notify = queue.notify_now(&names);
    let enqueue = client
        .prepare_cached(&queue.inner.sql.enqueue)
        .await
        .map_err(|e| queue.failed(e))?;
    let written = insert(queue, &**client, &enqueue, &rows, notify).await;
    drop(client);
    let written = written?;
    if !notify {
        // Committed: a trailing notification may go out now.
        queue.notify_later(&names_owned(&names));
    }
    Ok(written)
}

fn names_owned(names: &[&str]) -> Vec<String> {
    let mut owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    owned.sort();
    owned.dedup();
    owned
}

/// Sends the enqueue statement for `rows` on `client`.
async fn insert<C, S>(
    queue: &DurableQueue,
    client: &C,
    statement: &S,
    rows: &Rows,
    notify: bool,
) -> Result<Vec<Enqueued>, Error>
where
    C: GenericClient + Sync,
    S: ToStatement + Sync + Send + ?Sized,
{
    let result = client
        .query(
            statement,
            &[
                &rows.handler,
                &rows.queue,
                &rows.payload,
                &rows.priority,
                &rows.delay_s,
                &rows.at,
                &rows.max_attempts,
                &rows.key,
                &rows.window_s,
                &queue.inner.channel,
                &notify,
            ],
        )
        .await
        .map_err(|e| queue.failed(e))?;
    let mut sent = Vec::with_capacity(result.len());
    for (row, item) in result.iter().enumerate() {
        let new: bool = item.get(1);
        let id: Option<i64> = item.get(2);
        sent.push(match (new, id) {
            (true, Some(id)) => Enqueued::New(id),
            (false, Some(id)) => Enqueued::Duplicate(id),
            (_, None) => Enqueued::Duplicate(key_holder(queue, client, rows, row).await?),
        });
    }
    let stats = &queue.inner.worker.counters;
    let new = sent.iter().filter(|e| e.is_new()).count() as u64;
    stats.enqueued.fetch_add(new, Ordering::Relaxed);
    let written = rows
        .slots
        .iter()
        .map(|&(row, own)| match sent[row] {
            Enqueued::New(id) if !own => Enqueued::Duplicate(id),
            other => other,
        })
        .collect::<Vec<_>>();
    let duplicates = written.iter().filter(|e| !e.is_new()).count() as u64;
    stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    Ok(written)
}

/// The item holding the key of row `row`, which the enqueue's snapshot
/// could not see: another transaction committed it while this statement
/// waited on the key's index entry.
async fn key_holder<C: GenericClient + Sync>(
    queue: &DurableQueue,
    client: &C,
    rows: &Rows,
    row: usize,
) -> Result<i64, Error> {
    let handler = &rows.handler[row];
    let key = rows.key[row].as_deref().unwrap_or_default();
    let found = client
        .query_opt(&queue.inner.sql.key_holder, &[handler, &key])
        .await
        .map_err(|e| queue.failed(e))?;
    found.map(|r| r.get(0)).ok_or_else(|| {
        Error::store(format!(
            "the key `{key}` of `{handler}` was held, but its holder vanished before it could be read; enqueue again"
        ))
    })
}
