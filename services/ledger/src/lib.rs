//! `dlog-ledger`: the replication client.
//!
//! - [`bookie_client`]: the pipelined client of the bookie protocol.
//! - [`metadata`]: ledger metadata (ensembles, quorums, fragments, state) and write sets.
//! - [`writer`]: the writer's replication protocol, sans IO.

pub mod bookie_client;
pub mod metadata;
pub mod writer;

pub use bookie_client::{AckSender, AddAck, BookieClient, ClientError, ClientOptions};
