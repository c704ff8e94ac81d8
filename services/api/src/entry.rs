//! The entry envelope: what a ledger writer sends and a bookie stores verbatim.
//!
//! Format version 2, little-endian:
//!
//! ```text
//! magic u16 = 0xD10E | version u8 = 2 | flags u8 = 0 | ledger u64 | entry u64 |
//! ledger_length u64 | payload_len u32 | payload | crc32c u32
//! ```
//!
//! `ledger_length` is the number of payload bytes in the ledger up to and including this entry,
//! so that a recovery which finds the last entry also knows the sealed ledger's length without
//! reading every entry before it. (Version 1, without it, never left development.)
//!
//! The CRC32C covers every byte before it, so an entry stored under the wrong ledger or entry id
//! fails verification as surely as a flipped bit does. The writer computes it; the bookie checks
//! it on add and on read; the reader checks it again.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::DecodeError;
use crate::ids::{EntryId, LedgerId};

pub const ENTRY_MAGIC: u16 = 0xD10E;
const VERSION: u8 = 2;
/// Bytes before the payload.
pub const ENTRY_HEADER_LEN: usize = 32;
/// Header plus the CRC trailer: an entry's size beyond its payload.
pub const ENTRY_OVERHEAD: usize = ENTRY_HEADER_LEN + 4;

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ledger: LedgerId,
    pub entry: EntryId,
    /// Payload bytes in the ledger through this entry.
    pub ledger_length: u64,
    pub payload: Bytes,
}

/// Why entry bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("decode entry: {0}")]
    Decode(#[from] DecodeError),
    #[error("entry checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("entry is {ledger}/{entry}, expected {expected_ledger}/{expected_entry}")]
    WrongId {
        ledger: LedgerId,
        entry: EntryId,
        expected_ledger: LedgerId,
        expected_entry: EntryId,
    },
}

impl Entry {
    /// Seals `payload` as entry `entry` of `ledger`, which holds `ledger_length` payload bytes
    /// through this entry (this payload included).
    pub fn encode(ledger: LedgerId, entry: EntryId, ledger_length: u64, payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(ENTRY_OVERHEAD + payload.len());
        buf.put_u16_le(ENTRY_MAGIC);
        buf.put_u8(VERSION);
        buf.put_u8(0);
        buf.put_u64_le(ledger.0);
        buf.put_u64_le(entry.0);
        buf.put_u64_le(ledger_length);
        buf.put_u32_le(payload.len() as u32);
        buf.put_slice(payload);
        let crc = crc32c::crc32c(&buf);
        buf.put_u32_le(crc);
        buf.freeze()
    }

    /// Checks the envelope, its length, its CRC and that it is `ledger`/`entry`, without copying.
    pub fn verify(
        bytes: &[u8],
        ledger: LedgerId,
        entry: EntryId,
        max_len: usize,
    ) -> Result<(), EntryError> {
        let (l, e, _) = check(bytes, max_len)?;
        if (l, e) != (ledger, entry) {
            return Err(EntryError::WrongId {
                ledger: l,
                entry: e,
                expected_ledger: ledger,
                expected_entry: entry,
            });
        }
        Ok(())
    }

    /// Decodes and verifies an entry; the payload is a zero-copy slice of `bytes`.
    pub fn decode(bytes: Bytes, max_len: usize) -> Result<Entry, EntryError> {
        let (ledger, entry, ledger_length) = check(&bytes, max_len)?;
        let payload = bytes.slice(ENTRY_HEADER_LEN..bytes.len() - 4);
        Ok(Entry {
            ledger,
            entry,
            ledger_length,
            payload,
        })
    }
}

