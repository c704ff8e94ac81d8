//! Stable numeric error codes of the wire protocols and the coarse kinds callers act on.
//!
//! A code, once published, keeps its number and meaning forever; retired codes are never reused.
//! Add new codes at the end of their block. `docs/protocol.md` lists them.

use std::fmt;

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient: retry, possibly on another replica or after a delay.
    Unavailable,
    /// The request is wrong; retrying it unchanged will fail again.
    Invalid,
    /// A higher epoch has fenced this writer; terminal for the writer.
    Fenced,
    /// The thing asked for definitely does not exist on the responder.
    NotFound,
    /// Data failed a checksum or is otherwise damaged.
    Corrupt,
    /// A bug or an unexpected condition on the responder.
    Internal,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal => $kind:ident, $text:literal; )*) => {
        /// A wire error code. Numbers are stable; see the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            pub fn from_u16(v: u16) -> Option<ErrorCode> {
                match v {
                    $( $num => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            pub fn kind(self) -> ErrorKind {
                match self {
                    $( ErrorCode::$name => ErrorKind::$kind, )*
                }
            }

            /// A short lowercase description.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $text, )*
                }
            }
        }
    };
}

error_codes! {
    // 1..: the request or frame itself.
    /// The frame or message could not be decoded.
    BadFrame = 1 => Invalid, "malformed frame";
    /// The peer speaks a protocol version this side does not.
    UnsupportedVersion = 2 => Invalid, "unsupported protocol version";
    /// The frame is larger than the receiver's limit.
    FrameTooLarge = 3 => Invalid, "frame too large";
    /// The operation code is not known.
    UnknownOp = 4 => Invalid, "unknown operation";
    /// The request is well-formed but its arguments are invalid.
    BadRequest = 5 => Invalid, "bad request";
    /// A request arrived before the handshake completed.
    HandshakeRequired = 6 => Invalid, "handshake required";
    /// Reserved for authentication.
    Unauthenticated = 7 => Invalid, "unauthenticated";
    /// Reserved for authorization.
    Unauthorized = 8 => Invalid, "unauthorized";
    /// The entry is larger than the receiver's limit.
    EntryTooLarge = 9 => Invalid, "entry too large";
    /// The entry's CRC32C does not match its bytes, or its header names another ledger/entry.
    ChecksumMismatch = 10 => Corrupt, "entry checksum mismatch";

    // 20..: ledger state.
    /// A higher epoch has fenced the ledger.
    Fenced = 20 => Fenced, "fenced by a higher epoch";
    /// The bookie has never held this ledger.
    NoSuchLedger = 21 => NotFound, "no such ledger";
    /// The bookie knows the ledger and has never held this entry.
    NoSuchEntry = 22 => NotFound, "no such entry";
    /// The bookie cannot vouch for the entry: it is missing or corrupt and may have been held.
    /// Never to be read as "no such entry".
    UnknownEntry = 23 => Unavailable, "entry unknown (missing or corrupt on this bookie)";
    /// The ledger was deleted.
    LedgerDeleted = 24 => NotFound, "ledger deleted";
    /// The bookie found damage and may have lost the ledger's fencing state: it refuses adds of
    /// the epochs it may have fenced. The writer should replace this bookie.
    LedgerSuspect = 25 => Unavailable, "ledger state suspect after damage on this bookie";

    // 40..: bookie state.
    /// The bookie accepts no writes (disk above its threshold, or by operator).
    ReadOnly = 40 => Unavailable, "bookie is read-only";
    /// The journal failed (write or fsync error); nothing more is acknowledged until restart.
    JournalFailed = 41 => Unavailable, "journal failed";
    /// The bookie is shutting down.
    ShuttingDown = 42 => Unavailable, "shutting down";
    /// Too many requests in flight.
    Overloaded = 43 => Unavailable, "overloaded";
    /// The request timed out.
    Timeout = 44 => Unavailable, "timed out";

    // 60..: streams (the client protocol).
    /// No stream of that name exists.
    NoSuchStream = 60 => NotFound, "no such stream";
    /// A stream of that name already exists.
    StreamExists = 61 => Invalid, "stream already exists";
    /// This service node does not own the stream; the answer names the owner to retry at.
    NotOwner = 62 => Unavailable, "not the stream's owner";
    /// A record's payload exceeds the stream's limit.
    RecordTooLarge = 63 => Invalid, "record too large";
    /// The offset is before the stream's start (truncated) or after its end.
    OffsetOutOfRange = 64 => Invalid, "offset out of range";
    /// A stream or namespace name is not valid.
    InvalidName = 65 => Invalid, "invalid name";
    /// A stream policy is not valid.
    InvalidPolicy = 66 => Invalid, "invalid policy";
    /// A compare-and-set lost: the thing changed since it was read (e.g. a subscription moved).
    Conflict = 67 => Invalid, "conflict";
    /// A producer's sequence number skips ahead of the next one expected.
    SequenceGap = 68 => Invalid, "producer sequence gap";
    /// The stream has ended (an end-of-stream marker was written); nothing more is appended.
    StreamEnded = 69 => Invalid, "stream ended";
    /// The stream cannot be served now (bookies or metadata unreachable, owner moving); retry.
    StreamUnavailable = 70 => Unavailable, "stream unavailable";

    // 90..: other.
    /// An unexpected internal error.
    Internal = 99 => Internal, "internal error";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.as_str(), *self as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c as u16), "duplicate code {}", c as u16);
            assert_eq!(ErrorCode::from_u16(c as u16), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(1000), None);
    }

    /// The published numbers: changing one breaks every deployed peer.
    #[test]
    fn code_numbers_are_stable() {
        assert_eq!(ErrorCode::BadFrame as u16, 1);
        assert_eq!(ErrorCode::ChecksumMismatch as u16, 10);
        assert_eq!(ErrorCode::Fenced as u16, 20);
        assert_eq!(ErrorCode::NoSuchEntry as u16, 22);
        assert_eq!(ErrorCode::UnknownEntry as u16, 23);
        assert_eq!(ErrorCode::ReadOnly as u16, 40);
        assert_eq!(ErrorCode::JournalFailed as u16, 41);
        assert_eq!(ErrorCode::Internal as u16, 99);
        assert!(!ErrorCode::UnknownEntry.kind().eq(&ErrorKind::NotFound));
    }
}
