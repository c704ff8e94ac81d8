//! Ledger recovery's protocol core, sans IO: fence the ledger, find its true end, make every
//! entry up to that end durable on an ack quorum, and seal it.
//!
//! The caller has already moved the metadata to `InRecovery` at a new, higher epoch with a
//! compare-and-set (which is what makes two concurrent recoveries safe: the later one fences the
//! earlier one out on the bookies, and the earlier one's close fails its compare-and-set).
//!
//! 1. **Fence** every bookie of the last fragment at the new epoch. Entries of earlier fragments
//!    are all acknowledged (a fragment starts at the writer's LAC + 1), so only the last one is
//!    uncertain. Fencing is complete when every write set has at least Qw − Qa + 1 fenced
//!    bookies: the old writer can then no longer reach Qa anywhere, so nothing new can be
//!    acknowledged. If too many bookies fail for that, recovery fails and is retried later.
//! 2. **Read forward** from the highest LAC the fenced bookies reported (or the entry before the
//!    last fragment's first, if later), entry by entry, with recovery reads — which fence too. This is
//!    the fix for the case model checking found in BookKeeper (issue #2614): a bookie that
//!    missed the fence but is reached by a read must also refuse the old writer, or an entry it
//!    accepts after answering "no such entry" could be acknowledged and then truncated.
//!    - Some replica returns the entry (checksum verified): it exists; keep it and go on.
//!    - At least Qw − Qa + 1 replicas of its write set answer "no such entry": at most Qa − 1
//!      can hold it, so it was never acknowledged; the ledger ends before it.
//!    - Otherwise (unknown, damaged, unreachable replicas): recovery cannot decide and fails,
//!      to be retried — it never guesses an end.
//! 3. **Re-replicate** each found entry to its write set with recovery adds at the new epoch
//!    and wait for Qa acknowledgements, so the sealed ledger is as durable as if the old
//!    writer had finished.
//! 4. **Close** at the last found entry, with the ledger's length, by a compare-and-set.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dlog_api::wire::bookie::{AddEntry, LacInfo};
use dlog_api::{BookieId, Entry, EntryId};

use crate::metadata::{LedgerMetadata, LedgerState, write_set_positions};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// Another recovery (or writer) of a higher epoch took over.
    #[error("recovery fenced by a higher epoch")]
    Fenced,
    /// Not enough bookies answered to fence or to decide where the ledger ends; retry later.
    #[error("recovery cannot complete now: {0}")]
    Unavailable(String),
    /// A replica returned bytes that are not the asked entry, or the metadata is not in
    /// recovery.
    #[error("recovery found inconsistent data: {0}")]
    Inconsistent(String),
}

