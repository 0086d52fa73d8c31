//! Wake-ups: `NOTIFY` sent by the application, debounced, and a listener
//! on a connection of its own that wakes idle claim loops and catches up
//! after a reconnect.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::worker::MAX_BACKOFF;
use super::DurableQueue;
use crate::error::describe;

impl DurableQueue {
    /// Whether an enqueue on the pool sends its notification itself: not
    /// when every one of its queues was notified within the debounce.
    pub(crate) fn notify_now(&self, queues: &[&str]) -> bool {
        let debounce = self.inner.options.notify_debounce;
        if debounce.is_zero() {
            return true;
        }
        let now = Instant::now();
        let mut gate = self
            .inner
            .worker
            .notify
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let recent = queues.iter().all(|q| {
            gate.last
                .get(*q)
                .is_some_and(|at| now.duration_since(*at) < debounce)
        });
        if !recent {
            for q in queues {
                gate.last.insert((*q).to_owned(), now);
            }
        }
        !recent
    }

    /// After an enqueue that sent no notification committed: one trailing
    /// notification per queue goes out at the end of the debounce, so the
    /// last enqueue of a burst still wakes a worker.
    pub(crate) fn notify_later(&self, queues: &[String]) {
        let worker = &self.inner.worker;
        {
            let mut gate = worker.notify.lock().unwrap_or_else(PoisonError::into_inner);
            gate.dirty.extend(queues.iter().cloned());
            if gate.pending {
                return;
            }
            gate.pending = true;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(queue.inner.options.notify_debounce).await;
            let dirty: Vec<String> = {
                let mut gate = queue
                    .inner
                    .worker
                    .notify
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                gate.pending = false;
                let now = Instant::now();
                let dirty: Vec<String> = gate.dirty.drain().collect();
                for q in &dirty {
                    gate.last.insert(q.clone(), now);
                }
                dirty
            };
            if let Ok(client) = queue.client().await {
                for q in dirty {
                    let sent = client
                        .execute(&queue.inner.sql.notify, &[&queue.inner.channel, &q])
                        .await;
                    if let Err(error) = sent {
                        tracing::debug!(queue = %q, error = %error, "could not send a trailing notification; the queue's poll covers it");
                    }
                }
            }
        });
    }
}

/// Listens for wake-ups on a connection of its own; after every
/// (re)connect, wakes every queue, since notifications sent while it was
/// away are lost.
pub(super) async fn listen(
    queue: DurableQueue,
    config: tokio_postgres::Config,
    background: CancellationToken,
) {
    let inner = &queue.inner;
    let counters = &inner.worker.counters;
    let mut delay = Duration::from_millis(100);
    let mut announced_failure = false;
    loop {
        let connected = tokio::select! {
            connected = config.connect(NoTls) => connected,
            () = background.cancelled() => return,
        };
        match connected {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => return,
                        }
                    }
                });
                let listened = client.batch_execute(&inner.sql.listen).await;
                if listened.is_ok() {
                    let n = counters.listens.fetch_add(1, Ordering::Relaxed) + 1;
                    if n > 1 || announced_failure {
                        tracing::info!("the durable queue's listener is connected again");
                    }
                    announced_failure = false;
                    delay = Duration::from_millis(100);
                    // Catch up on what was enqueued while not listening.
                    inner.worker.wake_all();
                    loop {
                        tokio::select! {
                            message = rx.recv() => match message {
                                Some(name) => {
                                    counters.notifications.fetch_add(1, Ordering::Relaxed);
                                    inner.worker.wake(&name);
                                }
                                None => break,
                            },
                            () = background.cancelled() => {
                                driver.abort();
                                return;
                            }
                        }
                    }
                    tracing::warn!("the durable queue's listener lost its connection; reconnecting (idle queues poll meanwhile)");
                }
                driver.abort();
                drop(client);
            }
            Err(error) => {
                if !announced_failure {
                    announced_failure = true;
                    tracing::warn!(error = %describe(&error, &inner.target), "the durable queue's listener cannot connect; retrying (idle queues poll meanwhile)");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = background.cancelled() => return,
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}
