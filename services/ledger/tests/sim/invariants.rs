//! The invariants checked after every step, and a seed's whole run: faults, then healing
//! until the ledger is closed.

use super::*;

impl Sim {
    pub(super) fn check(&self) {
        let qa = usize::from(self.meta.quorum.ack);
        for &e in &self.acked {
            let ws = self.meta.write_set(EntryId(e));
            let want = sealed(e);
            let held = ws
                .iter()
                .filter(|b| self.bookies[*b].entries.get(&EntryId(e)) == Some(&want))
                .count();
            if held < qa {
                self.fail(format!(
                    "acknowledged entry {e} is held by {held} < {qa} of its write set {ws:?}"
                ));
            }
        }
        if let Some(c) = &self.closed {
            let last_acked = self.acked.last().map(|e| EntryId(*e));
            if last_acked > c.last_entry {
                self.fail(format!(
                    "entry {last_acked:?} acknowledged but the ledger was sealed at {:?}",
                    c.last_entry
                ));
            }
        }
        for b in self.bookies.values() {
            for (e, d) in &b.entries {
                if d != &sealed(e.0) {
                    self.fail(format!("entry {e} holds bytes the writer never wrote"));
                }
            }
        }
    }

    pub(super) fn run(self) -> Stats {
        let mut s = self;
        s.run_inner();
        Stats {
            acked: s.acked.len() as u64,
            recoveries: u64::from(s.next_recovery),
            fragments: s.meta.fragments.len() as u64,
            crashes: s.log.iter().filter(|l| l.ends_with("crashes")).count() as u64,
            slow: s.log.iter().filter(|l| l.contains("times out")).count() as u64,
        }
    }

    pub(super) fn run_inner(&mut self) {
        for _ in 0..600 {
            self.step(true);
        }
        // Heal: everyone back, everything delivered, recovery until closed.
        for b in self.bookies.values_mut() {
            b.alive = true;
        }
        for round in 0..20 {
            let mut quiet = 0;
            while quiet < 50 {
                if self.step(false) {
                    quiet = 0;
                } else {
                    quiet += 1;
                }
            }
            if self.closed.is_some() {
                break;
            }
            if round == 19 {
                self.fail("the ledger never closed after healing".into());
            }
            self.start_recovery(false);
        }
        let c = self.closed.clone().expect("closed");
        let len: u64 = c
            .last_entry
            .map_or(0, |l| (0..=l.0).map(|i| payload(i).len() as u64).sum());
        if c.length != len {
            self.fail(format!("sealed length {} != {len}", c.length));
        }
        // Every sealed entry is readable from its write set with the writer's bytes.
        if let Some(last) = c.last_entry {
            for e in 0..=last.0 {
                let ok = c
                    .write_set(EntryId(e))
                    .iter()
                    .any(|b| self.bookies[b].entries.get(&EntryId(e)) == Some(&sealed(e)));
                if !ok {
                    self.fail(format!(
                        "sealed entry {e} is on no replica of its write set"
                    ));
                }
            }
        }
    }
}
