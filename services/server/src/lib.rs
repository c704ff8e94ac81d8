//! `dlog-server`: the service side of dlog and the library behind the `dlogd` binary.
//!
//! - [`bookie_role`]: `dlogd bookie`, a storage node serving the bookie protocol.
//! - [`ledger_cmd`]: `dlogd ledger …` tools and `dlogd autorecovery`.
//! - [`bench`]: `dlogd bench …`, benchmarks over the real protocol with a common output shape.
//! - [`server_role`]: `dlogd server` and `dlogd standalone`; [`server_config`]: its config.
//! - [`service`]: the log service — client protocol, stream ownership, admin operations.
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`http`]: the control plane (axum), `/api/v1/` with `/health`, `/ready`, `/metrics`.
//! - [`logging`]: tracing set-up shared by every role.

pub mod bench;
pub mod bookie_role;
pub mod http;
pub mod ledger_cmd;
pub mod logging;
pub mod metrics;
pub mod restore_cmd;
pub mod server_config;
pub mod server_role;
pub mod service;
