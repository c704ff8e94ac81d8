//! `dlog-api`: the types every dlog component agrees on, with no IO.
//!
//! - [`ids`]: newtypes for ledger, entry, epoch, bookie and offset identifiers.
//! - [`error`]: stable numeric wire error codes and the coarse [`ErrorKind`] that tells a caller
//!   what to do (retry, fix the request, stop writing …).
//! - [`record`]: records and the versioned, optionally compressed record-set encoding.
//! - [`entry`]: the entry envelope the writer seals with a CRC32C and bookies store verbatim.
//! - [`admin`]: administrative requests and answers (JSON).
//! - [`stream`]: stream names, policies and descriptions (the admin models).
//! - [`wire`]: the framed, versioned, pipelined protocols (bookie and client) and their codec.
//!
//! Every decoder here takes untrusted bytes: it bounds each length against the bytes present and
//! a configured limit before allocating, and returns a [`DecodeError`] instead of panicking.

pub mod admin;
pub mod entry;
pub mod error;
pub mod ids;
pub mod record;
pub mod stream;
pub mod wire;

pub mod cursor;

pub use cursor::{Cursor, DecodeError};
pub use entry::{Entry, EntryError};
pub use error::{ErrorCode, ErrorKind};
pub use ids::{BookieId, EntryId, Epoch, InvalidId, LedgerId, Offset};
pub use record::{Compression, Record, RecordSetError};
pub use stream::{StreamName, StreamPolicy};
