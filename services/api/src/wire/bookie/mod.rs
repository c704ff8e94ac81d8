//! Messages of the bookie protocol: what a ledger writer, a reader or an operator asks a bookie,
//! and what it answers. Each request is one frame whose `op` names the message; the response
//! frame carries the same `op` and request id.
//!
//! Response body: `status u16` (0 = ok, otherwise an [`ErrorCode`]) then, if ok, the
//! operation's result, else `message str16`. `str16` is `u16 length | UTF-8`; `opt_entry` is a
//! `u64` with `u64::MAX` meaning none. Bodies, little-endian:
//!
//! | op | request | ok response |
//! |---|---|---|
//! | 1 hello | min_version u8, max_version u8, client str16, auth_method str16, auth_data u32-len bytes | version u8, bookie_id str16, instance_id u64, max_frame_len u32 |
//! | 2 add | ledger u64, entry u64, epoch u64, lac opt_entry, flags u8 (bit 0 recovery), data (rest) | ledger u64, entry u64 |
//! | 3 read | ledger u64, entry u64, flags u8 (bit 0 fence), epoch u64 | ledger u64, entry u64, lac opt_entry, data (rest) |
//! | 4 read lac | ledger u64, known opt_entry, wait_ms u32 | lac info |
//! | 5 fence | ledger u64, epoch u64 | lac info |
//! | 6 delete | ledger u64 | (empty) |
//! | 7 info | (empty) | bookie info |
//! | 8 write lac | ledger u64, epoch u64, lac u64 | (empty) |
//! | 9 add batch | ledger u64, epoch u64, lac opt_entry, flags u8 (bit 0 recovery), count u32, count × (entry u64, len u32, entry bytes) | ledger u64, count u32 |
//!
//! `lac info` = lac opt_entry, last_entry opt_entry, fence_epoch u64.
//! `bookie info` = bookie_id str16, instance_id u64, state u8 (0 writable, 1 read-only,
//! 2 failed, 3 draining), damaged u8, disk_total u64, disk_used u64, journal_bytes u64,
//! ledgers u64, state_reason str16.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::{Cursor, DecodeError, put_string};
use crate::error::ErrorCode;
use crate::ids::{EntryId, Epoch, LedgerId};

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::RequestDecodeError;

/// Operation codes. Stable: never renumbered or reused.
pub mod op {
    pub const HELLO: u8 = 1;
    pub const ADD: u8 = 2;
    pub const READ: u8 = 3;
    pub const READ_LAC: u8 = 4;
    pub const FENCE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const INFO: u8 = 7;
    pub const WRITE_LAC: u8 = 8;
    pub const ADD_BATCH: u8 = 9;
}

/// Most entries in one add batch.
pub const MAX_BATCH_ENTRIES: usize = 8192;

const MAX_STRING: usize = 1024;
const MAX_AUTH: usize = 16 << 10;
/// Longest long-poll a bookie honours; longer waits are clamped to it.
pub const MAX_LONG_POLL_MS: u32 = 60_000;

/// The first request on a connection: version negotiation, and where authentication will go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    pub min_version: u8,
    pub max_version: u8,
    /// Free text naming the client, for logs.
    pub client: String,
    /// Empty for none. Reserved for token authentication.
    pub auth_method: String,
    pub auth_data: Bytes,
}

impl Hello {
    /// Appends the hello request body. The client protocol's hello is the same message.
    pub(crate) fn put(&self, body: &mut BytesMut) {
        body.put_u8(self.min_version);
        body.put_u8(self.max_version);
        put_string(body, &self.client);
        put_string(body, &self.auth_method);
        body.put_u32_le(self.auth_data.len() as u32);
        body.put_slice(&self.auth_data);
    }

