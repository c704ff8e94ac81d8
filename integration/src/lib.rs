//! `dlog-integration`: what multi-process fault tests share.
//!
//! - [`checker`]: the history checker of `RELIABILITY.md` (C1–C8) over recorded client
//!   operations and the stream read back after the faults.
//!
//! The process harness (etcd, bookies and service nodes as real processes) and the end-to-end
//! tests are in `services/server/tests/` next to the `dlogd` binary they start.

pub mod checker;

pub use checker::{Event, FinalLog, Outcome, Segment, Summary, Violation, check};

/// Reads a JSON-lines history file (one [`Event`] per line).
pub fn read_history(text: &str) -> Result<Vec<Event>, serde_json::Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}
