//! Live bytes per journal file and ledger: what garbage collection decides with.
//!
//! A file whose live bytes reach zero can be deleted once the index is flushed past it; a file
//! with few live bytes is compacted. Kept in memory, persisted in the index (`u` keys) by the
//! same atomic batch that applies each journal commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dlog_api::LedgerId;

#[derive(Debug, Default)]
pub struct Usage {
    files: BTreeMap<u64, HashMap<LedgerId, u64>>,
    by_ledger: HashMap<LedgerId, BTreeSet<u64>>,
}

impl Usage {
    pub fn load(files: HashMap<u64, HashMap<LedgerId, u64>>) -> Self {
        let mut u = Usage::default();
        for (file, ledgers) in files {
            for (ledger, bytes) in ledgers {
                u.add(file, ledger, bytes);
            }
        }
        u
    }

    pub fn add(&mut self, file: u64, ledger: LedgerId, bytes: u64) {
        *self
            .files
            .entry(file)
            .or_default()
            .entry(ledger)
            .or_default() += bytes;
        self.by_ledger.entry(ledger).or_default().insert(file);
    }

    pub fn sub(&mut self, file: u64, ledger: LedgerId, bytes: u64) {
        if let Some(ledgers) = self.files.get_mut(&file)
            && let Some(b) = ledgers.get_mut(&ledger)
        {
            *b = b.saturating_sub(bytes);
        }
    }

    pub fn get(&self, file: u64, ledger: LedgerId) -> u64 {
        self.files
            .get(&file)
            .and_then(|l| l.get(&ledger))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets a deleted ledger; returns the files it had bytes in.
    pub fn remove_ledger(&mut self, ledger: LedgerId) -> Vec<u64> {
        let files: Vec<u64> = self
            .by_ledger
            .remove(&ledger)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for f in &files {
            if let Some(l) = self.files.get_mut(f) {
                l.remove(&ledger);
            }
        }
        files
    }

    /// Forgets a ledger's bytes in one file.
    pub fn clear(&mut self, file: u64, ledger: LedgerId) {
        if let Some(l) = self.files.get_mut(&file) {
            l.remove(&ledger);
        }
        if let Some(s) = self.by_ledger.get_mut(&ledger) {
            s.remove(&file);
        }
    }

    pub fn live_bytes(&self, file: u64) -> u64 {
        self.files.get(&file).map_or(0, |l| l.values().sum())
    }

    /// Ledgers with live bytes in `file`.
    pub fn ledgers_in(&self, file: u64) -> Vec<LedgerId> {
        self.files.get(&file).map_or_else(Vec::new, |l| {
            l.iter().filter(|(_, b)| **b > 0).map(|(l, _)| *l).collect()
        })
    }

    /// Forgets a file that was deleted.
    pub fn remove_file(&mut self, file: u64) {
        if let Some(ledgers) = self.files.remove(&file) {
            for l in ledgers.keys() {
                if let Some(s) = self.by_ledger.get_mut(l) {
                    s.remove(&file);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting() {
        let mut u = Usage::default();
        u.add(1, LedgerId(1), 100);
        u.add(1, LedgerId(2), 50);
        u.add(2, LedgerId(1), 10);
        assert_eq!(u.live_bytes(1), 150);
        u.sub(1, LedgerId(2), 80);
        assert_eq!(u.live_bytes(1), 100);
        assert_eq!(u.ledgers_in(1), vec![LedgerId(1)]);
        let mut files = u.remove_ledger(LedgerId(1));
        files.sort();
        assert_eq!(files, vec![1, 2]);
        assert_eq!(u.live_bytes(1), 0);
        assert_eq!(u.live_bytes(2), 0);
    }
}
