//! A bounds-checked reader over untrusted bytes, shared by every decoder in this crate.
//!
//! Each accessor checks that enough bytes remain before reading, and [`Cursor::bytes`] returns a
//! zero-copy slice of the underlying buffer, so a declared length never causes an allocation
//! larger than the input itself.

use bytes::{Buf, Bytes};

/// Why a byte sequence could not be decoded. Carries the field being decoded so that a peer's
/// bug is easy to find from the error message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the field was complete.
    #[error("truncated input: {field} needs {needed} bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// A declared length is larger than the limit for that field.
    #[error("{field} too large: {len} bytes, limit {limit}")]
    TooLarge {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    /// A field holds a value this version does not know.
    #[error("invalid {field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// Bytes remain after the last field of a message.
    #[error("{count} unexpected trailing bytes after {field}")]
    TrailingBytes { field: &'static str, count: usize },
}

impl DecodeError {
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            detail: detail.into(),
        }
    }
}

/// Reads little-endian fields from a [`Bytes`] buffer with bounds checks.
#[derive(Debug)]
pub struct Cursor {
    buf: Bytes,
}

impl Cursor {
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        if self.buf.len() < needed {
            return Err(DecodeError::Truncated {
                field,
                needed,
                available: self.buf.len(),
            });
        }
        Ok(())
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.buf.get_u16_le())
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32_le())
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64_le())
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_i64_le())
    }

    /// A zero-copy slice of `len` bytes; `len` must not exceed `limit`.
    pub fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
        limit: usize,
    ) -> Result<Bytes, DecodeError> {
        if len > limit {
            return Err(DecodeError::TooLarge { field, len, limit });
        }
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    /// A `u32`-length-prefixed byte string of at most `limit` bytes.
    pub fn len_bytes(&mut self, field: &'static str, limit: usize) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)? as usize;
        self.bytes(field, len, limit)
    }

    /// A `u16`-length-prefixed UTF-8 string of at most `limit` bytes.
    pub fn string(&mut self, field: &'static str, limit: usize) -> Result<String, DecodeError> {
        let len = self.u16(field)? as usize;
        let raw = self.bytes(field, len, limit)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::invalid(field, "not UTF-8"))
    }

    /// Everything that is left.
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if any bytes remain: a message must be consumed exactly.
    pub fn finish(self, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                field,
                count: self.buf.len(),
            })
        }
    }
}

/// Appends a `u16`-length-prefixed string, truncated at a char boundary to fit `u16::MAX`.
pub fn put_string(buf: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_u16_le(end as u16);
    buf.put_slice(&s.as_bytes()[..end]);
}
