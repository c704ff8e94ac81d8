//! The ledger writer's protocol core, sans IO: events in ([`WriterEvent`]), commands out
//! ([`WriterCommand`]). A thin async task (`handle.rs`) executes the commands — sends adds to
//! bookies, changes the metadata, answers the appender — and feeds back what happened.
//!
//! Rules it keeps:
//! - Entry ids are dense, assigned in append order; entry `e` goes to its write set.
//! - An entry is acknowledged to the appender once Qa bookies of its write set (under the
//!   current metadata) have it **and** every earlier entry is acknowledged: acknowledgements
//!   leave in entry order and the LAC is the last of them. An ack from a bookie that is no
//!   longer in the entry's write set (a slow bookie returning after it was replaced) does not
//!   count.
//! - A bookie that fails an add (error, timeout, read-only, full) is replaced from the first
//!   unacknowledged entry on (`LAC + 1`) by an ensemble change in the metadata. While the change
//!   is in flight nothing is acknowledged, so every entry of the new fragment is still held and
//!   is resent to the replacement once the change lands; adds to the healthy bookies continue.
//! - A `Fenced` answer is terminal: a recovery of a higher epoch owns the ledger now. Every
//!   entry not yet acknowledged fails as *indeterminate* — the recovery may or may not keep it.
//! - Close waits for every pending entry, then seals the ledger at the LAC in the metadata.

use std::collections::VecDeque;

use bytes::Bytes;
use dlog_api::wire::bookie::AddEntry;
use dlog_api::{BookieId, Entry, EntryId, LedgerId};

use crate::metadata::{LedgerMetadata, LedgerState, write_set_positions};

/// The appender's handle for one append, echoed back in its outcome.
pub type Token = u64;

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A writer or recovery of a higher epoch fenced this ledger. Entries that were pending
    /// may or may not survive in the ledger (indeterminate); no later entry will be accepted.
    #[error("ledger fenced by a higher epoch; pending entries are indeterminate")]
    Fenced,
    /// The ledger is closing or closed; nothing more can be appended.
    #[error("ledger is closed")]
    Closed,
    /// Replicas could not be found or the metadata could not be changed; pending entries are
    /// indeterminate.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The append itself is wrong (e.g. too large).
    #[error("invalid append: {0}")]
    Invalid(String),
}

