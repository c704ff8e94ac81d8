//! Ledger metadata: what the metadata store says about one ledger, and the arithmetic of where
//! its entries live.
//!
//! A ledger has an ensemble of E bookies, a write quorum Qw and an ack quorum Qa
//! (E ≥ Qw ≥ Qa ≥ 1). Entry `e` is written to the bookies at ensemble positions
//! `(e + i) mod E` for `i < Qw` (its *write set*) and acknowledged once Qa of them have it.
//! When a bookie fails, the writer replaces it from the first unacknowledged entry on: the
//! metadata then holds several **fragments**, each an ensemble and the first entry it covers.
//!
//! Stored as JSON (readable with `etcdctl get`) under `ledgers/<id, 20 digits>`, with a format
//! number so that later versions can change it; decoding validates every invariant, so a
//! corrupt or hand-edited record is refused, not trusted.

use std::collections::HashSet;

use bytes::Bytes;
use dlog_api::{BookieId, EntryId, Epoch, LedgerId};
use serde::{Deserialize, Serialize};

/// Where ledger `id`'s metadata lives in the metadata store.
pub fn ledger_key(id: LedgerId) -> String {
    format!("ledgers/{:020}", id.0)
}

/// The prefix under which every ledger's metadata lives.
pub const LEDGERS_PREFIX: &str = "ledgers/";

/// The counter ledger ids are allocated from.
pub const LEDGER_ID_COUNTER: &str = "ledger";

const FORMAT: u32 = 1;

/// The most bookies an ensemble may have.
pub const MAX_ENSEMBLE: usize = 32;

/// E/Qw/Qa of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    pub ensemble: u8,
    pub write: u8,
    pub ack: u8,
}

impl Quorum {
    pub const DEFAULT: Quorum = Quorum {
        ensemble: 3,
        write: 3,
        ack: 2,
    };

    pub fn new(ensemble: u8, write: u8, ack: u8) -> Result<Quorum, MetadataInvalid> {
        let q = Quorum {
            ensemble,
            write,
            ack,
        };
        q.validate()?;
        Ok(q)
    }

    pub fn validate(&self) -> Result<(), MetadataInvalid> {
        let Quorum {
            ensemble: e,
            write: w,
            ack: a,
        } = *self;
        if !(a >= 1 && a <= w && w <= e && usize::from(e) <= MAX_ENSEMBLE) {
            return Err(MetadataInvalid(format!(
                "quorums need 1 ≤ ack ({a}) ≤ write ({w}) ≤ ensemble ({e}) ≤ {MAX_ENSEMBLE}"
            )));
        }
        Ok(())
    }

