//! The embedded backend: a [`MetadataStore`] inside the process, persistent in a local folder,
//! for `dlogd standalone` and tests.
//!
//! - Every key lives in memory (metadata is small) and in a RocksDB database in the folder.
//!   A commit checks its expectations, writes one RocksDB batch with the WAL synced, and only
//!   then changes memory, notifies watches and returns: acknowledged commits survive a crash.
//!   Commits are serialized by a lock; reads never wait for a commit's fsync.
//! - On-disk format: key `k` + the UTF-8 key → `[1u8][create_rev u64 LE][mod_rev u64 LE]
//!   [lease i64 LE][value]`; key `m/revision` → the store's revision, u64 LE. Each commit
//!   writes its keys and the revision in one batch.
//! - Leases live in memory only: they belong to this process's holders, so on open every key
//!   still bound to a lease is deleted (one commit) — its holder died with the previous process.
//! - Watch history is kept in memory, bounded in bytes; a watch that falls behind the kept
//!   history fails with [`MetadataError::Compacted`] rather than skip events. After a reopen the
//!   history starts empty at the current revision.

mod disk;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::{MetadataError, Result};
use crate::store::{
    Expect, KeyValue, LeaseId, Listing, MetadataStore, Op, Revision, WATCH_BUFFER, Watch,
    WatchEvent, validate_commit, validate_key, validate_prefix,
};
use disk::Disk;

/// Tuning of the embedded store; the defaults suit standalone mode.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Bytes of change history kept for watches that resume from an older revision.
    pub history_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_bytes: 64 << 20,
        }
    }
}

/// The embedded metadata store. Cheap to clone; the database closes when the last clone drops.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    _close: Arc<tokio_util::sync::DropGuard>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    disk: Disk,
    state: RwLock<State>,
    /// Serializes commits: expectations are checked and the batch written under it.
    commit_lock: Mutex<()>,
    changed: watch::Sender<Revision>,
    closed: CancellationToken,
    opts: EmbeddedOptions,
}