/// What a bookie answered a fence or a recovery read with, when not the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// The bookie definitely does not have the entry (and, fenced now, never will from the old
    /// writer).
    NoSuchEntry,
    /// A higher epoch fenced the ledger on this bookie.
    Fenced,
    /// Anything else: damaged ("unknown"), unreachable, timed out. Not evidence of absence.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryEvent {
    FenceOk {
        bookie: BookieId,
        info: LacInfo,
    },
    FenceFailed {
        bookie: BookieId,
        failure: ReadFailure,
    },
    /// `data` is the entry envelope as the bookie returned it.
    ReadOk {
        bookie: BookieId,
        entry: EntryId,
        data: Bytes,
    },
    ReadFailed {
        bookie: BookieId,
        entry: EntryId,
        failure: ReadFailure,
    },
    AddAcked {
        bookie: BookieId,
        entry: EntryId,
    },
    AddFailed {
        bookie: BookieId,
        entry: EntryId,
        fenced: bool,
    },
    Closed {
        metadata: LedgerMetadata,
    },
    CloseFailed {
        error: RecoveryError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryCommand {
    /// Fence the ledger on `bookie` at the recovery's epoch.
    Fence {
        bookie: BookieId,
    },
    /// A recovery read of `entry` from `bookie`, fencing at the recovery's epoch first.
    Read {
        bookie: BookieId,
        entry: EntryId,
    },
    /// A recovery add (the `recovery` flag set, at the recovery's epoch).
    Send {
        bookie: BookieId,
        add: AddEntry,
    },
    /// Seal the ledger with a compare-and-set, then answer [`RecoveryEvent::Closed`].
    CloseLedger {
        last_entry: Option<EntryId>,
        length: u64,
    },
    Finished(Result<LedgerMetadata, RecoveryError>),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Fencing,
    Reading,
    Closing,
    Done,
}

#[derive(Debug, Default)]
struct ReadState {
    answered: BTreeSet<BookieId>,
    absent: usize,
}

#[derive(Debug)]
struct Replicating {
    acked: BTreeSet<BookieId>,
    failed: BTreeSet<BookieId>,
}

/// One recovery of one ledger. See the module docs.
#[derive(Debug)]
pub struct RecoveryCore {
    meta: LedgerMetadata,
    max_entry: usize,
    phase: Phase,
    fenced: BTreeSet<BookieId>,
    fence_failed: BTreeSet<BookieId>,
    max_lac: Option<EntryId>,
    /// The entry being read, and who answered so far.
    reading: EntryId,
    read: ReadState,
    /// Found entries being re-replicated, by entry.
    replicating: BTreeMap<EntryId, Replicating>,
    last_found: Option<EntryId>,
    /// Ledger length through `last_found` (from the entries' envelopes).
    length: u64,
    /// The read phase found the end.
    end_found: bool,
    out: Vec<RecoveryCommand>,
}

impl RecoveryCore {
    /// Starts recovering `meta` (already `InRecovery` at the recovery's epoch); returns the
    /// core and its first commands (the fences).
    pub fn start(meta: LedgerMetadata, max_entry: usize) -> (RecoveryCore, Vec<RecoveryCommand>) {
        let mut c = RecoveryCore {
            meta,
            max_entry,
            phase: Phase::Fencing,
            fenced: BTreeSet::new(),
            fence_failed: BTreeSet::new(),
            max_lac: None,
            reading: EntryId(0),
            read: ReadState::default(),
            replicating: BTreeMap::new(),
            last_found: None,
            length: 0,
            end_found: false,
            out: Vec::new(),
        };
        if c.meta.state != LedgerState::InRecovery {
            let state = c.meta.state;
            c.finish(Err(RecoveryError::Inconsistent(format!(
                "ledger {} is {state:?}, not in recovery",
                c.meta.id
            ))));
        } else {
            for b in c.meta.current_ensemble().to_vec() {
                c.out.push(RecoveryCommand::Fence { bookie: b });
            }
        }
        let out = std::mem::take(&mut c.out);
        (c, out)
    }

    pub fn metadata(&self) -> &LedgerMetadata {
        &self.meta
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn handle(&mut self, ev: RecoveryEvent) -> Vec<RecoveryCommand> {
        if self.phase == Phase::Done {
            return Vec::new();
        }
        match ev {
            RecoveryEvent::FenceOk { bookie, info } => {
                if self.phase == Phase::Fencing && self.in_last_ensemble(&bookie) {
                    self.max_lac = self.max_lac.max(info.lac);
                    self.fenced.insert(bookie);
                    self.check_fencing();
                }
            }
            RecoveryEvent::FenceFailed { bookie, failure } => {
                if failure == ReadFailure::Fenced {
                    self.finish(Err(RecoveryError::Fenced));
                } else if self.phase == Phase::Fencing && self.in_last_ensemble(&bookie) {
                    self.fence_failed.insert(bookie);
                    self.check_fencing();
                }
            }
            RecoveryEvent::ReadOk {
                bookie,
                entry,
                data,
            } => self.read_ok(bookie, entry, data),
            RecoveryEvent::ReadFailed {
                bookie,
                entry,
                failure,
            } => self.read_failed(bookie, entry, failure),
            RecoveryEvent::AddAcked { bookie, entry } => {
                if let Some(r) = self.replicating.get_mut(&entry) {
                    r.acked.insert(bookie);
                }
                self.check_replicated();
            }
            RecoveryEvent::AddFailed {
                bookie,
                entry,
                fenced,
            } => {
                if fenced {
                    self.finish(Err(RecoveryError::Fenced));
                } else if let Some(r) = self.replicating.get_mut(&entry) {
                    r.failed.insert(bookie);
                    let qw = usize::from(self.meta.quorum.write);
                    let qa = usize::from(self.meta.quorum.ack);
                    if qw - r.failed.len() < qa {
                        self.finish(Err(RecoveryError::Unavailable(format!(
                            "entry {entry} could not be re-replicated to {qa} bookies"
                        ))));
                    }
                }
            }
            RecoveryEvent::Closed { metadata } => {
                if self.phase == Phase::Closing {
                    self.meta = metadata.clone();
                    self.finish(Ok(metadata));
                }
            }
            RecoveryEvent::CloseFailed { error } => self.finish(Err(error)),
        }
        std::mem::take(&mut self.out)
    }

    fn in_last_ensemble(&self, b: &BookieId) -> bool {
        self.meta.current_ensemble().contains(b)
    }

    /// Each of the E write sets of the last ensemble, as ensemble positions.
    fn write_sets(&self) -> Vec<Vec<usize>> {
        let e = u64::from(self.meta.quorum.ensemble);
        (0..e)
            .map(|i| write_set_positions(self.meta.quorum, EntryId(i)).collect())
            .collect()
    }

    fn check_fencing(&mut self) {
        let ens = self.meta.current_ensemble().to_vec();
        let need = self.meta.quorum.fence_quorum();
        let mut complete = true;
        for ws in self.write_sets() {
            let fenced = ws
                .iter()
                .filter(|&&i| self.fenced.contains(&ens[i]))
                .count();
            let failed = ws
                .iter()
                .filter(|&&i| self.fence_failed.contains(&ens[i]))
                .count();
            if fenced < need {
                complete = false;
                if ws.len() - failed < need {
                    self.finish(Err(RecoveryError::Unavailable(format!(
                        "only {} of {} bookies of ledger {}'s last ensemble could be fenced",
                        self.fenced.len(),
                        ens.len(),
                        self.meta.id
                    ))));
                    return;
                }
            }
        }
        if complete {
            self.phase = Phase::Reading;
            let first = self.meta.fragments.last().expect("validated").first_entry;
            let after_lac = self.max_lac.map_or(EntryId(0), EntryId::next);
            let start = after_lac.max(first);
            // Everything before `start` was acknowledged. Reading resumes one entry earlier,
            // at the last one known to exist: its envelope carries the ledger's length so far,
            // which the close needs even if nothing after it is found. (It exists on at least
            // Qa replicas, so at most Qw − Qa can deny it: never enough to end the ledger.)
            self.read_entry(EntryId(start.0.saturating_sub(1)));
        }
    }

    fn read_entry(&mut self, entry: EntryId) {
        self.reading = entry;
        self.read = ReadState::default();
        for b in self.meta.write_set(entry) {
            self.out.push(RecoveryCommand::Read { bookie: b, entry });
        }
    }

    fn read_ok(&mut self, bookie: BookieId, entry: EntryId, data: Bytes) {
        if self.phase != Phase::Reading || entry != self.reading {
            return;
        }
        let decoded = Entry::decode(data.clone(), self.max_entry)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                if (d.ledger, d.entry) == (self.meta.id, entry) {
                    Ok(d)
                } else {
                    Err(format!("it is {}/{}", d.ledger, d.entry))
                }
            });
        let d = match decoded {
            Ok(d) => d,
            Err(why) => {
                // A bookie verifies CRCs before answering; bad bytes here mean a bug or
                // corruption in transit. Treat that replica's answer as unknown.
                self.read_failed(
                    bookie,
                    entry,
                    ReadFailure::Unknown(format!("bad entry bytes: {why}")),
                );
                return;
            }
        };
        self.last_found = Some(entry);
        self.length = self.length.max(d.ledger_length);
        let ws = self.meta.write_set(entry);
        self.replicating.insert(
            entry,
            Replicating {
                acked: BTreeSet::new(),
                failed: BTreeSet::new(),
            },
        );
        for b in ws {
            self.out.push(RecoveryCommand::Send {
                bookie: b,
                add: AddEntry {
                    ledger: self.meta.id,
                    entry,
                    epoch: self.meta.epoch,
                    lac: None,
                    recovery: true,
                    data: data.clone(),
                },
            });
        }
        self.read_entry(entry.next());
    }

    fn read_failed(&mut self, bookie: BookieId, entry: EntryId, failure: ReadFailure) {
        if failure == ReadFailure::Fenced {
            self.finish(Err(RecoveryError::Fenced));
            return;
        }
        if self.phase != Phase::Reading || entry != self.reading {
            return;
        }
        if !self.read.answered.insert(bookie) {
            return;
        }
        if failure == ReadFailure::NoSuchEntry {
            self.read.absent += 1;
        }
        let qw = usize::from(self.meta.quorum.write);
        if self.read.absent >= self.meta.quorum.fence_quorum() {
            // Never acknowledged: the ledger ends before it.
            self.end_found = true;
            self.phase = Phase::Closing;
            self.check_replicated();
        } else if self.read.answered.len() == qw {
            self.finish(Err(RecoveryError::Unavailable(format!(
                "cannot tell whether entry {entry} of ledger {} exists: {} of {qw} replicas \
                 said no, the rest could not answer",
                self.meta.id, self.read.absent
            ))));
        }
    }

    /// Drops entries that reached Qa; closes once the end is found and all are durable.
    fn check_replicated(&mut self) {
        let qa = usize::from(self.meta.quorum.ack);
        self.replicating.retain(|_, r| r.acked.len() < qa);
        if self.end_found && self.replicating.is_empty() && self.phase == Phase::Closing {
            self.end_found = false;
            self.out.push(RecoveryCommand::CloseLedger {
                last_entry: self.last_found,
                length: self.length,
            });
        }
    }

    fn finish(&mut self, r: Result<LedgerMetadata, RecoveryError>) {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            self.out.push(RecoveryCommand::Finished(r));
        }
    }
}

#[cfg(test)]
mod tests;
