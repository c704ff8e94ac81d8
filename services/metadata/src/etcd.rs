//! The etcd backend, for clusters: every dlog key lives under a root prefix (default `/dlog/`)
//! in an etcd v3 cluster, so several dlog clusters (or test runs) can share one etcd.
//!
//! - A commit is one etcd transaction: `Expect::Absent` compares the key's version with 0,
//!   `Expect::Version(r)` its mod revision with `r`; on failure the transaction reads the
//!   compared keys back so the error can name the one that changed.
//! - Revisions are etcd's own, so a listing's revision and a watch's start line up exactly.
//! - A watch is re-established from the revision after the last one it delivered whenever its
//!   stream breaks (etcd restarted, connection lost), so no event is missed or repeated; if etcd
//!   has compacted that revision away the watch ends with [`MetadataError::Compacted`].
//! - Leases are etcd leases; etcd counts their time to live in whole seconds.
//! - Unary calls carry a deadline (`request_timeout`); the gRPC channel reconnects by itself and
//!   HTTP/2 keep-alives notice a dead server under a long-lived watch.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::{MetadataError, Result};
use crate::store::{
    Expect, KeyValue, LeaseId, Listing, MetadataStore, Op, Revision, WATCH_BUFFER, Watch,
    WatchEvent, validate_commit, validate_key, validate_prefix,
};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// Every key is stored under this prefix; it must start and end with `/`.
    pub root: String,
    pub connect_timeout: Duration,
    /// Deadline of each unary call (get, list page, commit, lease calls).
    pub request_timeout: Duration,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            root: "/dlog/".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Keys per page when listing a prefix.
const PAGE: i64 = 1000;

/// The etcd-backed metadata store. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    opts: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.opts.endpoints)
            .field("root", &self.opts.root)
            .finish()
    }
}

impl EtcdStore {
    /// Connects and checks that etcd answers.
    pub async fn connect(opts: EtcdOptions) -> Result<EtcdStore> {
        if opts.endpoints.is_empty() || opts.endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err(MetadataError::Invalid(
                "etcd needs at least one endpoint (host:port)".into(),
            ));
        }
        if !opts.root.starts_with('/') || !opts.root.ends_with('/') || opts.root.len() > 256 {
            return Err(MetadataError::Invalid(format!(
                "the etcd root prefix must start and end with '/' (at most 256 bytes), not {:?}",
                opts.root
            )));
        }
        let copts = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let eps = opts.endpoints.clone();
        let unreachable = |e: String| {
            MetadataError::Unavailable(format!("connect to etcd at {}: {e}", eps.join(",")))
        };
        let client = tokio::time::timeout(opts.connect_timeout, Client::connect(&eps, Some(copts)))
            .await
            .map_err(|_| unreachable(format!("no answer in {:?}", opts.connect_timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let store = EtcdStore { client, opts };
        // Channels connect lazily; ask something so that a wrong address fails here.
        let mut m = store.client.maintenance_client();
        store
            .deadline(async move { m.status().await })
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        info!(endpoints = ?store.opts.endpoints, root = %store.opts.root, "connected to etcd");
        Ok(store)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.opts.root)
    }

    async fn deadline<T>(
        &self,
        f: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.opts.request_timeout, f).await {
            Ok(r) => r.map_err(map_err),
            Err(_) => Err(MetadataError::Unavailable(format!(
                "etcd did not answer within {:?}",
                self.opts.request_timeout
            ))),
        }
    }

    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        convert(&self.opts.root, kv)
    }
}

fn convert(root: &str, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key())
        .ok()
        .and_then(|k| k.strip_prefix(root))
        .ok_or_else(|| {
            MetadataError::Corrupt(format!(
                "etcd returned key {:?} outside the root {root:?}",
                String::from_utf8_lossy(kv.key())
            ))
        })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision() as u64,
        mod_revision: kv.mod_revision() as u64,
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

