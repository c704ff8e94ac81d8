//! When the segment's ledger fails under the writer, or the writer must stop: recovering
//! exactly what made it, answering every pending append, and refusing what is still queued.

use dlog_ledger::WriteError;
use futures::stream::FuturesOrdered;
use tracing::warn;

use super::{Reply, Task};
use crate::error::LogError;
use crate::writer::acquire::{Next, SealedEnd, discard, recover_ledger};
use crate::writer::{Appended, Msg};

impl Task {
    /// The ledger failed under the writer: a newer writer fenced it (terminal), or its
    /// bookies are gone. In the second case, recover it, keep what made it, and go on in a
    /// new segment.
    pub(super) async fn on_ledger_failure(&mut self, e: WriteError) -> Result<(), LogError> {
        self.abort_roll();
        let sealed = self.recover_here(e).await?;
        self.switch(sealed, Next::Open).await.map(|_| ())
    }

    /// Recovers the segment's ledger to learn exactly which entries are in it: their appends
    /// succeed; the rest fail as "not appended" (safe to retry) and are forgotten by the
    /// duplicate table.
    pub(super) async fn recover_here(&mut self, cause: WriteError) -> Result<SealedEnd, LogError> {
        if cause == WriteError::Fenced {
            return Err(LogError::Fenced(format!(
                "{}: the segment's ledger was fenced by a newer writer",
                self.name
            )));
        }
        let id = self.seg.ledger.id();
        warn!(stream = %self.name, ledger = %id, error = %cause, "segment ledger failed; recovering it");
        self.acks = FuturesOrdered::new();
        let meta = recover_ledger(&self.log, id).await?.ok_or_else(|| {
            LogError::Internal(format!(
                "the ledger {id} of {}'s open segment is gone",
                self.name
            ))
        })?;
        let last = meta.last_entry.map(|e| e.0);
        let mut failed = Vec::new();
        while let Some(f) = self.inflight.pop_front() {
            if last.is_some_and(|l| f.entry <= l) {
                self.complete(f);
            } else {
                self.pending_bytes -= f.bytes;
                failed.extend(f.replies);
            }
        }
        for r in self.ready.drain(..) {
            failed.extend(r.replies);
        }
        failed.extend(std::mem::take(&mut self.packing).replies);
        let end = *self.acked.borrow();
        failed.extend(
            std::mem::take(&mut self.dup_waiters)
                .into_iter()
                .filter(|(_, a)| a.first_offset + u64::from(a.count) > end),
        );
        self.not_appended(failed);
        self.dedup.forget_from(end);
        self.next_offset = end;
        if let Some(ts) = self.seg.max_ts {
            self.max_ts = ts;
        }
        self.max_txid = self.seg.max_txid.or(self.max_txid);
        Ok(SealedEnd {
            end_offset: end,
            bytes: meta.length,
            max_ts: self.seg.max_ts,
            max_txid: self.seg.max_txid,
            first_ts: self.seg.first_ts,
            min_txid: self.seg.min_txid,
        })
    }

    /// Fails appends that are definitely not in the stream (safe to retry).
    pub(super) fn not_appended(&self, failed: Vec<(Reply, Appended)>) {
        let why = format!(
            "not appended: the bookies of {}'s segment failed; retry",
            self.name
        );
        for (reply, _) in failed {
            let _ = reply.send(Err(LogError::Unavailable(why.clone())));
        }
    }

    pub(super) fn fail_all(&mut self, e: LogError) {
        let mut replies: Vec<Reply> = Vec::new();
        replies.extend(
            self.inflight
                .drain(..)
                .flat_map(|f| f.replies)
                .map(|(r, _)| r),
        );
        replies.extend(self.ready.drain(..).flat_map(|r| r.replies).map(|(r, _)| r));
        replies.extend(
            std::mem::take(&mut self.packing)
                .replies
                .into_iter()
                .map(|(r, _)| r),
        );
        replies.extend(self.dup_waiters.drain(..).map(|(r, _)| r));
        for r in replies {
            let _ = r.send(Err(e.clone()));
        }
        if let Some(r) = self.rolling.take() {
            // A seal being committed goes on by itself: the next writer recovers whichever
            // segment it leaves open. Until it commits, the next segment's ledger is named
            // nowhere and holds nothing acknowledged.
            r.detach();
        }
        if let Some(h) = self.spare.take() {
            let log = self.log.clone();
            tokio::spawn(async move {
                if let Ok(Ok(l)) = h.await {
                    discard(&log, l).await;
                }
            });
        }
        warn!(stream = %self.name, epoch = self.epoch, error = %e, "stream writer stopped");
    }
}

pub(super) fn refuse(m: Msg, e: LogError) {
    match m {
        Msg::Append(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Msg::Roll(reply) => {
            let _ = reply.send(Err(e));
        }
        Msg::Close { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}
