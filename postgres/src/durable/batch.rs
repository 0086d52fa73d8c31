//! Successes written in batches: one `finish_succeeded.sql` statement for
//! the successes that came in meanwhile.

use std::collections::HashSet;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::worker::{Success, SUCCESS_BATCH};
use super::DurableQueue;
use crate::error::describe;

/// Writes successes in batches: whatever has queued up while the previous
/// statement ran goes in the next, so that many short items cost one
/// commit per batch rather than one each, and a lone item waits for no
/// one. Ends once the queue stops and nothing is left.
pub(super) async fn finish_successes(
    queue: DurableQueue,
    mut successes: mpsc::UnboundedReceiver<Success>,
    background: CancellationToken,
) {
    let inner = &queue.inner;
    let mut batch = Vec::with_capacity(SUCCESS_BATCH);
    loop {
        let got = tokio::select! {
            got = successes.recv_many(&mut batch, SUCCESS_BATCH) => got,
            () = background.cancelled() => {
                while batch.len() < SUCCESS_BATCH {
                    match successes.try_recv() {
                        Ok(success) => batch.push(success),
                        Err(_) => break,
                    }
                }
                batch.len()
            }
        };
        if got == 0 {
            return;
        }
        let (ids, fences): (Vec<i64>, Vec<i64>) = batch.iter().map(|s| (s.id, s.fence)).unzip();
        let written = match queue.client().await {
            Ok(client) => match client.prepare_cached(&inner.sql.finish_succeeded).await {
                Ok(finish) => client
                    .query(&finish, &[&ids, &fences])
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|r| r.get::<_, i64>(0))
                            .collect::<HashSet<i64>>()
                    })
                    .map_err(|e| describe(&e, &inner.target)),
                Err(e) => Err(describe(&e, &inner.target)),
            },
            Err(error) => Err(error.to_string()),
        };
        for success in batch.drain(..) {
            let answer = match &written {
                Ok(took) => Ok(took.contains(&success.id)),
                Err(error) => Err(error.clone()),
            };
            let _ = success.took.send(answer);
        }
    }
}
