//! The durable queue's statements: one file each under `src/sql/queue/`,
//! named after what it does, so that a reviewer reads the claim, the
//! completion and the rescue without reading Rust. `{s}` in a file is the
//! quoted schema.
//!
//! Rules they all follow:
//! - every lease is `now()` of the database plus a length, and every check
//!   of one compares with `now()`: no instance's clock decides;
//! - every write to a claimed item names the claim's fencing number, so a
//!   late write of an earlier claim changes nothing;
//! - a claim is one statement with `FOR UPDATE SKIP LOCKED` in a
//!   materialized CTE, fenced by its `LIMIT`;
//! - notifications are sent by the statement that makes work available,
//!   and so go out at its commit, never from a trigger.

/// The statements, with the schema's name in place.
pub(crate) struct QueueSql {
    pub(crate) add_queues: String,
    pub(crate) cancel: String,
    pub(crate) claim: String,
    pub(crate) counts: String,
    pub(crate) counts_sampled: String,
    pub(crate) dead: String,
    pub(crate) dead_counts: String,
    pub(crate) dead_counts_sampled: String,
    pub(crate) table_sizes: String,
    pub(crate) discard: String,
    pub(crate) enqueue: String,
    pub(crate) finish: String,
    pub(crate) finish_succeeded: String,
    pub(crate) item: String,
    pub(crate) key_holder: String,
    pub(crate) lock_queue: String,
    pub(crate) next_due: String,
    pub(crate) prune: String,
    pub(crate) prune_keys: String,
    pub(crate) release: String,
    pub(crate) renew: String,
    pub(crate) rescue: String,
    pub(crate) retry: String,
    pub(crate) retry_dead: String,
    pub(crate) running_in_queue: String,
    /// The channel of wake-ups: one per schema.
    pub(crate) channel: String,
}

impl QueueSql {
    pub(crate) fn new(schema: &str) -> QueueSql {
        let quoted = format!("\"{schema}\"");
        let render = |text: &str| text.replace("{s}", &quoted);
        QueueSql {
            add_queues: render(include_str!("../sql/queue/add_queues.sql")),
            cancel: render(include_str!("../sql/queue/cancel.sql")),
            claim: render(include_str!("../sql/queue/claim.sql")),
            counts: render(include_str!("../sql/queue/counts.sql")),
            counts_sampled: render(include_str!("../sql/queue/counts_sampled.sql")),
            dead: render(include_str!("../sql/queue/dead.sql")),
            dead_counts: render(include_str!("../sql/queue/dead_counts.sql")),
            dead_counts_sampled: render(include_str!("../sql/queue/dead_counts_sampled.sql")),
            table_sizes: render(include_str!("../sql/queue/table_sizes.sql")),
            discard: render(include_str!("../sql/queue/discard.sql")),
            enqueue: render(include_str!("../sql/queue/enqueue.sql")),
            finish: render(include_str!("../sql/queue/finish.sql")),
            finish_succeeded: render(include_str!("../sql/queue/finish_succeeded.sql")),
            item: render(include_str!("../sql/queue/item.sql")),
            key_holder: render(include_str!("../sql/queue/key_holder.sql")),
            lock_queue: render(include_str!("../sql/queue/lock_queue.sql")),
            next_due: render(include_str!("../sql/queue/next_due.sql")),
            prune: render(include_str!("../sql/queue/prune.sql")),
            prune_keys: render(include_str!("../sql/queue/prune_keys.sql")),
            release: render(include_str!("../sql/queue/release.sql")),
            renew: render(include_str!("../sql/queue/renew.sql")),
            rescue: render(include_str!("../sql/queue/rescue.sql")),
            retry: render(include_str!("../sql/queue/retry.sql")),
            retry_dead: render(include_str!("../sql/queue/retry_dead.sql")),
            running_in_queue: render(include_str!("../sql/queue/running_in_queue.sql")),
            channel: channel(schema),
        }
    }
}

/// The notification channel of the queue in `schema`.
pub(crate) fn channel(schema: &str) -> String {
    format!("hosted_items_{schema}")
}