    /// Reads a hello request body (the caller checks that nothing follows).
    pub(crate) fn get(c: &mut Cursor) -> Result<Hello, DecodeError> {
        Ok(Hello {
            min_version: c.u8("hello min version")?,
            max_version: c.u8("hello max version")?,
            client: c.string("hello client", MAX_STRING)?,
            auth_method: c.string("hello auth method", MAX_STRING)?,
            auth_data: c.len_bytes("hello auth data", MAX_AUTH)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOk {
    pub version: u8,
    pub bookie_id: String,
    pub instance_id: u64,
    /// The largest frame the bookie accepts; clients size their batches to it.
    pub max_frame_len: u32,
}

/// Store entry `entry` of `ledger`. `data` is a sealed [`crate::Entry`] envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddEntry {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub epoch: Epoch,
    /// The writer's last-add-confirmed, piggybacked.
    pub lac: Option<EntryId>,
    /// Set by ledger recovery when it re-replicates an entry.
    pub recovery: bool,
    pub data: Bytes,
}

/// Store several entries of one ledger, all or none: the bookie admits them together (one
/// fencing decision) and makes them durable in one journal commit. Clients coalesce queued adds
/// into batches to amortise per-request costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddBatch {
    pub ledger: LedgerId,
    pub epoch: Epoch,
    pub lac: Option<EntryId>,
    pub recovery: bool,
    pub entries: Vec<(EntryId, Bytes)>,
}

/// Read one entry; with `fence`, first fence the ledger at that epoch (recovery reads fence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadEntry {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub fence: Option<Epoch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntryOk {
    pub ledger: LedgerId,
    pub entry: EntryId,
    pub lac: Option<EntryId>,
    pub data: Bytes,
}

/// Read the ledger's LAC; if it is not beyond `known`, wait up to `wait_ms` for it to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLac {
    pub ledger: LedgerId,
    pub known: Option<EntryId>,
    pub wait_ms: u32,
}

/// What a bookie knows of a ledger's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LacInfo {
    /// Highest last-add-confirmed the writer told this bookie.
    pub lac: Option<EntryId>,
    /// Highest entry id this bookie has accepted for the ledger.
    pub last_entry: Option<EntryId>,
    /// Highest fence epoch made durable (0 if never fenced).
    pub fence_epoch: Epoch,
}

/// Fence the ledger: refuse adds below `epoch` from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub ledger: LedgerId,
    pub epoch: Epoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLac {
    pub ledger: LedgerId,
    pub epoch: Epoch,
    pub lac: EntryId,
}

/// A bookie's write availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BookieState {
    Writable,
    ReadOnly,
    /// The journal failed; reads only until restart.
    Failed,
    /// Shutting down.
    Draining,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BookieInfo {
    pub bookie_id: String,
    pub instance_id: u64,
    pub state: BookieState,
    /// The bookie found damage it could not attribute to a ledger (a corrupt journal region
    /// that was not a torn tail); it answers "unknown" for entries it cannot find.
    pub damaged: bool,
    pub disk_total: u64,
    pub disk_used: u64,
    pub journal_bytes: u64,
    pub ledgers: u64,
    pub state_reason: String,
}

/// A request to a bookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello(Hello),
    Add(AddEntry),
    Read(ReadEntry),
    ReadLac(ReadLac),
    Fence(Fence),
    Delete(LedgerId),
    Info,
    WriteLac(WriteLac),
    AddBatch(AddBatch),
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Hello(HelloOk),
    Added { ledger: LedgerId, entry: EntryId },
    Entry(ReadEntryOk),
    Lac(LacInfo),
    Fenced(LacInfo),
    Deleted,
    Info(BookieInfo),
    LacWritten,
    AddedBatch { ledger: LedgerId, count: u32 },
}

/// A failed answer: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ResponseError {
    pub code: ErrorCode,
    pub message: String,
}

impl ResponseError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn put_lac_info(body: &mut BytesMut, i: &LacInfo) {
    body.put_u64_le(EntryId::to_wire(i.lac));
    body.put_u64_le(EntryId::to_wire(i.last_entry));
    body.put_u64_le(i.fence_epoch.0);
}

fn get_lac_info(c: &mut Cursor) -> Result<LacInfo, DecodeError> {
    Ok(LacInfo {
        lac: EntryId::from_wire(c.u64("lac")?),
        last_entry: EntryId::from_wire(c.u64("last entry")?),
        fence_epoch: Epoch(c.u64("fence epoch")?),
    })
}
