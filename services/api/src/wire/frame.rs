//! Frames: the unit of the wire protocol, and the codec that cuts a byte stream into them.
//!
//! Format, little-endian:
//!
//! ```text
//! len u32 | version u8 | kind u8 (0 request, 1 response) | op u8 | flags u8 (0) | request_id u64 | body
//! ```
//!
//! `len` counts every byte after itself (so it is at least [`FRAME_HEADER_LEN`]). The decoder
//! compares it to its limit before reserving any memory; a frame over the limit, or with a
//! version or kind it does not know, is an error after which the connection cannot be trusted to
//! stay in sync, so the receiver answers (when it can) and closes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ErrorCode;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes after the length prefix and before the body.
pub const FRAME_HEADER_LEN: usize = 12;

/// Whether a frame asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request,
    Response,
}

/// One decoded frame; the body is a zero-copy slice of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub op: u8,
    pub request_id: u64,
    pub body: Bytes,
}

/// Why the byte stream could not be cut into frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("unsupported protocol version {version} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { version: u8, request_id: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The wire code to answer with before closing, if any.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            FrameError::Io(_) => None,
            FrameError::TooLarge { .. } => Some(ErrorCode::FrameTooLarge),
            FrameError::UnsupportedVersion { .. } => Some(ErrorCode::UnsupportedVersion),
            FrameError::Malformed(_) => Some(ErrorCode::BadFrame),
        }
    }
}

/// Cuts a byte stream into [`Frame`]s and writes frames back, enforcing a maximum frame length.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl FrameCodec {
    pub fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(super::DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                limit: self.max_frame_len,
            });
        }
        if len < FRAME_HEADER_LEN {
            return Err(FrameError::Malformed(format!(
                "length {len} is shorter than the {FRAME_HEADER_LEN}-byte header"
            )));
        }
        if src.len() < 4 + len {
            // Safe to reserve: `len` is within the limit.
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(len);
        let version = frame.get_u8();
        let kind = frame.get_u8();
        let op = frame.get_u8();
        let flags = frame.get_u8();
        let request_id = frame.get_u64_le();
        if version != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion {
                version,
                request_id,
            });
        }
        let kind = match kind {
            0 => FrameKind::Request,
            1 => FrameKind::Response,
            k => return Err(FrameError::Malformed(format!("unknown frame kind {k}"))),
        };
        if flags != 0 {
            return Err(FrameError::Malformed(format!(
                "unknown frame flags {flags:#04x}"
            )));
        }
        Ok(Some(Frame {
            kind,
            op,
            request_id,
            body: frame.freeze(),
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(
            dst,
            frame.kind,
            frame.op,
            frame.request_id,
            &frame.body,
            self.max_frame_len,
        )
    }
}

/// Appends one frame to `dst`, refusing one the peer would refuse.
pub fn write_frame(
    dst: &mut BytesMut,
    kind: FrameKind,
    op: u8,
    request_id: u64,
    body: &[u8],
    max_frame_len: usize,
) -> Result<(), FrameError> {
    let len = FRAME_HEADER_LEN + body.len();
    if len > max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            limit: max_frame_len,
        });
    }
    dst.reserve(4 + len);
    dst.put_u32_le(len as u32);
    dst.put_u8(PROTOCOL_VERSION);
    dst.put_u8(match kind {
        FrameKind::Request => 0,
        FrameKind::Response => 1,
    });
    dst.put_u8(op);
    dst.put_u8(0);
    dst.put_u64_le(request_id);
    dst.put_slice(body);
    Ok(())
}

/// Appends one frame whose body is `head` followed by `tail`, without first copying them into
/// one buffer: messages carrying bulk bytes (entries, record sets, JSON) pass them as `tail`.
/// Nothing is written if the frame would exceed `max_frame_len`.
pub(crate) fn write_frame_parts(
    dst: &mut BytesMut,
    kind: FrameKind,
    op: u8,
    request_id: u64,
    head: &[u8],
    tail: &[u8],
    max_frame_len: usize,
) -> Result<(), FrameError> {
    let len = FRAME_HEADER_LEN + head.len() + tail.len();
    if len > max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            limit: max_frame_len,
        });
    }
    dst.reserve(4 + len);
    let start = dst.len();
    write_frame(dst, kind, op, request_id, head, max_frame_len)?;
    // The header written above counts `head` only; make it count `tail` too.
    dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    dst.extend_from_slice(tail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(op: u8, id: u64, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        write_frame(&mut b, FrameKind::Request, op, id, body, 1 << 20).unwrap();
        b
    }

    #[test]
    fn roundtrip_and_partial_input() {
        let full = encoded(3, 77, b"body");
        let mut codec = FrameCodec::new(1 << 20);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(codec.decode(&mut part).unwrap().is_none(), "cut {cut}");
        }
        let mut all = full.clone();
        let f = codec.decode(&mut all).unwrap().unwrap();
        assert_eq!(f.op, 3);
        assert_eq!(f.request_id, 77);
        assert_eq!(&f.body[..], b"body");
        assert!(all.is_empty());
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut codec = FrameCodec::new(1024);
        let mut b = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        let cap = b.capacity();
        assert!(matches!(
            codec.decode(&mut b),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(b.capacity(), cap, "no reservation for a refused frame");
    }

    #[test]
    fn bad_header_fields_are_refused() {
        let mut codec = FrameCodec::new(1 << 20);
        let mut short = BytesMut::from(&3u32.to_le_bytes()[..]);
        short.extend_from_slice(&[0; 3]);
        assert!(matches!(
            codec.decode(&mut short),
            Err(FrameError::Malformed(_))
        ));

        let mut v = encoded(1, 5, b"");
        v[4] = 9;
        assert!(matches!(
            codec.decode(&mut v),
            Err(FrameError::UnsupportedVersion {
                version: 9,
                request_id: 5
            })
        ));
        let mut k = encoded(1, 5, b"");
        k[5] = 7;
        assert!(matches!(
            codec.decode(&mut k),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn parts_equal_one_body() {
        let mut parts = BytesMut::new();
        write_frame_parts(&mut parts, FrameKind::Response, 2, 9, b"he", b"ad+tail", 64).unwrap();
        let mut whole = BytesMut::new();
        write_frame(&mut whole, FrameKind::Response, 2, 9, b"head+tail", 64).unwrap();
        assert_eq!(parts, whole);
        let mut big = BytesMut::from(&b"kept"[..]);
        assert!(matches!(
            write_frame_parts(&mut big, FrameKind::Request, 2, 9, b"", &[0; 60], 64),
            Err(FrameError::TooLarge { len: 72, limit: 64 })
        ));
        assert_eq!(&big[..], b"kept", "nothing half-written");
    }

    proptest! {
        #[test]
        fn random_streams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut codec = FrameCodec::new(128);
            let mut b = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = codec.decode(&mut b) {}
        }
    }
}
