//! The task that owns a stream while this writer holds it: packing appends into entries,
//! answering them in order, rolling segments, surviving a failed ledger.

use std::collections::VecDeque;
use std::time::Duration;

use dlog_api::stream::{StreamName, StreamPolicy};
use dlog_ledger::writer_task::AppendAck;
use dlog_ledger::{LedgerWriter, WriteError};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use self::failure::refuse;
use self::roll::Rolling;
use super::acquire::{Next, SealedEnd, Switch, discard, spare_ledger, switch_segment};
use super::{AppendBatch, Appended, Msg, Reply, WriterOptions};
use crate::dedup::{DedupTable, Verdict};
use crate::entry::{EntrySet, MAX_SETS, StreamEntry};
use crate::error::LogError;
use crate::meta::ProducerBatch;
use crate::streams::Log;

/// The open segment.
pub(super) struct Segment {
    pub seq: u64,
    pub ledger: LedgerWriter,
    pub first_offset: u64,
    /// Entry bytes acknowledged in this segment.
    pub bytes: u64,
    pub created_ms: i64,
    /// Entries appended to the ledger so far (the next entry's id).
    pub entries: u64,
    /// Entry bytes sent to the ledger (acknowledged or not).
    pub sent: u64,
    /// Of the last acknowledged entry.
    pub max_ts: Option<i64>,
    pub max_txid: Option<u64>,
    /// The first record's timestamp and the lowest txid among the acknowledged entries.
    pub first_ts: Option<i64>,
    pub min_txid: Option<u64>,
}

impl Segment {
    /// A new, empty segment on `ledger` starting at `first_offset` (numbered once committed).
    pub fn new(ledger: LedgerWriter, first_offset: u64, created_ms: i64) -> Segment {
        Segment {
            seq: 0,
            ledger,
            first_offset,
            bytes: 0,
            created_ms,
            entries: 0,
            sent: 0,
            max_ts: None,
            max_txid: None,
            first_ts: None,
            min_txid: None,
        }
    }

    /// Takes in an acknowledged entry.
    fn absorb(&mut self, f: &InFlight) {
        self.bytes += f.bytes as u64;
        self.max_ts = Some(f.max_ts);
        self.max_txid = f.max_txid;
        self.first_ts = self.first_ts.or(Some(f.first_ts));
        self.min_txid = self.min_txid.or(f.min_txid);
    }

    /// Where the segment ends once its acknowledged entries are all it has.
    fn sealed_end(&self, end_offset: u64) -> SealedEnd {
        SealedEnd {
            end_offset,
            bytes: self.bytes,
            max_ts: self.max_ts,
            max_txid: self.max_txid,
            first_ts: self.first_ts,
            min_txid: self.min_txid,
        }
    }
}

mod failure;
mod roll;

/// An entry on its way to the bookies.
struct InFlight {
    entry: u64,
    end_offset: u64,
    first_ts: i64,
    min_txid: Option<u64>,
    bytes: usize,
    replies: Vec<(Reply, Appended)>,
    max_ts: i64,
    max_txid: Option<u64>,
}

/// A packed entry not yet handed to the ledger.
struct Ready {
    entry: StreamEntry,
    replies: Vec<(Reply, Appended)>,
    first_ts: i64,
    min_txid: Option<u64>,
}

/// An entry being packed.
#[derive(Default)]
struct Packing {
    sets: Vec<EntrySet>,
    first_ts: Option<i64>,
    min_txid: Option<u64>,
    replies: Vec<(Reply, Appended)>,
    count: u32,
    bytes: usize,
}

