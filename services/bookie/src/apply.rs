//! Applying durable journal commits to the index, the ledger table, the usage counters and the
//! read cache. The journal thread calls this after each fsync; replay calls it for commits found
//! after the index's applied position on start-up. Both paths run the same code, so a replayed
//! commit has exactly the effect it had the first time.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dlog_api::{EntryId, LedgerId};
use parking_lot::Mutex;

use crate::error::BookieError;
use crate::index::{AppliedPos, Index, IndexBatch};
use crate::journal::format::{Location, Record};
use crate::ledgers::{LedgerSlot, LedgerTable, raise};
use crate::usage::Usage;

/// The recent-entries cache, weighted by bytes.
pub type ReadCache = moka::sync::Cache<(LedgerId, EntryId), Bytes>;

pub fn new_cache(capacity_bytes: u64) -> ReadCache {
    moka::sync::Cache::builder()
        .max_capacity(capacity_bytes)
        .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .build()
}

/// A commit whose bytes are durable, with the location of each entry it stored.
#[derive(Debug)]
pub struct DurableCommit<'a> {
    pub pos: AppliedPos,
    pub records: &'a [(Record, Option<Location>)],
}

#[derive(Debug, Clone)]
pub struct Applier {
    pub index: Arc<Index>,
    pub ledgers: Arc<LedgerTable>,
    pub usage: Arc<Mutex<Usage>>,
    pub cache: ReadCache,
    /// Position of the last applied commit; the flusher reads it before flushing the index.
    pub applied: Arc<Mutex<AppliedPos>>,
}

impl Applier {
    pub fn apply(&self, commit: &DurableCommit<'_>) -> Result<(), BookieError> {
        let mut batch = IndexBatch::default();
        let mut touched: HashMap<LedgerId, Arc<LedgerSlot>> = HashMap::new();
        let mut usage_touched: Vec<(u64, LedgerId)> = Vec::new();
        let mut usage = self.usage.lock();
        for (rec, loc) in commit.records {
            let ledger = rec.ledger();
            let slot = touched
                .entry(ledger)
                .or_insert_with(|| self.ledgers.get_or_create(ledger))
                .clone();
            let mut st = slot.lock();
            match rec {
                Record::Add {
                    entry, lac, data, ..
                } => {
                    let Some(loc) = loc else { continue };
                    if st.durable.deleted {
                        continue;
                    }
                    batch.put_entry(ledger, *entry, loc);
                    raise(&mut st.durable.last_entry, Some(*entry));
                    raise(&mut st.durable.lac, *lac);
                    usage.add(loc.file_id, ledger, u64::from(loc.len));
                    usage_touched.push((loc.file_id, ledger));
                    self.cache.insert((ledger, *entry), data.clone());
                }
                Record::Fence { epoch, .. } => {
                    st.durable.fence_epoch = st.durable.fence_epoch.max(*epoch);
                }
                Record::WriteLac { lac, .. } => raise(&mut st.durable.lac, Some(*lac)),
                Record::Delete { .. } => {
                    st.durable.deleted = true;
                    batch.delete_ledger_entries(ledger);
                    for file in usage.remove_ledger(ledger) {
                        batch.put_usage(file, ledger, 0);
                    }
                    usage_touched.retain(|(_, l)| *l != ledger);
                }
                Record::Relocate {
                    entry, old, data, ..
                } => {
                    let Some(loc) = loc else { continue };
                    if st.durable.deleted || self.index.get_entry(ledger, *entry)? != Some(*old) {
                        continue; // deleted, or rewritten since compaction read it
                    }
                    batch.put_entry(ledger, *entry, loc);
                    usage.sub(old.file_id, ledger, u64::from(old.len));
                    usage.add(loc.file_id, ledger, u64::from(loc.len));
                    usage_touched.push((old.file_id, ledger));
                    usage_touched.push((loc.file_id, ledger));
                    self.cache.insert((ledger, *entry), data.clone());
                }
            }
            // Replay starts from the durable state, so the admission view catches up too.
            let durable = st.durable;
            st.admit.fence_epoch = st.admit.fence_epoch.max(durable.fence_epoch);
            raise(&mut st.admit.last_entry, durable.last_entry);
            raise(&mut st.admit.lac, durable.lac);
            st.admit.deleted |= durable.deleted;
        }
        for (file, ledger) in usage_touched {
            batch.put_usage(file, ledger, usage.get(file, ledger));
        }
        for (ledger, slot) in &touched {
            batch.put_meta(*ledger, &slot.lock().durable);
        }
        batch.put_applied(&commit.pos);
        // Hold the usage lock until the batch is written so GC never sees counts ahead of the
        // index.
        self.index.write(batch)?;
        drop(usage);
        *self.applied.lock() = commit.pos;
        for slot in touched.values() {
            let lac = slot.lock().durable.lac;
            slot.publish_lac(lac);
        }
        Ok(())
    }
}
