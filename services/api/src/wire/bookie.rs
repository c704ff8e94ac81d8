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

use super::frame::{FrameKind, write_frame};
use super::{Frame, FrameError};
use crate::cursor::{Cursor, DecodeError, put_string};
use crate::error::ErrorCode;
use crate::ids::{EntryId, Epoch, LedgerId};

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

impl Request {
    pub fn op(&self) -> u8 {
        match self {
            Request::Hello(_) => op::HELLO,
            Request::Add(_) => op::ADD,
            Request::Read(_) => op::READ,
            Request::ReadLac(_) => op::READ_LAC,
            Request::Fence(_) => op::FENCE,
            Request::Delete(_) => op::DELETE,
            Request::Info => op::INFO,
            Request::WriteLac(_) => op::WRITE_LAC,
            Request::AddBatch(_) => op::ADD_BATCH,
        }
    }

    /// Appends this request as a frame.
    pub fn encode(
        &self,
        request_id: u64,
        dst: &mut BytesMut,
        max_frame_len: usize,
    ) -> Result<(), FrameError> {
        // Adds dominate: write the small header and the entry without an intermediate copy.
        let mut body = BytesMut::with_capacity(64);
        let tail: &[u8] = match self {
            Request::Hello(h) => {
                body.put_u8(h.min_version);
                body.put_u8(h.max_version);
                put_string(&mut body, &h.client);
                put_string(&mut body, &h.auth_method);
                body.put_u32_le(h.auth_data.len() as u32);
                &h.auth_data
            }
            Request::Add(a) => {
                body.put_u64_le(a.ledger.0);
                body.put_u64_le(a.entry.0);
                body.put_u64_le(a.epoch.0);
                body.put_u64_le(EntryId::to_wire(a.lac));
                body.put_u8(u8::from(a.recovery));
                &a.data
            }
            Request::Read(r) => {
                body.put_u64_le(r.ledger.0);
                body.put_u64_le(r.entry.0);
                body.put_u8(u8::from(r.fence.is_some()));
                body.put_u64_le(r.fence.unwrap_or_default().0);
                &[]
            }
            Request::ReadLac(r) => {
                body.put_u64_le(r.ledger.0);
                body.put_u64_le(EntryId::to_wire(r.known));
                body.put_u32_le(r.wait_ms);
                &[]
            }
            Request::Fence(f) => {
                body.put_u64_le(f.ledger.0);
                body.put_u64_le(f.epoch.0);
                &[]
            }
            Request::Delete(l) => {
                body.put_u64_le(l.0);
                &[]
            }
            Request::Info => &[],
            Request::WriteLac(w) => {
                body.put_u64_le(w.ledger.0);
                body.put_u64_le(w.epoch.0);
                body.put_u64_le(w.lac.0);
                &[]
            }
            Request::AddBatch(b) => return encode_batch(b, request_id, dst, max_frame_len),
        };
        encode_parts(
            dst,
            FrameKind::Request,
            self.op(),
            request_id,
            &body,
            tail,
            max_frame_len,
        )
    }

