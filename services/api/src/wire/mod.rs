//! The binary wire protocols: frames ([`frame`]) carrying the messages of one of two protocols
//! that share the frame format and the hello handshake:
//!
//! - [`bookie`]: ledger writers, readers and operators to bookies (entries, LACs, fencing);
//! - [`client`]: applications (the SDK, the CLI) to service nodes (streams: append, read, seek,
//!   owner lookup, admin).
//!
//! One TCP connection carries many requests at once: each request frame has a request id chosen
//! by the client, and the response frame echoes it, so responses may come back in any order
//! (pipelining). `docs/protocol.md` is the reference.

pub mod bookie;
pub mod client;
pub mod frame;

pub use frame::{Frame, FrameCodec, FrameError, FrameKind, PROTOCOL_VERSION};

/// Default limit on one frame, checked against the length prefix before any allocation.
/// Large enough for the largest entry ([`DEFAULT_MAX_ENTRY_LEN`]) plus headers.
pub const DEFAULT_MAX_FRAME_LEN: usize = DEFAULT_MAX_ENTRY_LEN + 4096;

/// Default limit on one entry's bytes (a batch of records plus the envelope).
pub const DEFAULT_MAX_ENTRY_LEN: usize = 5 << 20;
