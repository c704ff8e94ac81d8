//! Messages of the client protocol: what an application (through the SDK or the CLI) asks a
//! service node about streams, and what it answers. Frames and the hello handshake are the
//! bookie protocol's ([`crate::wire::frame`], [`Hello`]); each request is one frame whose `op`
//! names the message, and the response frame carries the same `op` and request id.
//!
//! Response body: `status u16` (0 = ok, otherwise an [`ErrorCode`]) then, if ok, the operation's
//! result, else `message str16` and, only when the status is
//! [`NotOwner`](ErrorCode::NotOwner), `owner str16` (the owner's client address, empty if
//! unknown). `str16` is `u16 length | UTF-8`, at most [`MAX_STRING`] bytes (an error message at
//! most `u16::MAX`). Bodies, little-endian:
//!
//! | op | request | ok response |
//! |---|---|---|
//! | 1 hello | min_version u8, max_version u8, client str16, auth_method str16, auth_data u32-len bytes | version u8, server_id str16, max_frame_len u32, max_record_bytes u32 |
//! | 2 append | stream str16, producer_id u64, sequence u64, flags u8 (0), record_set (rest) | first_offset u64, count u32, flags u8 (bit 0 duplicate) |
//! | 3 read | stream str16, offset u64, max_bytes u32, wait_ms u32, flags u8 (0) | first_offset u64, end_offset u64, start_offset u64, flags u8 (bit 0 end of stream), record_sets (rest: zero or more × (len u32, record set)) |
//! | 4 seek | stream str16, by u8 (1 timestamp, 2 txid), value u64 | offset u64 |
//! | 5 lookup | stream str16 | owner str16 (empty = none), epoch u64 |
//! | 6 admin | json (rest, at most [`MAX_ADMIN_JSON`]) | json (rest) |
//!
//! A stream is `namespace/name` ([`StreamName`]); a name that does not validate is a decode
//! error. `record_set` is a record set in the [`crate::record`] format; this codec carries it
//! as opaque bytes, without a copy, and the service and the SDK decode it. A `producer_id` of 0
//! means no idempotence; otherwise `sequence` is the producer's sequence number of the batch's
//! first record. A seek by timestamp carries the `i64` milliseconds as a two's-complement `u64`.
//! Flag bits not listed above must be 0, and a body must be consumed exactly: a decoder refuses
//! anything else naming the field, so that new fields and flags can only come with a new op or
//! protocol version. `docs/protocol.md` ("The client protocol") has the semantics.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::{Cursor, DecodeError};
use crate::error::ErrorCode;
use crate::ids::Offset;
use crate::stream::StreamName;

mod request;
mod response;
#[cfg(test)]
mod tests;

// The same types as the bookie protocol's: the hello body and request refusals are shared.
pub use super::bookie::{Hello, RequestDecodeError};
pub use response::decode_response;

/// Operation codes. Stable: never renumbered or reused.
pub mod op {
    pub const HELLO: u8 = 1;
    pub const APPEND: u8 = 2;
    pub const READ: u8 = 3;
    pub const SEEK: u8 = 4;
    pub const LOOKUP: u8 = 5;
    pub const ADMIN: u8 = 6;
}

/// Longest `str16` (stream name, server id, owner address) a decoder accepts.
pub const MAX_STRING: usize = 1024;
/// Largest admin request body (JSON) a decoder accepts.
pub const MAX_ADMIN_JSON: usize = 1 << 20;
/// Longest long-poll a service node honours; longer waits are clamped to it, not refused.
pub const MAX_READ_WAIT_MS: u32 = 60_000;

/// Appended response flag: the batch was appended before; the offsets are the original ones.
const APPENDED_DUPLICATE: u8 = 1;
/// Records response flag: the stream has ended and the read reached its end.
const RECORDS_END_OF_STREAM: u8 = 1;
const SEEK_BY_TIMESTAMP: u8 = 1;
const SEEK_BY_TXID: u8 = 2;

/// The node's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOk {
    pub version: u8,
    pub server_id: String,
    /// The largest frame the node accepts; clients size their append batches to it.
    pub max_frame_len: u32,
    /// The largest record payload the node accepts.
    pub max_record_bytes: u32,
}

/// Append a batch of records to the end of a stream, all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub stream: StreamName,
    /// 0 for none; otherwise retries of this batch are recognised and not appended twice.
    pub producer_id: u64,
    /// The producer's sequence number of the first record in `records`.
    pub sequence: u64,
    /// A record set ([`crate::record`] format), carried as is.
    pub records: Bytes,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_offset: Offset,
    pub count: u32,
    /// The batch had been appended before (a producer retry); the offsets are the original ones.
    pub duplicate: bool,
}

/// Read records from `offset` on; if there are none yet, wait up to `wait_ms` for some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub stream: StreamName,
    pub offset: Offset,
    /// How many record-set bytes the answer may carry (a soft limit).
    pub max_bytes: u32,
    /// 0 answers at once; the node clamps it to its limit ([`MAX_READ_WAIT_MS`]).
    pub wait_ms: u32,
}

