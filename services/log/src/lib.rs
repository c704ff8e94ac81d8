//! `dlog-log`: streams over ledgers.
//!
//! - [`meta`]: stream and segment records in the metadata store, and their invariants.
//! - [`entry`]: how a batch of appends is stored in one ledger entry.
//! - [`streams`]: [`Log`] — create, describe, list, change, truncate, retain and delete
//!   streams; subscriptions.
//! - [`writer`]: [`StreamWriter`] — the single writer: acquisition by epoch, fencing and
//!   recovery of the previous writer's segment, dense offsets, batching, rolling, sealing.
//! - [`dedup`]: idempotent appends (producer id + sequence).
//! - [`reader`]: [`StreamReader`] — reads by offset, seeks by timestamp or txid, tails.
//! - [`clock`]: injected time.

pub mod clock;
pub mod dedup;
pub mod entry;
pub mod error;
pub mod meta;
pub mod reader;
pub mod streams;
pub mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LogError;
pub use reader::{ReadBatch, StreamReader};
pub use streams::Log;
pub use writer::{AppendBatch, Appended, StreamWriter, WriterOptions};
