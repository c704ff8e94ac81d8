//! The read cache of recently written entries.
//!
//! Tail readers ask for what was just written, so the cache keeps the most recent entries in
//! write order (FIFO), bounded by bytes. Entries are kept per ledger in id order, which is how
//! writers add them, so an insert is a push and a lookup a binary search; an entry re-added out
//! of order (ledger recovery) replaces the cached copy or is simply not cached. Reads that miss go
//! to the journal files and are not inserted, so a catch-up reader scanning history never evicts
//! the tail.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use dlog_api::{EntryId, LedgerId};
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct State {
    ledgers: HashMap<LedgerId, VecDeque<(EntryId, Bytes)>>,
    /// Which ledger each cached entry belongs to, oldest first.
    order: VecDeque<LedgerId>,
    bytes: u64,
}

#[derive(Debug)]
pub struct RecentCache {
    state: Mutex<State>,
    capacity: u64,
}

impl RecentCache {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity_bytes,
        }
    }

    /// Caches the entries of one commit (in order).
    pub fn insert_all<'a>(&self, entries: impl Iterator<Item = (LedgerId, EntryId, &'a Bytes)>) {
        let mut s = self.state.lock();
        let s = &mut *s;
        for (ledger, entry, data) in entries {
            let len = data.len() as u64;
            if len > self.capacity {
                continue;
            }
            let q = s.ledgers.entry(ledger).or_default();
            match q.back() {
                Some((last, _)) if *last >= entry => {
                    // Out of order: replace a cached copy in place, else leave it uncached.
                    if let Ok(i) = q.binary_search_by_key(&entry, |(e, _)| *e) {
                        s.bytes = s.bytes - q[i].1.len() as u64 + len;
                        q[i].1 = data.clone();
                    }
                    continue;
                }
                _ => q.push_back((entry, data.clone())),
            }
            s.order.push_back(ledger);
            s.bytes += len;
            while s.bytes > self.capacity {
                let Some(victim) = s.order.pop_front() else {
                    break;
                };
                if let Some(vq) = s.ledgers.get_mut(&victim) {
                    if let Some((_, d)) = vq.pop_front() {
                        s.bytes -= d.len() as u64;
                    }
                    if vq.is_empty() {
                        s.ledgers.remove(&victim);
                    }
                }
            }
        }
    }

    pub fn get(&self, ledger: LedgerId, entry: EntryId) -> Option<Bytes> {
        let s = self.state.lock();
        let q = s.ledgers.get(&ledger)?;
        let i = q.binary_search_by_key(&entry, |(e, _)| *e).ok()?;
        Some(q[i].1.clone())
    }

    /// Forgets a deleted ledger.
    pub fn remove_ledger(&self, ledger: LedgerId) {
        let mut s = self.state.lock();
        if let Some(q) = s.ledgers.remove(&ledger) {
            s.bytes -= q.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
            // Deletes are rare; scanning the order once keeps it from growing without bound.
            s.order.retain(|l| *l != ledger);
        }
    }

    /// Bytes held, for tests and metrics.
    pub fn bytes(&self) -> u64 {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(c: &RecentCache, l: u64, e: u64, len: usize) {
        let b = Bytes::from(vec![e as u8; len]);
        c.insert_all(std::iter::once((LedgerId(l), EntryId(e), &b)));
    }

    #[test]
    fn keeps_the_most_recent_within_its_budget() {
        let c = RecentCache::new(10_000);
        for e in 0..1000u64 {
            one(&c, 1 + e % 3, e, 100);
        }
        assert!(c.bytes() <= 10_000);
        assert!(c.get(LedgerId(1), EntryId(999)).is_some());
        assert!(c.get(LedgerId(1), EntryId(0)).is_none());
        // A re-add replaces the cached copy and keeps the byte count right.
        one(&c, 1, 999, 10);
        assert_eq!(c.get(LedgerId(1), EntryId(999)).unwrap().len(), 10);
        assert!(c.bytes() <= 10_000);
        // Too large: not cached.
        one(&c, 9, 0, 20_000);
        assert!(c.get(LedgerId(9), EntryId(0)).is_none());
        c.remove_ledger(LedgerId(2));
        assert!(c.get(LedgerId(2), EntryId(998)).is_none());
        for e in 1000..1200u64 {
            one(&c, 1, e, 100);
        }
        assert!(c.bytes() <= 10_000);
    }
}
