//! `dlog-ledger`: the replication client.
//!
//! - [`bookie_client`]: the pipelined client of the bookie protocol.
//! - [`metadata`]: ledger metadata (ensembles, quorums, fragments, state) and write sets.
//! - [`writer`]: the writer's replication protocol, sans IO.
//! - [`recovery`]: fencing, finding the true end and sealing a ledger, sans IO.
//! - [`registry`]: bookie registration under leases and cluster cookies.
//! - [`placement`]: choosing bookies for ensembles, spread across zones.

pub mod bookie_client;
pub mod metadata;
pub mod placement;
pub mod recovery;
pub mod registry;
pub mod writer;

pub use bookie_client::{AckSender, AddAck, BookieClient, ClientError, ClientOptions};
