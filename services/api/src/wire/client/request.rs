//! Encoding and decoding of requests.

use bytes::{BufMut, BytesMut};

use super::{
    Append, Hello, MAX_ADMIN_JSON, Read, Request, RequestDecodeError, Seek, SeekBy, check_flags,
    get_stream, op, put_stream,
};
use crate::cursor::{Cursor, DecodeError};
use crate::ids::Offset;
use crate::wire::frame::{FrameKind, write_frame_parts};
use crate::wire::{Frame, FrameError};

impl Request {
    pub fn op(&self) -> u8 {
        match self {
            Request::Hello(_) => op::HELLO,
            Request::Append(_) => op::APPEND,
            Request::Read(_) => op::READ,
            Request::Seek(_) => op::SEEK,
            Request::Lookup(_) => op::LOOKUP,
            Request::Admin(_) => op::ADMIN,
        }
    }

    /// Appends this request as a frame; nothing is written if it would exceed `max_frame_len`.
    pub fn encode(
        &self,
        request_id: u64,
        dst: &mut BytesMut,
        max_frame_len: usize,
    ) -> Result<(), FrameError> {
        // Appends dominate: write the small head and the record set without an intermediate copy.
        let mut body = BytesMut::with_capacity(64);
        let tail: &[u8] = match self {
            Request::Hello(h) => {
                h.put(&mut body);
                &[]
            }
            Request::Append(a) => {
                put_stream(&mut body, &a.stream);
                body.put_u64_le(a.producer_id);
                body.put_u64_le(a.sequence);
                body.put_u8(0);
                &a.records
            }
            Request::Read(r) => {
                put_stream(&mut body, &r.stream);
                body.put_u64_le(r.offset.0);
                body.put_u32_le(r.max_bytes);
                body.put_u32_le(r.wait_ms);
                body.put_u8(0);
                &[]
            }
            Request::Seek(s) => {
                put_stream(&mut body, &s.stream);
                s.by.put(&mut body);
                &[]
            }
            Request::Lookup(stream) => {
                put_stream(&mut body, stream);
                &[]
            }
            Request::Admin(json) => json,
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
            op::APPEND => {
                let stream = get_stream(&mut c, "append stream")?;
                let producer_id = c.u64("append producer id")?;
                let sequence = c.u64("append sequence")?;
                check_flags("append flags", c.u8("append flags")?, 0)?;
                return Ok(Request::Append(Append {
                    stream,
                    producer_id,
                    sequence,
                    records: c.rest(),
                }));
            }
            op::READ => {
                let stream = get_stream(&mut c, "read stream")?;
                let offset = Offset(c.u64("read offset")?);
                let max_bytes = c.u32("read max bytes")?;
                let wait_ms = c.u32("read wait")?;
                check_flags("read flags", c.u8("read flags")?, 0)?;
                Request::Read(Read {
                    stream,
                    offset,
                    max_bytes,
                    wait_ms,
                })
            }
            op::SEEK => Request::Seek(Seek {
                stream: get_stream(&mut c, "seek stream")?,
                by: SeekBy::get(&mut c)?,
            }),
            op::LOOKUP => Request::Lookup(get_stream(&mut c, "lookup stream")?),
            op::ADMIN => {
                let len = c.remaining();
                return Ok(Request::Admin(c.bytes(
                    "admin json",
                    len,
                    MAX_ADMIN_JSON,
                )?));
            }
            other => return Err(RequestDecodeError::UnknownOp(other)),
        };
        c.finish("request")?;
        Ok(req)
    }
}
