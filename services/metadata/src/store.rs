//! The [`MetadataStore`] trait and the values it trades in.
//!
//! The model is etcd's, narrowed to what dlog needs:
//! - A store holds UTF-8 keys and byte values. Every change to the store gets the next
//!   **revision** (a store-wide, strictly increasing `u64`); a key remembers the revision that
//!   created it and the one that last changed it (its *version* for compare-and-set).
//! - Writes are **commits**: a list of puts and deletes, each with an [`Expect`]ation about the
//!   key's current state, applied all together or not at all, and durable before they return.
//! - A **listing** of a prefix comes with the revision it was taken at; a **watch** from that
//!   revision then delivers every later change under the prefix, in revision order, without a
//!   gap, across reconnections to the store. If the store no longer has the history a watch
//!   needs, the watch fails with [`MetadataError::Compacted`] instead of skipping events.
//! - A **lease** is granted with a time to live and kept alive by its holder; keys put with a
//!   lease are deleted (with events) when it expires or is revoked. This is how a process's
//!   registration disappears when the process dies.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{MetadataError, Result};

/// A store-wide, strictly increasing change number. Revision 0 is "before anything".
pub type Revision = u64;

/// The longest key the store accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The largest value the store accepts. etcd's default request limit is 1.5 MiB; dlog's values
/// (ledger and stream metadata) are far smaller.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// The most operations one commit may hold (etcd's default `--max-txn-ops` is 128).
pub const MAX_OPS_PER_COMMIT: usize = 128;

/// A lease's id, as the store issued it (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A key and its value, as of some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision that created the key (since it was last absent).
    pub create_revision: Revision,
    /// The revision that last changed it: what [`Expect::Version`] compares against.
    pub mod_revision: Revision,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

/// What a commit expects of a key before it changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: apply whatever the key's state.
    Any,
    /// The key does not exist (create-if-absent).
    Absent,
    /// The key exists and was last changed at this revision (update-if-version).
    Version(Revision),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Any => f.write_str("any state"),
            Expect::Absent => f.write_str("absent"),
            Expect::Version(v) => write!(f, "version {v}"),
        }
    }
}

impl Expect {
    /// Whether a key in state `current` (its mod revision, or `None` if absent) satisfies this.
    pub fn holds(self, current: Option<Revision>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }

    /// The conflict error for `key` found in state `current`.
    pub fn conflict(self, key: &str, current: Option<Revision>) -> MetadataError {
        MetadataError::Conflict {
            key: key.to_string(),
            expected: self.to_string(),
            found: match current {
                None => "absent".to_string(),
                Some(v) => format!("version {v}"),
            },
        }
    }
}

/// One change in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        expect: Expect,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
        expect: Expect,
    },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>, expect: Expect) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            expect,
            lease: None,
        }
    }

    pub fn delete(key: impl Into<String>, expect: Expect) -> Op {
        Op::Delete {
            key: key.into(),
            expect,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    pub fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }
}

/// Checks a commit's shape the same way for every backend.
pub fn validate_commit(ops: &[Op]) -> Result<()> {
    if ops.is_empty() {
        return Err(MetadataError::Invalid(
            "a commit needs at least one operation".into(),
        ));
    }
    if ops.len() > MAX_OPS_PER_COMMIT {
        return Err(MetadataError::Invalid(format!(
            "a commit holds at most {MAX_OPS_PER_COMMIT} operations, not {}",
            ops.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        validate_key(op.key())?;
        if !seen.insert(op.key()) {
            return Err(MetadataError::Invalid(format!(
                "key {:?} appears twice in one commit",
                op.key()
            )));
        }
        if let Op::Put { value, .. } = op
            && value.len() > MAX_VALUE_LEN
        {
            return Err(MetadataError::Invalid(format!(
                "value of {:?} is {} bytes; the limit is {MAX_VALUE_LEN}",
                op.key(),
                value.len()
            )));
        }
    }
    Ok(())
}

/// A key is 1..=[`MAX_KEY_LEN`] bytes without NUL.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.contains('\0') {
        return Err(MetadataError::Invalid(format!(
            "a key is 1 to {MAX_KEY_LEN} bytes without NUL; got {} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// A prefix is like a key but may be empty (everything).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix)
}

/// Every key under a prefix, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// In key order.
    pub kvs: Vec<KeyValue>,
    /// The store's revision when the listing was taken: watch from here to miss nothing.
    pub revision: Revision,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key now holds this value (`kv.mod_revision` is the change's revision).
    Put(KeyValue),
    /// The key was deleted at this revision (by a commit or a lease's end).
    Delete { key: String, revision: Revision },
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// The receiving end of a watch. Events arrive in revision order; an error ends the watch.
/// Dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    _stop: tokio_util::sync::DropGuard,
}

/// How many events a watch buffers before its producer waits for the consumer.
pub(crate) const WATCH_BUFFER: usize = 1024;

impl Watch {
    pub(crate) fn new(
        rx: mpsc::Receiver<Result<WatchEvent>>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Watch {
        Watch {
            rx,
            _stop: stop.drop_guard(),
        }
    }

    /// The next event; `None` once the watch has ended (the store closed), after an error.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        self.rx.recv().await
    }
}

/// A versioned, transactional key-value store with watches and leases. See the module docs.
#[async_trait]
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// The key's current value, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, in key order, with the revision of the listing.
    async fn list(&self, prefix: &str) -> Result<Listing>;

    /// Applies all of `ops` atomically if every expectation holds, and returns the revision
    /// of the change; otherwise applies nothing and fails with [`MetadataError::Conflict`]
    /// naming a key whose expectation failed. Durable once it returns.
    async fn commit(&self, ops: Vec<Op>) -> Result<Revision>;

    /// Every change under `prefix` with a revision above `after`, in order, then live.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;

    /// Grants a lease that lives `ttl` (rounded up to whole seconds by etcd) unless kept alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews the lease for its full time to live, which is returned; fails with
    /// [`MetadataError::LeaseExpired`] if it is gone.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Ends the lease now and deletes its keys. Revoking an unknown lease is not an error.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Puts one key. Returns the revision of the change.
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Revision> {
        self.commit(vec![Op::put(key, value, expect)]).await
    }

    /// Puts one key bound to `lease`: it disappears when the lease ends.
    async fn put_leased(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        lease: LeaseId,
    ) -> Result<Revision> {
        self.commit(vec![Op::Put {
            key: key.to_string(),
            value,
            expect,
            lease: Some(lease),
        }])
        .await
    }

    /// Deletes one key. Deleting an absent key with [`Expect::Any`] succeeds.
    async fn delete(&self, key: &str, expect: Expect) -> Result<Revision> {
        self.commit(vec![Op::delete(key, expect)]).await
    }

    /// Allocates the next id of the counter `name` (1, 2, 3 …; never the same twice, even across
    /// processes and restarts).
    async fn next_id(&self, name: &str) -> Result<u64> {
        Ok(self.next_ids(name, 1).await?.start)
    }

    /// Allocates `count` consecutive ids of the counter `name` at once.
    async fn next_ids(&self, name: &str, count: u64) -> Result<std::ops::Range<u64>> {
        crate::ids::allocate(self, name, count).await
    }
}
