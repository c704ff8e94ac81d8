//! Records and the record-set encoding.
//!
//! A record set is what a writer batches into one entry. Format version 1, little-endian:
//!
//! ```text
//! version u8 = 1 | codec u8 (0 none, 1 zstd, 2 lz4) | count u32 | body_len u32 | body
//! body (after decompression, exactly body_len bytes) = count × record:
//!   flags u8 (bit 0: key present, bit 1: txid present; other bits must be 0)
//!   timestamp_ms i64 | [txid u64] | [key_len u32 | key] | payload_len u32 | payload
//! ```
//!
//! `body_len` is the uncompressed size; a decoder checks it against its limit before
//! decompressing, and checks `count` against what `body_len` can hold before allocating.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::{Cursor, DecodeError};

/// Default largest payload of one record (1 MiB), enforced by client, service and bookie alike.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 10;
const FLAG_KEY: u8 = 1;
const FLAG_TXID: u8 = 2;
/// flags + timestamp + payload length: the smallest a record can be.
const MIN_RECORD_LEN: usize = 1 + 8 + 4;

/// One record of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub payload: Bytes,
    pub key: Option<Bytes>,
    pub timestamp_ms: i64,
    pub txid: Option<u64>,
}

impl Record {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            ..Default::default()
        }
    }

    fn encoded_len(&self) -> usize {
        MIN_RECORD_LEN
            + self.txid.map_or(0, |_| 8)
            + self.key.as_ref().map_or(0, |k| 4 + k.len())
            + self.payload.len()
    }
}

/// Compression of a record set's body.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Zstd,
    Lz4,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::Lz4 => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

/// Limits a decoder enforces on untrusted record sets.
#[derive(Debug, Clone, Copy)]
pub struct RecordSetLimits {
    /// Largest payload of one record.
    pub max_payload: usize,
    /// Largest key of one record.
    pub max_key: usize,
    /// Largest uncompressed body.
    pub max_body: usize,
}

impl Default for RecordSetLimits {
    fn default() -> Self {
        Self {
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_key: 64 << 10,
            max_body: 64 << 20,
        }
    }
}

/// Why a record set could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordSetError {
    #[error("decode record set: {0}")]
    Decode(#[from] DecodeError),
    #[error("record {index} payload is {len} bytes, limit {limit}")]
    PayloadTooLarge {
        index: usize,
        len: usize,
        limit: usize,
    },
    #[error("record set body is {len} bytes, limit {limit}")]
    BodyTooLarge { len: usize, limit: usize },
    #[error("decompress record set: {0}")]
    Decompress(String),
    #[error("compress record set: {0}")]
    Compress(String),
}

/// Encodes records into a record set, compressing the body if asked. Enforces the same limits a
/// decoder would, so an encodable set is always decodable.
pub fn encode_record_set(
    records: &[Record],
    compression: Compression,
    limits: &RecordSetLimits,
) -> Result<Bytes, RecordSetError> {
    let body_len: usize = records.iter().map(Record::encoded_len).sum();
    if body_len > limits.max_body || records.len() > u32::MAX as usize {
        return Err(RecordSetError::BodyTooLarge {
            len: body_len,
            limit: limits.max_body,
        });
    }
    // The header, then the body written in place: uncompressed sets need one buffer only.
    let mut out = BytesMut::with_capacity(HEADER_LEN + body_len);
    out.put_u8(VERSION);
    out.put_u8(compression.code());
    out.put_u32_le(records.len() as u32);
    out.put_u32_le(body_len as u32);
    for (index, r) in records.iter().enumerate() {
        if r.payload.len() > limits.max_payload {
            return Err(RecordSetError::PayloadTooLarge {
                index,
                len: r.payload.len(),
                limit: limits.max_payload,
            });
        }
        if let Some(k) = &r.key
            && k.len() > limits.max_key
        {
            return Err(RecordSetError::Decode(DecodeError::TooLarge {
                field: "record key",
                len: k.len(),
                limit: limits.max_key,
            }));
        }
        let flags = r.key.as_ref().map_or(0, |_| FLAG_KEY) | r.txid.map_or(0, |_| FLAG_TXID);
        out.put_u8(flags);
        out.put_i64_le(r.timestamp_ms);
        if let Some(t) = r.txid {
            out.put_u64_le(t);
        }
        if let Some(k) = &r.key {
            out.put_u32_le(k.len() as u32);
            out.put_slice(k);
        }
        out.put_u32_le(r.payload.len() as u32);
        out.put_slice(&r.payload);
    }
    let compressed = match compression {
        Compression::None => return Ok(out.freeze()),
        Compression::Zstd => zstd::bulk::compress(&out[HEADER_LEN..], 1)
            .map_err(|e| RecordSetError::Compress(e.to_string()))?,
        Compression::Lz4 => lz4_flex::block::compress(&out[HEADER_LEN..]),
    };
    out.truncate(HEADER_LEN);
    out.extend_from_slice(&compressed);
    Ok(out.freeze())
}

