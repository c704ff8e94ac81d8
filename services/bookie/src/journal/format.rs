//! The journal's on-disk format. Pure encoding and decoding; no IO.
//!
//! A journal file is preallocated to a fixed size and written only at 4 KiB-aligned offsets:
//!
//! ```text
//! offset 0      file header block (4 KiB): magic "DLOGJNL1" | format u32 = 1 | file_id u64 |
//!               instance_id u64 | size u64 | crc32c u32 of the preceding bytes | zeros
//! offset 4096   commit | commit | …   each commit starts at a 4 KiB boundary
//! ```
//!
//! A commit is one group commit: everything the journal took from its queue for one write and
//! one fsync.
//!
//! ```text
//! commit header (36 bytes): magic u32 "DLCM" | flags u16 (bit 0: end of file) | reserved u16 |
//!                           file_id u64 | seq u64 | body_len u32 | heads_crc u32 |
//!                           header_crc u32 = crc32c(salt ‖ the preceding 32 bytes)
//! body (body_len bytes):    record | record | …
//! padding:                  zeros up to the next 4 KiB boundary
//! ```
//!
//! `heads_crc` is the CRC32C of the body without the entry bytes: entries are sealed envelopes
//! with their own CRC32C (computed by the writer, checked by the bookie on admission), so a
//! commit is whole exactly when its heads match `heads_crc` and every entry verifies. The hot
//! path thus checksums each byte once on the bookie, not twice; replay, which is rare, checks
//! both. `seq` grows by one per commit across files. The header CRC is seeded with the bookie's
//! secret journal salt (from its cookie) so that record payloads, which clients choose, can
//! never be mistaken for a commit header when a scan looks for valid commits after a damaged
//! one. `file_id` in every header makes data left over in a recycled file invalid.
//!
//! Records, all little-endian, `type u8 | ledger u64 | …`:
//!
//! | type | record | fields after ledger |
//! |---|---|---|
//! | 1 | add | entry u64, epoch u64, lac u64 (u64::MAX none), len u32, entry bytes |
//! | 2 | fence | epoch u64 |
//! | 3 | write lac | epoch u64, lac u64 |
//! | 4 | delete ledger | — |
//! | 5 | relocate (compaction) | entry u64, old_file u64, old_offset u64, len u32, entry bytes |

use bytes::{BufMut, Bytes, BytesMut};
use dlog_api::{Cursor, DecodeError, EntryId, Epoch, LedgerId};

/// Alignment of every write, and of commits within a file.
pub const BLOCK: usize = 4096;
pub const FILE_MAGIC: &[u8; 8] = b"DLOGJNL1";
pub const FILE_FORMAT: u32 = 1;
const FILE_HEADER_USED: usize = 8 + 4 + 8 + 8 + 8 + 4;
pub const COMMIT_MAGIC: u32 = u32::from_le_bytes(*b"DLCM");
pub const COMMIT_HEADER_LEN: usize = 36;
pub const FLAG_END_OF_FILE: u16 = 1;

/// Rounds `n` up to a multiple of [`BLOCK`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// The header block at the start of every journal file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub file_id: u64,
    pub instance_id: u64,
    /// The size the file was preallocated to: a shorter file was truncated.
    pub size: u64,
}

impl FileHeader {
    /// The full first block of the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK);
        b.extend_from_slice(FILE_MAGIC);
        b.extend_from_slice(&FILE_FORMAT.to_le_bytes());
        b.extend_from_slice(&self.file_id.to_le_bytes());
        b.extend_from_slice(&self.instance_id.to_le_bytes());
        b.extend_from_slice(&self.size.to_le_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.resize(BLOCK, 0);
        b
    }

    pub fn decode(block: &[u8]) -> Result<FileHeader, String> {
        if block.len() < FILE_HEADER_USED {
            return Err(format!("file header truncated to {} bytes", block.len()));
        }
        if &block[..8] != FILE_MAGIC {
            return Err("not a dlog journal file (bad magic)".into());
        }
        let crc = u32::from_le_bytes(le4(&block[36..40]));
        if crc32c::crc32c(&block[..36]) != crc {
            return Err("journal file header checksum mismatch".into());
        }
        let format = u32::from_le_bytes(le4(&block[8..12]));
        if format != FILE_FORMAT {
            return Err(format!(
                "journal file format {format}, this build reads {FILE_FORMAT}"
            ));
        }
        Ok(FileHeader {
            file_id: u64::from_le_bytes(le8(&block[12..20])),
            instance_id: u64::from_le_bytes(le8(&block[20..28])),
            size: u64::from_le_bytes(le8(&block[28..36])),
        })
    }
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    a
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    a
}

