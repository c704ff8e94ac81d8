//! Encoding and decoding of requests.

use bytes::{BufMut, BytesMut};

use super::{
    AddBatch, AddEntry, Fence, Hello, MAX_BATCH_ENTRIES, ReadEntry, ReadLac, Request, WriteLac, op,
};
use crate::cursor::{Cursor, DecodeError};
use crate::error::ErrorCode;
use crate::ids::{EntryId, Epoch, LedgerId};
use crate::wire::frame::{FRAME_HEADER_LEN, FrameKind, write_frame, write_frame_parts};
use crate::wire::{Frame, FrameError};

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
                h.put(&mut body);
                &[]
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
        write_frame_parts(
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
            op::HELLO => Request::Hello(Hello::get(&mut c)?),
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

/// Encodes an add batch straight into `dst`: one copy of each entry, no intermediate body.
fn encode_batch(
    b: &AddBatch,
    request_id: u64,
    dst: &mut BytesMut,
    max_frame_len: usize,
) -> Result<(), FrameError> {
    let body_len = 8 + 8 + 8 + 1 + 4 + b.entries.iter().map(|(_, d)| 12 + d.len()).sum::<usize>();
    let len = FRAME_HEADER_LEN + body_len;
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
    let start = dst.len() - 4 - FRAME_HEADER_LEN;
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