pub(super) struct Task {
    log: Log,
    name: StreamName,
    opts: WriterOptions,
    pub(super) epoch: u64,
    policy: StreamPolicy,
    seg: Segment,
    /// The offset the next packed record gets.
    next_offset: u64,
    /// Highest timestamp and txid packed so far (they go into each entry's header).
    max_ts: i64,
    max_txid: Option<u64>,
    dedup: DedupTable,
    /// Packed entries not yet handed to the ledger.
    ready: VecDeque<Ready>,
    inflight: VecDeque<InFlight>,
    acks: FuturesOrdered<AppendAck>,
    /// Retries of batches still in flight: answered when the original is.
    dup_waiters: Vec<(Reply, Appended)>,
    pending_bytes: usize,
    pub(super) acked: watch::Sender<u64>,
    packing: Packing,
    /// The next segment's ledger, created while this one fills, so that a roll costs one
    /// metadata commit rather than a ledger creation too.
    spare: Option<tokio::task::JoinHandle<Result<LedgerWriter, LogError>>>,
    /// A roll in progress: the full segment drains and seals while appends go to the next.
    rolling: Option<Rolling>,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        log: Log,
        name: StreamName,
        opts: WriterOptions,
        epoch: u64,
        policy: StreamPolicy,
        seg: Segment,
        end: u64,
        max_ts: Option<i64>,
        max_txid: Option<u64>,
        dedup: DedupTable,
    ) -> Task {
        Task {
            log,
            name,
            opts,
            epoch,
            policy,
            seg,
            next_offset: end,
            max_ts: max_ts.unwrap_or(i64::MIN),
            max_txid,
            dedup,
            ready: VecDeque::new(),
            inflight: VecDeque::new(),
            acks: FuturesOrdered::new(),
            dup_waiters: Vec::new(),
            pending_bytes: 0,
            acked: watch::Sender::new(end),
            packing: Packing::default(),
            spare: None,
            rolling: None,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::with_capacity(256);
        self.prepare_spare();
        loop {
            let room = self.pending_bytes < self.opts.max_pending_bytes;
            let age_due = self.age_deadline();
            tokio::select! {
                biased;
                r = roll::committed(&mut self.rolling), if roll::committing(&self.rolling) => {
                    if let Err(e) = self.on_roll_committed(r) {
                        self.stop(&mut rx, e);
                        return;
                    }
                }
                Some(r) = self.acks.next(), if !self.acks.is_empty() => {
                    let r = match r.unwrap_or(Err(WriteError::Closed)) {
                        Ok(_) => {
                            self.complete_front();
                            self.maybe_roll().await
                        }
                        Err(e) => self.on_ledger_failure(e).await,
                    };
                    if let Err(e) = r {
                        self.stop(&mut rx, e);
                        return;
                    }
                }
                n = rx.recv_many(&mut buf, 256), if room => {
                    if n == 0 {
                        // Every handle is gone: seal what was appended.
                        if let Err(e) = self.seal(Next::None).await {
                            self.fail_all(e);
                        }
                        return;
                    }
                    for msg in buf.drain(..) {
                        match msg {
                            Msg::Append(b, reply) => self.on_append(b, reply),
                            Msg::Roll(reply) => {
                                let empty = self.seg.entries == 0
                                    && self.ready.is_empty()
                                    && self.packing.sets.is_empty()
                                    && self.rolling.is_none();
                                if empty {
                                    let _ = reply.send(Ok(*self.acked.borrow()));
                                    continue;
                                }
                                match self.seal(Next::Open).await {
                                    Ok(end) => {
                                        let _ = reply.send(Ok(end));
                                    }
                                    Err(e) => {
                                        let _ = reply.send(Err(e.clone()));
                                        self.stop(&mut rx, e);
                                        return;
                                    }
                                }
                            }
                            Msg::Close { end_stream, reply } => {
                                let next = if end_stream { Next::EndStream } else { Next::None };
                                let r = self.seal(next).await;
                                if let Err(e) = &r {
                                    self.fail_all(e.clone());
                                }
                                let _ = reply.send(r);
                                rx.close();
                                while let Ok(m) = rx.try_recv() {
                                    refuse(m, LogError::Unavailable(format!(
                                        "the writer of {} has closed", self.name
                                    )));
                                }
                                return;
                            }
                        }
                    }
                    if let Err(e) = self.flush().await {
                        self.stop(&mut rx, e);
                        return;
                    }
                }
                _ = tokio::time::sleep(age_due) => {
                    if let Err(e) = self.maybe_roll().await {
                        self.stop(&mut rx, e);
                        return;
                    }
                }
            }
        }
    }

    /// Stops the writer on a terminal error: fails everything pending and everything still
    /// queued in the mailbox with it.
    fn stop(&mut self, rx: &mut mpsc::Receiver<Msg>, e: LogError) {
        self.fail_all(e.clone());
        rx.close();
        while let Ok(m) = rx.try_recv() {
            refuse(m, e.clone());
        }
    }

    pub(super) fn policy(&self) -> &StreamPolicy {
        &self.policy
    }

    /// How long until the open segment is old enough to roll.
    fn age_deadline(&self) -> Duration {
        let due = self.seg.created_ms + self.policy.segment_age_ms as i64;
        Duration::from_millis(due.saturating_sub(self.log.now_ms()).clamp(1, 60_000) as u64)
    }

    fn on_append(&mut self, b: AppendBatch, reply: Reply) {
        if b.producer_id != 0 {
            match self.dedup.check(b.producer_id, b.sequence, b.count) {
                Ok(Verdict::New) => {}
                Ok(Verdict::Duplicate(p)) => {
                    let a = Appended {
                        first_offset: p.first_offset,
                        count: p.count,
                        duplicate: true,
                    };
                    if p.first_offset + u64::from(p.count) <= *self.acked.borrow() {
                        let _ = reply.send(Ok(a));
                    } else {
                        self.dup_waiters.push((reply, a));
                    }
                    return;
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
        }
        if let (Some(low), Some(high)) = (b.min_txid, self.max_txid)
            && low < high
        {
            let _ = reply.send(Err(LogError::BadRequest(format!(
                "txid {low} is below the stream's last txid {high}; txids never decrease"
            ))));
            return;
        }
        let first_offset = self.next_offset + u64::from(self.packing.count);
        if b.producer_id != 0 {
            self.dedup.record(
                b.producer_id,
                ProducerBatch {
                    first_seq: b.sequence,
                    count: b.count,
                    first_offset,
                },
            );
        }
        // An entry stays within max_entry_bytes unless one batch alone is larger.
        if self.packing.bytes > 0
            && self.packing.bytes + b.records.len() > self.opts.max_entry_bytes
        {
            self.seal_packing();
        }
        self.max_ts = self.max_ts.max(b.max_timestamp_ms);
        self.max_txid = b.max_txid.or(self.max_txid);
        let p = &mut self.packing;
        p.count += b.count;
        p.bytes += b.records.len();
        p.replies.push((
            reply,
            Appended {
                first_offset,
                count: b.count,
                duplicate: false,
            },
        ));
        p.first_ts = p.first_ts.or(Some(b.first_timestamp_ms));
        p.min_txid = p.min_txid.or(b.min_txid);
        p.sets.push(EntrySet {
            producer_id: b.producer_id,
            first_seq: b.sequence,
            count: b.count,
            records: b.records,
        });
        // Pack into one entry while it stays under the size limit (a lone big batch is one
        // entry of its own).
        if p.bytes >= self.opts.max_entry_bytes || p.sets.len() >= MAX_SETS {
            self.seal_packing();
        }
    }

    /// Turns the packed batches into an entry waiting to be sent.
    fn seal_packing(&mut self) {
        let p = std::mem::take(&mut self.packing);
        if p.sets.is_empty() {
            return;
        }
        let entry = StreamEntry {
            first_offset: self.next_offset,
            count: p.count,
            max_timestamp_ms: self.max_ts,
            max_txid: self.max_txid,
            sets: p.sets,
        };
        self.next_offset = entry.end_offset();
        self.ready.push_back(Ready {
            entry,
            replies: p.replies,
            first_ts: p.first_ts.unwrap_or(i64::MIN),
            min_txid: p.min_txid,
        });
    }

    async fn flush(&mut self) -> Result<(), LogError> {
        self.seal_packing();
        while let Some(ready) = self.ready.pop_front() {
            if self.seg.sent >= self.policy.segment_bytes && self.seg.entries > 0 {
                // The segment is full with what is in flight: roll before sending more.
                self.ready.push_front(ready);
                if self.rolling.is_some() {
                    // The next segment filled up before the last roll committed.
                    self.finish_roll().await?;
                } else if let Some(spare) = self.take_spare().await {
                    self.start_roll(spare);
                } else {
                    self.finish_segment(Next::Open).await?;
                }
                continue;
            }
            let Ready {
                entry,
                replies,
                first_ts,
                min_txid,
            } = ready;
            let bytes = entry.encode();
            let len = bytes.len();
            self.seg.sent += len as u64;
            let ack = self.seg.ledger.append(bytes).await;
            match &mut self.rolling {
                Some(r) => r.hold(ack),
                None => self.acks.push_back(ack),
            }
            self.inflight.push_back(InFlight {
                entry: self.seg.entries,
                end_offset: entry.end_offset(),
                first_ts,
                min_txid,
                bytes: len,
                replies,
                max_ts: entry.max_timestamp_ms,
                max_txid: entry.max_txid,
            });
            self.seg.entries += 1;
            self.pending_bytes += len;
        }
        Ok(())
    }
}

impl Task {
    /// The front entry is durable: answer its appends.
    fn complete_front(&mut self) {
        let f = self
            .inflight
            .pop_front()
            .expect("one acknowledgement per entry in flight");
        self.complete(f);
        self.maybe_commit_roll();
    }

    fn complete(&mut self, f: InFlight) {
        self.pending_bytes -= f.bytes;
        let seg = match self.rolling.as_mut().and_then(Rolling::draining) {
            Some(old) => old,
            None => &mut self.seg,
        };
        seg.absorb(&f);
        self.acked.send_replace(f.end_offset);
        for (reply, a) in f.replies {
            let _ = reply.send(Ok(a));
        }
        let end = f.end_offset;
        let mut i = 0;
        while i < self.dup_waiters.len() {
            let a = self.dup_waiters[i].1;
            if a.first_offset + u64::from(a.count) <= end {
                let (reply, a) = self.dup_waiters.swap_remove(i);
                let _ = reply.send(Ok(a));
            } else {
                i += 1;
            }
        }
    }

    async fn maybe_roll(&mut self) -> Result<(), LogError> {
        if self.rolling.is_some() {
            return Ok(());
        }
        let age = self.log.now_ms() - self.seg.created_ms;
        let full = self.seg.bytes >= self.policy.segment_bytes;
        let old =
            age >= self.policy.segment_age_ms as i64 && self.next_offset > self.seg.first_offset;
        if !(full || old) {
            return Ok(());
        }
        self.seal(Next::Open).await.map(|_| ())
    }

    /// Waits for every entry in flight, closes the segment's ledger, and seals the segment;
    /// then opens the next one or ends as `next` says. Returns the stream's end.
    async fn seal(&mut self, next: Next) -> Result<u64, LogError> {
        self.flush().await?;
        self.finish_segment(next).await
    }

    /// Waits for the entries in flight, closes the ledger and switches segments (entries
    /// packed but not sent yet go to the next segment).
    async fn finish_segment(&mut self, next: Next) -> Result<u64, LogError> {
        self.finish_roll().await?;
        while let Some(r) = self.acks.next().await {
            match r.unwrap_or(Err(WriteError::Closed)) {
                Ok(_) => self.complete_front(),
                Err(e) => {
                    let sealed = self.recover_here(e).await?;
                    return self.switch(sealed, next).await;
                }
            }
        }
        // The ledger's close is written in the same commit as the segment's seal: one synced
        // write on the roll's path, and never a sealed segment over an open ledger.
        let (sealed, close) = match self.seg.ledger.close_op().await {
            Ok(op) => (self.seg.sealed_end(*self.acked.borrow()), Some(op)),
            Err(e) => (self.recover_here(e).await?, None),
        };
        self.switch_closing(sealed, next, close).await
    }

    /// Starts creating the next segment's ledger in the background.
    fn prepare_spare(&mut self) {
        if self.spare.is_none() {
            let (log, policy, epoch) = (self.log.clone(), self.policy.clone(), self.epoch);
            self.spare = Some(tokio::spawn(async move {
                spare_ledger(&log, &policy, epoch).await
            }));
        }
    }

    /// The spare ledger, if it was created (otherwise the switch creates one).
    async fn take_spare(&mut self) -> Option<LedgerWriter> {
        match self.spare.take()?.await {
            Ok(Ok(l)) => Some(l),
            Ok(Err(e)) => {
                warn!(stream = %self.name, error = %e, "create the next segment's ledger");
                None
            }
            Err(_) => None,
        }
    }

    async fn switch(&mut self, sealed: SealedEnd, next: Next) -> Result<u64, LogError> {
        self.switch_closing(sealed, next, None).await
    }

    /// Seals the segment (with `close`, the ledger's closing write, in the same commit) and
    /// switches as `next` says.
    async fn switch_closing(
        &mut self,
        sealed: SealedEnd,
        next: Next,
        close: Option<dlog_metadata::Op>,
    ) -> Result<u64, LogError> {
        let spare = self.take_spare().await;
        let mut state = match self.log.load(&self.name).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(l) = spare {
                    discard(&self.log, l).await;
                }
                return Err(e);
            }
        };
        if state.record.epoch != self.epoch
            || state.open_segment().map(|(s, _)| s.seq) != Some(self.seg.seq)
        {
            if let Some(l) = spare {
                discard(&self.log, l).await;
            }
            return Err(LogError::Fenced(format!(
                "{} was taken over at epoch {}",
                self.name, state.record.epoch
            )));
        }
        let end = sealed.end_offset;
        let switch = Switch {
            sealed: Some(sealed),
            start: end,
            next,
            close,
            producers: self.dedup.snapshot_below(end),
        };
        let seg = switch_segment(&self.log, &mut state, self.epoch, switch, spare).await?;
        self.policy = state.record.policy.clone();
        info!(
            stream = %self.name,
            sealed = self.seg.seq,
            end,
            next = ?seg.as_ref().map(|s| s.seq),
            "segment sealed"
        );
        if let Some(seg) = seg {
            self.seg = seg;
            self.prepare_spare();
        }
        Ok(end)
    }
}
