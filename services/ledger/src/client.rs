//! [`LedgerClient`]: creates, writes, reads, recovers and deletes ledgers on real bookies, with
//! their metadata in a [`MetadataStore`]. It runs the sans-IO cores ([`crate::writer`],
//! [`crate::recovery`]) against the network and the store.

use std::sync::Arc;
use std::time::Duration;

use dlog_api::{EntryId, Epoch, ErrorCode, LedgerId};
use dlog_metadata::{Expect, MetadataError, MetadataStore, Revision};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::bookie_client::{ClientError, ClientOptions};
use crate::metadata::{
    LEDGER_ID_COUNTER, LedgerMetadata, LedgerState, MetadataInvalid, Quorum, ledger_key,
};
use crate::placement;
use crate::pool::BookiePool;
use crate::reader::LedgerReader;
use crate::recovery::{ReadFailure, RecoveryCommand, RecoveryCore, RecoveryError, RecoveryEvent};
use crate::registry::list_bookies;
use crate::writer_task::LedgerWriter;

/// Tuning of the replication client; the defaults suit a cluster on one network.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// The largest entry payload a writer accepts (the bookie's entry limit minus the
    /// envelope).
    pub max_payload: usize,
    /// Connection and request settings towards bookies; `request_timeout` is how long an add
    /// may take before its bookie is replaced.
    pub bookie: ClientOptions,
    /// After the last acknowledgement, how long a writer waits for more appends before it
    /// tells the bookies the LAC explicitly (so that tail readers see the last entry).
    pub lac_flush_delay: Duration,
    /// Appended but unacknowledged payload bytes a writer holds before appends wait.
    pub max_pending_bytes: usize,
    /// How long a read waits for one replica before also asking the next.
    pub speculative_read_delay: Duration,
    /// Seed of the placement's random choices; `None` for a random one.
    pub seed: Option<u64>,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            max_payload: (4 << 20) - 64,
            bookie: ClientOptions {
                request_timeout: Duration::from_secs(10),
                ..ClientOptions::default()
            },
            lac_flush_delay: Duration::from_millis(2),
            max_pending_bytes: 64 << 20,
            speculative_read_delay: Duration::from_millis(50),
            seed: None,
        }
    }
}

/// Why a ledger operation other than an append failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no such ledger {0}")]
    NoSuchLedger(LedgerId),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    InvalidMetadata(#[from] MetadataInvalid),
    #[error("cannot place the ledger: {0}")]
    Placement(#[from] placement::PlacementError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("bookie: {0}")]
    Bookie(#[from] ClientError),
    #[error("entry {entry} of ledger {ledger} is beyond its end ({end:?})")]
    PastEnd {
        ledger: LedgerId,
        entry: EntryId,
        end: Option<EntryId>,
    },
    #[error("no replica of entry {entry} of ledger {ledger} could serve it: {why}")]
    Unreadable {
        ledger: LedgerId,
        entry: EntryId,
        why: String,
    },
}

impl LedgerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            LedgerError::Metadata(e) => e.is_retryable(),
            LedgerError::Recovery(RecoveryError::Unavailable(_)) => true,
            LedgerError::Bookie(e) => e.is_retryable(),
            LedgerError::Unreadable { .. } | LedgerError::Placement(_) => true,
            _ => false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) pool: BookiePool,
    pub(crate) opts: LedgerOptions,
    pub(crate) rng: Mutex<fastrand::Rng>,
}

/// The entry point of the replication client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LedgerClient {
    inner: Arc<Inner>,
}