/// Decodes a record set. Payloads and keys are zero-copy slices when the body is uncompressed.
pub fn decode_record_set(
    bytes: Bytes,
    limits: &RecordSetLimits,
) -> Result<Vec<Record>, RecordSetError> {
    let mut cur = Cursor::new(bytes);
    let version = cur.u8("record set version")?;
    if version != VERSION {
        return Err(DecodeError::invalid(
            "record set version",
            format!("{version} (this build reads {VERSION})"),
        )
        .into());
    }
    let codec = cur.u8("record set codec")?;
    let compression = Compression::from_code(codec).ok_or_else(|| {
        DecodeError::invalid("record set codec", format!("unknown codec {codec}"))
    })?;
    let count = cur.u32("record count")? as usize;
    let body_len = cur.u32("record set body length")? as usize;
    if body_len > limits.max_body {
        return Err(RecordSetError::BodyTooLarge {
            len: body_len,
            limit: limits.max_body,
        });
    }
    if count > body_len / MIN_RECORD_LEN {
        return Err(DecodeError::invalid(
            "record count",
            format!("{count} records cannot fit in {body_len} bytes"),
        )
        .into());
    }
    let stored = cur.rest();
    let body = match compression {
        Compression::None => stored,
        Compression::Zstd => {
            let out = zstd::bulk::decompress(&stored, body_len)
                .map_err(|e| RecordSetError::Decompress(e.to_string()))?;
            Bytes::from(out)
        }
        Compression::Lz4 => {
            let out = lz4_flex::block::decompress(&stored, body_len)
                .map_err(|e| RecordSetError::Decompress(e.to_string()))?;
            Bytes::from(out)
        }
    };
    if body.len() != body_len {
        return Err(DecodeError::invalid(
            "record set body length",
            format!("declared {body_len}, found {}", body.len()),
        )
        .into());
    }
    let mut cur = Cursor::new(body);
    let mut records = Vec::with_capacity(count);
    for index in 0..count {
        let flags = cur.u8("record flags")?;
        if flags & !(FLAG_KEY | FLAG_TXID) != 0 {
            return Err(DecodeError::invalid("record flags", format!("{flags:#04x}")).into());
        }
        let timestamp_ms = cur.i64("record timestamp")?;
        let txid = if flags & FLAG_TXID != 0 {
            Some(cur.u64("record txid")?)
        } else {
            None
        };
        let key = if flags & FLAG_KEY != 0 {
            Some(cur.len_bytes("record key", limits.max_key)?)
        } else {
            None
        };
        let len = cur.u32("record payload")? as usize;
        if len > limits.max_payload {
            return Err(RecordSetError::PayloadTooLarge {
                index,
                len,
                limit: limits.max_payload,
            });
        }
        let payload = cur.bytes("record payload", len, limits.max_payload)?;
        records.push(Record {
            payload,
            key,
            timestamp_ms,
            txid,
        });
    }
    cur.finish("record set")?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::new("hello"),
            Record {
                payload: Bytes::from_static(b""),
                key: Some(Bytes::from_static(b"k")),
                timestamp_ms: -5,
                txid: Some(42),
            },
            Record {
                payload: Bytes::from(vec![7u8; 3000]),
                key: None,
                timestamp_ms: 1_700_000_000_000,
                txid: None,
            },
        ]
    }

    #[test]
    fn roundtrip_every_codec() {
        let limits = RecordSetLimits::default();
        for c in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let enc = encode_record_set(&sample(), c, &limits).unwrap();
            assert_eq!(decode_record_set(enc, &limits).unwrap(), sample(), "{c:?}");
        }
    }

    #[test]
    fn compression_shrinks_repetitive_payloads() {
        let limits = RecordSetLimits::default();
        let plain = encode_record_set(&sample(), Compression::None, &limits).unwrap();
        let zstd = encode_record_set(&sample(), Compression::Zstd, &limits).unwrap();
        assert!(
            zstd.len() < plain.len() / 4,
            "{} vs {}",
            zstd.len(),
            plain.len()
        );
    }

    #[test]
    fn oversize_payload_is_refused_on_both_sides() {
        let limits = RecordSetLimits {
            max_payload: 10,
            ..Default::default()
        };
        let big = vec![Record::new(vec![0u8; 11])];
        assert!(matches!(
            encode_record_set(&big, Compression::None, &limits),
            Err(RecordSetError::PayloadTooLarge { len: 11, .. })
        ));
        let enc = encode_record_set(&big, Compression::None, &RecordSetLimits::default()).unwrap();
        assert!(matches!(
            decode_record_set(enc, &limits),
            Err(RecordSetError::PayloadTooLarge { len: 11, .. })
        ));
    }

    #[test]
    fn decompression_bomb_is_bounded_by_declared_length() {
        let limits = RecordSetLimits::default();
        let enc = encode_record_set(&sample(), Compression::Zstd, &limits).unwrap();
        let mut raw = enc.to_vec();
        // Claim a smaller body than the real one: decompression must fail, not overflow.
        raw[6..10].copy_from_slice(&10u32.to_le_bytes());
        assert!(decode_record_set(Bytes::from(raw.clone()), &limits).is_err());
        // Claim a body beyond the limit: refused before decompressing.
        raw[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_record_set(Bytes::from(raw), &limits),
            Err(RecordSetError::BodyTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_records_roundtrip(
            recs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..200),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 any::<i64>(), proptest::option::of(any::<u64>())), 0..20),
            codec in 0u8..3,
        ) {
            let records: Vec<Record> = recs.into_iter().map(|(p, k, t, x)| Record {
                payload: p.into(), key: k.map(Into::into), timestamp_ms: t, txid: x,
            }).collect();
            let c = Compression::from_code(codec).unwrap();
            let limits = RecordSetLimits::default();
            let enc = encode_record_set(&records, c, &limits).unwrap();
            prop_assert_eq!(decode_record_set(enc, &limits).unwrap(), records);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_record_set(Bytes::from(data), &RecordSetLimits::default());
        }

        #[test]
        fn mutated_sets_never_panic(pos in any::<usize>(), val in any::<u8>(), codec in 0u8..3) {
            let limits = RecordSetLimits::default();
            let enc = encode_record_set(&sample(), Compression::from_code(codec).unwrap(), &limits).unwrap();
            let mut raw = enc.to_vec();
            let i = pos % raw.len();
            raw[i] = val;
            let _ = decode_record_set(Bytes::from(raw), &limits);
        }
    }
}
