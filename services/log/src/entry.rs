//! The payload of a stream's ledger entry: a batch of appends with the offsets they got.
//!
//! One entry carries one or more record sets, each exactly as a client sent it (so the writer
//! never re-encodes or re-compresses on the hot path), with the producer that sent it. Format
//! version 1, little-endian:
//!
//! ```text
//! version u8 = 1 | first_offset u64 | count u32 | max_timestamp_ms i64 | max_txid u64
//! | sets u16 | sets × (producer_id u64 | first_seq u64 | count u32 | len u32 | record set)
//! ```
//!
//! - `first_offset` is the offset of the entry's first record; its records have the dense
//!   offsets `first_offset .. first_offset + count`, in set order.
//! - `max_timestamp_ms` is the highest record timestamp in the stream up to and including this
//!   entry, and `max_txid` the highest txid (`u64::MAX`: none yet). Both never decrease along a
//!   stream, which is what lets a reader binary-search a segment's entries by time or txid.
//! - `producer_id` 0 means an append without idempotence; otherwise the set carries that
//!   producer's sequence numbers `first_seq .. first_seq + count`. A new writer rebuilds its
//!   duplicate table from these.

use bytes::{BufMut, Bytes, BytesMut};
use dlog_api::Cursor;
use dlog_api::cursor::DecodeError;

const VERSION: u8 = 1;
/// Bytes before the first set.
pub const HEADER_LEN: usize = 1 + 8 + 4 + 8 + 8 + 2;
/// Bytes before each set's record set.
pub const SET_HEADER_LEN: usize = 8 + 8 + 4 + 4;
/// Most sets in one entry.
pub const MAX_SETS: usize = u16::MAX as usize;

/// One client append inside an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySet {
    pub producer_id: u64,
    pub first_seq: u64,
    pub count: u32,
    /// A record set in `dlog_api::record` format.
    pub records: Bytes,
}

/// A decoded stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub first_offset: u64,
    pub count: u32,
    pub max_timestamp_ms: i64,
    pub max_txid: Option<u64>,
    pub sets: Vec<EntrySet>,
}

impl StreamEntry {
    /// Offset after the entry's last record.
    pub fn end_offset(&self) -> u64 {
        self.first_offset + u64::from(self.count)
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self
                .sets
                .iter()
                .map(|s| SET_HEADER_LEN + s.records.len())
                .sum::<usize>()
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        b.put_u8(VERSION);
        b.put_u64_le(self.first_offset);
        b.put_u32_le(self.count);
        b.put_i64_le(self.max_timestamp_ms);
        b.put_u64_le(self.max_txid.unwrap_or(u64::MAX));
        b.put_u16_le(self.sets.len() as u16);
        for s in &self.sets {
            b.put_u64_le(s.producer_id);
            b.put_u64_le(s.first_seq);
            b.put_u32_le(s.count);
            b.put_u32_le(s.records.len() as u32);
            b.put_slice(&s.records);
        }
        b.freeze()
    }

    /// Decodes the header and the sets (record sets stay encoded, as zero-copy slices).
    pub fn decode(bytes: Bytes) -> Result<StreamEntry, DecodeError> {
        let mut c = Cursor::new(bytes);
        let version = c.u8("stream entry version")?;
        if version != VERSION {
            return Err(DecodeError::invalid(
                "stream entry version",
                format!("{version} (this build reads {VERSION})"),
            ));
        }
        let first_offset = c.u64("stream entry first offset")?;
        let count = c.u32("stream entry count")?;
        let max_timestamp_ms = c.i64("stream entry max timestamp")?;
        let max_txid = match c.u64("stream entry max txid")? {
            u64::MAX => None,
            t => Some(t),
        };
        let n = usize::from(c.u16("stream entry sets")?);
        if n > c.remaining() / SET_HEADER_LEN {
            return Err(DecodeError::invalid(
                "stream entry sets",
                format!("{n} sets do not fit in {} bytes", c.remaining()),
            ));
        }
        let mut sets = Vec::with_capacity(n);
        let mut total = 0u64;
        for _ in 0..n {
            let producer_id = c.u64("set producer id")?;
            let first_seq = c.u64("set first sequence")?;
            let set_count = c.u32("set count")?;
            let records = c.len_bytes("set records", usize::MAX)?;
            total += u64::from(set_count);
            sets.push(EntrySet {
                producer_id,
                first_seq,
                count: set_count,
                records,
            });
        }
        c.finish("stream entry")?;
        if total != u64::from(count) {
            return Err(DecodeError::invalid(
                "stream entry count",
                format!("header says {count}, sets hold {total}"),
            ));
        }
        Ok(StreamEntry {
            first_offset,
            count,
            max_timestamp_ms,
            max_txid,
            sets,
        })
    }

    /// Decodes only the fixed header: `(first_offset, count, max_timestamp_ms, max_txid)`.
    pub fn decode_header(bytes: &Bytes) -> Result<(u64, u32, i64, Option<u64>), DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::invalid(
                "stream entry",
                format!("{} bytes is shorter than the header", bytes.len()),
            ));
        }
        let mut c = Cursor::new(bytes.slice(..HEADER_LEN));
        let version = c.u8("stream entry version")?;
        if version != VERSION {
            return Err(DecodeError::invalid(
                "stream entry version",
                format!("{version} (this build reads {VERSION})"),
            ));
        }
        let first = c.u64("stream entry first offset")?;
        let count = c.u32("stream entry count")?;
        let ts = c.i64("stream entry max timestamp")?;
        let txid = match c.u64("stream entry max txid")? {
            u64::MAX => None,
            t => Some(t),
        };
        Ok((first, count, ts, txid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StreamEntry {
        StreamEntry {
            first_offset: 42,
            count: 3,
            max_timestamp_ms: 1_700_000_000_000,
            max_txid: Some(9),
            sets: vec![
                EntrySet {
                    producer_id: 0,
                    first_seq: 0,
                    count: 1,
                    records: Bytes::from_static(b"abc"),
                },
                EntrySet {
                    producer_id: 7,
                    first_seq: 100,
                    count: 2,
                    records: Bytes::from_static(b"defgh"),
                },
            ],
        }
    }

    #[test]
    fn roundtrip_and_header() {
        let e = sample();
        let b = e.encode();
        assert_eq!(b.len(), e.encoded_len());
        assert_eq!(StreamEntry::decode(b.clone()).unwrap(), e);
        assert_eq!(
            StreamEntry::decode_header(&b).unwrap(),
            (42, 3, 1_700_000_000_000, Some(9))
        );
        assert_eq!(e.end_offset(), 45);
    }

    #[test]
    fn damaged_entries_are_errors() {
        let b = sample().encode();
        for cut in 0..b.len() {
            assert!(StreamEntry::decode(b.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut bad = BytesMut::from(&b[..]);
        bad[9] = 9; // count no longer matches the sets
        assert!(StreamEntry::decode(bad.freeze()).is_err());
        let mut bad = BytesMut::from(&b[..]);
        bad[0] = 2;
        assert!(StreamEntry::decode(bad.freeze()).is_err());
    }
}
