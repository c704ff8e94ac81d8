//! Encoding and decoding of responses, successful and failed.

use bytes::{BufMut, BytesMut};

use super::{
    APPENDED_DUPLICATE, Appended, HelloOk, MAX_STRING, OwnerInfo, RECORDS_END_OF_STREAM, Records,
    Response, ResponseError, check_flags, get_opt_string, op,
};
use crate::cursor::{Cursor, DecodeError, put_string};
use crate::error::ErrorCode;
use crate::ids::Offset;
use crate::wire::frame::{FrameKind, write_frame_parts};
use crate::wire::{Frame, FrameError};

impl Response {
    pub fn op(&self) -> u8 {
        match self {
            Response::Hello(_) => op::HELLO,
            Response::Appended(_) => op::APPEND,
            Response::Records(_) => op::READ,
            Response::Position(_) => op::SEEK,
            Response::Owner(_) => op::LOOKUP,
            Response::Admin(_) => op::ADMIN,
        }
    }

    /// Appends a success response frame; nothing is written if it would exceed
    /// `max_frame_len`.
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
                put_string(&mut body, &h.server_id);
                body.put_u32_le(h.max_frame_len);
                body.put_u32_le(h.max_record_bytes);
                &[]
            }
            Response::Appended(a) => {
                body.put_u64_le(a.first_offset.0);
                body.put_u32_le(a.count);
                body.put_u8(if a.duplicate { APPENDED_DUPLICATE } else { 0 });
                &[]
            }
            Response::Records(r) => {
                body.put_u64_le(r.first_offset.0);
                body.put_u64_le(r.end_offset.0);
                body.put_u64_le(r.start_offset.0);
                body.put_u8(if r.end_of_stream {
                    RECORDS_END_OF_STREAM
                } else {
                    0
                });
                &r.records
            }
            Response::Position(offset) => {
                body.put_u64_le(offset.0);
                &[]
            }
            Response::Owner(o) => {
                put_string(&mut body, o.owner.as_deref().unwrap_or_default());
                body.put_u64_le(o.epoch);
                &[]
            }
            Response::Admin(json) => json,
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

    /// Decodes a response frame; the same as [`decode_response`].
    pub fn decode(frame: &Frame) -> Result<Result<Response, ResponseError>, DecodeError> {
        decode_response(frame)
    }
}

impl ResponseError {
    /// Appends an error response frame answering operation `op` (0 for a frame that could not
    /// be cut).
    pub fn encode(
        &self,
        op: u8,
        request_id: u64,
        dst: &mut BytesMut,
        max_frame_len: usize,
    ) -> Result<(), FrameError> {
        let mut body = BytesMut::with_capacity(8 + self.message.len());
        body.put_u16_le(self.code as u16);
        put_string(&mut body, &self.message);
        if self.code == ErrorCode::NotOwner {
            put_string(&mut body, self.owner.as_deref().unwrap_or_default());
        }
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
}

/// Decodes a response frame: `Ok(Err(_))` is an error the node answered with, `Err(_)` a frame
/// this side cannot understand. The frame's op says which success body to expect; an error body
/// is the same for every op.
pub fn decode_response(frame: &Frame) -> Result<Result<Response, ResponseError>, DecodeError> {
    if frame.kind != FrameKind::Response {
        return Err(DecodeError::invalid("frame kind", "expected a response"));
    }
    let mut c = Cursor::new(frame.body.clone());
    let status = c.u16("response status")?;
    if status != 0 {
        let message = c.string("error message", usize::from(u16::MAX))?;
        let Some(code) = ErrorCode::from_u16(status) else {
            // A code from a newer peer: keep its number and message; what follows them (if
            // anything) belongs to that code and is skipped. Not retried: its meaning is
            // unknown here.
            return Ok(Err(ResponseError::new(
                ErrorCode::Internal,
                format!("error code {status} (unknown to this client): {message}"),
            )));
        };
        let owner = if code == ErrorCode::NotOwner {
            get_opt_string(&mut c, "error owner")?
        } else {
            None
        };
        c.finish("error response")?;
        return Ok(Err(ResponseError {
            code,
            message,
            owner,
        }));
    }
    let resp = match frame.op {
        op::HELLO => Response::Hello(HelloOk {
            version: c.u8("hello version")?,
            server_id: c.string("hello server id", MAX_STRING)?,
            max_frame_len: c.u32("hello max frame length")?,
            max_record_bytes: c.u32("hello max record bytes")?,
        }),
        op::APPEND => {
            let first_offset = Offset(c.u64("appended first offset")?);
            let count = c.u32("appended count")?;
            let flags = check_flags(
                "appended flags",
                c.u8("appended flags")?,
                APPENDED_DUPLICATE,
            )?;
            Response::Appended(Appended {
                first_offset,
                count,
                duplicate: flags & APPENDED_DUPLICATE != 0,
            })
        }
        op::READ => {
            let first_offset = Offset(c.u64("records first offset")?);
            let end_offset = Offset(c.u64("records end offset")?);
            let start_offset = Offset(c.u64("records start offset")?);
            let flags = check_flags(
                "records flags",
                c.u8("records flags")?,
                RECORDS_END_OF_STREAM,
            )?;
            return Ok(Ok(Response::Records(Records {
                first_offset,
                end_offset,
                start_offset,
                end_of_stream: flags & RECORDS_END_OF_STREAM != 0,
                records: c.rest(),
            })));
        }
        op::SEEK => Response::Position(Offset(c.u64("seek offset")?)),
        op::LOOKUP => Response::Owner(OwnerInfo {
            owner: get_opt_string(&mut c, "lookup owner")?,
            epoch: c.u64("lookup epoch")?,
        }),
        op::ADMIN => return Ok(Ok(Response::Admin(c.rest()))),
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