/// Validates the envelope and CRC; returns the ids and the ledger length it names.
fn check(bytes: &[u8], max_len: usize) -> Result<(LedgerId, EntryId, u64), EntryError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            field: "entry",
            len: bytes.len(),
            limit: max_len,
        }
        .into());
    }
    if bytes.len() < ENTRY_OVERHEAD {
        return Err(DecodeError::Truncated {
            field: "entry header",
            needed: ENTRY_OVERHEAD,
            available: bytes.len(),
        }
        .into());
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
    if magic != ENTRY_MAGIC {
        return Err(DecodeError::invalid("entry magic", format!("{magic:#06x}")).into());
    }
    let version = bytes[2];
    if version != VERSION {
        return Err(DecodeError::invalid("entry version", format!("{version}")).into());
    }
    let flags = bytes[3];
    if flags != 0 {
        return Err(DecodeError::invalid("entry flags", format!("{flags:#04x}")).into());
    }
    let ledger = LedgerId(u64_at(4));
    let entry = EntryId(u64_at(12));
    let ledger_length = u64_at(20);
    let len = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]) as usize;
    let expected = ENTRY_OVERHEAD.saturating_add(len);
    if bytes.len() != expected {
        return Err(DecodeError::invalid(
            "entry payload length",
            format!(
                "declares {len} payload bytes, entry is {} bytes",
                bytes.len()
            ),
        )
        .into());
    }
    let body = &bytes[..bytes.len() - 4];
    let mut trailer = [0u8; 4];
    trailer.copy_from_slice(&bytes[bytes.len() - 4..]);
    let stored = u32::from_le_bytes(trailer);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(EntryError::Checksum { stored, computed });
    }
    if ledger_length < len as u64 {
        return Err(DecodeError::invalid(
            "entry ledger length",
            format!("{ledger_length} is less than this entry's own {len} payload bytes"),
        )
        .into());
    }
    Ok((ledger, entry, ledger_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn roundtrip() {
        let e = Entry::encode(LedgerId(3), EntryId(9), 107, b"payload");
        assert_eq!(e.len(), ENTRY_OVERHEAD + 7);
        Entry::verify(&e, LedgerId(3), EntryId(9), MAX).unwrap();
        let d = Entry::decode(e, MAX).unwrap();
        assert_eq!(
            (d.ledger, d.entry, d.ledger_length),
            (LedgerId(3), EntryId(9), 107)
        );
        assert_eq!(&d.payload[..], b"payload");
    }

    /// Golden bytes: the stored format must not drift.
    #[test]
    fn golden_encoding() {
        let e = Entry::encode(LedgerId(1), EntryId(2), 0x0105, b"ab");
        let expected: &[u8] = &[
            0x0e, 0xd1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0,
            0, 2, 0, 0, 0, b'a', b'b',
        ];
        assert_eq!(&e[..e.len() - 4], expected);
        let crc = crc32c::crc32c(expected);
        assert_eq!(&e[e.len() - 4..], &crc.to_le_bytes());
    }

    #[test]
    fn wrong_ids_and_flipped_bits_are_refused() {
        let e = Entry::encode(LedgerId(3), EntryId(9), 7, b"payload");
        assert!(matches!(
            Entry::verify(&e, LedgerId(3), EntryId(8), MAX),
            Err(EntryError::WrongId { .. })
        ));
        for i in 0..e.len() {
            let mut raw = e.to_vec();
            raw[i] ^= 0x10;
            assert!(
                Entry::verify(&raw, LedgerId(3), EntryId(9), MAX).is_err(),
                "bit in byte {i}"
            );
        }
        assert!(Entry::verify(&e, LedgerId(3), EntryId(9), 10).is_err());
        // A ledger length below the entry's own payload cannot be right.
        let short = Entry::encode(LedgerId(3), EntryId(9), 6, b"payload");
        assert!(Entry::verify(&short, LedgerId(3), EntryId(9), MAX).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Entry::decode(Bytes::from(data), MAX);
        }

        #[test]
        fn truncations_are_refused(payload in proptest::collection::vec(any::<u8>(), 0..64), cut in any::<usize>()) {
            let e = Entry::encode(LedgerId(1), EntryId(1), payload.len() as u64, &payload);
            let cut = cut % e.len();
            prop_assert!(Entry::decode(e.slice(..cut), MAX).is_err());
        }
    }
}
