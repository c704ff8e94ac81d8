//! The pipelined roll: the next segment takes appends while the full one drains and seals.
//!
//! When the open segment is full the writer does not stop. Entries go at once to the next
//! segment's ledger (created ahead of time), while the full segment's last entries complete.
//! Once they all have, one commit closes the full segment's ledger, seals the segment at its
//! end and opens the next segment on the new ledger.
//!
//! The next segment's appends are answered only after that commit: until then the stream's
//! metadata does not name their ledger, and a writer that crashed before the commit would
//! leave them outside the stream (the next writer recovers and seals the full segment, and
//! starts after it). So nothing is acknowledged that a crash could lose.
//!
//! If the full segment's ledger fails while it drains, the roll is abandoned: the next
//! segment's entries fail as "not appended" (their offsets assumed an end that recovery may
//! not confirm), its ledger is deleted, and the failure is handled as outside a roll.
//!
//! What the seal promises the next writer about idempotent producers is the table as of the
//! roll point: batches at or past it are in the next segment, which a new writer scans itself.

use std::collections::VecDeque;

use dlog_api::LedgerId;
use dlog_api::stream::{StreamName, StreamPolicy};
use dlog_ledger::writer_task::AppendAck;
use dlog_ledger::{LedgerWriter, WriteError};
use tokio::task::{JoinError, JoinHandle};
use tracing::{info, warn};

use super::{Segment, Task};
use crate::error::LogError;
use crate::streams::Log;
use crate::writer::acquire::{Next, Producers, Switch, commit_switch, discard, recover_ledger};

pub(in crate::writer) struct Rolling {
    /// The segment being sealed, until its commit starts.
    old: Option<Segment>,
    /// Entries of the old segment still in flight: the front of `Task::inflight`.
    old_left: usize,
    /// Acknowledgements of the next segment's entries, awaited once the seal has committed.
    held: VecDeque<AppendAck>,
    /// The producers' batches below the roll point.
    producers: Producers,
    commit: Option<JoinHandle<Result<Committed, LogError>>>,
    /// When the roll started, and when the full segment had drained (for the log).
    started: std::time::Instant,
    drained: Option<std::time::Instant>,
}

/// The seal of the full segment and the opening of the next, committed.
pub(in crate::writer) struct Committed {
    seq: u64,
    created_ms: i64,
    policy: StreamPolicy,
}

impl Rolling {
    /// The old segment while its entries are still coming in.
    pub(super) fn draining(&mut self) -> Option<&mut Segment> {
        if self.old_left == 0 {
            return None;
        }
        self.old_left -= 1;
        self.old.as_mut()
    }

    /// Keeps the acknowledgement of an entry of the next segment until the seal commits.
    pub(super) fn hold(&mut self, ack: AppendAck) {
        self.held.push_back(ack);
    }

    /// Lets a started commit finish on its own.
    pub(super) fn detach(self) {
        if self.commit.is_none() {
            warn!("abandoning a roll before its seal committed; the next ledger is unused");
        }
    }
}

/// Whether a roll's commit is under way (the writer's loop then awaits it).
pub(super) fn committing(r: &Option<Rolling>) -> bool {
    r.as_ref().is_some_and(|r| r.commit.is_some())
}