    /// Decodes a request frame's body.
    pub fn decode(frame: &Frame) -> Result<Request, RequestDecodeError> {
        if frame.kind != FrameKind::Request {
            return Err(RequestDecodeError::Bad(DecodeError::invalid(
                "frame kind",
                "expected a request",
            )));
        }
        let mut c = Cursor::new(frame.body.clone());
        let req = match frame.op {
            op::HELLO => {
                let min_version = c.u8("hello min version")?;
                let max_version = c.u8("hello max version")?;
                let client = c.string("hello client", MAX_STRING)?;
                let auth_method = c.string("hello auth method", MAX_STRING)?;
                let auth_data = c.len_bytes("hello auth data", MAX_AUTH)?;
                Request::Hello(Hello {
                    min_version,
                    max_version,
                    client,
                    auth_method,
                    auth_data,
                })
            }
            op::ADD => {
                let ledger = LedgerId(c.u64("add ledger")?);
                let entry = EntryId(c.u64("add entry")?);
                let epoch = Epoch(c.u64("add epoch")?);
                let lac = EntryId::from_wire(c.u64("add lac")?);
                let flags = c.u8("add flags")?;
                if flags & !1 != 0 {
                    return Err(DecodeError::invalid("add flags", format!("{flags:#04x}")).into());
                }
                let data = c.rest();
                return Ok(Request::Add(AddEntry {
                    ledger,
                    entry,
                    epoch,
                    lac,
                    recovery: flags & 1 != 0,
                    data,
                }));
            }
            op::READ => {
                let ledger = LedgerId(c.u64("read ledger")?);
                let entry = EntryId(c.u64("read entry")?);
                let flags = c.u8("read flags")?;
                let epoch = Epoch(c.u64("read epoch")?);
                if flags & !1 != 0 {
                    return Err(DecodeError::invalid("read flags", format!("{flags:#04x}")).into());
                }
                Request::Read(ReadEntry {
                    ledger,
                    entry,
                    fence: (flags & 1 != 0).then_some(epoch),
                })
            }
            op::READ_LAC => Request::ReadLac(ReadLac {
                ledger: LedgerId(c.u64("read lac ledger")?),
                known: EntryId::from_wire(c.u64("read lac known")?),
                wait_ms: c.u32("read lac wait")?,
            }),
            op::FENCE => Request::Fence(Fence {
                ledger: LedgerId(c.u64("fence ledger")?),
                epoch: Epoch(c.u64("fence epoch")?),
            }),
            op::DELETE => Request::Delete(LedgerId(c.u64("delete ledger")?)),
            op::INFO => Request::Info,
            op::WRITE_LAC => Request::WriteLac(WriteLac {
                ledger: LedgerId(c.u64("write lac ledger")?),
                epoch: Epoch(c.u64("write lac epoch")?),
                lac: EntryId(c.u64("write lac value")?),
            }),
            op::ADD_BATCH => {
                let ledger = LedgerId(c.u64("batch ledger")?);
                let epoch = Epoch(c.u64("batch epoch")?);
                let lac = EntryId::from_wire(c.u64("batch lac")?);
                let flags = c.u8("batch flags")?;
                if flags & !1 != 0 {
                    return Err(DecodeError::invalid("batch flags", format!("{flags:#04x}")).into());
                }
                let count = c.u32("batch count")? as usize;
                if count == 0 || count > MAX_BATCH_ENTRIES || count > c.remaining() / 12 {
                    return Err(DecodeError::invalid(
                        "batch count",
                        format!("{count} entries (1 to {MAX_BATCH_ENTRIES}, and within the frame)"),
                    )
                    .into());
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let entry = EntryId(c.u64("batch entry id")?);
                    let data = c.len_bytes("batch entry", usize::MAX)?;
                    entries.push((entry, data));
                }
                Request::AddBatch(AddBatch {
                    ledger,
                    epoch,
                    lac,
                    recovery: flags & 1 != 0,
                    entries,
                })
            }
            other => return Err(RequestDecodeError::UnknownOp(other)),
        };
        c.finish("request")?;
        Ok(req)
    }
}

/// Why a request frame was refused; maps to the code to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestDecodeError {
    #[error("unknown operation {0}")]
    UnknownOp(u8),
    #[error(transparent)]
    Bad(#[from] DecodeError),
}

impl RequestDecodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestDecodeError::UnknownOp(_) => ErrorCode::UnknownOp,
            RequestDecodeError::Bad(_) => ErrorCode::BadFrame,
        }
    }
}

impl Response {
    pub fn op(&self) -> u8 {
        match self {
            Response::Hello(_) => op::HELLO,
            Response::Added { .. } => op::ADD,
            Response::Entry(_) => op::READ,
            Response::Lac(_) => op::READ_LAC,
            Response::Fenced(_) => op::FENCE,
            Response::Deleted => op::DELETE,
            Response::Info(_) => op::INFO,
            Response::LacWritten => op::WRITE_LAC,
            Response::AddedBatch { .. } => op::ADD_BATCH,
        }
    }