/// A decoded commit header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitHeader {
    pub flags: u16,
    pub file_id: u64,
    pub seq: u64,
    pub body_len: u32,
    /// CRC32C of the record heads (the body without entry bytes).
    pub heads_crc: u32,
}

impl CommitHeader {
    pub fn is_end_of_file(&self) -> bool {
        self.flags & FLAG_END_OF_FILE != 0
    }

    /// Bytes the commit occupies in the file, padding included.
    pub fn span(&self) -> u64 {
        align_up(COMMIT_HEADER_LEN as u64 + u64::from(self.body_len))
    }

    pub fn encode(&self, salt: u64, out: &mut [u8]) {
        out[0..4].copy_from_slice(&COMMIT_MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&self.flags.to_le_bytes());
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..16].copy_from_slice(&self.file_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..28].copy_from_slice(&self.body_len.to_le_bytes());
        out[28..32].copy_from_slice(&self.heads_crc.to_le_bytes());
        let crc = header_crc(salt, &out[0..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and checks a header found in file `file_id`. `None` if these bytes are not a
    /// valid commit header of this file: zeros, stale data of a recycled file, or damage.
    pub fn decode(buf: &[u8], salt: u64, file_id: u64) -> Option<CommitHeader> {
        if buf.len() < COMMIT_HEADER_LEN {
            return None;
        }
        if u32::from_le_bytes(le4(&buf[0..4])) != COMMIT_MAGIC {
            return None;
        }
        if header_crc(salt, &buf[0..32]) != u32::from_le_bytes(le4(&buf[32..36])) {
            return None;
        }
        let h = CommitHeader {
            flags: u16::from_le_bytes([buf[4], buf[5]]),
            file_id: u64::from_le_bytes(le8(&buf[8..16])),
            seq: u64::from_le_bytes(le8(&buf[16..24])),
            body_len: u32::from_le_bytes(le4(&buf[24..28])),
            heads_crc: u32::from_le_bytes(le4(&buf[28..32])),
        };
        (h.file_id == file_id).then_some(h)
    }
}

fn header_crc(salt: u64, header: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), header)
}

const REC_ADD: u8 = 1;
const REC_FENCE: u8 = 2;
const REC_WRITE_LAC: u8 = 3;
const REC_DELETE: u8 = 4;
const REC_RELOCATE: u8 = 5;

/// Where an entry's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub file_id: u64,
    pub offset: u64,
    pub len: u32,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Add {
        ledger: LedgerId,
        entry: EntryId,
        epoch: Epoch,
        lac: Option<EntryId>,
        data: Bytes,
    },
    Fence {
        ledger: LedgerId,
        epoch: Epoch,
    },
    WriteLac {
        ledger: LedgerId,
        epoch: Epoch,
        lac: EntryId,
    },
    Delete {
        ledger: LedgerId,
    },
    /// Compaction moved an entry out of `old_file`; applies only if the index still points there.
    Relocate {
        ledger: LedgerId,
        entry: EntryId,
        old: Location,
        data: Bytes,
    },
}

impl Record {
    pub fn ledger(&self) -> LedgerId {
        match self {
            Record::Add { ledger, .. }
            | Record::Fence { ledger, .. }
            | Record::WriteLac { ledger, .. }
            | Record::Delete { ledger }
            | Record::Relocate { ledger, .. } => *ledger,
        }
    }

    /// Encoded size in a commit body.
    pub fn encoded_len(&self) -> usize {
        1 + 8
            + match self {
                Record::Add { data, .. } => 8 + 8 + 8 + 4 + data.len(),
                Record::Fence { .. } => 8,
                Record::WriteLac { .. } => 16,
                Record::Delete { .. } => 0,
                Record::Relocate { data, .. } => 8 + 8 + 8 + 4 + data.len(),
            }
    }

