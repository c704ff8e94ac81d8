//! The entry index and the bookie's durable ledger state, in RocksDB.
//!
//! Keys (big-endian ids, so that one ledger's entries are contiguous and ordered):
//!
//! | key | value |
//! |---|---|
//! | `e` ledger block | locations of entries `block*64 .. block*64+63`: bitmap u64, then for each set bit in order file_id u64, offset u64, len u32 (LE) |
//! | `l` ledger | ledger meta: fence_epoch u64, lac u64, last_entry u64, deleted u8, max_epoch u64 (LE; u64::MAX = none) |
//! | `u` file_id ledger | live bytes of the ledger in that journal file, u64 LE |
//! | `s/applied` | the last journal commit applied: seq u64, file_id u64, end offset u64 |
//! | `s/instance` | the instance id of the bookie that owns this index |
//! | `s/damaged` | why the bookie may have lost data it cannot name (UTF-8) |
//!
//! Entries are indexed in blocks of [`BLOCK_ENTRIES`] consecutive ids, so one journal commit of
//! hundreds of entries updates a handful of keys instead of hundreds.
//!
//! Writes go without RocksDB's WAL: the journal is the log. Each journal commit is applied as one
//! atomic write batch that also records `s/applied`, and a crash loses at most a suffix of
//! batches (memtables are flushed in order), so on restart the journal is replayed from
//! `s/applied` and every commit is applied exactly once. [`Index::flush`] makes everything
//! applied so far durable; journal files are deleted only after that.

use std::collections::HashMap;
use std::path::Path;

use dlog_api::{EntryId, Epoch, LedgerId};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::error::BookieError;
use crate::journal::format::Location;

const APPLIED: &[u8] = b"s/applied";
const INSTANCE: &[u8] = b"s/instance";
const DAMAGED: &[u8] = b"s/damaged";

/// What the bookie durably knows about a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerMeta {
    pub fence_epoch: Epoch,
    pub lac: Option<EntryId>,
    pub last_entry: Option<EntryId>,
    pub deleted: bool,
    /// The highest epoch seen in any add or fence of the ledger.
    pub max_epoch: Epoch,
}