    /// Appends a success response frame.
    pub fn encode(
        &self,
        request_id: u64,
        dst: &mut BytesMut,
        max_frame_len: usize,
    ) -> Result<(), FrameError> {
        let mut body = BytesMut::with_capacity(64);
        body.put_u16_le(0);
        let tail: &[u8] = match self {
            Response::Hello(h) => {
                body.put_u8(h.version);
                put_string(&mut body, &h.bookie_id);
                body.put_u64_le(h.instance_id);
                body.put_u32_le(h.max_frame_len);
                &[]
            }
            Response::Added { ledger, entry } => {
                body.put_u64_le(ledger.0);
                body.put_u64_le(entry.0);
                &[]
            }
            Response::Entry(e) => {
                body.put_u64_le(e.ledger.0);
                body.put_u64_le(e.entry.0);
                body.put_u64_le(EntryId::to_wire(e.lac));
                &e.data
            }
            Response::Lac(i) | Response::Fenced(i) => {
                put_lac_info(&mut body, i);
                &[]
            }
            Response::Deleted | Response::LacWritten => &[],
            Response::AddedBatch { ledger, count } => {
                body.put_u64_le(ledger.0);
                body.put_u32_le(*count);
                &[]
            }
            Response::Info(i) => {
                put_string(&mut body, &i.bookie_id);
                body.put_u64_le(i.instance_id);
                body.put_u8(match i.state {
                    BookieState::Writable => 0,
                    BookieState::ReadOnly => 1,
                    BookieState::Failed => 2,
                    BookieState::Draining => 3,
                });
                body.put_u8(u8::from(i.damaged));
                body.put_u64_le(i.disk_total);
                body.put_u64_le(i.disk_used);
                body.put_u64_le(i.journal_bytes);
                body.put_u64_le(i.ledgers);
                put_string(&mut body, &i.state_reason);
                &[]
            }
        };
        encode_parts(
            dst,
            FrameKind::Response,
            self.op(),
            request_id,
            &body,
            tail,
            max_frame_len,
        )
    }

    /// Appends an error response frame for operation `op`.
    pub fn encode_error(
        op: u8,
        request_id: u64,
        err: &ResponseError,
        dst: &mut BytesMut,
        max_frame_len: usize,
    ) -> Result<(), FrameError> {
        let mut body = BytesMut::with_capacity(8 + err.message.len());
        body.put_u16_le(err.code as u16);
        put_string(&mut body, &err.message);
        encode_parts(
            dst,
            FrameKind::Response,
            op,
            request_id,
            &body,
            &[],
            max_frame_len,
        )
    }

    /// Decodes a response frame: `Ok(Err(_))` is an error the bookie answered with,
    /// `Err(_)` a frame this side cannot understand.
    pub fn decode(frame: &Frame) -> Result<Result<Response, ResponseError>, DecodeError> {
        if frame.kind != FrameKind::Response {
            return Err(DecodeError::invalid("frame kind", "expected a response"));
        }
        let mut c = Cursor::new(frame.body.clone());
        let status = c.u16("response status")?;
        if status != 0 {
            let message = c.string("error message", usize::from(u16::MAX))?;
            let code = ErrorCode::from_u16(status).unwrap_or(ErrorCode::Internal);
            let message = if ErrorCode::from_u16(status).is_none() {
                format!("unknown error code {status}: {message}")
            } else {
                message
            };
            c.finish("error response")?;
            return Ok(Err(ResponseError { code, message }));
        }
        let resp = match frame.op {
            op::HELLO => Response::Hello(HelloOk {
                version: c.u8("hello version")?,
                bookie_id: c.string("hello bookie id", MAX_STRING)?,
                instance_id: c.u64("hello instance id")?,
                max_frame_len: c.u32("hello max frame length")?,
            }),
            op::ADD => Response::Added {
                ledger: LedgerId(c.u64("added ledger")?),
                entry: EntryId(c.u64("added entry")?),
            },
            op::READ => {
                let ledger = LedgerId(c.u64("read ledger")?);
                let entry = EntryId(c.u64("read entry")?);
                let lac = EntryId::from_wire(c.u64("read lac")?);
                let data = c.rest();
                return Ok(Ok(Response::Entry(ReadEntryOk {
                    ledger,
                    entry,
                    lac,
                    data,
                })));
            }
            op::READ_LAC => Response::Lac(get_lac_info(&mut c)?),
            op::FENCE => Response::Fenced(get_lac_info(&mut c)?),
            op::DELETE => Response::Deleted,
            op::INFO => {
                let bookie_id = c.string("info bookie id", MAX_STRING)?;
                let instance_id = c.u64("info instance id")?;
                let state = match c.u8("info state")? {
                    0 => BookieState::Writable,
                    1 => BookieState::ReadOnly,
                    2 => BookieState::Failed,
                    3 => BookieState::Draining,
                    s => return Err(DecodeError::invalid("info state", format!("{s}"))),
                };
                Response::Info(BookieInfo {
                    bookie_id,
                    instance_id,
                    state,
                    damaged: c.u8("info damaged")? != 0,
                    disk_total: c.u64("info disk total")?,
                    disk_used: c.u64("info disk used")?,
                    journal_bytes: c.u64("info journal bytes")?,
                    ledgers: c.u64("info ledgers")?,
                    state_reason: c.string("info state reason", usize::from(u16::MAX))?,
                })
            }
            op::WRITE_LAC => Response::LacWritten,
            op::ADD_BATCH => Response::AddedBatch {
                ledger: LedgerId(c.u64("batch ledger")?),
                count: c.u32("batch count")?,
            },
            other => {
                return Err(DecodeError::invalid(
                    "response op",
                    format!("unknown op {other}"),
                ));
            }
        };
        c.finish("response")?;
        Ok(Ok(resp))
    }
}