    /// Appends everything but the entry bytes to `out`, and returns the entry bytes (for adds
    /// and relocations), which the caller appends right after: the writer copies them straight
    /// into its aligned buffer.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> Option<&Bytes> {
        let (ty, data) = match self {
            Record::Add { data, .. } => (REC_ADD, Some(data)),
            Record::Fence { .. } => (REC_FENCE, None),
            Record::WriteLac { .. } => (REC_WRITE_LAC, None),
            Record::Delete { .. } => (REC_DELETE, None),
            Record::Relocate { data, .. } => (REC_RELOCATE, Some(data)),
        };
        out.put_u8(ty);
        out.put_u64_le(self.ledger().0);
        match self {
            Record::Add {
                entry, epoch, lac, ..
            } => {
                out.put_u64_le(entry.0);
                out.put_u64_le(epoch.0);
                out.put_u64_le(EntryId::to_wire(*lac));
            }
            Record::Fence { epoch, .. } => out.put_u64_le(epoch.0),
            Record::WriteLac { epoch, lac, .. } => {
                out.put_u64_le(epoch.0);
                out.put_u64_le(lac.0);
            }
            Record::Delete { .. } => {}
            Record::Relocate { entry, old, .. } => {
                out.put_u64_le(entry.0);
                out.put_u64_le(old.file_id);
                out.put_u64_le(old.offset);
            }
        }
        if let Some(d) = data {
            out.put_u32_le(d.len() as u32);
        }
        data
    }

    /// Appends the whole record; for adds and relocations returns the offset of the entry bytes
    /// from the start of the record.
    pub fn encode(&self, out: &mut BytesMut) -> Option<usize> {
        let mut head = Vec::with_capacity(64);
        let data = self.encode_head(&mut head);
        out.put_slice(&head);
        let d = data?;
        out.put_slice(d);
        Some(head.len())
    }
}

/// Decodes and verifies a commit body: every record decodes, the heads match `heads_crc`, and
/// every entry's envelope verifies. `None` if any of that fails (a torn or damaged commit).
pub fn verify_body(body: Bytes, heads_crc: u32, max_entry: usize) -> Option<Vec<(Record, usize)>> {
    let records = decode_body(body.clone(), max_entry).ok()?;
    let mut crc = 0u32;
    let mut at = 0usize;
    for (rec, data_at) in &records {
        let (ledger, entry, data) = match rec {
            Record::Add {
                ledger,
                entry,
                data,
                ..
            }
            | Record::Relocate {
                ledger,
                entry,
                data,
                ..
            } => (*ledger, *entry, data),
            _ => continue,
        };
        crc = crc32c::crc32c_append(crc, &body[at..*data_at]);
        at = data_at + data.len();
        dlog_api::Entry::verify(data, ledger, entry, max_entry).ok()?;
    }
    crc = crc32c::crc32c_append(crc, &body[at..]);
    (crc == heads_crc).then_some(records)
}

