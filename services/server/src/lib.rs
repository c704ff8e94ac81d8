//! `dlog-server`: the service side of dlog and the library behind the `dlogd` binary.
//!
//! - [`bookie_role`]: `dlogd bookie`, a storage node serving the bookie protocol.
//! - [`ledger_cmd`]: `dlogd ledger …` tools and `dlogd autorecovery`.
//! - [`bench`]: `dlogd bench …`, benchmarks over the real protocol with a common output shape.
//! - [`registration`]: a bookie's registration in the cluster's metadata store.
//! - [`logging`]: tracing set-up shared by every role.

pub mod bench;
pub mod bookie_role;
pub mod ledger_cmd;
pub mod logging;
pub mod registration;