impl LedgerMeta {
    fn encode(&self) -> [u8; 33] {
        let mut b = [0u8; 33];
        b[0..8].copy_from_slice(&self.fence_epoch.0.to_le_bytes());
        b[8..16].copy_from_slice(&EntryId::to_wire(self.lac).to_le_bytes());
        b[16..24].copy_from_slice(&EntryId::to_wire(self.last_entry).to_le_bytes());
        b[24] = u8::from(self.deleted);
        b[25..33].copy_from_slice(&self.max_epoch.0.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<LedgerMeta> {
        if b.len() != 33 {
            return None;
        }
        Some(LedgerMeta {
            fence_epoch: Epoch(u64_le(&b[0..8])),
            lac: EntryId::from_wire(u64_le(&b[8..16])),
            last_entry: EntryId::from_wire(u64_le(&b[16..24])),
            deleted: b[24] != 0,
            max_epoch: Epoch(u64_le(&b[25..33])),
        })
    }
}

/// The position after the last applied journal commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppliedPos {
    pub seq: u64,
    pub file_id: u64,
    pub offset: u64,
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn u64_be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Entries per index block.
pub const BLOCK_ENTRIES: u64 = 64;

/// The locations of one block of entries, by `entry % BLOCK_ENTRIES`.
pub type Block = [Option<Location>; BLOCK_ENTRIES as usize];

pub const EMPTY_BLOCK: Block = [None; BLOCK_ENTRIES as usize];

fn block_key(ledger: LedgerId, block: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'e';
    k[1..9].copy_from_slice(&ledger.0.to_be_bytes());
    k[9..17].copy_from_slice(&block.to_be_bytes());
    k
}

fn encode_block(b: &Block) -> Vec<u8> {
    let mut bitmap = 0u64;
    let mut v = Vec::with_capacity(8 + 20 * b.len());
    v.extend_from_slice(&[0u8; 8]);
    for (i, loc) in b.iter().enumerate() {
        if let Some(loc) = loc {
            bitmap |= 1 << i;
            v.extend_from_slice(&encode_location(loc));
        }
    }
    v[0..8].copy_from_slice(&bitmap.to_le_bytes());
    v
}

fn decode_block(v: &[u8]) -> Option<Block> {
    if v.len() < 8 {
        return None;
    }
    let bitmap = u64_le(&v[0..8]);
    if v.len() != 8 + 20 * bitmap.count_ones() as usize {
        return None;
    }
    let mut b = EMPTY_BLOCK;
    let mut at = 8;
    for (i, slot) in b.iter_mut().enumerate() {
        if bitmap & (1 << i) != 0 {
            *slot = Some(decode_location(&v[at..at + 20])?);
            at += 20;
        }
    }
    Some(b)
}

fn ledger_key(ledger: LedgerId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'l';
    k[1..9].copy_from_slice(&ledger.0.to_be_bytes());
    k
}

fn usage_key(file_id: u64, ledger: LedgerId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'u';
    k[1..9].copy_from_slice(&file_id.to_be_bytes());
    k[9..17].copy_from_slice(&ledger.0.to_be_bytes());
    k
}

fn encode_location(loc: &Location) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[0..8].copy_from_slice(&loc.file_id.to_le_bytes());
    v[8..16].copy_from_slice(&loc.offset.to_le_bytes());
    v[16..20].copy_from_slice(&loc.len.to_le_bytes());
    v
}

fn decode_location(v: &[u8]) -> Option<Location> {
    if v.len() != 20 {
        return None;
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&v[16..20]);
    Some(Location {
        file_id: u64_le(&v[0..8]),
        offset: u64_le(&v[8..16]),
        len: u32::from_le_bytes(len),
    })
}

/// Whether files in `dir` can be opened with O_DIRECT (tmpfs on old kernels, some network
/// filesystems cannot).
fn supports_direct_io(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(".direct-io-probe");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn db_err(context: &'static str) -> impl Fn(rocksdb::Error) -> BookieError {
    move |e| BookieError::Index(format!("{context}: {e}"))
}

/// The RocksDB-backed index. Thread-safe.
#[derive(Debug)]
pub struct Index {
    db: DB,
}

/// One atomic group of index changes (one journal commit).
#[derive(Default)]
pub struct IndexBatch {
    wb: WriteBatch,
}

impl std::fmt::Debug for IndexBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBatch")
            .field("ops", &self.wb.len())
            .finish()
    }
}

impl IndexBatch {
    pub fn put_block(&mut self, ledger: LedgerId, block: u64, b: &Block) {
        if b.iter().all(Option::is_none) {
            self.wb.delete(block_key(ledger, block));
        } else {
            self.wb.put(block_key(ledger, block), encode_block(b));
        }
    }

    pub fn delete_ledger_entries(&mut self, ledger: LedgerId) {
        // The end key is exclusive; block u64::MAX is never used (its last entry would be the
        // reserved u64::MAX).
        self.wb
            .delete_range(block_key(ledger, 0), block_key(ledger, u64::MAX));
    }

    pub fn put_meta(&mut self, ledger: LedgerId, meta: &LedgerMeta) {
        self.wb.put(ledger_key(ledger), meta.encode());
    }

    pub fn put_usage(&mut self, file_id: u64, ledger: LedgerId, bytes: u64) {
        if bytes == 0 {
            self.wb.delete(usage_key(file_id, ledger));
        } else {
            self.wb.put(usage_key(file_id, ledger), bytes.to_le_bytes());
        }
    }

    pub fn put_applied(&mut self, pos: &AppliedPos) {
        let mut v = [0u8; 24];
        v[0..8].copy_from_slice(&pos.seq.to_le_bytes());
        v[8..16].copy_from_slice(&pos.file_id.to_le_bytes());
        v[16..24].copy_from_slice(&pos.offset.to_le_bytes());
        self.wb.put(APPLIED, v);
    }
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, BookieError> {
        // Closing must not persist unflushed writes: the index is durable exactly up to the
        // last explicit flush, the same after a clean stop as after a crash. Flushes and
        // compactions write with O_DIRECT where the filesystem allows it: buffered SST writes
        // and their fsyncs held up journal commits on the same ext4 filesystem for 10-18 ms
        // (docs/benchmarks.md); with O_DIRECT the worst journal write measured ~3 ms. (Neither
        // is exposed as a setter by the rocksdb crate, hence the options string.)
        let mut settings = String::from("avoid_flush_during_shutdown=true");
        if supports_direct_io(path) {
            settings.push_str(";use_direct_io_for_flush_and_compaction=true");
        }
        let mut opts = Options::default()
            .get_options_from_string(&settings)
            .map_err(db_err("index options"))?;
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        opts.set_max_background_jobs(2);
        opts.set_write_buffer_size(64 << 20);
        opts.set_keep_log_file_num(3);
        let db = DB::open(&opts, path).map_err(db_err("open index"))?;
        Ok(Index { db })
    }

