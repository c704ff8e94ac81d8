//! `dlog-ledger`: the replication client.
//!
//! So far it holds [`bookie_client`], the pipelined client of the bookie protocol that the
//! replication layer, the benchmarks and the tests use to talk to bookies.

pub mod bookie_client;

pub use bookie_client::{AckSender, AddAck, BookieClient, ClientError, ClientOptions};
