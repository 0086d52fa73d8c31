//! What a queued handler takes beside the host's arguments: its item's
//! [`Payload`], and [`Tx`], the transaction its item completes in.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use deadpool_postgres::{Object, Pool};
use hosted::{Dependencies, ExtractError, FromRun, RunContext};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::Error;

/// The item's payload, read from its JSON as a `T`.
///
/// A payload that does not read as `T` (the type changed since the item
/// was enqueued) fails the run before the handler's body, and the item is
/// dead-lettered at once with the error: no later attempt could read it
/// either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Payload<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRun for Payload<T> {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        let item = cx.item().ok_or_else(|| {
            ExtractError::new(
                "`Payload<T>` is given only to queued handlers, and this run has no item",
            )
        })?;
        serde_json::from_str::<T>(item.payload())
            .map(Payload)
            .map_err(|error| {
                let message = format!(
                    "the payload does not read as `{}`: {error}",
                    std::any::type_name::<T>()
                );
                if let Some(data) = item.data::<ItemData>() {
                    let _ = data.unreadable.set(message.clone());
                }
                ExtractError::new(message)
            })
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.work_item();
    }
}

/// What the worker attaches to each item it hands to the host.
pub(crate) struct ItemData {
    /// Set when the payload could not be read: dead-letter at once.
    pub(crate) unreadable: OnceLock<String>,
    pub(crate) tx: Arc<TxSlot>,
}

impl ItemData {
    pub(crate) fn new(pool: Pool, target: String) -> ItemData {
        ItemData {
            unreadable: OnceLock::new(),
            tx: Arc::new(TxSlot {
                pool,
                target,
                state: tokio::sync::Mutex::new(TxState::Unused),
            }),
        }
    }
}

/// The transaction the item completes in: what the handler writes through
/// it commits together with the item's completion, or not at all. A
/// completion that comes too late (the item's lease ran out and another
/// instance took it) rolls the handler's writes back with it; so does a
/// failed attempt. Exactly-once effects, for effects in the same database.
///
/// The transaction begins at the first use, on a connection of the queue's
/// pool, held until the item completes.
///
/// # Examples
///
/// ```no_run
/// use hosted_postgres::{Payload, Tx};
///
/// #[hosted_postgres::queued(queue = "orders")]
/// async fn ship(Payload(order): Payload<i64>, tx: Tx) -> Result<(), hosted_postgres::Error> {
///     tx.execute("UPDATE orders SET shipped = true WHERE id = $1", &[&order]).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Tx {
    slot: Arc<TxSlot>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

pub(crate) struct TxSlot {
    pool: Pool,
    target: String,
    state: tokio::sync::Mutex<TxState>,
}

enum TxState {
    Unused,
    /// Boxed: a pooled client is large, and most items never open one.
    Open(Box<Object>),
    Done,
}

impl TxSlot {
    /// Takes the open transaction for the completion; `None` if the
    /// handler never used it.
    pub(crate) async fn take(&self) -> Option<Object> {
        let mut state = self.state.lock().await;
        match std::mem::replace(&mut *state, TxState::Done) {
            TxState::Open(client) => Some(*client),
            TxState::Unused | TxState::Done => None,
        }
    }
}

impl Drop for TxSlot {
    fn drop(&mut self) {
        // A run dropped with its transaction open (at the shutdown
        // deadline): the connection is closed rather than returned to the
        // pool, and the server rolls the transaction back.
        if let TxState::Open(client) = std::mem::replace(self.state.get_mut(), TxState::Done) {
            drop(Object::take(*client));
        }
    }
}

impl FromRun for Tx {
    fn from_run(cx: &RunContext<'_>) -> Result<Self, ExtractError> {
        cx.item()
            .and_then(|item| item.data::<ItemData>())
            .map(|data| Tx {
                slot: data.tx.clone(),
            })
            .ok_or_else(|| {
                ExtractError::new("`Tx` is given only to queued handlers run by a `DurableQueue`")
            })
    }

    fn dependencies(deps: &mut Dependencies) {
        deps.work_item();
    }
}

impl Tx {
    /// The transaction's client, beginning the transaction on first use.
    /// Hold it briefly: other clones of this `Tx` wait for it.
    ///
    /// # Errors
    ///
    /// No connection could be had, or `BEGIN` failed; or the item has
    /// completed already.
    pub async fn client(&self) -> Result<TxClient<'_>, Error> {
        let slot = &self.slot;
        let mut state = slot.state.lock().await;
        if let TxState::Unused = &*state {
            let client = slot
                .pool
                .get()
                .await
                .map_err(|e| Error::pool(e, &slot.target))?;
            client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| Error::database(e, &slot.target))?;
            *state = TxState::Open(Box::new(client));
        }
        tokio::sync::MutexGuard::try_map(state, |state| match state {
            TxState::Open(client) => Some(&mut **client),
            TxState::Unused | TxState::Done => None,
        })
        .map(|client| TxClient { client })
        .map_err(|_| Error::store("the item's transaction has ended: it completed with the item"))
    }

    /// Executes a statement in the transaction; returns the rows changed.
    ///
    /// # Errors
    ///
    /// As [`client`](Self::client), and the statement's own.
    pub async fn execute(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let client = self.client().await?;
        client
            .execute(statement, params)
            .await
            .map_err(|e| Error::database(e, &self.slot.target))
    }

    /// Runs a query in the transaction.
    ///
    /// # Errors
    ///
    /// As [`client`](Self::client), and the statement's own.
    pub async fn query(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let client = self.client().await?;
        client
            .query(statement, params)
            .await
            .map_err(|e| Error::database(e, &self.slot.target))
    }
}

/// The client of an item's transaction, from [`Tx::client`]: derefs to
/// `tokio_postgres::Client`. Do not commit or roll back through it; the
/// item's completion does.
pub struct TxClient<'a> {
    client: tokio::sync::MappedMutexGuard<'a, Object>,
}

impl fmt::Debug for TxClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxClient").finish_non_exhaustive()
    }
}

impl Deref for TxClient<'_> {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}