    fn no_wal() -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        wo
    }

    fn synced() -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        wo
    }

    pub fn write(&self, batch: IndexBatch) -> Result<(), BookieError> {
        fail::fail_point!("index::write", |_| Err(BookieError::Index(
            "injected index write failure".into()
        )));
        self.db
            .write_opt(batch.wb, &Self::no_wal())
            .map_err(db_err("write index batch"))
    }

    /// Makes every write so far durable (memtables to SST files).
    pub fn flush(&self) -> Result<(), BookieError> {
        fail::fail_point!("index::flush", |_| Err(BookieError::Index(
            "injected index flush failure".into()
        )));
        self.db.flush().map_err(db_err("flush index"))
    }

    pub fn get_block(&self, ledger: LedgerId, block: u64) -> Result<Option<Block>, BookieError> {
        let v = self
            .db
            .get_pinned(block_key(ledger, block))
            .map_err(db_err("read index"))?;
        match v {
            None => Ok(None),
            Some(v) => decode_block(&v).map(Some).ok_or_else(|| {
                BookieError::Index(format!("bad index block {block} of ledger {ledger}"))
            }),
        }
    }

    pub fn get_entry(
        &self,
        ledger: LedgerId,
        entry: EntryId,
    ) -> Result<Option<Location>, BookieError> {
        Ok(self
            .get_block(ledger, entry.0 / BLOCK_ENTRIES)?
            .and_then(|b| b[(entry.0 % BLOCK_ENTRIES) as usize]))
    }

    /// Every entry of `ledger` stored in journal file `file_id`.
    pub fn entries_in_file(
        &self,
        ledger: LedgerId,
        file_id: u64,
    ) -> Result<Vec<(EntryId, Location)>, BookieError> {
        let from = block_key(ledger, 0);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&from, Direction::Forward))
        {
            let (k, v) = item.map_err(db_err("scan index"))?;
            if k.len() != 17 || k[0] != b'e' || u64_be(&k[1..9]) != ledger.0 {
                break;
            }
            let block = u64_be(&k[9..17]);
            let b = decode_block(&v).ok_or_else(|| {
                BookieError::Index(format!("bad index block {block} of ledger {ledger}"))
            })?;
            for (i, loc) in b.iter().enumerate() {
                if let Some(loc) = loc
                    && loc.file_id == file_id
                {
                    out.push((EntryId(block * BLOCK_ENTRIES + i as u64), *loc));
                }
            }
        }
        Ok(out)
    }

    pub fn load_ledgers(&self) -> Result<Vec<(LedgerId, LedgerMeta)>, BookieError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(b"l") {
            let (k, v) = item.map_err(db_err("scan ledgers"))?;
            if k.len() != 9 || k[0] != b'l' {
                break;
            }
            let meta = LedgerMeta::decode(&v)
                .ok_or_else(|| BookieError::Index("bad ledger meta".into()))?;
            out.push((LedgerId(u64_be(&k[1..9])), meta));
        }
        Ok(out)
    }

    pub fn load_usage(&self) -> Result<HashMap<u64, HashMap<LedgerId, u64>>, BookieError> {
        let mut out: HashMap<u64, HashMap<LedgerId, u64>> = HashMap::new();
        for item in self.db.prefix_iterator(b"u") {
            let (k, v) = item.map_err(db_err("scan usage"))?;
            if k.len() != 17 || k[0] != b'u' || v.len() != 8 {
                break;
            }
            out.entry(u64_be(&k[1..9]))
                .or_default()
                .insert(LedgerId(u64_be(&k[9..17])), u64_le(&v));
        }
        Ok(out)
    }

    pub fn applied(&self) -> Result<Option<AppliedPos>, BookieError> {
        let v = self
            .db
            .get(APPLIED)
            .map_err(db_err("read applied position"))?;
        Ok(v.filter(|v| v.len() == 24).map(|v| AppliedPos {
            seq: u64_le(&v[0..8]),
            file_id: u64_le(&v[8..16]),
            offset: u64_le(&v[16..24]),
        }))
    }

    pub fn instance(&self) -> Result<Option<u64>, BookieError> {
        let v = self.db.get(INSTANCE).map_err(db_err("read index owner"))?;
        Ok(v.filter(|v| v.len() == 8).map(|v| u64_le(&v)))
    }

    pub fn set_instance(&self, instance: u64) -> Result<(), BookieError> {
        self.db
            .put_opt(INSTANCE, instance.to_le_bytes(), &Self::synced())
            .map_err(db_err("write index owner"))
    }

    pub fn damaged(&self) -> Result<Option<String>, BookieError> {
        let v = self.db.get(DAMAGED).map_err(db_err("read damage flag"))?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn set_damaged(&self, reason: &str) -> Result<(), BookieError> {
        self.db
            .put_opt(DAMAGED, reason.as_bytes(), &Self::synced())
            .map_err(db_err("write damage flag"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Index values come from our own writes, but a damaged SST must still give an error,
        /// never a panic.
        #[test]
        fn random_values_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = decode_block(&data);
            let _ = decode_location(&data);
            let _ = LedgerMeta::decode(&data);
        }

        #[test]
        fn blocks_roundtrip(slots in proptest::collection::vec(
            proptest::option::of((any::<u64>(), any::<u64>(), any::<u32>())), 64)) {
            let mut b = EMPTY_BLOCK;
            for (i, s) in slots.iter().enumerate() {
                b[i] = s.map(|(file_id, offset, len)| Location { file_id, offset, len });
            }
            prop_assert_eq!(decode_block(&encode_block(&b)), Some(b));
        }
    }

    #[test]
    fn entries_meta_usage_and_applied_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(dir.path()).unwrap();
        let loc = Location {
            file_id: 3,
            offset: 4096,
            len: 100,
        };
        let mut b = IndexBatch::default();
        let mut blk = EMPTY_BLOCK;
        blk[0] = Some(loc);
        blk[1] = Some(Location { file_id: 4, ..loc });
        b.put_block(LedgerId(1), 0, &blk);
        let mut far = EMPTY_BLOCK;
        far[63] = Some(loc);
        b.put_block(LedgerId(1), 2, &far);
        let mut other = EMPTY_BLOCK;
        other[0] = Some(loc);
        b.put_block(LedgerId(2), 0, &other);
        let meta = LedgerMeta {
            fence_epoch: Epoch(2),
            lac: Some(EntryId(0)),
            last_entry: Some(EntryId(1)),
            deleted: false,
            max_epoch: Epoch(2),
        };
        b.put_meta(LedgerId(1), &meta);
        b.put_usage(3, LedgerId(1), 100);
        b.put_applied(&AppliedPos {
            seq: 9,
            file_id: 4,
            offset: 8192,
        });
        idx.write(b).unwrap();

        assert_eq!(idx.get_entry(LedgerId(1), EntryId(0)).unwrap(), Some(loc));
        assert_eq!(idx.get_entry(LedgerId(1), EntryId(2)).unwrap(), None);
        assert_eq!(idx.get_entry(LedgerId(1), EntryId(191)).unwrap(), Some(loc));
        assert_eq!(idx.get_entry(LedgerId(1), EntryId(190)).unwrap(), None);
        assert_eq!(
            idx.entries_in_file(LedgerId(1), 3).unwrap(),
            vec![(EntryId(0), loc), (EntryId(191), loc)]
        );
        assert_eq!(idx.load_ledgers().unwrap(), vec![(LedgerId(1), meta)]);
        assert_eq!(idx.load_usage().unwrap()[&3][&LedgerId(1)], 100);
        assert_eq!(idx.applied().unwrap().unwrap().seq, 9);

        let mut b = IndexBatch::default();
        b.delete_ledger_entries(LedgerId(1));
        b.put_usage(3, LedgerId(1), 0);
        idx.write(b).unwrap();
        assert_eq!(idx.get_entry(LedgerId(1), EntryId(0)).unwrap(), None);
        assert_eq!(idx.get_entry(LedgerId(2), EntryId(0)).unwrap(), Some(loc));
        assert!(idx.load_usage().unwrap().is_empty());
        idx.flush().unwrap();
    }
}