/// Encodes an add batch straight into `dst`: one copy of each entry, no intermediate body.
fn encode_batch(
    b: &AddBatch,
    request_id: u64,
    dst: &mut BytesMut,
    max_frame_len: usize,
) -> Result<(), FrameError> {
    let body_len = 8 + 8 + 8 + 1 + 4 + b.entries.iter().map(|(_, d)| 12 + d.len()).sum::<usize>();
    let len = super::frame::FRAME_HEADER_LEN + body_len;
    if len > max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            limit: max_frame_len,
        });
    }
    write_frame(
        dst,
        FrameKind::Request,
        op::ADD_BATCH,
        request_id,
        &[],
        max_frame_len,
    )?;
    let start = dst.len() - 4 - super::frame::FRAME_HEADER_LEN;
    dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    dst.reserve(body_len);
    dst.put_u64_le(b.ledger.0);
    dst.put_u64_le(b.epoch.0);
    dst.put_u64_le(EntryId::to_wire(b.lac));
    dst.put_u8(u8::from(b.recovery));
    dst.put_u32_le(b.entries.len() as u32);
    for (e, d) in &b.entries {
        dst.put_u64_le(e.0);
        dst.put_u32_le(d.len() as u32);
        dst.put_slice(d);
    }
    Ok(())
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

