//! The bookie's write availability: writable, read-only (and why), failed, draining, and whether
//! it carries damage it cannot attribute to a ledger.
//!
//! The add path checks one atomic; reasons live behind a mutex that only state changes and
//! `info` take.

use std::sync::atomic::{AtomicU32, Ordering};

use dlog_api::wire::bookie::BookieState;
use parking_lot::Mutex;

use crate::error::BookieError;

const DISK_FULL: u32 = 1;
const JOURNAL_FULL: u32 = 2;
const FAILED: u32 = 4;
const DRAINING: u32 = 8;
const FORCED_READ_ONLY: u32 = 16;

#[derive(Debug, Default)]
struct Reasons {
    disk: String,
    journal: String,
    failed: String,
    forced: String,
    damaged: Option<String>,
}

#[derive(Debug, Default)]
pub struct Health {
    flags: AtomicU32,
    reasons: Mutex<Reasons>,
}

impl Health {
    fn set(&self, flag: u32, on: bool) -> bool {
        let prev = if on {
            self.flags.fetch_or(flag, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!flag, Ordering::AcqRel)
        };
        (prev & flag != 0) != on
    }

    /// Disk usage crossed a threshold; returns whether the state changed.
    pub fn set_disk_full(&self, reason: Option<String>) -> bool {
        let on = reason.is_some();
        self.reasons.lock().disk = reason.unwrap_or_default();
        self.set(DISK_FULL, on)
    }

    /// The journal could not get a new file (no space); clears when it gets one.
    pub fn set_journal_full(&self, reason: Option<String>) -> bool {
        let on = reason.is_some();
        self.reasons.lock().journal = reason.unwrap_or_default();
        self.set(JOURNAL_FULL, on)
    }

    /// Operator-requested read-only mode (e.g. before decommissioning).
    pub fn set_forced_read_only(&self, reason: Option<String>) -> bool {
        let on = reason.is_some();
        self.reasons.lock().forced = reason.unwrap_or_default();
        self.set(FORCED_READ_ONLY, on)
    }

    /// A journal write or sync failed. Permanent until restart.
    pub fn set_failed(&self, reason: String) {
        let mut r = self.reasons.lock();
        if r.failed.is_empty() {
            r.failed = reason;
        }
        drop(r);
        self.set(FAILED, true);
    }

    pub fn set_draining(&self) {
        self.set(DRAINING, true);
    }

    pub fn set_damaged(&self, reason: String) {
        let mut r = self.reasons.lock();
        match &mut r.damaged {
            Some(d) => {
                d.push_str("; ");
                d.push_str(&reason);
            }
            None => r.damaged = Some(reason),
        }
    }

    pub fn damaged(&self) -> Option<String> {
        self.reasons.lock().damaged.clone()
    }

    pub fn is_failed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & FAILED != 0
    }

    pub fn failed_reason(&self) -> String {
        self.reasons.lock().failed.clone()
    }

    /// May the bookie accept new data (adds, explicit LACs)? A journal that could not roll
    /// does not refuse here: each add retries the roll, and fails if it still cannot.
    pub fn check_writable(&self) -> Result<(), BookieError> {
        let flags = self.flags.load(Ordering::Acquire) & !JOURNAL_FULL;
        if flags == 0 {
            return Ok(());
        }
        self.check_journal()?;
        Err(BookieError::ReadOnly(self.state().1))
    }

    /// May the bookie write to its journal at all (fences, deletes, compaction)? These are
    /// allowed in read-only mode: recovery must be able to fence a full bookie, and deletes and
    /// compaction are how it gets out of that state.
    pub fn check_journal(&self) -> Result<(), BookieError> {
        let flags = self.flags.load(Ordering::Acquire);
        if flags & FAILED != 0 {
            return Err(BookieError::JournalFailed(self.failed_reason()));
        }
        if flags & DRAINING != 0 {
            return Err(BookieError::ShuttingDown);
        }
        Ok(())
    }

    /// The state to report, with a human reason.
    pub fn state(&self) -> (BookieState, String) {
        let flags = self.flags.load(Ordering::Acquire);
        let r = self.reasons.lock();
        if flags & FAILED != 0 {
            return (BookieState::Failed, r.failed.clone());
        }
        if flags & DRAINING != 0 {
            return (BookieState::Draining, "shutting down".into());
        }
        let reasons: Vec<&str> = [
            (DISK_FULL, &r.disk),
            (JOURNAL_FULL, &r.journal),
            (FORCED_READ_ONLY, &r.forced),
        ]
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, s)| s.as_str())
        .collect();
        if reasons.is_empty() {
            (BookieState::Writable, String::new())
        } else {
            (BookieState::ReadOnly, reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_precedence() {
        let h = Health::default();
        assert!(h.check_writable().is_ok());
        assert!(h.set_disk_full(Some("disk 96% used".into())));
        assert!(!h.set_disk_full(Some("disk 97% used".into())), "no change");
        assert!(matches!(h.check_writable(), Err(BookieError::ReadOnly(r)) if r.contains("97%")));
        assert!(h.check_journal().is_ok(), "fences still allowed");
        assert_eq!(h.state().0, BookieState::ReadOnly);
        assert!(h.set_disk_full(None));
        assert!(h.check_writable().is_ok());
        h.set_failed("fsync: EIO".into());
        assert!(matches!(
            h.check_writable(),
            Err(BookieError::JournalFailed(_))
        ));
        assert!(matches!(
            h.check_journal(),
            Err(BookieError::JournalFailed(_))
        ));
        assert_eq!(h.state().0, BookieState::Failed);
    }
}