/// How an add failed on one bookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddFailure {
    /// The bookie has fenced the ledger at a higher epoch.
    Fenced,
    /// Anything after which another bookie should take this one's place.
    Unavailable(String),
    /// The bookie refused the add itself (too large for its limit, malformed): another bookie
    /// would refuse it too, so the writer stops instead of replacing bookies one by one.
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterEvent {
    Append {
        token: Token,
        payload: Bytes,
    },
    AddAcked {
        bookie: BookieId,
        entry: EntryId,
    },
    AddFailed {
        bookie: BookieId,
        entry: EntryId,
        failure: AddFailure,
    },
    /// The ensemble change asked for by [`WriterCommand::ReplaceBookies`] is committed.
    EnsembleChanged {
        metadata: LedgerMetadata,
    },
    /// It could not be: no replacement bookie, or the metadata moved (fenced).
    EnsembleChangeFailed {
        error: WriteError,
    },
    /// Nothing was appended for a while: tell bookies the latest LAC explicitly.
    Idle,
    /// Seal the ledger once everything pending is acknowledged.
    Close,
    /// The close asked for by [`WriterCommand::CloseLedger`] is committed.
    Closed {
        metadata: LedgerMetadata,
    },
    CloseFailed {
        error: WriteError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterCommand {
    Send {
        bookie: BookieId,
        add: AddEntry,
    },
    WriteLac {
        bookie: BookieId,
        lac: EntryId,
    },
    Acked {
        token: Token,
        entry: EntryId,
    },
    Failed {
        token: Token,
        error: WriteError,
    },
    /// Replace `failed` (bookies of the current ensemble) from `first_entry` on: commit
    /// `metadata.with_replacements(first_entry, …)` with a compare-and-set against the version
    /// this writer holds, then answer with [`WriterEvent::EnsembleChanged`].
    ReplaceBookies {
        first_entry: EntryId,
        failed: Vec<BookieId>,
    },
    /// Seal the ledger in the metadata, then answer with [`WriterEvent::Closed`].
    CloseLedger {
        last_entry: Option<EntryId>,
        length: u64,
    },
    /// The writer is done: closed, or failed for good.
    Finished(Result<LedgerMetadata, WriteError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// Close asked; `sent` once the CloseLedger command is out.
    Closing {
        sent: bool,
    },
    Done,
}

/// Ensemble positions as bits (an ensemble has at most 32 bookies).
type Positions = u32;

#[derive(Debug)]
struct Pending {
    entry: EntryId,
    token: Token,
    data: Bytes,
    payload_len: u64,
    /// Positions of the current ensemble the entry was sent to, and that acknowledged it.
    sent: Positions,
    acked: Positions,
}

/// The writer of one open ledger. See the module docs.
///
/// Every pending entry lies in the current (last) fragment: a fragment starts at the first
/// unacknowledged entry. So bookies are tracked by their position in the current ensemble, and
/// an ensemble change clears the replaced positions of every pending entry.
#[derive(Debug)]
pub struct WriterCore {
    meta: LedgerMetadata,
    /// The current ensemble, by position.
    ensemble: Vec<BookieId>,
    max_payload: usize,
    next: u64,
    lac: Option<EntryId>,
    /// Payload bytes acknowledged (through the LAC) and appended (through the last entry).
    length: u64,
    appended_length: u64,
    pending: VecDeque<Pending>,
    /// Positions reported failed and not yet replaced.
    failed: Positions,
    /// An ensemble change is in flight.
    changing: bool,
    /// The LAC each position was last told (piggybacked or explicit).
    told: Vec<Option<EntryId>>,
    state: State,
    /// Why the writer ended, if it failed.
    end: Option<WriteError>,
    out: Vec<WriterCommand>,
}

impl WriterCore {
    /// The writer of the open ledger `meta` (just created, so empty).
    pub fn new(meta: LedgerMetadata, max_payload: usize) -> WriterCore {
        debug_assert_eq!(meta.state, LedgerState::Open);
        let ensemble = meta.current_ensemble().to_vec();
        WriterCore {
            told: vec![None; ensemble.len()],
            ensemble,
            meta,
            max_payload,
            next: 0,
            lac: None,
            length: 0,
            appended_length: 0,
            pending: VecDeque::new(),
            failed: 0,
            changing: false,
            state: State::Open,
            end: None,
            out: Vec::new(),
        }
    }

    pub fn metadata(&self) -> &LedgerMetadata {
        &self.meta
    }

    pub fn ledger(&self) -> LedgerId {
        self.meta.id
    }

    /// The last entry acknowledged to the appender.
    pub fn lac(&self) -> Option<EntryId> {
        self.lac
    }

    /// Entries appended but not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// Applies one event; returns the commands it produced, in order.
    pub fn handle(&mut self, ev: WriterEvent) -> Vec<WriterCommand> {
        match ev {
            WriterEvent::Append { token, payload } => self.append(token, payload),
            WriterEvent::AddAcked { bookie, entry } => self.acked(&bookie, entry),
            WriterEvent::AddFailed {
                bookie,
                entry: _,
                failure,
            } => match failure {
                AddFailure::Fenced => self.fail(WriteError::Fenced),
                AddFailure::Rejected(why) => self.fail(WriteError::Invalid(format!(
                    "bookie {bookie} refused: {why}"
                ))),
                AddFailure::Unavailable(_) => {
                    if self.state != State::Done
                        && let Some(pos) = self.position(&bookie)
                    {
                        self.failed |= 1 << pos;
                        self.maybe_change();
                    }
                }
            },
            WriterEvent::EnsembleChanged { metadata } => self.ensemble_changed(metadata),
            WriterEvent::EnsembleChangeFailed { error } => {
                self.changing = false;
                self.fail(error);
            }
            WriterEvent::Idle => self.idle(),
            WriterEvent::Close => {
                if self.state == State::Open {
                    self.state = State::Closing { sent: false };
                    self.maybe_close();
                }
            }
            WriterEvent::Closed { metadata } => {
                if self.state != State::Done {
                    self.meta = metadata.clone();
                    self.state = State::Done;
                    self.out.push(WriterCommand::Finished(Ok(metadata)));
                }
            }
            WriterEvent::CloseFailed { error } => self.fail(error),
        }
        std::mem::take(&mut self.out)
    }

    fn position(&self, b: &BookieId) -> Option<usize> {
        self.ensemble.iter().position(|x| x == b)
    }

    /// The write set of `entry` as positions.
    fn write_set(&self, entry: EntryId) -> Positions {
        write_set_positions(self.meta.quorum, entry).fold(0, |m, p| m | 1 << p)
    }

    fn append(&mut self, token: Token, payload: Bytes) {
        match self.state {
            State::Open => {}
            State::Closing { .. } | State::Done => {
                let error = self.end.clone().unwrap_or(WriteError::Closed);
                self.out.push(WriterCommand::Failed { token, error });
                return;
            }
        }
        if payload.len() > self.max_payload {
            self.out.push(WriterCommand::Failed {
                token,
                error: WriteError::Invalid(format!(
                    "entry payload of {} bytes exceeds the limit of {}",
                    payload.len(),
                    self.max_payload
                )),
            });
            return;
        }
        let entry = EntryId(self.next);
        self.next += 1;
        let ledger_length = self.appended_length + payload.len() as u64;
        self.appended_length = ledger_length;
        let data = Entry::encode(self.meta.id, entry, ledger_length, &payload);
        self.pending.push_back(Pending {
            entry,
            token,
            data,
            payload_len: payload.len() as u64,
            sent: 0,
            acked: 0,
        });
        // Even during an ensemble change: the healthy bookies keep their positions.
        let i = self.pending.len() - 1;
        self.send_missing(i);
    }

    /// Sends pending entry `i` to every member of its write set that has not had it and is not
    /// waiting to be replaced.
    fn send_missing(&mut self, i: usize) {
        let entry = self.pending[i].entry;
        let todo = self.write_set(entry) & !self.failed & !self.pending[i].sent;
        if todo == 0 {
            return;
        }
        self.pending[i].sent |= todo;
        // In write-set order, so that the first replica of an entry is asked first.
        let order = write_set_positions(self.meta.quorum, entry).filter(|p| todo & (1 << p) != 0);
        for pos in order {
            self.told[pos] = self.lac;
            self.out.push(WriterCommand::Send {
                bookie: self.ensemble[pos].clone(),
                add: AddEntry {
                    ledger: self.meta.id,
                    entry,
                    epoch: self.meta.epoch,
                    lac: self.lac,
                    recovery: false,
                    data: self.pending[i].data.clone(),
                },
            });
        }
    }

    fn acked(&mut self, bookie: &BookieId, entry: EntryId) {
        if self.state == State::Done {
            return;
        }
        // A bookie no longer in the ensemble (replaced) does not count.
        let Some(pos) = self.position(bookie) else {
            return;
        };
        let Some(front) = self.pending.front() else {
            return;
        };
        if entry < front.entry {
            return;
        }
        let i = (entry.0 - front.entry.0) as usize;
        let bit = 1 << pos;
        if self.write_set(entry) & bit == 0 {
            return;
        }
        let Some(p) = self.pending.get_mut(i) else {
            return;
        };
        p.acked |= bit;
        if i == 0 {
            self.advance();
        }
    }

    /// Acknowledges, in order, every leading entry that has its ack quorum.
    fn advance(&mut self) {
        if self.changing {
            return;
        }
        let qa = self.meta.quorum.ack as u32;
        while let Some(p) = self.pending.front() {
            if (p.acked & self.write_set(p.entry)).count_ones() < qa {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            self.lac = Some(p.entry);
            self.length += p.payload_len;
            self.out.push(WriterCommand::Acked {
                token: p.token,
                entry: p.entry,
            });
        }
        self.maybe_close();
    }

    fn first_unacked(&self) -> EntryId {
        self.lac.map_or(EntryId(0), EntryId::next)
    }

    fn maybe_change(&mut self) {
        // Once the close is on its way the ledger is sealed: nothing left to re-replicate.
        let sealing = matches!(self.state, State::Done | State::Closing { sent: true });
        if self.changing || self.failed == 0 || sealing {
            return;
        }
        self.changing = true;
        let failed = bits(self.failed)
            .map(|p| self.ensemble[p].clone())
            .collect();
        self.out.push(WriterCommand::ReplaceBookies {
            first_entry: self.first_unacked(),
            failed,
        });
    }

    fn ensemble_changed(&mut self, metadata: LedgerMetadata) {
        if self.state == State::Done {
            return;
        }
        self.changing = false;
        let next = metadata.current_ensemble().to_vec();
        let mut replaced: Positions = 0;
        for (pos, b) in next.iter().enumerate() {
            if self.ensemble.get(pos) != Some(b) {
                replaced |= 1 << pos;
                self.told[pos] = None;
            }
        }
        self.meta = metadata;
        self.ensemble = next;
        self.failed &= !replaced;
        // What the replaced bookies had or acknowledged no longer counts in the new fragment.
        for p in self.pending.iter_mut() {
            p.sent &= !replaced;
            p.acked &= !replaced;
        }
        for i in 0..self.pending.len() {
            self.send_missing(i);
        }
        self.advance();
        self.maybe_change();
    }

    fn idle(&mut self) {
        if self.state == State::Done {
            return;
        }
        let Some(lac) = self.lac else { return };
        for pos in 0..self.ensemble.len() {
            if self.failed & (1 << pos) != 0 || self.told[pos] >= Some(lac) {
                continue;
            }
            self.told[pos] = Some(lac);
            self.out.push(WriterCommand::WriteLac {
                bookie: self.ensemble[pos].clone(),
                lac,
            });
        }
    }

    fn maybe_close(&mut self) {
        if self.state == (State::Closing { sent: false })
            && self.pending.is_empty()
            && !self.changing
        {
            self.state = State::Closing { sent: true };
            self.out.push(WriterCommand::CloseLedger {
                last_entry: self.lac,
                length: self.length,
            });
        }
    }

    fn fail(&mut self, error: WriteError) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.end = Some(error.clone());
        for p in self.pending.drain(..) {
            self.out.push(WriterCommand::Failed {
                token: p.token,
                error: error.clone(),
            });
        }
        self.out.push(WriterCommand::Finished(Err(error)));
    }
}

/// The set bits of `m`, lowest first.
fn bits(m: Positions) -> impl Iterator<Item = usize> {
    (0..Positions::BITS as usize).filter(move |p| m & (1 << p) != 0)
}

#[cfg(test)]
mod tests;