#[derive(Debug)]
struct State {
    revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
    /// Changes after `history_floor`, in revision order.
    history: VecDeque<WatchEvent>,
    history_bytes: usize,
    /// Watches may resume after this revision or later, not before.
    history_floor: Revision,
    leases: HashMap<LeaseId, Lease>,
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`. Must be called within a tokio runtime
    /// (the lease reaper runs as a task).
    pub async fn open(dir: impl AsRef<Path>, opts: EmbeddedOptions) -> Result<EmbeddedStore> {
        let dir = dir.as_ref().to_path_buf();
        let d = dir.clone();
        let (disk, revision, kvs) = tokio::task::spawn_blocking(move || Disk::open(&d))
            .await
            .map_err(|e| MetadataError::Internal(format!("open metadata store: {e}")))??;
        let (changed, _) = watch::channel(revision);
        let closed = CancellationToken::new();
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            disk,
            state: RwLock::new(State {
                revision,
                kvs,
                history: VecDeque::new(),
                history_bytes: 0,
                history_floor: revision,
                leases: HashMap::new(),
            }),
            commit_lock: Mutex::new(()),
            changed,
            closed: closed.clone(),
            opts,
        });
        let orphans: Vec<Op> = inner
            .state
            .read()
            .kvs
            .values()
            .filter(|kv| kv.lease.is_some())
            .map(|kv| Op::delete(kv.key.clone(), Expect::Any))
            .collect();
        if !orphans.is_empty() {
            info!(
                keys = orphans.len(),
                "deleting keys bound to leases of a previous run"
            );
            for chunk in orphans.chunks(crate::store::MAX_OPS_PER_COMMIT) {
                let (i, ops) = (inner.clone(), chunk.to_vec());
                tokio::task::spawn_blocking(move || i.commit_blocking(ops, false))
                    .await
                    .map_err(|e| MetadataError::Internal(format!("delete lease keys: {e}")))??;
            }
        }
        tokio::spawn(reap_leases(Arc::downgrade(&inner), closed.clone()));
        info!(dir = %dir.display(), revision, "embedded metadata store open");
        Ok(EmbeddedStore {
            inner,
            _close: Arc::new(closed.drop_guard()),
        })
    }

    /// The folder the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| MetadataError::Internal(format!("{what}: {e}")))?
    }
}

impl Inner {
    /// Checks, persists and applies one commit. `user` commits may not touch lease-bound keys
    /// through an expired lease; the reaper's own deletes pass `false`.
    fn commit_blocking(&self, ops: Vec<Op>, user: bool) -> Result<Revision> {
        if self.closed.is_cancelled() {
            return Err(MetadataError::Internal("metadata store is closed".into()));
        }
        let _serial = self.commit_lock.lock();
        let now = Instant::now();
        let (revision, changes) = {
            let st = self.state.read();
            for op in &ops {
                let current = st.kvs.get(op.key()).map(|kv| kv.mod_revision);
                if !op.expect().holds(current) {
                    return Err(op.expect().conflict(op.key(), current));
                }
                if let Op::Put { lease: Some(l), .. } = op {
                    let live = st.leases.get(l).is_some_and(|x| x.deadline > now);
                    if user && !live {
                        return Err(MetadataError::LeaseExpired(*l));
                    }
                }
            }
            // Deleting only absent keys changes nothing: no new revision, as in etcd.
            let changes: Vec<Op> = ops
                .into_iter()
                .filter(|op| matches!(op, Op::Put { .. }) || st.kvs.contains_key(op.key()))
                .collect();
            if changes.is_empty() {
                return Ok(st.revision);
            }
            (st.revision + 1, changes)
        };
        let mut events = Vec::with_capacity(changes.len());
        {
            let st = self.state.read();
            for op in &changes {
                events.push(match op {
                    Op::Put {
                        key, value, lease, ..
                    } => WatchEvent::Put(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: st
                            .kvs
                            .get(key)
                            .map(|kv| kv.create_revision)
                            .unwrap_or(revision),
                        mod_revision: revision,
                        lease: *lease,
                    }),
                    Op::Delete { key, .. } => WatchEvent::Delete {
                        key: key.clone(),
                        revision,
                    },
                });
            }
        }
        self.disk.write(revision, &events)?;
        {
            let mut st = self.state.write();
            st.revision = revision;
            for ev in &events {
                let old = match ev {
                    WatchEvent::Put(kv) => st.kvs.insert(kv.key.clone(), kv.clone()),
                    WatchEvent::Delete { key, .. } => st.kvs.remove(key),
                };
                if let Some(l) = old.and_then(|kv| kv.lease)
                    && let Some(lease) = st.leases.get_mut(&l)
                {
                    lease.keys.remove(ev.key());
                }
                if let WatchEvent::Put(KeyValue {
                    key,
                    lease: Some(l),
                    ..
                }) = ev
                    && let Some(lease) = st.leases.get_mut(l)
                {
                    lease.keys.insert(key.clone());
                }
            }
            for ev in events {
                st.history_bytes += event_size(&ev);
                st.history.push_back(ev);
            }
            while st.history_bytes > self.opts.history_bytes {
                let Some(ev) = st.history.pop_front() else {
                    break;
                };
                st.history_bytes -= event_size(&ev);
                // Everything up to the dropped event's revision can no longer be replayed.
                st.history_floor = st.history_floor.max(ev.revision());
            }
        }
        self.changed.send_replace(revision);
        Ok(revision)
    }
}

fn event_size(ev: &WatchEvent) -> usize {
    64 + ev.key().len()
        + match ev {
            WatchEvent::Put(kv) => kv.value.len(),
            WatchEvent::Delete { .. } => 0,
        }
}

#[async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        Ok(self.inner.state.read().kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        validate_prefix(prefix)?;
        let st = self.inner.state.read();
        let kvs = st
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok(Listing {
            kvs,
            revision: st.revision,
        })
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Revision> {
        validate_commit(&ops)?;
        self.blocking("commit", move |i| i.commit_blocking(ops, true))
            .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        validate_prefix(prefix)?;
        {
            let st = self.inner.state.read();
            if after < st.history_floor {
                return Err(MetadataError::Compacted {
                    asked: after,
                    oldest: st.history_floor,
                });
            }
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let stop = CancellationToken::new();
        tokio::spawn(run_watch(
            Arc::downgrade(&self.inner),
            self.inner.changed.subscribe(),
            prefix.to_string(),
            after,
            tx,
            stop.clone(),
            self.inner.closed.clone(),
        ));
        Ok(Watch::new(rx, stop))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() || ttl > Duration::from_secs(24 * 3600) {
            return Err(MetadataError::Invalid(format!(
                "a lease lives between 1 ms and 24 h, not {ttl:?}"
            )));
        }
        let mut st = self.inner.state.write();
        let id = loop {
            let id = LeaseId(fastrand::i64(1..i64::MAX));
            if !st.leases.contains_key(&id) {
                break id;
            }
        };
        st.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
                keys: BTreeSet::new(),
            },
        );
        debug!(lease = %id, ?ttl, "lease granted");
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let mut st = self.inner.state.write();
        let now = Instant::now();
        match st.leases.get_mut(&lease) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(l.ttl)
            }
            _ => Err(MetadataError::LeaseExpired(lease)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let keys: Vec<String> = {
            let mut st = self.inner.state.write();
            // Expire it now; the keys go in one commit below (or by the reaper if that fails).
            match st.leases.get_mut(&lease) {
                Some(l) => {
                    l.deadline = Instant::now();
                    l.keys.iter().cloned().collect()
                }
                None => return Ok(()),
            }
        };
        self.blocking("revoke lease", move |i| expire(i, lease, keys))
            .await
    }
}

/// Deletes an expired lease's keys, then forgets the lease.
fn expire(inner: &Inner, lease: LeaseId, keys: Vec<String>) -> Result<()> {
    for chunk in keys.chunks(crate::store::MAX_OPS_PER_COMMIT) {
        let ops = chunk
            .iter()
            .map(|k| Op::delete(k.clone(), Expect::Any))
            .collect();
        inner.commit_blocking(ops, false)?;
    }
    let mut st = inner.state.write();
    if st.leases.get(&lease).is_some_and(|l| l.keys.is_empty()) {
        st.leases.remove(&lease);
    }
    Ok(())
}

/// Ends leases whose deadline passed.
async fn reap_leases(inner: Weak<Inner>, closed: CancellationToken) {
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let Some(i) = inner.upgrade() else { return };
        let now = Instant::now();
        let expired: Vec<(LeaseId, Vec<String>)> = i
            .state
            .read()
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, l)| (*id, l.keys.iter().cloned().collect()))
            .collect();
        for (id, keys) in expired {
            let n = keys.len();
            let i2 = i.clone();
            match tokio::task::spawn_blocking(move || expire(&i2, id, keys)).await {
                Ok(Ok(())) => debug!(lease = %id, keys = n, "lease expired"),
                Ok(Err(e)) => {
                    warn!(lease = %id, error = %e, "could not delete an expired lease's keys; retrying")
                }
                Err(e) => warn!(lease = %id, error = %e, "lease expiry task failed; retrying"),
            }
        }
    }
}

/// Feeds one watch from the history, waking on every commit.
async fn run_watch(
    inner: Weak<Inner>,
    mut changed: watch::Receiver<Revision>,
    prefix: String,
    mut after: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
    stop: CancellationToken,
    closed: CancellationToken,
) {
    loop {
        changed.borrow_and_update();
        let batch: Result<Vec<WatchEvent>> = {
            let Some(i) = inner.upgrade() else { return };
            let st = i.state.read();
            if after < st.history_floor {
                Err(MetadataError::Compacted {
                    asked: after,
                    oldest: st.history_floor,
                })
            } else {
                let start = st.history.partition_point(|e| e.revision() <= after);
                let evs = st
                    .history
                    .range(start..)
                    .filter(|e| e.key().starts_with(&prefix))
                    .cloned()
                    .collect();
                after = after.max(st.revision);
                Ok(evs)
            }
        };
        match batch {
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(evs) => {
                for ev in evs {
                    tokio::select! {
                        r = tx.send(Ok(ev)) => if r.is_err() { return },
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
            _ = closed.cancelled() => return,
        }
    }
}
