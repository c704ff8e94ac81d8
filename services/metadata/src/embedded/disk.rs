//! The embedded store's persistence: one RocksDB database, written with a synced WAL.
//! The format is in the parent module's docs.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use rocksdb::{DB, Options, WriteBatch, WriteOptions};

use crate::error::{MetadataError, Result};
use crate::store::{KeyValue, LeaseId, Revision, WatchEvent};

const REVISION_KEY: &[u8] = b"m/revision";
const KEY_PREFIX: u8 = b'k';
const FORMAT: u8 = 1;
const HEAD: usize = 1 + 8 + 8 + 8;

#[derive(Debug)]
pub(super) struct Disk {
    db: DB,
}

impl Disk {
    /// Opens the database and loads every key and the revision.
    pub(super) fn open(dir: &Path) -> Result<(Disk, Revision, BTreeMap<String, KeyValue>)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            MetadataError::Unavailable(format!("create metadata folder {}: {e}", dir.display()))
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_keep_log_file_num(4);
        let db = DB::open(&opts, dir).map_err(|e| {
            MetadataError::Unavailable(format!(
                "open metadata database in {}: {e} (is another process using it?)",
                dir.display()
            ))
        })?;
        let revision = match db.get(REVISION_KEY).map_err(read_err)? {
            None => 0,
            Some(v) => u64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                MetadataError::Corrupt(format!("revision record is {} bytes, not 8", v.len()))
            })?),
        };
        let mut kvs = BTreeMap::new();
        for item in db.prefix_iterator([KEY_PREFIX]) {
            let (k, v) = item.map_err(read_err)?;
            if k.first() != Some(&KEY_PREFIX) {
                break;
            }
            let key = std::str::from_utf8(&k[1..])
                .map_err(|_| MetadataError::Corrupt("a stored key is not UTF-8".into()))?
                .to_string();
            let kv = decode(key, &v)?;
            if kv.mod_revision > revision {
                return Err(MetadataError::Corrupt(format!(
                    "key {:?} was changed at revision {} after the store's revision {revision}",
                    kv.key, kv.mod_revision
                )));
            }
            kvs.insert(kv.key.clone(), kv);
        }
        Ok((Disk { db }, revision, kvs))
    }

    /// Persists one commit's changes and its revision atomically, synced.
    pub(super) fn write(&self, revision: Revision, events: &[WatchEvent]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for ev in events {
            let k = stored_key(ev.key());
            match ev {
                WatchEvent::Put(kv) => batch.put(k, encode(kv)),
                WatchEvent::Delete { .. } => batch.delete(k),
            }
        }
        batch.put(REVISION_KEY, revision.to_le_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        fail::fail_point!("metadata::embedded::write", |_| Err(
            MetadataError::Unavailable("fail point metadata::embedded::write".into())
        ));
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| MetadataError::Unavailable(format!("write metadata commit: {e}")))
    }
}

fn read_err(e: rocksdb::Error) -> MetadataError {
    MetadataError::Unavailable(format!("read metadata database: {e}"))
}

fn stored_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(KEY_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEAD + kv.value.len());
    v.push(FORMAT);
    v.extend_from_slice(&kv.create_revision.to_le_bytes());
    v.extend_from_slice(&kv.mod_revision.to_le_bytes());
    v.extend_from_slice(&kv.lease.map_or(0, |l| l.0).to_le_bytes());
    v.extend_from_slice(&kv.value);
    v
}

fn decode(key: String, v: &[u8]) -> Result<KeyValue> {
    if v.len() < HEAD || v[0] != FORMAT {
        return Err(MetadataError::Corrupt(format!(
            "record of key {key:?} is malformed ({} bytes, format {:?})",
            v.len(),
            v.first()
        )));
    }
    let u = |at: usize| u64::from_le_bytes(v[at..at + 8].try_into().expect("8 bytes"));
    let lease = u(17) as i64;
    Ok(KeyValue {
        key,
        create_revision: u(1),
        mod_revision: u(9),
        lease: (lease != 0).then_some(LeaseId(lease)),
        value: Bytes::copy_from_slice(&v[HEAD..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_corrupt() {
        let kv = KeyValue {
            key: "a/b".into(),
            value: Bytes::from_static(b"value"),
            create_revision: 3,
            mod_revision: 7,
            lease: Some(LeaseId(42)),
        };
        assert_eq!(decode("a/b".into(), &encode(&kv)).unwrap(), kv);
        let mut bad = encode(&kv);
        bad[0] = 9;
        assert!(matches!(
            decode("a/b".into(), &bad),
            Err(MetadataError::Corrupt(_))
        ));
        assert!(matches!(
            decode("a/b".into(), &bad[..5]),
            Err(MetadataError::Corrupt(_))
        ));
    }
}