impl LedgerClient {
    pub fn new(store: Arc<dyn MetadataStore>, opts: LedgerOptions) -> LedgerClient {
        let rng = match opts.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        LedgerClient {
            inner: Arc::new(Inner {
                pool: BookiePool::new(store.clone(), opts.bookie.clone()),
                store,
                opts,
                rng: Mutex::new(rng),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.store
    }

    pub fn options(&self) -> &LedgerOptions {
        &self.inner.opts
    }

    pub(crate) fn pool(&self) -> &BookiePool {
        &self.inner.pool
    }

    pub(crate) fn rng(&self) -> &Mutex<fastrand::Rng> {
        &self.inner.rng
    }

    /// Creates a ledger on an ensemble placed among the registered writable bookies and
    /// returns its writer, writing at `epoch`.
    pub async fn create(&self, quorum: Quorum, epoch: Epoch) -> Result<LedgerWriter, LedgerError> {
        quorum.validate()?;
        let regs = list_bookies(&*self.inner.store)
            .await
            .map_err(|e| LedgerError::Placement(placement_err(&e)))?;
        let ensemble = {
            let mut rng = self.inner.rng.lock();
            placement::choose(
                &regs,
                usize::from(quorum.ensemble),
                &[],
                &Default::default(),
                &mut rng,
            )?
        };
        let id = LedgerId(self.inner.store.next_id(LEDGER_ID_COUNTER).await?);
        let meta = LedgerMetadata::new(id, quorum, epoch, ensemble, now_ms())?;
        let version = self
            .inner
            .store
            .put(&ledger_key(id), meta.encode(), Expect::Absent)
            .await?;
        info!(ledger = %id, ensemble = ?meta.current_ensemble(), "ledger created");
        Ok(LedgerWriter::start(self.inner.clone(), meta, version))
    }

    /// The ledger's metadata and its version.
    pub async fn metadata(&self, id: LedgerId) -> Result<(LedgerMetadata, Revision), LedgerError> {
        let kv = self
            .inner
            .store
            .get(&ledger_key(id))
            .await?
            .ok_or(LedgerError::NoSuchLedger(id))?;
        Ok((LedgerMetadata::decode(&kv.value)?, kv.mod_revision))
    }

    /// A reader of the ledger as its metadata stands now (reads of an open ledger stop at
    /// the LAC).
    pub async fn open_reader(&self, id: LedgerId) -> Result<LedgerReader, LedgerError> {
        let (meta, _) = self.metadata(id).await?;
        Ok(LedgerReader::new(self.inner.clone(), meta))
    }

    /// Fences the ledger against its writer, finds its true end and seals it there; returns
    /// the closed metadata. Closing an already closed ledger returns it unchanged. Safe to run
    /// concurrently with other recoveries of the same ledger: the last to fence wins, the
    /// others fail with a retryable or fenced error.
    pub async fn recover(&self, id: LedgerId) -> Result<LedgerMetadata, LedgerError> {
        let (mut meta, mut version) = self.metadata(id).await?;
        loop {
            if meta.state == LedgerState::Closed {
                return Ok(meta);
            }
            // Raise the epoch in the metadata first: that is what orders recoveries.
            let mut next = meta.clone();
            next.state = LedgerState::InRecovery;
            next.epoch = meta.epoch.next();
            match self
                .inner
                .store
                .put(&ledger_key(id), next.encode(), Expect::Version(version))
                .await
            {
                Ok(v) => {
                    meta = next;
                    version = v;
                    break;
                }
                Err(MetadataError::Conflict { .. }) => {
                    (meta, version) = self.metadata(id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        info!(ledger = %id, epoch = %meta.epoch, "recovering ledger");
        self.run_recovery(meta, version).await
    }

    async fn run_recovery(
        &self,
        meta: LedgerMetadata,
        version: Revision,
    ) -> Result<LedgerMetadata, LedgerError> {
        let (id, epoch) = (meta.id, meta.epoch);
        let max_entry = self.inner.opts.max_payload + 64;
        let (mut core, first) = RecoveryCore::start(meta, max_entry);
        let mut inflight = FuturesUnordered::new();
        let mut queue = first;
        loop {
            for cmd in queue.drain(..) {
                match cmd {
                    RecoveryCommand::Finished(r) => {
                        return r.map_err(LedgerError::from).inspect(|m| {
                            info!(ledger = %id, last_entry = ?m.last_entry, length = m.length, "ledger recovered and closed");
                        });
                    }
                    RecoveryCommand::CloseLedger { last_entry, length } => {
                        let mut closed = core.metadata().clone();
                        closed.state = LedgerState::Closed;
                        closed.last_entry = last_entry;
                        closed.length = length;
                        let store = self.inner.store.clone();
                        inflight.push(Box::pin(async move {
                            let r = store
                                .put(&ledger_key(id), closed.encode(), Expect::Version(version))
                                .await;
                            match r {
                                Ok(_) => RecoveryEvent::Closed { metadata: closed },
                                Err(MetadataError::Conflict { .. }) => RecoveryEvent::CloseFailed {
                                    error: RecoveryError::Fenced,
                                },
                                Err(e) => RecoveryEvent::CloseFailed {
                                    error: RecoveryError::Unavailable(e.to_string()),
                                },
                            }
                        })
                            as futures::future::BoxFuture<'static, RecoveryEvent>);
                    }
                    RecoveryCommand::Fence { bookie } => {
                        let inner = self.inner.clone();
                        inflight.push(Box::pin(async move {
                            let r = match inner.pool.get(&bookie).await {
                                Ok(c) => c.fence(id, epoch).await,
                                Err(e) => Err(e),
                            };
                            match r {
                                Ok(info) => RecoveryEvent::FenceOk { bookie, info },
                                Err(e) => RecoveryEvent::FenceFailed {
                                    bookie,
                                    failure: read_failure(&e),
                                },
                            }
                        }));
                    }
                    RecoveryCommand::Read { bookie, entry } => {
                        let inner = self.inner.clone();
                        inflight.push(Box::pin(async move {
                            let r = match inner.pool.get(&bookie).await {
                                Ok(c) => c.read(id, entry, Some(epoch)).await,
                                Err(e) => Err(e),
                            };
                            match r {
                                Ok(ok) => RecoveryEvent::ReadOk {
                                    bookie,
                                    entry,
                                    data: ok.data,
                                },
                                Err(e) => RecoveryEvent::ReadFailed {
                                    bookie,
                                    entry,
                                    failure: read_failure(&e),
                                },
                            }
                        }));
                    }
                    RecoveryCommand::Send { bookie, add } => {
                        let inner = self.inner.clone();
                        inflight.push(Box::pin(async move {
                            let entry = add.entry;
                            let r = match inner.pool.get(&bookie).await {
                                Ok(c) => c.add(add).await,
                                Err(e) => Err(e),
                            };
                            match r {
                                Ok(()) => RecoveryEvent::AddAcked { bookie, entry },
                                Err(e) => RecoveryEvent::AddFailed {
                                    bookie,
                                    entry,
                                    fenced: e.code() == Some(ErrorCode::Fenced),
                                },
                            }
                        }));
                    }
                }
            }
            let Some(ev) = inflight.next().await else {
                // Every command answered and the core is still waiting: a bug.
                return Err(RecoveryError::Inconsistent(format!(
                    "recovery of ledger {id} stalled with nothing in flight"
                ))
                .into());
            };
            debug!(ledger = %id, event = ?std::mem::discriminant(&ev), "recovery event");
            queue = core.handle(ev);
        }
    }

    /// Deletes the ledger from its bookies and then its metadata. Bookies that cannot be
    /// reached keep their copy until their garbage collector finds the metadata gone.
    pub async fn delete(&self, id: LedgerId) -> Result<(), LedgerError> {
        let (meta, version) = match self.metadata(id).await {
            Ok(x) => x,
            Err(LedgerError::NoSuchLedger(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for b in meta.all_bookies() {
            let r = match self.inner.pool.get(&b).await {
                Ok(c) => c.delete(id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                warn!(ledger = %id, bookie = %b, error = %e, "could not delete the ledger on a bookie");
            }
        }
        match self
            .inner
            .store
            .delete(&ledger_key(id), Expect::Version(version))
            .await
        {
            Ok(_) | Err(MetadataError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn placement_err(e: &dyn std::fmt::Display) -> placement::PlacementError {
    placement::PlacementError {
        needed: 0,
        available: 0,
        why: format!("cannot list bookies: {e}"),
    }
}

/// What a bookie's refusal of a fence or recovery read says about the entry.
fn read_failure(e: &ClientError) -> ReadFailure {
    match e.code() {
        Some(ErrorCode::NoSuchEntry | ErrorCode::NoSuchLedger) => ReadFailure::NoSuchEntry,
        Some(ErrorCode::Fenced) => ReadFailure::Fenced,
        _ => ReadFailure::Unknown(e.to_string()),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