fn map_err(e: etcd_client::Error) -> MetadataError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => {
            use tonic::Code;
            match s.code() {
                Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                    MetadataError::Invalid(format!("etcd refused the request: {}", s.message()))
                }
                // etcd answers NotFound only for leases ("requested lease not found"); the
                // caller knows which lease and fills it in (`for_lease`).
                Code::NotFound if s.message().contains("lease") => {
                    MetadataError::LeaseExpired(LeaseId(0))
                }
                Code::NotFound => MetadataError::Invalid(format!("etcd: {}", s.message())),
                Code::Unauthenticated | Code::PermissionDenied => {
                    MetadataError::Invalid(format!("etcd denied access: {}", s.message()))
                }
                Code::Internal | Code::DataLoss => {
                    MetadataError::Internal(format!("etcd failed: {}", s.message()))
                }
                _ => MetadataError::Unavailable(format!("etcd: {}", s.message())),
            }
        }
        E::LeaseKeepAliveError(m) if m.contains("not found") => {
            MetadataError::LeaseExpired(LeaseId(0))
        }
        E::InvalidArgs(m) => MetadataError::Invalid(m),
        E::TransportError(t) => MetadataError::Unavailable(format!("etcd transport: {t}")),
        E::IoError(io) => MetadataError::Unavailable(format!("etcd io: {io}")),
        other => MetadataError::Unavailable(format!("etcd: {other}")),
    }
}

/// Names the lease in a [`MetadataError::LeaseExpired`] that `map_err` could not attribute.
fn for_lease(e: MetadataError, lease: Option<LeaseId>) -> MetadataError {
    match e {
        MetadataError::LeaseExpired(LeaseId(0)) => {
            MetadataError::LeaseExpired(lease.unwrap_or(LeaseId(0)))
        }
        e => e,
    }
}

/// The end of the key range that holds every key starting with `prefix` (etcd's convention).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // UTF-8 never contains 0xff, and the root is never empty, so the last byte can be raised.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn lease_of(ops: &[Op]) -> Option<LeaseId> {
    ops.iter().find_map(|op| match op {
        Op::Put { lease, .. } => *lease,
        Op::Delete { .. } => None,
    })
}

