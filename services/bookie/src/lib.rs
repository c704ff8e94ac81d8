//! `dlog-bookie`: the storage node.
//!
//! A bookie stores ledger entries for the replication layer. Its journal *is* its storage: each
//! entry is written once, by a group-committing thread, into preallocated journal files, and is
//! acknowledged only after fsync. A RocksDB index maps `(ledger, entry)` to the entry's place in
//! the journal; it is rebuilt from the journal after a crash, so it is never synced on the hot
//! path. Fencing state is journaled too, so it is durable before a fence is acknowledged.
//!
//! - [`Bookie`]: open a data dir and run the operations ([`bookie`]).
//! - [`server`]: the TCP server speaking the bookie protocol of `dlog_api::wire`.
//! - [`journal`]: files, group commit, replay; [`index`]: RocksDB; [`gc`]: reclaiming space.
//! - [`config`]: configuration and its defaults; [`cookie`]: identity.
//!
//! `docs/storage.md` describes the formats and the crash-recovery rules.

pub mod apply;
pub mod bookie;
pub mod cache;
pub mod config;
pub mod cookie;
pub mod disk;
pub mod error;
pub mod gc;
pub mod health;
pub mod index;
pub mod journal;
pub mod ledgers;
pub mod queue;
pub mod server;
pub mod signal;
pub mod usage;

pub use bookie::Bookie;
pub use config::BookieConfig;
pub use error::BookieError;
