//! Bookie registration and discovery through the metadata store.
//!
//! - `bookies/<id>`: a bookie's registration — address, zone, state, disk usage — put under the
//!   bookie's lease, so it disappears when the bookie dies (or loses the metadata store for a
//!   whole lease), and rewritten as its state changes.
//! - `cookies/<id>`: the pairing of a bookie id with one data dir (its instance id), written
//!   once, never leased. A bookie whose data dir was wiped and re-initialized comes back with a
//!   new instance id under the old id and is refused: the data the cluster expects it to hold is
//!   gone, and it must be decommissioned and replaced instead.
//!
//! - `decommissioned/<id>`: an operator's decision that the bookie is leaving (written by the
//!   control plane, never leased). [`list_bookies`] reports such a bookie as
//!   `Decommissioning`: placement stops choosing it and re-replication copies its ledgers away.
//!
//! Writers read the registrations to place ensembles ([`crate::placement`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::BookieId;
use dlog_api::wire::bookie::BookieState;
use dlog_metadata::{Expect, LeaseKeeper, MetadataError, MetadataStore};
use serde::{Deserialize, Serialize};

pub const BOOKIES_PREFIX: &str = "bookies/";
pub const COOKIES_PREFIX: &str = "cookies/";
pub const DECOMMISSIONED_PREFIX: &str = "decommissioned/";

pub fn bookie_key(id: &BookieId) -> String {
    format!("{BOOKIES_PREFIX}{id}")
}

pub fn cookie_key(id: &BookieId) -> String {
    format!("{COOKIES_PREFIX}{id}")
}

/// What a bookie publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookieRegistration {
    pub id: BookieId,
    /// `host:port` of its bookie protocol listener.
    pub address: String,
    /// Failure domain (availability zone, rack); empty if not configured.
    #[serde(default)]
    pub zone: String,
    pub instance_id: u64,
    pub state: RegisteredState,
    #[serde(default)]
    pub disk_total: u64,
    #[serde(default)]
    pub disk_used: u64,
}

/// A bookie's state as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisteredState {
    Writable,
    ReadOnly,
    /// An operator asked for it to be emptied; no new ledgers are placed on it.
    Decommissioning,
}

impl From<BookieState> for RegisteredState {
    fn from(s: BookieState) -> Self {
        match s {
            BookieState::Writable => RegisteredState::Writable,
            _ => RegisteredState::ReadOnly,
        }
    }
}

/// The data dir a bookie id is paired with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCookie {
    pub id: BookieId,
    pub instance_id: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "bookie {id} is registered in the cluster with data dir instance {registered:#x}, but this \
         data dir is instance {local:#x}: it was wiped or belongs to another bookie; decommission \
         {id} and start this one under a new id"
    )]
    CookieMismatch {
        id: BookieId,
        registered: u64,
        local: u64,
    },
    #[error("bookie {0} is already registered by a live process")]
    AlreadyRegistered(BookieId),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("registration of {key} is unreadable: {why}")]
    Corrupt { key: String, why: String },
}

/// A live registration; dropping it stops renewing the lease (the key expires), and
/// [`Registration::deregister`] removes it at once.
#[derive(Debug)]
pub struct Registration {
    store: Arc<dyn MetadataStore>,
    keeper: LeaseKeeper,
    key: String,
    current: BookieRegistration,
}