    /// How many bookies of a write set must refuse an old writer so that it can no longer
    /// gather an ack quorum there: Qw − Qa + 1.
    pub fn fence_quorum(&self) -> usize {
        usize::from(self.write - self.ack + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// A writer may be adding entries.
    Open,
    /// A recovery (at the metadata's epoch) is fencing and sealing it.
    InRecovery,
    /// Sealed: `last_entry` and `length` are final and the ledger never changes again.
    Closed,
}

/// The ensemble from `first_entry` on (until the next fragment's first entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub first_entry: EntryId,
    pub ensemble: Vec<BookieId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMetadata {
    pub format: u32,
    pub id: LedgerId,
    pub quorum: Quorum,
    pub state: LedgerState,
    /// The epoch adds to this ledger carry; a recovery raises it before fencing.
    pub epoch: Epoch,
    /// In order of `first_entry`, strictly increasing; the first starts at entry 0.
    pub fragments: Vec<Fragment>,
    /// The last entry of a closed ledger; `None` if it is closed empty (or not closed).
    pub last_entry: Option<EntryId>,
    /// Payload bytes of a closed ledger's entries.
    pub length: u64,
    pub created_ms: i64,
}

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ledger metadata: {0}")]
pub struct MetadataInvalid(pub String);

impl LedgerMetadata {
    /// A new open ledger on `ensemble`.
    pub fn new(
        id: LedgerId,
        quorum: Quorum,
        epoch: Epoch,
        ensemble: Vec<BookieId>,
        created_ms: i64,
    ) -> Result<LedgerMetadata, MetadataInvalid> {
        let m = LedgerMetadata {
            format: FORMAT,
            id,
            quorum,
            state: LedgerState::Open,
            epoch,
            fragments: vec![Fragment {
                first_entry: EntryId(0),
                ensemble,
            }],
            last_entry: None,
            length: 0,
            created_ms,
        };
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<(), MetadataInvalid> {
        let bad = |m: String| Err(MetadataInvalid(format!("ledger {}: {m}", self.id)));
        if self.format != FORMAT {
            return bad(format!("unknown format {}", self.format));
        }
        self.quorum.validate()?;
        let Some(first) = self.fragments.first() else {
            return bad("no fragments".into());
        };
        if first.first_entry != EntryId(0) {
            return bad("the first fragment does not start at entry 0".into());
        }
        for w in self.fragments.windows(2) {
            if w[1].first_entry <= w[0].first_entry {
                return bad("fragments are not in increasing entry order".into());
            }
        }
        for f in &self.fragments {
            if f.ensemble.len() != usize::from(self.quorum.ensemble) {
                return bad(format!(
                    "fragment at entry {} has {} bookies, not {}",
                    f.first_entry,
                    f.ensemble.len(),
                    self.quorum.ensemble
                ));
            }
            let distinct: HashSet<_> = f.ensemble.iter().collect();
            if distinct.len() != f.ensemble.len() {
                return bad(format!(
                    "fragment at entry {} names a bookie twice",
                    f.first_entry
                ));
            }
        }
        match self.state {
            LedgerState::Closed => {
                if let Some(last) = self.last_entry {
                    let tail = self.fragments.last().map_or(EntryId(0), |f| f.first_entry);
                    if tail > last.next() {
                        return bad(format!(
                            "a fragment starts at {tail}, after the last entry {last}"
                        ));
                    }
                }
            }
            LedgerState::Open | LedgerState::InRecovery => {
                if self.last_entry.is_some() || self.length != 0 {
                    return bad("only a closed ledger has a last entry and a length".into());
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).expect("metadata always serializes"))
    }

    pub fn decode(bytes: &[u8]) -> Result<LedgerMetadata, MetadataInvalid> {
        let m: LedgerMetadata = serde_json::from_slice(bytes)
            .map_err(|e| MetadataInvalid(format!("cannot parse: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// The fragment that holds `entry`.
    pub fn fragment(&self, entry: EntryId) -> &Fragment {
        let i = self
            .fragments
            .partition_point(|f| f.first_entry <= entry)
            .saturating_sub(1);
        &self.fragments[i]
    }

    /// The bookies that store `entry`, in write-set order.
    pub fn write_set(&self, entry: EntryId) -> Vec<BookieId> {
        let ens = &self.fragment(entry).ensemble;
        write_set_positions(self.quorum, entry)
            .map(|i| ens[i].clone())
            .collect()
    }

    /// The ensemble new entries go to.
    pub fn current_ensemble(&self) -> &[BookieId] {
        &self
            .fragments
            .last()
            .expect("validated: at least one fragment")
            .ensemble
    }

    /// Every bookie that holds any part of the ledger.
    pub fn all_bookies(&self) -> Vec<BookieId> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for f in &self.fragments {
            for b in &f.ensemble {
                if seen.insert(b.clone()) {
                    out.push(b.clone());
                }
            }
        }
        out
    }

    /// The metadata after replacing bookies from `first_entry` on: `replace` maps an old
    /// bookie of the current ensemble to its replacement. A fragment starting at the same entry
    /// as the current last one replaces it (nothing was written under it yet).
    pub fn with_replacements(
        &self,
        first_entry: EntryId,
        replace: &[(BookieId, BookieId)],
    ) -> Result<LedgerMetadata, MetadataInvalid> {
        let current = self.fragments.last().expect("validated");
        if first_entry < current.first_entry {
            return Err(MetadataInvalid(format!(
                "a new fragment cannot start at {first_entry}, before the current one at {}",
                current.first_entry
            )));
        }
        let mut ensemble = current.ensemble.clone();
        for (old, new) in replace {
            let Some(pos) = ensemble.iter().position(|b| b == old) else {
                return Err(MetadataInvalid(format!(
                    "bookie {old} is not in the current ensemble"
                )));
            };
            ensemble[pos] = new.clone();
        }
        let mut m = self.clone();
        if first_entry == current.first_entry {
            m.fragments.pop();
        }
        m.fragments.push(Fragment {
            first_entry,
            ensemble,
        });
        m.validate()?;
        Ok(m)
    }
}

impl LedgerMetadata {
    /// The entries fragment `i` holds: from its first entry to the entry before the next
    /// fragment, or to the last entry of a closed ledger. `None` if it holds none.
    pub fn fragment_entries(&self, i: usize) -> Option<(EntryId, EntryId)> {
        let f = self.fragments.get(i)?;
        let end = match self.fragments.get(i + 1) {
            Some(next) => EntryId(next.first_entry.0.checked_sub(1)?),
            None => self.last_entry?,
        };
        (end >= f.first_entry).then_some((f.first_entry, end))
    }

    /// The metadata with `old` replaced by `new` in fragment `i` only: the re-replication of a
    /// fragment whose entries were copied to `new`.
    pub fn with_fragment_bookie(
        &self,
        i: usize,
        old: &BookieId,
        new: &BookieId,
    ) -> Result<LedgerMetadata, MetadataInvalid> {
        let mut m = self.clone();
        let f = m
            .fragments
            .get_mut(i)
            .ok_or_else(|| MetadataInvalid(format!("ledger {} has no fragment {i}", self.id)))?;
        let pos = f.ensemble.iter().position(|b| b == old).ok_or_else(|| {
            MetadataInvalid(format!(
                "bookie {old} is not in fragment {i} of ledger {}",
                self.id
            ))
        })?;
        f.ensemble[pos] = new.clone();
        m.validate()?;
        Ok(m)
    }
}

/// Ensemble positions of `entry`'s write set.
pub fn write_set_positions(q: Quorum, entry: EntryId) -> impl Iterator<Item = usize> {
    let e = u64::from(q.ensemble);
    (0..u64::from(q.write)).map(move |i| ((entry.0 % e + i) % e) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BookieId {
        BookieId::new(s).unwrap()
    }

    fn ens(names: &[&str]) -> Vec<BookieId> {
        names.iter().map(|n| b(n)).collect()
    }

    #[test]
    fn write_sets_stripe_over_the_ensemble() {
        let q = Quorum::new(5, 3, 2).unwrap();
        let m = LedgerMetadata::new(LedgerId(1), q, Epoch(1), ens(&["a", "b", "c", "d", "e"]), 0)
            .unwrap();
        assert_eq!(m.write_set(EntryId(0)), ens(&["a", "b", "c"]));
        assert_eq!(m.write_set(EntryId(3)), ens(&["d", "e", "a"]));
        assert_eq!(m.write_set(EntryId(9)), ens(&["e", "a", "b"]));
        assert_eq!(q.fence_quorum(), 2);
    }

    #[test]
    fn replacements_add_fragments_and_round_trip() {
        let m = LedgerMetadata::new(
            LedgerId(7),
            Quorum::DEFAULT,
            Epoch(3),
            ens(&["a", "b", "c"]),
            1,
        )
        .unwrap();
        let m2 = m
            .with_replacements(EntryId(10), &[(b("b"), b("d"))])
            .unwrap();
        assert_eq!(m2.fragments.len(), 2);
        assert_eq!(m2.write_set(EntryId(9)), ens(&["a", "b", "c"]));
        // 10 mod 3 = 1: positions 1, 2, 0 of [a, d, c].
        assert_eq!(m2.write_set(EntryId(10)), ens(&["d", "c", "a"]));
        // Replacing again at the same first entry rewrites that fragment.
        let m3 = m2
            .with_replacements(EntryId(10), &[(b("d"), b("e"))])
            .unwrap();
        assert_eq!(m3.fragments.len(), 2);
        assert_eq!(m3.current_ensemble(), ens(&["a", "e", "c"]).as_slice());
        assert_eq!(m3.all_bookies(), ens(&["a", "b", "c", "e"]));
        assert_eq!(LedgerMetadata::decode(&m3.encode()).unwrap(), m3);
        assert!(m3.with_replacements(EntryId(5), &[]).is_err());
        assert!(
            m3.with_replacements(EntryId(11), &[(b("zz"), b("y"))])
                .is_err()
        );
        assert!(
            m3.with_replacements(EntryId(11), &[(b("a"), b("c"))])
                .is_err()
        );
    }

    #[test]
    fn invalid_metadata_is_refused() {
        assert!(Quorum::new(3, 4, 2).is_err());
        assert!(Quorum::new(3, 2, 3).is_err());
        assert!(Quorum::new(3, 3, 0).is_err());
        assert!(Quorum::new(33, 3, 2).is_err());
        assert!(
            LedgerMetadata::new(LedgerId(1), Quorum::DEFAULT, Epoch(1), ens(&["a", "b"]), 0)
                .is_err()
        );
        assert!(
            LedgerMetadata::new(
                LedgerId(1),
                Quorum::DEFAULT,
                Epoch(1),
                ens(&["a", "a", "b"]),
                0
            )
            .is_err()
        );
        let good = LedgerMetadata::new(
            LedgerId(1),
            Quorum::DEFAULT,
            Epoch(1),
            ens(&["a", "b", "c"]),
            0,
        )
        .unwrap();
        for bad in [
            &b"not json"[..],
            br#"{"format": 9}"#,
            &good.encode().replace("\"format\": 1", "\"format\": 2"),
            &good
                .encode()
                .replace("\"first_entry\": 0", "\"first_entry\": 4"),
            &good.encode().replace("\"length\": 0", "\"length\": 5"),
        ] {
            assert!(
                LedgerMetadata::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    trait Replace {
        fn replace(&self, a: &str, b: &str) -> Vec<u8>;
    }
    impl Replace for Bytes {
        fn replace(&self, a: &str, b: &str) -> Vec<u8> {
            let s = String::from_utf8(self.to_vec()).unwrap();
            assert!(s.contains(a), "{s} lacks {a}");
            s.replace(a, b).into_bytes()
        }
    }
}
