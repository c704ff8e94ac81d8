//! Maintenance: flushing the index, and garbage collection of journal files.
//!
//! - Every `index.flush_interval` the index is flushed; the applied position at the time is then
//!   durable in the index, and journal files wholly before it are no longer needed for replay.
//! - A journal file before the flushed position whose live bytes are zero (its ledgers were all
//!   deleted) is removed: renamed to `*.free` and handed to the preallocator for reuse, or
//!   deleted. Neither needs free space, so GC works on a full disk.
//! - A file whose live fraction is below `gc.compact_below` is compacted: its live entries are
//!   re-written through the journal as relocation records (allowed in read-only mode, using the
//!   preallocated space), which move the index only if it still points at the old copy; once they
//!   are durable, the file holds nothing live and is removed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dlog_api::Entry;
use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::error::BookieError;
use crate::health::Health;
use crate::index::{AppliedPos, Index, IndexBatch};
use crate::journal::file::{file_name, list_files, sync_dir};
use crate::journal::format::Record;
use crate::journal::read::FileSet;
use crate::journal::spares::Spares;
use crate::journal::writer::JournalHandle;
use crate::signal::{Signal, Wake};
use crate::usage::Usage;

/// What one GC round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    pub files_removed: u64,
    pub files_compacted: u64,
    pub entries_relocated: u64,
}

#[derive(Debug)]
pub struct Maintenance {
    pub dir: PathBuf,
    pub index: Arc<Index>,
    pub usage: Arc<Mutex<Usage>>,
    pub applied: Arc<Mutex<AppliedPos>>,
    pub flushed: Arc<Mutex<AppliedPos>>,
    pub files: Arc<FileSet>,
    pub spares: Arc<Spares>,
    pub journal: JournalHandle,
    pub health: Arc<Health>,
    pub file_size: u64,
    pub compact_below: f64,
    pub max_entry: usize,
    pub flush_interval: Duration,
    pub gc_interval: Duration,
    /// Serialises GC rounds (the thread's and [`crate::Bookie::gc_now`]'s) and sums them.
    pub gc_totals: Mutex<GcReport>,
}

impl Maintenance {
    pub fn run(&self, signal: &Signal) {
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut next_gc = Instant::now() + self.gc_interval;
        loop {
            let now = Instant::now();
            let wait = next_flush.min(next_gc).saturating_duration_since(now);
            let wake = signal.wait(wait);
            if wake == Wake::Stop {
                return;
            }
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + self.flush_interval;
            }
            if wake == Wake::Kick || now >= next_gc {
                if let Err(e) = self.gc() {
                    warn!(error = %e, "garbage collection round failed");
                }
                next_gc = Instant::now() + self.gc_interval;
            }
        }
    }

    /// Flushes the index; returns the position now durable in it.
    pub fn flush(&self) -> Option<AppliedPos> {
        let pos = *self.applied.lock();
        match self.index.flush() {
            Ok(()) => {
                *self.flushed.lock() = pos;
                debug!(seq = pos.seq, file_id = pos.file_id, "index flushed");
                Some(pos)
            }
            Err(e) => {
                error!(error = %e, "index flush failed; journal files are kept until it succeeds");
                None
            }
        }
    }

    /// One GC round.
    pub fn gc(&self) -> Result<GcReport, BookieError> {
        let mut totals = self.gc_totals.lock();
        let mut report = GcReport::default();
        let Some(flushed) = self.flush() else {
            return Ok(report);
        };
        let files = list_files(&self.dir)
            .map_err(BookieError::io(format!("list {}", self.dir.display())))?;
        for f in files.into_iter().filter(|&f| f < flushed.file_id) {
            let live = self.usage.lock().live_bytes(f);
            if live == 0 {
                self.remove(f)?;
                report.files_removed += 1;
            } else if (live as f64) < self.compact_below * self.file_size as f64
                && self.health.check_journal().is_ok()
            {
                let moved = self.compact(f)?;
                report.entries_relocated += moved;
                if self.usage.lock().live_bytes(f) == 0 {
                    self.remove(f)?;
                    report.files_compacted += 1;
                    report.files_removed += 1;
                }
            }
        }
        if report != GcReport::default() {
            info!(?report, "garbage collection");
        }
        totals.files_removed += report.files_removed;
        totals.files_compacted += report.files_compacted;
        totals.entries_relocated += report.entries_relocated;
        Ok(report)
    }

    /// Moves the live entries of file `f` to the head of the journal.
    fn compact(&self, f: u64) -> Result<u64, BookieError> {
        let ledgers = self.usage.lock().ledgers_in(f);
        let mut waits = Vec::new();
        let mut stale = IndexBatch::default();
        for ledger in ledgers {
            let entries = self.index.entries_in_file(ledger, f)?;
            if entries.is_empty() {
                // Bytes counted for copies since overwritten: nothing live here.
                self.usage.lock().clear(f, ledger);
                stale.put_usage(f, ledger, 0);
                continue;
            }
            for (entry, loc) in entries {
                let data = match self.files.read(&loc) {
                    Ok(d) => d,
                    Err(e) => {
                        error!(%ledger, %entry, file_id = f, error = %e, "compaction cannot read entry; file kept");
                        return Ok(0);
                    }
                };
                if let Err(e) = Entry::verify(&data, ledger, entry, self.max_entry) {
                    error!(%ledger, %entry, file_id = f, error = %e, "corrupt entry found by compaction; file kept");
                    return Ok(0);
                }
                waits.push(self.journal.submit(Record::Relocate {
                    ledger,
                    entry,
                    old: loc,
                    data,
                }));
            }
        }
        self.index.write(stale)?;
        let moved = waits.len() as u64;
        for w in waits {
            match w.blocking_recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(BookieError::ShuttingDown),
            }
        }
        Ok(moved)
    }

    /// Removes dead journal file `f`: recycled for the preallocator if it wants one.
    fn remove(&self, f: u64) -> Result<(), BookieError> {
        let path = self.dir.join(file_name(f));
        let free = self.dir.join(format!("{f:016x}.free"));
        self.files.forget(f);
        std::fs::rename(&path, &free)
            .map_err(BookieError::io(format!("rename {}", path.display())))?;
        // The rename must be durable before the preallocator rewrites the file's header, or a
        // crash could leave `f.jnl` carrying another file's header.
        sync_dir(&self.dir).map_err(BookieError::io("sync journal dir"))?;
        if !self.spares.recycle(free.clone()) {
            std::fs::remove_file(&free)
                .map_err(BookieError::io(format!("delete {}", free.display())))?;
        }
        let mut usage = self.usage.lock();
        let mut batch = IndexBatch::default();
        for ledger in usage.ledgers_in(f) {
            batch.put_usage(f, ledger, 0);
        }
        usage.remove_file(f);
        self.index.write(batch)?;
        debug!(file_id = f, "journal file removed");
        Ok(())
    }
}
