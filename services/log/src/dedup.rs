//! Idempotent appends: recognising a producer's retry.
//!
//! A producer numbers its records `0, 1, 2 …` (the sequence of a batch is the number of its
//! first record). The writer remembers each producer's last [`KEEP`] batches with the offsets
//! they got. A batch whose sequence follows the producer's last one is new; a batch equal to a
//! remembered one is a retry and gets the original offsets back (or waits for them, if the
//! original is still in flight); anything else is refused, because accepting it would reorder
//! or skip the producer's records.
//!
//! The table survives a change of writer: the stream record keeps it as of the last seal, and
//! a new writer adds the batches it finds in the segment it recovers.

use std::collections::BTreeMap;

use crate::error::LogError;
use crate::meta::ProducerBatch;

/// Batches remembered per producer: as many as a producer may have in flight and retry.
pub const KEEP: usize = 64;
/// Producers remembered; the least recently active are forgotten first.
pub const MAX_PRODUCERS: usize = 10_000;

/// What to do with an incoming batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    New,
    /// Already appended (or in flight) at these offsets: answer with them.
    Duplicate(ProducerBatch),
}

#[derive(Debug, Clone, Default)]
pub struct DedupTable {
    producers: BTreeMap<u64, Producer>,
    clock: u64,
}

#[derive(Debug, Clone, Default)]
struct Producer {
    batches: Vec<ProducerBatch>,
    last_used: u64,
}

impl DedupTable {
    pub fn from_snapshot(s: &BTreeMap<u64, Vec<ProducerBatch>>) -> DedupTable {
        let mut t = DedupTable::default();
        for (&id, batches) in s {
            t.producers.insert(
                id,
                Producer {
                    batches: batches.clone(),
                    last_used: 0,
                },
            );
        }
        t
    }

    pub fn snapshot(&self) -> BTreeMap<u64, Vec<ProducerBatch>> {
        self.snapshot_below(u64::MAX)
    }

    /// The batches that start below `end`: what a seal at `end` may promise the next writer.
    /// Batches at or past the sealed end are in flight to the next segment; if they never
    /// reach it, a new writer must treat their retries as new, not as duplicates.
    pub fn snapshot_below(&self, end: u64) -> BTreeMap<u64, Vec<ProducerBatch>> {
        self.producers
            .iter()
            .filter_map(|(&id, p)| {
                let kept: Vec<ProducerBatch> = p
                    .batches
                    .iter()
                    .filter(|b| b.first_offset < end)
                    .cloned()
                    .collect();
                (!kept.is_empty()).then_some((id, kept))
            })
            .collect()
    }

    /// Judges a batch of `count` records from `producer` starting at `seq`.
    pub fn check(&self, producer: u64, seq: u64, count: u32) -> Result<Verdict, LogError> {
        let Some(p) = self.producers.get(&producer) else {
            // A producer we do not know starts anywhere (its earlier batches may be older than
            // what we remember).
            return Ok(Verdict::New);
        };
        let Some(last) = p.batches.last() else {
            return Ok(Verdict::New);
        };
        let next = last.first_seq + u64::from(last.count);
        if seq == next {
            return Ok(Verdict::New);
        }
        if let Some(b) = p
            .batches
            .iter()
            .find(|b| b.first_seq == seq && b.count == count)
        {
            return Ok(Verdict::Duplicate(b.clone()));
        }
        Err(LogError::SequenceGap {
            producer,
            expected_next: next,
            got: seq,
        })
    }

    /// Records an appended (or in-flight) batch.
    pub fn record(&mut self, producer: u64, batch: ProducerBatch) {
        self.clock += 1;
        let clock = self.clock;
        let p = self.producers.entry(producer).or_default();
        p.last_used = clock;
        p.batches.push(batch);
        if p.batches.len() > KEEP {
            p.batches.remove(0);
        }
        if self.producers.len() > MAX_PRODUCERS
            && let Some((&oldest, _)) = self.producers.iter().min_by_key(|(_, p)| p.last_used)
        {
            self.producers.remove(&oldest);
        }
    }

    /// Forgets batches at or after `offset`: they were not appended after all.
    pub fn forget_from(&mut self, offset: u64) {
        for p in self.producers.values_mut() {
            p.batches.retain(|b| b.first_offset < offset);
        }
        self.producers.retain(|_, p| !p.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first_seq: u64, count: u32, first_offset: u64) -> ProducerBatch {
        ProducerBatch {
            first_seq,
            count,
            first_offset,
        }
    }

    #[test]
    fn new_retry_and_gap() {
        let mut t = DedupTable::default();
        assert_eq!(t.check(7, 0, 3).unwrap(), Verdict::New);
        t.record(7, b(0, 3, 100));
        assert_eq!(t.check(7, 3, 2).unwrap(), Verdict::New);
        t.record(7, b(3, 2, 110));
        assert_eq!(t.check(7, 0, 3).unwrap(), Verdict::Duplicate(b(0, 3, 100)));
        assert_eq!(t.check(7, 3, 2).unwrap(), Verdict::Duplicate(b(3, 2, 110)));
        assert!(matches!(
            t.check(7, 9, 1),
            Err(LogError::SequenceGap {
                expected_next: 5,
                got: 9,
                ..
            })
        ));
        // A retry that does not match a remembered batch exactly is refused, not re-appended.
        assert!(t.check(7, 1, 1).is_err());
        // Snapshots carry the table to the next writer.
        let t2 = DedupTable::from_snapshot(&t.snapshot());
        assert_eq!(t2.check(7, 3, 2).unwrap(), Verdict::Duplicate(b(3, 2, 110)));
    }

    #[test]
    fn forgetting_failed_batches_allows_their_retry() {
        let mut t = DedupTable::default();
        t.record(1, b(0, 1, 10));
        t.record(1, b(1, 1, 11));
        t.forget_from(11);
        assert_eq!(t.check(1, 1, 1).unwrap(), Verdict::New);
        t.forget_from(0);
        assert_eq!(t.check(1, 5, 1).unwrap(), Verdict::New);
    }

    #[test]
    fn a_seal_snapshot_keeps_only_batches_below_the_seal() {
        let mut t = DedupTable::default();
        t.record(1, b(0, 2, 10));
        t.record(1, b(2, 2, 12));
        t.record(2, b(0, 1, 14));
        let s = t.snapshot_below(12);
        assert_eq!(s.len(), 1);
        assert_eq!(s[&1], vec![b(0, 2, 10)]);
        assert_eq!(t.snapshot_below(u64::MAX), t.snapshot());
    }

    #[test]
    fn bounded() {
        let mut t = DedupTable::default();
        for i in 0..(KEEP as u64 + 10) {
            t.record(1, b(i, 1, i));
        }
        assert_eq!(t.snapshot()[&1].len(), KEEP);
        for p in 0..(MAX_PRODUCERS as u64 + 5) {
            t.record(p + 2, b(0, 1, 0));
        }
        assert_eq!(t.snapshot().len(), MAX_PRODUCERS);
    }
}
