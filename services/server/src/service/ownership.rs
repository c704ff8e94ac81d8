//! Stream ownership: one service node at a time writes a stream.
//!
//! A node owns a stream while it holds the key `owners/NS/NAME` under its lease; the value
//! names the node and its client address, so that other nodes can redirect clients there.
//! Taking ownership is a create-if-absent of that key; the new owner then opens the stream's
//! writer, which bumps the stream's epoch and fences whatever the previous owner left behind.
//! When a node dies its lease lapses, the keys go, and the next request for the stream at any
//! node takes it over. A node that loses its lease (paused, cut off from the store) drops all
//! its writers at once: by then another node may own them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::stream::StreamName;
use dlog_log::{Log, LogError, StreamWriter, WriterOptions};
use dlog_metadata::{Expect, LeaseId, LeaseKeeper, MetadataError, MetadataStore, Op};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// What the owner key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub node: String,
    pub address: String,
    pub lease: i64,
}

pub fn owner_key(s: &StreamName) -> String {
    format!("owners/{}/{}", s.namespace(), s.name())
}

/// Why this node cannot write a stream now.
#[derive(Debug, Clone)]
pub enum NotMine {
    /// Another node owns it (its client address, if known).
    Owner(Option<String>),
    Log(LogError),
}

impl From<LogError> for NotMine {
    fn from(e: LogError) -> Self {
        NotMine::Log(e)
    }
}

/// This node's streams.
#[derive(Debug)]
pub struct Ownership {
    log: Log,
    node: String,
    address: String,
    ttl: Duration,
    writer_opts: WriterOptions,
    metrics: Arc<Metrics>,
    state: tokio::sync::Mutex<LeaseState>,
    /// One lock per stream being acquired, so that concurrent requests acquire once.
    acquiring: Mutex<HashMap<StreamName, Arc<tokio::sync::Mutex<()>>>>,
    writers: Arc<Mutex<HashMap<StreamName, StreamWriter>>>,
}

#[derive(Debug, Default)]
struct LeaseState {
    keeper: Option<LeaseKeeper>,
}

impl Ownership {
    pub fn new(
        log: Log,
        node: String,
        address: String,
        ttl: Duration,
        writer_opts: WriterOptions,
        metrics: Arc<Metrics>,
    ) -> Ownership {
        Ownership {
            log,
            node,
            address,
            ttl,
            writer_opts,
            metrics,
            state: tokio::sync::Mutex::new(LeaseState::default()),
            acquiring: Mutex::new(HashMap::new()),
            writers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn store(&self) -> &Arc<dyn MetadataStore> {
        self.log.store()
    }

    /// The lease this node holds its streams under, granting a new one (and dropping every
    /// writer held under a lost one) when needed.
    async fn lease(&self) -> Result<LeaseId, LogError> {
        let mut st = self.state.lock().await;
        if let Some(k) = &st.keeper
            && !k.lost().is_cancelled()
        {
            return Ok(k.id());
        }
        if st.keeper.take().is_some() {
            warn!(node = %self.node, "ownership lease lost; dropping every stream writer");
            self.writers.lock().clear();
        }
        let keeper = LeaseKeeper::start(self.store().clone(), self.ttl).await?;
        let id = keeper.id();
        // When the lease is lost, stop writing at once: another node may take over.
        let lost = keeper.lost();
        let writers = self.writers.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            writers.lock().clear();
        });
        st.keeper = Some(keeper);
        Ok(id)
    }