/// Decodes a commit body into records, each with the offset of its entry bytes within the body
/// (for adds and relocations).
pub fn decode_body(body: Bytes, max_entry: usize) -> Result<Vec<(Record, usize)>, DecodeError> {
    let total = body.len();
    let mut c = Cursor::new(body);
    let mut out = Vec::new();
    while c.remaining() > 0 {
        let ty = c.u8("journal record type")?;
        let ledger = LedgerId(c.u64("journal record ledger")?);
        let rec = match ty {
            REC_ADD => {
                let entry = EntryId(c.u64("journal add entry")?);
                let epoch = Epoch(c.u64("journal add epoch")?);
                let lac = EntryId::from_wire(c.u64("journal add lac")?);
                let data = c.len_bytes("journal add data", max_entry)?;
                let at = total - c.remaining() - data.len();
                out.push((
                    Record::Add {
                        ledger,
                        entry,
                        epoch,
                        lac,
                        data,
                    },
                    at,
                ));
                continue;
            }
            REC_FENCE => Record::Fence {
                ledger,
                epoch: Epoch(c.u64("journal fence epoch")?),
            },
            REC_WRITE_LAC => Record::WriteLac {
                ledger,
                epoch: Epoch(c.u64("journal write lac epoch")?),
                lac: EntryId(c.u64("journal write lac")?),
            },
            REC_DELETE => Record::Delete { ledger },
            REC_RELOCATE => {
                let entry = EntryId(c.u64("journal relocate entry")?);
                let old_file = c.u64("journal relocate old file")?;
                let old_offset = c.u64("journal relocate old offset")?;
                let data = c.len_bytes("journal relocate data", max_entry)?;
                let at = total - c.remaining() - data.len();
                let old = Location {
                    file_id: old_file,
                    offset: old_offset,
                    len: data.len() as u32,
                };
                out.push((
                    Record::Relocate {
                        ledger,
                        entry,
                        old,
                        data,
                    },
                    at,
                ));
                continue;
            }
            other => {
                return Err(DecodeError::Invalid {
                    field: "journal record type",
                    detail: format!("{other}"),
                });
            }
        };
        out.push((rec, 0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records() -> Vec<Record> {
        vec![
            Record::Add {
                ledger: LedgerId(1),
                entry: EntryId(0),
                epoch: Epoch(2),
                lac: None,
                data: Bytes::from_static(b"abc"),
            },
            Record::Fence {
                ledger: LedgerId(1),
                epoch: Epoch(3),
            },
            Record::WriteLac {
                ledger: LedgerId(1),
                epoch: Epoch(3),
                lac: EntryId(0),
            },
            Record::Delete {
                ledger: LedgerId(9),
            },
            Record::Relocate {
                ledger: LedgerId(4),
                entry: EntryId(5),
                old: Location {
                    file_id: 3,
                    offset: 8192,
                    len: 2,
                },
                data: Bytes::from_static(b"xy"),
            },
        ]
    }

    #[test]
    fn body_roundtrip_with_data_offsets() {
        let mut body = BytesMut::new();
        let mut offsets = Vec::new();
        for r in records() {
            let start = body.len();
            let at = r.encode(&mut body);
            assert_eq!(body.len() - start, r.encoded_len());
            offsets.push(at.map(|a| start + a));
        }
        let body = body.freeze();
        let decoded = decode_body(body.clone(), 1 << 20).unwrap();
        assert_eq!(decoded.len(), 5);
        for ((rec, at), (orig, off)) in decoded.iter().zip(records().iter().zip(offsets)) {
            assert_eq!(rec, orig);
            if let Some(off) = off {
                assert_eq!(*at, off);
                let data = match rec {
                    Record::Add { data, .. } | Record::Relocate { data, .. } => data,
                    _ => unreachable!(),
                };
                assert_eq!(&body[off..off + data.len()], &data[..]);
            }
        }
    }

    #[test]
    fn verify_body_checks_heads_and_every_entry() {
        let entry =
            |e: u64| dlog_api::Entry::encode(LedgerId(1), EntryId(e), 7 * (e + 1), b"payload");
        let recs = [
            Record::Add {
                ledger: LedgerId(1),
                entry: EntryId(0),
                epoch: Epoch(1),
                lac: None,
                data: entry(0),
            },
            Record::Fence {
                ledger: LedgerId(1),
                epoch: Epoch(2),
            },
            Record::Add {
                ledger: LedgerId(1),
                entry: EntryId(1),
                epoch: Epoch(2),
                lac: Some(EntryId(0)),
                data: entry(1),
            },
        ];
        let mut body = BytesMut::new();
        let mut crc = 0u32;
        for r in &recs {
            let mut head = Vec::new();
            let data = r.encode_head(&mut head);
            crc = crc32c::crc32c_append(crc, &head);
            body.put_slice(&head);
            if let Some(d) = data {
                body.put_slice(d);
            }
        }
        let body = body.freeze();
        let got = verify_body(body.clone(), crc, 1 << 20).unwrap();
        assert_eq!(got.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), recs);
        assert!(verify_body(body.clone(), crc ^ 1, 1 << 20).is_none());
        for i in 0..body.len() {
            let mut raw = body.to_vec();
            raw[i] ^= 0x04;
            assert!(
                verify_body(Bytes::from(raw), crc, 1 << 20).is_none(),
                "flipped byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn headers_roundtrip_and_reject_other_files_and_salts() {
        let h = CommitHeader {
            flags: 0,
            file_id: 7,
            seq: 42,
            body_len: 100,
            heads_crc: 5,
        };
        let mut buf = [0u8; COMMIT_HEADER_LEN];
        h.encode(11, &mut buf);
        assert_eq!(CommitHeader::decode(&buf, 11, 7), Some(h));
        assert_eq!(CommitHeader::decode(&buf, 12, 7), None, "other salt");
        assert_eq!(CommitHeader::decode(&buf, 11, 8), None, "other file");
        assert_eq!(CommitHeader::decode(&[0u8; 64], 11, 7), None, "zeros");
        assert_eq!(h.span(), 4096);

        let fh = FileHeader {
            file_id: 3,
            instance_id: 99,
            size: 1 << 20,
        };
        let block = fh.encode();
        assert_eq!(block.len(), BLOCK);
        assert_eq!(FileHeader::decode(&block).unwrap(), fh);
        let mut bad = block.clone();
        bad[13] ^= 1;
        assert!(FileHeader::decode(&bad).is_err());
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_body(Bytes::from(data), 1 << 20);
        }

        #[test]
        fn random_headers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = CommitHeader::decode(&data, 1, 1);
            let _ = FileHeader::decode(&data);
        }
    }
}
