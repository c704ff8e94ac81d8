//! `dlog-ledger`: the replication client.
//!
//! - [`bookie_client`]: the pipelined client of the bookie protocol.
//! - [`metadata`]: ledger metadata (ensembles, quorums, fragments, state) and write sets.
//! - [`writer`]: the writer's replication protocol, sans IO.
//! - [`recovery`]: fencing, finding the true end and sealing a ledger, sans IO.
//! - [`registry`]: bookie registration under leases and cluster cookies.
//! - [`placement`]: choosing bookies for ensembles, spread across zones.
//! - [`rereplication`]: bringing closed ledgers back to Qw copies after a bookie is lost.
//! - `local` (feature `local`): real bookies in this process, for standalone mode and tests;
//!   `presence`: a bookie's registration kept current (both need the bookie itself).
//! - [`client`], [`writer_task`], [`reader`], [`pool`]: [`LedgerClient`] runs the cores against
//!   real bookies and the metadata store — create, write, read, recover, delete.

pub mod bookie_client;
pub mod client;
#[cfg(feature = "local")]
pub mod local;
pub mod metadata;
pub mod placement;
pub mod pool;
#[cfg(feature = "local")]
pub mod presence;
pub mod reader;
pub mod recovery;
pub mod registry;
pub mod rereplication;
pub mod writer;
pub mod writer_task;

pub use bookie_client::{AckSender, AddAck, BookieClient, ClientError, ClientOptions};
pub use client::{LedgerClient, LedgerError, LedgerOptions};
pub use metadata::{LedgerMetadata, LedgerState, Quorum};
pub use reader::LedgerReader;
pub use writer::WriteError;
pub use writer_task::LedgerWriter;