    /// The writer of `stream` if this node owns it or can take it over now.
    pub async fn writer(&self, stream: &StreamName) -> Result<StreamWriter, NotMine> {
        if let Some(w) = self.writers.lock().get(stream) {
            return Ok(w.clone());
        }
        let lock = self
            .acquiring
            .lock()
            .entry(stream.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        if let Some(w) = self.writers.lock().get(stream) {
            return Ok(w.clone());
        }
        let lease = self.lease().await?;
        let key = owner_key(stream);
        let me = OwnerRecord {
            node: self.node.clone(),
            address: self.address.clone(),
            lease: lease.0,
        };
        let value = Bytes::from(serde_json::to_vec(&me).expect("serializes"));
        loop {
            match self.store().get(&key).await.map_err(LogError::from)? {
                Some(kv) => {
                    let cur: Option<OwnerRecord> = serde_json::from_slice(&kv.value).ok();
                    match cur {
                        Some(c) if c.node == self.node && c.lease == lease.0 => break,
                        Some(c) if c.node != self.node => {
                            return Err(NotMine::Owner(Some(c.address)));
                        }
                        // Ours from an earlier lease (a restart), or unreadable: take it back.
                        _ => {
                            let ops = vec![
                                Op::delete(key.clone(), Expect::Version(kv.mod_revision)),
                                put_leased(&key, value.clone(), lease),
                            ];
                            match self.store().commit(ops).await {
                                Ok(_) => break,
                                Err(MetadataError::Conflict { .. }) => continue,
                                Err(e) => return Err(LogError::from(e).into()),
                            }
                        }
                    }
                }
                None => {
                    // The stream must exist before anyone owns it.
                    self.log.load(stream).await?;
                    match self
                        .store()
                        .commit(vec![put_leased(&key, value.clone(), lease)])
                        .await
                    {
                        Ok(_) => break,
                        Err(MetadataError::Conflict { .. }) => continue,
                        Err(e) => return Err(LogError::from(e).into()),
                    }
                }
            }
        }
        match StreamWriter::open(&self.log, stream, self.writer_opts.clone()).await {
            Ok(w) => {
                info!(stream = %stream, epoch = w.epoch(), node = %self.node, "took ownership");
                self.metrics.ownership_changes.inc();
                self.writers.lock().insert(stream.clone(), w.clone());
                Ok(w)
            }
            Err(e) => {
                self.release_key(stream).await;
                Err(e.into())
            }
        }
    }

    /// Forgets this node's writer of `stream` (it failed or was fenced) and gives up the
    /// ownership key, so that the next request takes the stream over afresh.
    pub async fn drop_writer(&self, stream: &StreamName, epoch: u64) {
        let removed = {
            let mut w = self.writers.lock();
            match w.get(stream) {
                Some(cur) if cur.epoch() == epoch => w.remove(stream).is_some(),
                _ => false,
            }
        };
        if removed {
            self.release_key(stream).await;
        }
    }

    async fn release_key(&self, stream: &StreamName) {
        let key = owner_key(stream);
        if let Ok(Some(kv)) = self.store().get(&key).await
            && let Ok(c) = serde_json::from_slice::<OwnerRecord>(&kv.value)
            && c.node == self.node
            && let Err(e) = self
                .store()
                .delete(&key, Expect::Version(kv.mod_revision))
                .await
        {
            warn!(stream = %stream, error = %e, "release ownership");
        }
    }

    /// The owner of `stream` as the metadata store says now.
    pub async fn owner(&self, stream: &StreamName) -> Result<Option<OwnerRecord>, LogError> {
        Ok(self
            .store()
            .get(&owner_key(stream))
            .await?
            .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// This node's writer of `stream`, if it has one.
    pub fn local_writer(&self, stream: &StreamName) -> Option<StreamWriter> {
        self.writers.lock().get(stream).cloned()
    }

    /// Streams this node writes.
    pub fn owned(&self) -> usize {
        self.writers.lock().len()
    }

    /// Seals every stream this node writes and gives their ownership up (clean shutdown).
    pub async fn release_all(&self) {
        let writers: Vec<(StreamName, StreamWriter)> = self.writers.lock().drain().collect();
        for (name, w) in writers {
            if let Err(e) = w.close().await {
                warn!(stream = %name, error = %e, "seal on shutdown");
            }
            self.release_key(&name).await;
        }
        if let Some(k) = self.state.lock().await.keeper.take()
            && let Err(e) = k.revoke().await
        {
            warn!(error = %e, "revoke ownership lease");
        }
    }
}

fn put_leased(key: &str, value: Bytes, lease: LeaseId) -> Op {
    Op::Put {
        key: key.to_string(),
        value,
        expect: Expect::Absent,
        lease: Some(lease),
    }
}