/// The outcome of the roll's commit.
pub(super) async fn committed(
    r: &mut Option<Rolling>,
) -> Result<Result<Committed, LogError>, JoinError> {
    match r.as_mut().and_then(|r| r.commit.as_mut()) {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

impl Task {
    /// Rolls to `spare`: entries from now on go to it; the full segment seals once its
    /// entries in flight are in.
    pub(super) fn start_roll(&mut self, spare: LedgerWriter) {
        let start = self
            .inflight
            .back()
            .map_or(*self.acked.borrow(), |f| f.end_offset);
        let next = Segment::new(spare, start, self.log.now_ms());
        let old = std::mem::replace(&mut self.seg, next);
        self.rolling = Some(Rolling {
            old: Some(old),
            old_left: self.inflight.len(),
            held: VecDeque::new(),
            producers: self.dedup.snapshot_below(start),
            commit: None,
            started: std::time::Instant::now(),
            drained: None,
        });
        self.maybe_commit_roll();
    }

    /// Once the full segment's entries are all in, starts the commit that seals it and opens
    /// the next segment.
    pub(super) fn maybe_commit_roll(&mut self) {
        let Some(r) = self.rolling.as_mut() else {
            return;
        };
        if r.old_left > 0 || r.commit.is_some() {
            return;
        }
        let old = r
            .old
            .take()
            .expect("the full segment until its commit starts");
        r.drained = Some(std::time::Instant::now());
        let start = self.seg.first_offset;
        let switch = Switch {
            sealed: Some(old.sealed_end(start)),
            start,
            next: Next::Open,
            close: None,
            producers: std::mem::take(&mut r.producers),
        };
        let roll = Roll {
            log: self.log.clone(),
            name: self.name.clone(),
            epoch: self.epoch,
            old_seq: old.seq,
            next: self.seg.ledger.id(),
        };
        r.commit = Some(tokio::spawn(roll.commit(old.ledger, switch)));
    }

    /// The roll's commit is done: the next segment is the stream's open segment, and its
    /// entries can be answered as they complete.
    pub(super) fn on_roll_committed(
        &mut self,
        r: Result<Result<Committed, LogError>, JoinError>,
    ) -> Result<(), LogError> {
        let rolling = self.rolling.take().expect("a roll was committing");
        let c = r.map_err(|e| LogError::Internal(format!("segment seal task: {e}")))??;
        let drained = rolling.drained.unwrap_or(rolling.started);
        info!(
            stream = %self.name,
            next = c.seq,
            start = self.seg.first_offset,
            drain_ms = (drained - rolling.started).as_secs_f64() * 1e3,
            commit_ms = drained.elapsed().as_secs_f64() * 1e3,
            held = rolling.held.len(),
            "segment sealed; the next one had taken appends meanwhile"
        );
        self.seg.seq = c.seq;
        self.seg.created_ms = c.created_ms;
        self.policy = c.policy;
        self.acks.extend(rolling.held);
        self.prepare_spare();
        Ok(())
    }

    /// Completes a roll in progress: waits for the full segment's entries and for its seal.
    pub(super) async fn finish_roll(&mut self) -> Result<(), LogError> {
        loop {
            let Some(r) = self.rolling.as_mut() else {
                return Ok(());
            };
            if let Some(h) = r.commit.as_mut() {
                let res = h.await;
                return self.on_roll_committed(res);
            }
            let Some(a) = futures::StreamExt::next(&mut self.acks).await else {
                return Err(LogError::Internal(format!(
                    "{}: a roll waits for entries that have no acknowledgement",
                    self.name
                )));
            };
            match a.unwrap_or(Err(WriteError::Closed)) {
                Ok(_) => self.complete_front(),
                Err(e) => return self.on_ledger_failure(e).await,
            }
        }
    }

    /// The full segment's ledger failed while it drained: undo the roll, so that the failure
    /// is handled on the full segment alone.
    pub(super) fn abort_roll(&mut self) {
        let Some(r) = self.rolling.take() else {
            return;
        };
        let old = r
            .old
            .expect("a drain fails only before the seal's commit starts");
        let next = std::mem::replace(&mut self.seg, old);
        let mut failed = Vec::new();
        for f in self.inflight.split_off(r.old_left) {
            self.pending_bytes -= f.bytes;
            failed.extend(f.replies);
        }
        drop(r.held);
        self.not_appended(failed);
        let log = self.log.clone();
        tokio::spawn(async move { discard(&log, next.ledger).await });
    }
}

/// What the roll's commit needs, owned, so that it runs beside the writer's loop.
struct Roll {
    log: Log,
    name: StreamName,
    epoch: u64,
    old_seq: u64,
    next: LedgerId,
}

impl Roll {
    /// Closes the full segment's ledger and commits its seal with the next segment.
    async fn commit(self, old: LedgerWriter, mut switch: Switch) -> Result<Committed, LogError> {
        switch.close = match old.close_op().await {
            Ok(op) => Some(op),
            Err(WriteError::Fenced) => {
                return Err(LogError::Fenced(format!(
                    "{}: the segment's ledger was fenced by a newer writer",
                    self.name
                )));
            }
            Err(e) => {
                // Every entry was acknowledged, so a recovery closes the ledger where the seal
                // says it ends.
                let id = old.id();
                drop(old);
                warn!(stream = %self.name, ledger = %id, error = %e, "close the full segment's ledger; recovering it");
                recover_ledger(&self.log, id).await?;
                None
            }
        };
        let mut state = self.log.load(&self.name).await?;
        if state.record.epoch != self.epoch
            || state.open_segment().map(|(s, _)| s.seq) != Some(self.old_seq)
        {
            return Err(LogError::Fenced(format!(
                "{} was taken over at epoch {}",
                self.name, state.record.epoch
            )));
        }
        let (seq, created_ms) =
            commit_switch(&self.log, &mut state, self.epoch, &switch, Some(self.next)).await?;
        Ok(Committed {
            seq,
            created_ms,
            policy: state.record.policy,
        })
    }
}
