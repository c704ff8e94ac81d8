//! The bookie: opens a data dir (identity, index, journal replay), runs the journal, maintenance
//! and disk threads, and implements the protocol operations on top of them.
//!
//! Data dir layout:
//!
//! ```text
//! DATA/COOKIE        identity (see cookie.rs)
//! DATA/LOCK          held (flock) while a bookie process uses the dir
//! DATA/journal/      journal files 0000000000000001.jnl …, spare files, *.free recycled files
//! DATA/index/        RocksDB: entry index, ledger state, usage
//! ```

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::wire::bookie::{
    AddBatch, AddEntry, BookieInfo, LacInfo, MAX_LONG_POLL_MS, ReadEntry, ReadEntryOk, ReadLac,
    WriteLac,
};
use dlog_api::{Entry, EntryId, Epoch, LedgerId};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::cache::RecentCache;
use crate::config::BookieConfig;
use crate::cookie::Cookie;
use crate::error::BookieError;
use crate::gc::{GcReport, Maintenance};
use crate::health::Health;
use crate::index::{AppliedPos, Index};
use crate::journal::file::{file_name, list_files};
use crate::journal::format::Record;
use crate::journal::read::FileSet;
use crate::journal::spares::Spares;
use crate::journal::writer::{Completion, JournalHandle};
use crate::ledgers::{LedgerTable, raise};
use crate::signal::Signal;
mod open;
pub use open::journal_reserve;

/// A running bookie. Cheap to clone; every clone is the same bookie.
#[derive(Debug, Clone)]
pub struct Bookie {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: BookieConfig,
    cookie: Cookie,
    journal_dir: PathBuf,
    health: Arc<Health>,
    ledgers: Arc<LedgerTable>,
    index: Arc<Index>,
    journal: JournalHandle,
    files: Arc<FileSet>,
    cache: Arc<RecentCache>,
    maintenance: Arc<Maintenance>,
    spares: Arc<Spares>,
    signal: Arc<Signal>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: File,
}

/// Resolves once an operation is durable.
async fn durable(rx: oneshot::Receiver<Result<(), BookieError>>) -> Result<(), BookieError> {
    rx.await.unwrap_or(Err(BookieError::ShuttingDown))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, BookieError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(BookieError::io(format!("spawn thread {name}")))
}

impl Bookie {
    pub fn config(&self) -> &BookieConfig {
        &self.inner.cfg
    }

    pub fn cookie(&self) -> &Cookie {
        &self.inner.cookie
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Admits an add and queues it in the journal; the returned future resolves once the entry
    /// is durable. Checks (state, size, checksum, deletion, fencing) happen before this returns,
    /// in the order of calls, so adds to one ledger are journaled in the order they arrive.
    pub fn add(
        &self,
        a: AddEntry,
    ) -> Result<impl Future<Output = Result<(), BookieError>> + Send + 'static, BookieError> {
        self.add_batch(AddBatch {
            ledger: a.ledger,
            epoch: a.epoch,
            lac: a.lac,
            recovery: a.recovery,
            entries: vec![(a.entry, a.data)],
        })
    }

