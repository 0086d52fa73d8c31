//! Singleton services: the lease that lets one instance at a time run
//! one (`sql/cluster/acquire.sql`, `give_back.sql`).

use std::sync::Arc;

use hosted::cluster::Lease;
use tokio_util::sync::CancellationToken;

use super::inner::{Held, Inner};

impl Inner {
    pub(super) async fn acquire(
        self: Arc<Self>,
        job: usize,
        token: CancellationToken,
    ) -> Option<Lease> {
        let started = self.started.get()?;
        let name = started.names[job].clone();
        let lease = self.lease_secs();
        let mut waiting_logged = false;
        loop {
            if token.is_cancelled() {
                return None;
            }
            if self.trusted() {
                if let Ok(rows) = self
                    .query(&self.sql.acquire, &[&name, &self.instance.id, &lease])
                    .await
                {
                    if let Some(row) = rows.first() {
                        let fence: i64 = row.get(0);
                        let held = token.child_token();
                        self.state().singletons.insert(
                            job,
                            Held {
                                job,
                                fence,
                                id: 0,
                                token: held.clone(),
                                completing: false,
                            },
                        );
                        return Some(Lease {
                            fence,
                            id: 0,
                            token: held,
                        });
                    }
                    if !waiting_logged {
                        waiting_logged = true;
                        tracing::info!(
                            job = name,
                            "another instance runs this singleton; standing by"
                        );
                    }
                }
            }
            tokio::select! {
                () = token.cancelled() => return None,
                () = tokio::time::sleep(self.options.leases.poll_every) => {}
            }
        }
    }
}
