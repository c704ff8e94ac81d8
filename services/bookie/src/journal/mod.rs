//! The journal: the bookie's storage. Entries are written once, into preallocated files, by a
//! group-committing thread, and read back from the same files.
//!
//! - [`format`]: the on-disk format (file header, commits, records).
//! - [`file`]: creating, preallocating, writing and syncing files.
//! - [`writer`]: the journal thread and the handle that queues operations.
//! - [`spares`]: the preallocator that keeps the next file ready and reuses dead ones.
//! - [`replay`]: start-up recovery, torn-tail and damage detection.
//! - [`read`]: reading entries back.

pub mod file;
pub mod format;
pub mod read;
pub mod replay;
pub mod spares;
pub mod writer;