/// Records of a stream, and where the stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// Offset of the first record in `records`.
    pub first_offset: Offset,
    /// Offset after the last acknowledged record.
    pub end_offset: Offset,
    /// First readable offset (moves up with truncation and retention).
    pub start_offset: Offset,
    /// The stream has ended and this read reached its end: nothing more will come.
    pub end_of_stream: bool,
    /// Zero or more record sets ([`crate::record`] format), each as `u32 length | set`
    /// ([`join_record_sets`], [`split_record_sets`]).
    pub records: Bytes,
}

/// Find an offset by a record attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seek {
    pub stream: StreamName,
    pub by: SeekBy,
}

/// What a seek searches by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekBy {
    /// A record timestamp, milliseconds since the Unix epoch.
    Timestamp(i64),
    /// A transaction id.
    Txid(u64),
}

impl SeekBy {
    fn put(self, body: &mut BytesMut) {
        let (by, value) = match self {
            // Two's complement: the bits of the i64, as documented.
            SeekBy::Timestamp(ms) => (SEEK_BY_TIMESTAMP, ms as u64),
            SeekBy::Txid(txid) => (SEEK_BY_TXID, txid),
        };
        body.put_u8(by);
        body.put_u64_le(value);
    }

    fn get(c: &mut Cursor) -> Result<SeekBy, DecodeError> {
        let by = c.u8("seek by")?;
        let value = c.u64("seek value")?;
        match by {
            SEEK_BY_TIMESTAMP => Ok(SeekBy::Timestamp(value as i64)),
            SEEK_BY_TXID => Ok(SeekBy::Txid(value)),
            other => Err(DecodeError::invalid(
                "seek by",
                format!("{other} (1 timestamp, 2 txid)"),
            )),
        }
    }
}

/// Who owns a stream: the node its appends and reads go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    /// The owner's client address; `None` if no node owns it now. Never `Some("")`: the wire
    /// spells none as the empty string.
    pub owner: Option<String>,
    /// The owner's writer epoch: of two answers, the higher epoch is the newer.
    pub epoch: u64,
}

/// A request to a service node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello(Hello),
    Append(Append),
    Read(Read),
    Seek(Seek),
    Lookup(StreamName),
    /// An admin operation as JSON (the models of [`crate::stream`]).
    Admin(Bytes),
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Hello(HelloOk),
    Appended(Appended),
    Records(Records),
    /// The answer to a seek.
    Position(Offset),
    Owner(OwnerInfo),
    Admin(Bytes),
}

/// A failed answer: a stable code, a human message and, for
/// [`NotOwner`](ErrorCode::NotOwner), where to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ResponseError {
    pub code: ErrorCode,
    pub message: String,
    /// The owner's client address. Sent only with [`NotOwner`](ErrorCode::NotOwner) (ignored
    /// otherwise); `None` when the node does not know the owner. Never `Some("")`.
    pub owner: Option<String>,
}

impl ResponseError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            owner: None,
        }
    }

    /// A [`NotOwner`](ErrorCode::NotOwner) answer redirecting to `owner`, if known.
    pub fn not_owner(owner: Option<String>, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::NotOwner,
            message: message.into(),
            owner: owner.filter(|o| !o.is_empty()),
        }
    }
}

/// Appends a stream name as a `str16` without building the joined string.
fn put_stream(body: &mut BytesMut, stream: &StreamName) {
    let (ns, name) = (stream.namespace(), stream.name());
    // Valid names are at most 2 × 128 + 1 bytes, far below u16::MAX.
    body.put_u16_le((ns.len() + 1 + name.len()) as u16);
    body.put_slice(ns.as_bytes());
    body.put_u8(b'/');
    body.put_slice(name.as_bytes());
}

/// Reads a `str16` stream name, refusing one that does not validate.
fn get_stream(c: &mut Cursor, field: &'static str) -> Result<StreamName, DecodeError> {
    let s = c.string(field, MAX_STRING)?;
    s.parse().map_err(|e: crate::ids::InvalidId| {
        DecodeError::invalid(field, format!("{} {:?}: {}", e.what, e.value, e.reason))
    })
}

/// Reads a `str16` where the empty string means none.
fn get_opt_string(c: &mut Cursor, field: &'static str) -> Result<Option<String>, DecodeError> {
    let s = c.string(field, MAX_STRING)?;
    Ok((!s.is_empty()).then_some(s))
}

/// Refuses flag bits outside `known`.
fn check_flags(field: &'static str, flags: u8, known: u8) -> Result<u8, DecodeError> {
    if flags & !known != 0 {
        return Err(DecodeError::invalid(field, format!("{flags:#04x}")));
    }
    Ok(flags)
}

/// Frames record sets for a read answer: `u32 length | record set` each (a compressed set
/// does not carry its own length).
pub fn join_record_sets<'a>(sets: impl IntoIterator<Item = &'a Bytes>) -> Bytes {
    let sets: Vec<&Bytes> = sets.into_iter().collect();
    let mut b = BytesMut::with_capacity(sets.iter().map(|s| 4 + s.len()).sum());
    for s in sets {
        b.put_u32_le(s.len() as u32);
        b.put_slice(s);
    }
    b.freeze()
}

/// Splits a read answer's records into record sets (zero-copy slices).
pub fn split_record_sets(records: Bytes) -> Result<Vec<Bytes>, DecodeError> {
    let mut c = Cursor::new(records);
    let mut sets = Vec::new();
    while c.remaining() > 0 {
        sets.push(c.len_bytes("record set", usize::MAX)?);
    }
    Ok(sets)
}
