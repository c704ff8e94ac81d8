//! A bookie's presence in the cluster: registers it in the metadata store under a lease (with
//! its cluster cookie check), republishes its state and disk usage when they change, registers
//! again if the lease is lost (the store was unreachable for a whole lease), and deregisters
//! first on shutdown so that writers stop choosing it before it stops answering.

use std::sync::Arc;
use std::time::Duration;

use crate::registry::{BookieRegistration, RegisteredState, Registration, RegistryError};
use dlog_bookie::Bookie;
use dlog_metadata::MetadataStore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How a bookie announces itself.
#[derive(Debug, Clone)]
pub struct Announce {
    pub address: String,
    pub zone: String,
    pub ttl: Duration,
    /// How often state and disk usage are checked for changes.
    pub refresh: Duration,
}

fn describe(bookie: &Bookie, a: &Announce) -> BookieRegistration {
    let info = bookie.info();
    BookieRegistration {
        id: bookie.cookie().bookie_id.clone(),
        address: a.address.clone(),
        zone: a.zone.clone(),
        instance_id: bookie.cookie().instance_id,
        state: RegisteredState::from(info.state),
        disk_total: info.disk_total,
        disk_used: info.disk_used,
    }
}

/// Registers the bookie; fails (so the process exits) if the cluster knows this id with another
/// data dir, or another live process holds the id.
pub async fn register(
    store: Arc<dyn MetadataStore>,
    bookie: &Bookie,
    a: &Announce,
) -> Result<Registration, RegistryError> {
    let reg = Registration::register(store, describe(bookie, a), a.ttl).await?;
    info!(address = %a.address, zone = %a.zone, "bookie registered in the cluster");
    Ok(reg)
}

/// Keeps the registration current until `shutdown`, then removes it.
pub async fn maintain(
    store: Arc<dyn MetadataStore>,
    bookie: Bookie,
    a: Announce,
    mut reg: Registration,
    shutdown: CancellationToken,
) {
    loop {
        let lost = reg.lost();
        tokio::select! {
            _ = shutdown.cancelled() => {
                if let Err(e) = reg.deregister().await {
                    warn!(error = %e, "could not deregister; the registration expires with its lease");
                }
                return;
            }
            _ = lost.cancelled() => {
                warn!("bookie registration lost; registering again");
                reg = loop {
                    match register(store.clone(), &bookie, &a).await {
                        Ok(r) => break r,
                        Err(e @ RegistryError::CookieMismatch { .. }) => {
                            tracing::error!(error = %e, "cannot register again");
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, "registration failed; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = shutdown.cancelled() => return,
                            }
                        }
                    }
                };
            }
            _ = tokio::time::sleep(a.refresh) => {
                let now = describe(&bookie, &a);
                let was = reg.registration();
                // Disk usage is republished when it moved by more than 1% of the disk.
                let moved = now.disk_used.abs_diff(was.disk_used) > now.disk_total / 100;
                if (now.state != was.state || moved)
                    && let Err(e) = reg.update(now).await
                {
                    warn!(error = %e, "could not update the registration");
                }
            }
        }
    }
}
