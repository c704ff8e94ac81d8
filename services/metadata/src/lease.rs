//! Keeping a lease alive in the background, and knowing when it is lost.
//!
//! The keeper renews the lease every third of its time to live. It declares the lease lost when
//! the store says it expired, or when no renewal has succeeded for a whole time to live (the
//! store may be unreachable but has to be assumed to have expired it). Whoever holds something
//! under the lease (a bookie's registration, a stream's ownership) watches [`LeaseKeeper::lost`]
//! and stops acting on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use crate::error::{MetadataError, Result};
use crate::store::{LeaseId, MetadataStore};

#[derive(Debug)]
pub struct LeaseKeeper {
    id: LeaseId,
    lost: CancellationToken,
    store: Arc<dyn MetadataStore>,
    _stop: DropGuard,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and keeps it alive until dropped or revoked.
    pub async fn start(store: Arc<dyn MetadataStore>, ttl: Duration) -> Result<LeaseKeeper> {
        let id = store.grant_lease(ttl).await?;
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        tokio::spawn(keep(store.clone(), id, ttl, lost.clone(), stop.clone()));
        Ok(LeaseKeeper {
            id,
            lost,
            store,
            _stop: stop.drop_guard(),
        })
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// Cancelled once the lease is lost (expired, revoked, or not renewed for a whole TTL).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and revokes the lease, deleting its keys now rather than at expiry.
    pub async fn revoke(self) -> Result<()> {
        self.lost.cancel();
        self.store.revoke_lease(self.id).await
    }
}

async fn keep(
    store: Arc<dyn MetadataStore>,
    id: LeaseId,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let mut last_ok = Instant::now();
    let period = (ttl / 3).max(Duration::from_millis(50));
    let mut wait = period;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = lost.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match store.keep_alive(id).await {
            Ok(_) => {
                last_ok = Instant::now();
                wait = period;
            }
            Err(MetadataError::LeaseExpired(_)) => {
                warn!(lease = %id, "lease expired");
                lost.cancel();
                return;
            }
            Err(e) => {
                if last_ok.elapsed() >= ttl {
                    warn!(lease = %id, error = %e, "lease not renewed for its whole time to live; treating it as lost");
                    lost.cancel();
                    return;
                }
                debug!(lease = %id, error = %e, "lease renewal failed; retrying");
                wait = (period / 4).max(Duration::from_millis(50));
            }
        }
    }
}