#[async_trait]
impl MetadataStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let mut kv = self.client.kv_client();
        let full = self.full(key);
        let resp = self
            .deadline(async move { kv.get(full, None).await })
            .await?;
        resp.kvs().first().map(|x| self.convert(x)).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        validate_prefix(prefix)?;
        let full = self.full(prefix);
        let end = prefix_end(&full);
        let mut kvs = Vec::new();
        let mut from = full.clone().into_bytes();
        let mut revision = 0i64;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                // Later pages read the same snapshot as the first.
                opts = opts.with_revision(revision);
            }
            let mut c = self.client.kv_client();
            let key = from.clone();
            let resp = self
                .deadline(async move { c.get(key, Some(opts)).await })
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for x in resp.kvs() {
                kvs.push(self.convert(x)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing {
            kvs,
            revision: revision as u64,
        })
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Revision> {
        validate_commit(&ops)?;
        let mut compares = Vec::new();
        let mut checked = Vec::new();
        let mut then = Vec::with_capacity(ops.len());
        for op in &ops {
            let full = self.full(op.key());
            match op.expect() {
                Expect::Any => {}
                Expect::Absent => {
                    compares.push(Compare::version(full.clone(), CompareOp::Equal, 0))
                }
                Expect::Version(v) => compares.push(Compare::mod_revision(
                    full.clone(),
                    CompareOp::Equal,
                    v as i64,
                )),
            }
            if op.expect() != Expect::Any {
                checked.push((op.key().to_string(), op.expect(), full.clone()));
            }
            then.push(match op {
                Op::Put { value, lease, .. } => TxnOp::put(
                    full,
                    value.to_vec(),
                    lease.map(|l| PutOptions::new().with_lease(l.0)),
                ),
                Op::Delete { .. } => TxnOp::delete(full, None),
            });
        }
        let or_else: Vec<TxnOp> = checked
            .iter()
            .map(|(_, _, full)| TxnOp::get(full.clone(), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(then).or_else(or_else);
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async move { kv.txn(txn).await })
            .await
            .map_err(|e| for_lease(e, lease_of(&ops)))?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()) as u64);
        }
        // Find the expectation that failed from the values read back.
        for ((key, expect, _), r) in checked.iter().zip(resp.op_responses()) {
            let TxnOpResponse::Get(g) = r else { continue };
            let current = g.kvs().first().map(|x| x.mod_revision() as u64);
            if !expect.holds(current) {
                return Err(expect.conflict(key, current));
            }
        }
        // A key changed and changed back between the compare and the read: still a conflict.
        let (key, expect, _) = &checked[0];
        Err(MetadataError::Conflict {
            key: key.clone(),
            expected: expect.to_string(),
            found: "a concurrent change".into(),
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        validate_prefix(prefix)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let stop = CancellationToken::new();
        tokio::spawn(run_watch(
            self.client.clone(),
            self.opts.root.clone(),
            self.full(prefix),
            after,
            tx,
            stop.clone(),
        ));
        Ok(Watch::new(rx, stop))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() || ttl > Duration::from_secs(24 * 3600) {
            return Err(MetadataError::Invalid(format!(
                "a lease lives between 1 ms and 24 h, not {ttl:?}"
            )));
        }
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut l = self.client.lease_client();
        let resp = self
            .deadline(async move { l.grant(secs as i64, None).await })
            .await?;
        debug!(lease = %LeaseId(resp.id()), secs, "lease granted");
        Ok(LeaseId(resp.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let mut l = self.client.lease_client();
        let resp = self
            .deadline(async move {
                let (mut keeper, mut stream) = l.keep_alive(lease.0).await?;
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await
            .map_err(|e| for_lease(e, Some(lease)))?;
        match resp {
            Some(r) if r.ttl() > 0 => Ok(Duration::from_secs(r.ttl() as u64)),
            Some(_) => Err(MetadataError::LeaseExpired(lease)),
            None => Err(MetadataError::Unavailable(
                "etcd closed the lease keep-alive stream".into(),
            )),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut l = self.client.lease_client();
        match self.deadline(async move { l.revoke(lease.0).await }).await {
            Ok(_) => Ok(()),
            Err(MetadataError::LeaseExpired(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Feeds one watch, re-establishing it after the last delivered revision when the stream breaks.
async fn run_watch(
    client: Client,
    root: String,
    full_prefix: String,
    after: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
    stop: CancellationToken,
) {
    let mut next = after + 1;
    let mut backoff = Duration::from_millis(50);
    let end = prefix_end(&full_prefix);
    loop {
        let mut w = client.watch_client();
        let opts = WatchOptions::new()
            .with_range(end.clone())
            .with_start_revision(next as i64);
        let key = full_prefix.clone();
        let stream = tokio::select! {
            r = w.watch(key, Some(opts)) => r,
            _ = stop.cancelled() => return,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "etcd watch could not start; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = stop.cancelled() => return,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => {
                    debug!(next, "etcd watch stream ended; re-establishing");
                    break;
                }
            };
            backoff = Duration::from_millis(50);
            if resp.compact_revision() > 0 {
                let _ = tx
                    .send(Err(MetadataError::Compacted {
                        asked: next - 1,
                        oldest: resp.compact_revision() as u64,
                    }))
                    .await;
                return;
            }
            if resp.canceled() {
                warn!(reason = resp.cancel_reason(), "etcd cancelled a watch");
                let _ = tx
                    .send(Err(MetadataError::Unavailable(format!(
                        "etcd cancelled the watch: {}",
                        resp.cancel_reason()
                    ))))
                    .await;
                return;
            }
            let mut last = None;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let item = match ev.event_type() {
                    etcd_client::EventType::Put => convert(&root, kv).map(WatchEvent::Put),
                    etcd_client::EventType::Delete => {
                        convert(&root, kv).map(|k| WatchEvent::Delete {
                            key: k.key,
                            revision: kv.mod_revision() as u64,
                        })
                    }
                };
                last = Some(kv.mod_revision() as u64);
                let failed = item.is_err();
                tokio::select! {
                    r = tx.send(item) => if r.is_err() { return },
                    _ = stop.cancelled() => return,
                }
                if failed {
                    return;
                }
            }
            if let Some(r) = last {
                next = r + 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