impl Registration {
    /// Checks (or writes) the bookie's cluster cookie, then registers it under a lease of `ttl`.
    pub async fn register(
        store: Arc<dyn MetadataStore>,
        reg: BookieRegistration,
        ttl: Duration,
    ) -> Result<Registration, RegistryError> {
        let ck = cookie_key(&reg.id);
        let cookie = ClusterCookie {
            id: reg.id.clone(),
            instance_id: reg.instance_id,
        };
        match store.get(&ck).await? {
            Some(kv) => {
                let found: ClusterCookie = decode(&ck, &kv.value)?;
                if found.instance_id != reg.instance_id {
                    return Err(RegistryError::CookieMismatch {
                        id: reg.id.clone(),
                        registered: found.instance_id,
                        local: reg.instance_id,
                    });
                }
            }
            None => {
                match store.put(&ck, encode(&cookie), Expect::Absent).await {
                    Ok(_) => {}
                    // Someone wrote it first: check again against theirs.
                    Err(MetadataError::Conflict { .. }) => {
                        return Box::pin(Registration::register(store, reg, ttl)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let keeper = LeaseKeeper::start(store.clone(), ttl).await?;
        let key = bookie_key(&reg.id);
        // A registration left by this same data dir's previous process (killed before its lease
        // ran out) is taken over: only one process can hold a data dir at a time. Another data
        // dir's live registration under this id is refused.
        let expect = match store.get(&key).await? {
            None => Expect::Absent,
            Some(kv) => {
                let old: BookieRegistration = decode(&key, &kv.value)?;
                if old.instance_id != reg.instance_id {
                    let _ = keeper.revoke().await;
                    return Err(RegistryError::AlreadyRegistered(reg.id));
                }
                Expect::Version(kv.mod_revision)
            }
        };
        match store
            .put_leased(&key, encode(&reg), expect, keeper.id())
            .await
        {
            Ok(_) => {}
            Err(MetadataError::Conflict { .. }) => {
                let _ = keeper.revoke().await;
                return Err(RegistryError::AlreadyRegistered(reg.id));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Registration {
            store,
            keeper,
            key,
            current: reg,
        })
    }

    pub fn registration(&self) -> &BookieRegistration {
        &self.current
    }

    /// Cancelled when the registration's lease is lost: the bookie is no longer visible.
    pub fn lost(&self) -> tokio_util::sync::CancellationToken {
        self.keeper.lost()
    }

    /// Publishes a new state or disk usage.
    pub async fn update(&mut self, reg: BookieRegistration) -> Result<(), RegistryError> {
        self.store
            .put_leased(&self.key, encode(&reg), Expect::Any, self.keeper.id())
            .await?;
        self.current = reg;
        Ok(())
    }

    /// Removes the registration now (clean shutdown).
    pub async fn deregister(self) -> Result<(), RegistryError> {
        Ok(self.keeper.revoke().await?)
    }
}

/// Every registered (live) bookie; those an operator decommissioned are reported so.
pub async fn list_bookies(
    store: &dyn MetadataStore,
) -> Result<Vec<BookieRegistration>, RegistryError> {
    let listing = store.list(BOOKIES_PREFIX).await?;
    let gone = store.list(DECOMMISSIONED_PREFIX).await?;
    listing
        .kvs
        .iter()
        .map(|kv| {
            let mut r: BookieRegistration = decode(&kv.key, &kv.value)?;
            let key = format!("{DECOMMISSIONED_PREFIX}{}", r.id);
            if gone.kvs.iter().any(|g| g.key == key) {
                r.state = RegisteredState::Decommissioning;
            }
            Ok(r)
        })
        .collect()
}

/// Marks a bookie as leaving the cluster (see the module docs). Idempotent.
pub async fn decommission(store: &dyn MetadataStore, id: &BookieId) -> Result<(), RegistryError> {
    store
        .put(
            &format!("{DECOMMISSIONED_PREFIX}{id}"),
            Bytes::from_static(b"{}"),
            Expect::Any,
        )
        .await?;
    Ok(())
}

fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("registrations always serialize"))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, v: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(v).map_err(|e| RegistryError::Corrupt {
        key: key.to_string(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlog_metadata::{EmbeddedOptions, EmbeddedStore};

    fn reg(id: &str, instance_id: u64) -> BookieRegistration {
        BookieRegistration {
            id: BookieId::new(id).unwrap(),
            address: "127.0.0.1:3181".into(),
            zone: String::new(),
            instance_id,
            state: RegisteredState::Writable,
            disk_total: 100,
            disk_used: 1,
        }
    }

    #[tokio::test]
    async fn registration_lives_with_its_lease_and_the_cookie_pairs_id_and_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
                .await
                .unwrap(),
        );
        let ttl = Duration::from_secs(10);
        let ids = |v: Vec<BookieRegistration>| -> Vec<String> {
            v.into_iter().map(|r| r.id.to_string()).collect()
        };
        let mut r = Registration::register(store.clone(), reg("b1", 7), ttl)
            .await
            .unwrap();
        assert_eq!(list_bookies(&*store).await.unwrap(), [reg("b1", 7)]);
        // The same data dir restarted before its old lease ran out takes the registration
        // over.
        let again = Registration::register(store.clone(), reg("b1", 7), ttl)
            .await
            .unwrap();
        assert_eq!(list_bookies(&*store).await.unwrap(), [reg("b1", 7)]);
        drop(again);
        // Another data dir's live registration under an id is refused (the cookie is removed
        // here so that this check, not the cookie's, answers).
        let _b2 = Registration::register(store.clone(), reg("b2", 1), ttl)
            .await
            .unwrap();
        let b2 = BookieId::new("b2").unwrap();
        store.delete(&cookie_key(&b2), Expect::Any).await.unwrap();
        let e = Registration::register(store.clone(), reg("b2", 2), ttl)
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::AlreadyRegistered(_)), "{e}");
        // State changes are published.
        let mut ro = reg("b1", 7);
        ro.state = RegisteredState::ReadOnly;
        r.update(ro.clone()).await.unwrap();
        assert!(list_bookies(&*store).await.unwrap().contains(&ro));
        r.deregister().await.unwrap();
        assert_eq!(ids(list_bookies(&*store).await.unwrap()), ["b2"]);
        // The same data dir comes back; a wiped one (new instance id) does not.
        let r = Registration::register(store.clone(), reg("b1", 7), ttl)
            .await
            .unwrap();
        let lost = r.lost();
        let e = Registration::register(store.clone(), reg("b1", 8), ttl)
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::CookieMismatch { .. }), "{e}");
        assert!(e.to_string().contains("decommission"), "{e}");
        // Losing the lease removes the registration and tells the holder.
        store.revoke_lease(r.keeper.id()).await.unwrap();
        assert_eq!(ids(list_bookies(&*store).await.unwrap()), ["b2"]);
        tokio::time::timeout(Duration::from_secs(10), lost.cancelled())
            .await
            .unwrap();
    }
}