    /// Admits several entries of one ledger together — all or none, under one fencing decision
    /// — and journals them in one commit.
    pub fn add_batch(
        &self,
        b: AddBatch,
    ) -> Result<impl Future<Output = Result<(), BookieError>> + Send + 'static, BookieError> {
        let (tx, rx) = oneshot::channel();
        self.add_batch_then(b, Completion::Channel(tx))
            .map_err(|(e, _)| e)?;
        Ok(durable(rx))
    }

    /// [`Bookie::add_batch`], telling `done` (on the journal's apply thread) instead of
    /// returning a future: how the server answers without a task per request. A refused batch
    /// gives `done` back with the error.
    pub fn add_batch_then(
        &self,
        b: AddBatch,
        done: Completion,
    ) -> Result<(), (BookieError, Completion)> {
        let inner = &self.inner;
        let highest = match self.check_batch(&b) {
            Ok(h) => h,
            Err(e) => return Err((e, done)),
        };
        let slot = inner.ledgers.get_or_create(b.ledger);
        let mut st = slot.lock();
        if let Err(e) = st.admit_adds(b.ledger, b.epoch, highest) {
            return Err((e, done));
        }
        let records = b
            .entries
            .into_iter()
            .map(|(entry, data)| Record::Add {
                ledger: b.ledger,
                entry,
                epoch: b.epoch,
                lac: b.lac,
                data,
            })
            .collect();
        // Queued while holding the ledger's lock: a fence cannot slip in between.
        inner.journal.submit_then(records, done);
        drop(st);
        Ok(())
    }

    /// The checks that need no lock: state, sizes, reserved ids, checksums. Returns the highest
    /// entry id of the batch.
    fn check_batch(&self, b: &AddBatch) -> Result<Option<EntryId>, BookieError> {
        let inner = &self.inner;
        inner.health.check_writable()?;
        let max = inner.cfg.max_entry_len;
        let mut highest = None;
        for (entry, data) in &b.entries {
            if data.len() > max {
                return Err(BookieError::EntryTooLarge {
                    len: data.len(),
                    limit: max,
                });
            }
            if entry.0 == dlog_api::ids::NO_ENTRY {
                return Err(BookieError::BadRequest(format!(
                    "entry id {entry} is reserved"
                )));
            }
            Entry::verify(data, b.ledger, *entry, max).map_err(|source| BookieError::BadEntry {
                ledger: b.ledger,
                entry: *entry,
                source,
            })?;
            raise(&mut highest, Some(*entry));
        }
        Ok(highest)
    }

    /// Fences `ledger` at `epoch`: from the moment this returns, adds below `epoch` are refused;
    /// the future resolves once the fence is durable, with what the bookie held when it fenced.
    /// Allowed in read-only mode (recovery must be able to fence a full bookie).
    pub fn fence(
        &self,
        ledger: LedgerId,
        epoch: Epoch,
    ) -> Result<impl Future<Output = Result<LacInfo, BookieError>> + Send + 'static, BookieError>
    {
        let inner = &self.inner;
        inner.health.check_journal()?;
        let slot = inner.ledgers.get_or_create(ledger);
        let mut st = slot.lock();
        let info = st.fence(ledger, epoch)?;
        // Already durable at this epoch or higher, and nothing of a lower epoch can be queued
        // behind it: no journal write needed.
        let rx = (st.durable.fence_epoch < epoch)
            .then(|| inner.journal.submit(Record::Fence { ledger, epoch }));
        drop(st);
        Ok(async move {
            if let Some(rx) = rx {
                durable(rx).await?;
            }
            Ok(info)
        })
    }

    pub fn write_lac(
        &self,
        w: WriteLac,
    ) -> Result<impl Future<Output = Result<(), BookieError>> + Send + 'static, BookieError> {
        let inner = &self.inner;
        inner.health.check_writable()?;
        if w.lac.0 == dlog_api::ids::NO_ENTRY {
            return Err(BookieError::BadRequest("lac u64::MAX is reserved".into()));
        }
        let slot = inner
            .ledgers
            .get(w.ledger)
            .ok_or(BookieError::NoSuchLedger(w.ledger))?;
        let st = slot.lock();
        st.check_epoch(w.ledger, w.epoch)?;
        let rx = inner.journal.submit(Record::WriteLac {
            ledger: w.ledger,
            epoch: w.epoch,
            lac: w.lac,
        });
        drop(st);
        Ok(durable(rx))
    }

    /// Deletes a ledger: from now on it reads as deleted and refuses adds; its entries leave the
    /// index once the delete is durable, and GC reclaims its journal space.
    pub fn delete(
        &self,
        ledger: LedgerId,
    ) -> Result<impl Future<Output = Result<(), BookieError>> + Send + 'static, BookieError> {
        let inner = &self.inner;
        inner.health.check_journal()?;
        let slot = inner.ledgers.get_or_create(ledger);
        let mut st = slot.lock();
        let rx = (!st.durable.deleted).then(|| {
            st.admit.deleted = true;
            inner.journal.submit(Record::Delete { ledger })
        });
        drop(st);
        let signal = inner.signal.clone();
        Ok(async move {
            if let Some(rx) = rx {
                durable(rx).await?;
                signal.kick();
            }
            Ok(())
        })
    }

    fn missing(&self, ledger: LedgerId, entry: Option<EntryId>) -> BookieError {
        match (self.inner.health.damaged(), entry) {
            (Some(d), Some(entry)) => BookieError::UnknownEntry {
                ledger,
                entry,
                reason: format!("not found, and this bookie may have lost data: {d}"),
            },
            (Some(d), None) => BookieError::UnknownEntry {
                ledger,
                entry: EntryId(0),
                reason: format!("ledger not found, and this bookie may have lost data: {d}"),
            },
            (None, Some(entry)) => BookieError::NoSuchEntry { ledger, entry },
            (None, None) => BookieError::NoSuchLedger(ledger),
        }
    }

    /// Reads one entry, verified against its checksum. With `fence`, fences first.
    pub async fn read(&self, r: ReadEntry) -> Result<ReadEntryOk, BookieError> {
        let (ok, ()) = self.read_reserving(r, |_| async {}).await?;
        Ok(ok)
    }

    /// [`Bookie::read`], calling `reserve` with the entry's length before its bytes are
    /// loaded or answered, and returning what `reserve` gave: the server holds a share of its
    /// per-connection memory budget that way.
    pub async fn read_reserving<F, Fut, P>(
        &self,
        r: ReadEntry,
        reserve: F,
    ) -> Result<(ReadEntryOk, P), BookieError>
    where
        F: FnOnce(usize) -> Fut,
        Fut: Future<Output = P>,
    {
        if let Some(epoch) = r.fence {
            self.fence(r.ledger, epoch)?.await?;
        }
        let slot = self
            .inner
            .ledgers
            .get(r.ledger)
            .ok_or_else(|| self.missing(r.ledger, None))?;
        let (deleted, lac) = {
            let st = slot.lock();
            (st.admit.deleted, st.durable.lac)
        };
        if deleted {
            return Err(BookieError::LedgerDeleted(r.ledger));
        }
        let (data, held) = match self.inner.cache.get(r.ledger, r.entry) {
            Some(d) => {
                let held = reserve(d.len()).await;
                (d, held)
            }
            None => {
                let this = self.clone();
                let loc = tokio::task::spawn_blocking(move || {
                    this.inner
                        .index
                        .get_entry(r.ledger, r.entry)
                        .map(|l| l.map(|l| l.len))
                })
                .await
                .map_err(|e| BookieError::Internal(format!("read task: {e}")))??
                .ok_or_else(|| self.missing(r.ledger, Some(r.entry)))?;
                let held = reserve(loc as usize).await;
                let this = self.clone();
                let data = tokio::task::spawn_blocking(move || this.read_stored(r.ledger, r.entry))
                    .await
                    .map_err(|e| BookieError::Internal(format!("read task: {e}")))??;
                (data, held)
            }
        };
        Ok((
            ReadEntryOk {
                ledger: r.ledger,
                entry: r.entry,
                lac,
                data,
            },
            held,
        ))
    }

    /// Reads an entry from the index and journal files. Blocking.
    fn read_stored(&self, ledger: LedgerId, entry: EntryId) -> Result<Bytes, BookieError> {
        let inner = &self.inner;
        for attempt in 0..3 {
            let Some(loc) = inner.index.get_entry(ledger, entry)? else {
                return Err(self.missing(ledger, Some(entry)));
            };
            match inner.files.read(&loc) {
                Ok(data) => {
                    if let Err(e) = Entry::verify(&data, ledger, entry, inner.cfg.max_entry_len) {
                        error!(%ledger, %entry, file_id = loc.file_id, offset = loc.offset,
                               error = %e, "stored entry is corrupt");
                        return Err(BookieError::UnknownEntry {
                            ledger,
                            entry,
                            reason: format!("stored copy is corrupt: {e}"),
                        });
                    }
                    return Ok(data);
                }
                // Compaction moved it and removed the file meanwhile: look it up again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 2 => continue,
                Err(e) => {
                    error!(%ledger, %entry, file_id = loc.file_id, error = %e, "cannot read stored entry");
                    return Err(BookieError::UnknownEntry {
                        ledger,
                        entry,
                        reason: format!("cannot read journal file {}: {e}", file_name(loc.file_id)),
                    });
                }
            }
        }
        Err(BookieError::UnknownEntry {
            ledger,
            entry,
            reason: "entry kept moving during the read".into(),
        })
    }

    /// The ledger's LAC; if it is not beyond `known`, waits (up to the asked time, at most
    /// [`MAX_LONG_POLL_MS`]) until it is.
    pub async fn read_lac(&self, r: ReadLac) -> Result<LacInfo, BookieError> {
        let slot = self
            .inner
            .ledgers
            .get(r.ledger)
            .ok_or_else(|| self.missing(r.ledger, None))?;
        let beyond = move |lac: &Option<EntryId>| *lac > r.known;
        let mut rx = slot.subscribe();
        if !beyond(&rx.borrow()) && r.wait_ms > 0 {
            let wait = Duration::from_millis(u64::from(r.wait_ms.min(MAX_LONG_POLL_MS)));
            let _ = tokio::time::timeout(wait, rx.wait_for(beyond)).await;
        }
        let st = slot.lock();
        if st.admit.deleted {
            return Err(BookieError::LedgerDeleted(r.ledger));
        }
        Ok(LacInfo {
            lac: st.durable.lac,
            last_entry: st.durable.last_entry,
            fence_epoch: st.durable.fence_epoch,
        })
    }

    pub fn info(&self) -> BookieInfo {
        let inner = &self.inner;
        let (state, state_reason) = inner.health.state();
        let (disk_total, disk_used) = crate::disk::disk_usage(&inner.journal_dir).unwrap_or((0, 0));
        let journal_files = list_files(&inner.journal_dir).map_or(0, |f| f.len() as u64);
        BookieInfo {
            bookie_id: inner.cookie.bookie_id.to_string(),
            instance_id: inner.cookie.instance_id,
            state,
            damaged: inner.health.damaged().is_some(),
            disk_total,
            disk_used,
            journal_bytes: journal_files * inner.cfg.journal.file_size,
            ledgers: inner.ledgers.live_count(),
            state_reason,
        }
    }

    /// Waits until everything queued so far is durable.
    pub async fn sync(&self) -> Result<(), BookieError> {
        durable(self.inner.journal.barrier()).await
    }

    /// Runs a garbage-collection round now (after flushing the index). Blocking.
    pub fn gc_now(&self) -> Result<GcReport, BookieError> {
        self.inner.maintenance.gc()
    }

    /// What garbage collection has done since the bookie opened.
    pub fn gc_totals(&self) -> GcReport {
        *self.inner.maintenance.gc_totals.lock()
    }

    /// Flushes the index now. Blocking.
    pub fn flush_index(&self) -> Option<AppliedPos> {
        self.inner.maintenance.flush()
    }

    /// Checks disk usage now (the monitor thread does this periodically).
    pub fn check_disk(&self) -> Option<f64> {
        crate::disk::check(
            &self.inner.journal_dir,
            &self.inner.cfg.disk,
            &self.inner.health,
        )
    }

    /// Stops taking writes, makes everything queued durable, flushes the index and stops the
    /// threads. Blocking; idempotent. Dropping the last clone does the same.
    pub fn shutdown(&self) {
        self.inner.stop(true);
    }

    /// Stops like a crash would, as far as the index is concerned: the journal still finishes
    /// what is queued, but the index is not flushed, so the next open must replay the journal.
    #[cfg(feature = "testing")]
    pub fn halt_without_index_flush(&self) {
        self.inner.stop(false);
    }
}

impl Inner {
    fn stop(&self, flush_index: bool) {
        let threads = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return;
        }
        self.health.set_draining();
        self.journal.shutdown();
        self.spares.stop();
        self.signal.stop();
        for t in threads {
            let _ = t.join();
        }
        if flush_index {
            self.maintenance.flush();
        }
        info!(bookie_id = %self.cookie.bookie_id, "bookie stopped");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop(true);
    }
}
