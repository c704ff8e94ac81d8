//! Applying durable journal commits to the index, the ledger table, the usage counters and the
//! read cache. The journal thread calls this after each fsync; replay calls it for commits found
//! after the index's applied position on start-up. Both paths run the same code, so a replayed
//! commit has exactly the effect it had the first time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dlog_api::{EntryId, LedgerId};
use parking_lot::Mutex;

use crate::cache::RecentCache;
use crate::error::BookieError;
use crate::index::{AppliedPos, BLOCK_ENTRIES, Block, EMPTY_BLOCK, Index, IndexBatch};
use crate::journal::format::{Location, Record};
use crate::ledgers::{LedgerSlot, LedgerTable, raise};
use crate::usage::Usage;

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
    pub cache: Arc<RecentCache>,
    /// Position of the last applied commit; the flusher reads it before flushing the index.
    pub applied: Arc<Mutex<AppliedPos>>,
}

impl Applier {
    pub fn apply(&self, commit: &DurableCommit<'_>) -> Result<(), BookieError> {
        let mut batch = IndexBatch::default();
        let mut blocks = Blocks::new(&self.index);
        let mut touched: HashMap<LedgerId, Arc<LedgerSlot>> = HashMap::new();
        let mut usage_touched: HashSet<(u64, LedgerId)> = HashSet::new();
        // Per (file, ledger) bytes added, and entries to cache, summed over the commit.
        let mut added: HashMap<(u64, LedgerId), u64> = HashMap::new();
        let mut cached = Vec::new();
        let mut last: Option<(LedgerId, Arc<LedgerSlot>)> = None;
        let mut usage = self.usage.lock();
        for (rec, loc) in commit.records {
            let ledger = rec.ledger();
            let slot = match &last {
                Some((l, s)) if *l == ledger => s.clone(),
                _ => {
                    let s = touched
                        .entry(ledger)
                        .or_insert_with(|| self.ledgers.get_or_create(ledger))
                        .clone();
                    last = Some((ledger, s.clone()));
                    s
                }
            };
            let mut st = slot.lock();
            match rec {
                Record::Add {
                    entry,
                    lac,
                    data,
                    epoch,
                    ..
                } => {
                    let Some(loc) = loc else { continue };
                    if st.durable.deleted {
                        continue;
                    }
                    st.durable.max_epoch = st.durable.max_epoch.max(*epoch);
                    *blocks.slot(ledger, *entry)? = Some(*loc);
                    raise(&mut st.durable.last_entry, Some(*entry));
                    raise(&mut st.durable.lac, *lac);
                    *added.entry((loc.file_id, ledger)).or_default() += u64::from(loc.len);
                    cached.push((ledger, *entry, data));
                }
                Record::Fence { epoch, .. } => {
                    st.durable.fence_epoch = st.durable.fence_epoch.max(*epoch);
                    st.durable.max_epoch = st.durable.max_epoch.max(*epoch);
                }
                Record::WriteLac { lac, .. } => raise(&mut st.durable.lac, Some(*lac)),
                Record::Delete { .. } => {
                    st.durable.deleted = true;
                    blocks.forget(ledger);
                    added.retain(|(_, l), _| *l != ledger);
                    cached.retain(|(l, _, _)| *l != ledger);
                    self.cache.remove_ledger(ledger);
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
                    if st.durable.deleted {
                        continue;
                    }
                    let slot = blocks.slot(ledger, *entry)?;
                    if *slot != Some(*old) {
                        continue; // rewritten since compaction read it
                    }
                    *slot = Some(*loc);
                    usage.sub(old.file_id, ledger, u64::from(old.len));
                    usage_touched.insert((old.file_id, ledger));
                    *added.entry((loc.file_id, ledger)).or_default() += u64::from(loc.len);
                    cached.push((ledger, *entry, data));
                }
            }
            // Replay starts from the durable state, so the admission view catches up too.
            let durable = st.durable;
            st.admit.fence_epoch = st.admit.fence_epoch.max(durable.fence_epoch);
            raise(&mut st.admit.last_entry, durable.last_entry);
            raise(&mut st.admit.lac, durable.lac);
            st.admit.deleted |= durable.deleted;
            st.admit.max_epoch = st.admit.max_epoch.max(durable.max_epoch);
        }
        blocks.write(&mut batch);
        for ((file, ledger), bytes) in added {
            usage.add(file, ledger, bytes);
            usage_touched.insert((file, ledger));
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
        self.cache.insert_all(cached.into_iter());
        *self.applied.lock() = commit.pos;
        for slot in touched.values() {
            let lac = slot.lock().durable.lac;
            slot.publish_lac(lac);
        }
        Ok(())
    }
}

/// The index blocks one commit touches, read once and written back together.
struct Blocks<'a> {
    index: &'a Index,
    map: HashMap<(LedgerId, u64), Box<Block>>,
}

impl<'a> Blocks<'a> {
    fn new(index: &'a Index) -> Self {
        Self {
            index,
            map: HashMap::new(),
        }
    }

    fn slot(
        &mut self,
        ledger: LedgerId,
        entry: EntryId,
    ) -> Result<&mut Option<crate::journal::format::Location>, BookieError> {
        let key = (ledger, entry.0 / BLOCK_ENTRIES);
        let block = match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Box::new(
                self.index.get_block(ledger, key.1)?.unwrap_or(EMPTY_BLOCK),
            )),
        };
        Ok(&mut block[(entry.0 % BLOCK_ENTRIES) as usize])
    }

    /// Drops pending changes of a ledger deleted in this commit.
    fn forget(&mut self, ledger: LedgerId) {
        self.map.retain(|(l, _), _| *l != ledger);
    }

    fn write(self, batch: &mut IndexBatch) {
        for ((ledger, block), b) in &self.map {
            batch.put_block(*ledger, *block, b);
        }
    }
}
