//! Encoding and decoding of responses.

use bytes::{BufMut, BytesMut};

use super::{
    BookieInfo, BookieState, HelloOk, MAX_STRING, ReadEntryOk, Response, ResponseError,
    get_lac_info, op, put_lac_info,
};
use crate::cursor::{Cursor, DecodeError, put_string};
use crate::error::ErrorCode;
use crate::ids::{EntryId, LedgerId};
use crate::wire::frame::{FrameKind, write_frame_parts};
use crate::wire::{Frame, FrameError};

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
        write_frame_parts(
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
        write_frame_parts(
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