fn encode_parts(
    dst: &mut BytesMut,
    kind: FrameKind,
    op: u8,
    request_id: u64,
    head: &[u8],
    tail: &[u8],
    max_frame_len: usize,
) -> Result<(), FrameError> {
    if tail.is_empty() {
        return write_frame(dst, kind, op, request_id, head, max_frame_len);
    }
    // Write the header for the combined body, then both parts, avoiding a copy of `tail`.
    let start = dst.len();
    write_frame(dst, kind, op, request_id, head, max_frame_len)?;
    let len = super::frame::FRAME_HEADER_LEN + head.len() + tail.len();
    if len > max_frame_len {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            limit: max_frame_len,
        });
    }
    dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    dst.extend_from_slice(tail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameCodec;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    const MAX: usize = 1 << 20;

    fn requests() -> Vec<Request> {
        vec![
            Request::Hello(Hello {
                min_version: 1,
                max_version: 1,
                client: "bench".into(),
                auth_method: String::new(),
                auth_data: Bytes::new(),
            }),
            Request::Add(AddEntry {
                ledger: LedgerId(1),
                entry: EntryId(2),
                epoch: Epoch(3),
                lac: None,
                recovery: true,
                data: Bytes::from_static(b"entry bytes"),
            }),
            Request::Read(ReadEntry {
                ledger: LedgerId(1),
                entry: EntryId(2),
                fence: Some(Epoch(4)),
            }),
            Request::Read(ReadEntry {
                ledger: LedgerId(1),
                entry: EntryId(2),
                fence: None,
            }),
            Request::ReadLac(ReadLac {
                ledger: LedgerId(5),
                known: Some(EntryId(0)),
                wait_ms: 100,
            }),
            Request::Fence(Fence {
                ledger: LedgerId(5),
                epoch: Epoch(9),
            }),
            Request::Delete(LedgerId(5)),
            Request::Info,
            Request::WriteLac(WriteLac {
                ledger: LedgerId(5),
                epoch: Epoch(1),
                lac: EntryId(7),
            }),
            Request::AddBatch(AddBatch {
                ledger: LedgerId(5),
                epoch: Epoch(2),
                lac: Some(EntryId(3)),
                recovery: false,
                entries: vec![
                    (EntryId(4), Bytes::from_static(b"four")),
                    (EntryId(5), Bytes::from_static(b"")),
                    (EntryId(6), Bytes::from_static(b"six!")),
                ],
            }),
        ]
    }

    fn responses() -> Vec<Response> {
        let info = LacInfo {
            lac: Some(EntryId(4)),
            last_entry: None,
            fence_epoch: Epoch(2),
        };
        vec![
            Response::Hello(HelloOk {
                version: 1,
                bookie_id: "b-1".into(),
                instance_id: 99,
                max_frame_len: 1 << 20,
            }),
            Response::Added {
                ledger: LedgerId(1),
                entry: EntryId(2),
            },
            Response::Entry(ReadEntryOk {
                ledger: LedgerId(1),
                entry: EntryId(2),
                lac: Some(EntryId(1)),
                data: Bytes::from_static(b"data"),
            }),
            Response::Lac(info),
            Response::Fenced(info),
            Response::Deleted,
            Response::Info(BookieInfo {
                bookie_id: "b-1".into(),
                instance_id: 7,
                state: BookieState::ReadOnly,
                damaged: true,
                disk_total: 100,
                disk_used: 96,
                journal_bytes: 10,
                ledgers: 3,
                state_reason: "disk usage 96% above 95%".into(),
            }),
            Response::LacWritten,
            Response::AddedBatch {
                ledger: LedgerId(5),
                count: 3,
            },
        ]
    }

    fn one_frame(buf: &mut BytesMut) -> Frame {
        let f = FrameCodec::new(MAX).decode(buf).unwrap().unwrap();
        assert!(buf.is_empty());
        f
    }

    #[test]
    fn requests_roundtrip() {
        for (i, r) in requests().into_iter().enumerate() {
            let mut buf = BytesMut::new();
            r.encode(i as u64, &mut buf, MAX).unwrap();
            let f = one_frame(&mut buf);
            assert_eq!(f.request_id, i as u64);
            assert_eq!(Request::decode(&f).unwrap(), r);
        }
    }

    #[test]
    fn responses_roundtrip() {
        for r in responses() {
            let mut buf = BytesMut::new();
            r.encode(5, &mut buf, MAX).unwrap();
            assert_eq!(Response::decode(&one_frame(&mut buf)).unwrap().unwrap(), r);
        }
        let err = ResponseError::new(ErrorCode::Fenced, "ledger 5 fenced at epoch 9");
        let mut buf = BytesMut::new();
        Response::encode_error(op::ADD, 5, &err, &mut buf, MAX).unwrap();
        assert_eq!(
            Response::decode(&one_frame(&mut buf)).unwrap().unwrap_err(),
            err
        );
    }

    /// Golden bytes of an add request: the wire format must not drift.
    #[test]
    fn golden_add_frame() {
        let mut buf = BytesMut::new();
        Request::Add(AddEntry {
            ledger: LedgerId(1),
            entry: EntryId(2),
            epoch: Epoch(3),
            lac: Some(EntryId(1)),
            recovery: false,
            data: Bytes::from_static(b"xy"),
        })
        .encode(0x0102, &mut buf, MAX)
        .unwrap();
        let expected: &[u8] = &[
            47, 0, 0, 0, // len
            1, 0, 2, 0, // version, kind, op, flags
            2, 1, 0, 0, 0, 0, 0, 0, // request id
            1, 0, 0, 0, 0, 0, 0, 0, // ledger
            2, 0, 0, 0, 0, 0, 0, 0, // entry
            3, 0, 0, 0, 0, 0, 0, 0, // epoch
            1, 0, 0, 0, 0, 0, 0, 0, // lac
            0, b'x', b'y', // flags, data
        ];
        assert_eq!(&buf[..], expected);
    }

    #[test]
    fn oversized_add_is_refused_at_encode() {
        let mut buf = BytesMut::new();
        let r = Request::Add(AddEntry {
            ledger: LedgerId(1),
            entry: EntryId(0),
            epoch: Epoch(0),
            lac: None,
            recovery: false,
            data: Bytes::from(vec![0u8; 100]),
        });
        assert!(matches!(
            r.encode(1, &mut buf, 64),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.is_empty(), "nothing half-written");
    }

    #[test]
    fn batch_counts_are_bounded_before_allocation() {
        for count in [0u32, 2, MAX_BATCH_ENTRIES as u32 + 1, u32::MAX] {
            let mut body = BytesMut::new();
            body.put_u64_le(1);
            body.put_u64_le(1);
            body.put_u64_le(u64::MAX);
            body.put_u8(0);
            body.put_u32_le(count);
            body.put_slice(&[0u8; 12]); // room for one empty entry only
            let mut buf = BytesMut::new();
            write_frame(&mut buf, FrameKind::Request, op::ADD_BATCH, 1, &body, MAX).unwrap();
            let f = one_frame(&mut buf);
            assert_eq!(
                Request::decode(&f).unwrap_err().code(),
                ErrorCode::BadFrame,
                "count {count}"
            );
        }
    }

    #[test]
    fn unknown_op_and_trailing_bytes_are_refused() {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, FrameKind::Request, 200, 1, b"", MAX).unwrap();
        let f = one_frame(&mut buf);
        assert_eq!(
            Request::decode(&f).unwrap_err().code(),
            ErrorCode::UnknownOp
        );
        let mut buf = BytesMut::new();
        write_frame(&mut buf, FrameKind::Request, op::DELETE, 1, &[0; 9], MAX).unwrap();
        let f = one_frame(&mut buf);
        assert_eq!(Request::decode(&f).unwrap_err().code(), ErrorCode::BadFrame);
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(op in any::<u8>(), kind in 0u8..2, body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let f = Frame {
                kind: if kind == 0 { FrameKind::Request } else { FrameKind::Response },
                op,
                request_id: 1,
                body: Bytes::from(body),
            };
            let _ = Request::decode(&f);
            let _ = Response::decode(&f);
        }

        #[test]
        fn mutated_frames_never_panic(which in any::<usize>(), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
            let reqs = requests();
            let mut buf = BytesMut::new();
            reqs[which % reqs.len()].encode(1, &mut buf, MAX).unwrap();
            let mut raw = buf.to_vec();
            let i = pos % raw.len();
            raw[i] = val;
            raw.truncate(cut % (raw.len() + 1));
            let mut b = BytesMut::from(&raw[..]);
            let mut codec = FrameCodec::new(MAX);
            while let Ok(Some(f)) = codec.decode(&mut b) {
                let _ = Request::decode(&f);
                let _ = Response::decode(&f);
            }
        }

        #[test]
        fn mutated_responses_never_panic(which in any::<usize>(), pos in any::<usize>(), val in any::<u8>()) {
            let resps = responses();
            let mut buf = BytesMut::new();
            resps[which % resps.len()].encode(1, &mut buf, MAX).unwrap();
            let mut raw = buf.to_vec();
            let i = 4 + pos % (raw.len() - 4);
            raw[i] = val;
            let mut b = BytesMut::from(&raw[..]);
            if let Ok(Some(f)) = FrameCodec::new(MAX).decode(&mut b) {
                let _ = Response::decode(&f);
            }
        }
    }
}
