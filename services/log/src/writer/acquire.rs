//! Taking a stream over, and switching its segments (seal the open one, open the next).

use std::time::Duration;

use dlog_api::stream::{SegmentState, StreamName};
use dlog_api::{EntryId, Epoch, LedgerId};
use dlog_ledger::{LedgerError, LedgerWriter};
use dlog_metadata::{Expect, MetadataError, Op};
use tracing::{info, warn};

use super::WriterOptions;
use super::task::{Segment, Task};
use crate::dedup::DedupTable;
use crate::entry::StreamEntry;
use crate::error::LogError;
use crate::meta::{ProducerBatch, SegmentRecord, StreamState, segment_key, stream_key};
use crate::streams::{Log, quorum};

/// Where a sealed segment ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct SealedEnd {
    pub end_offset: u64,
    pub bytes: u64,
    pub max_ts: Option<i64>,
    pub max_txid: Option<u64>,
    pub first_ts: Option<i64>,
    pub min_txid: Option<u64>,
}

/// One segment switch: where the open segment ends (if there is one), where the next starts,
/// what comes next.
pub(super) struct Switch {
    pub sealed: Option<SealedEnd>,
    pub start: u64,
    pub next: Next,
    /// The sealed segment ledger's closing metadata write, committed with the seal.
    pub close: Option<Op>,
    /// The producers' batches below `start`, kept in the stream record for the next writer.
    pub producers: Producers,
}

/// Each producer's last batches.
pub(super) type Producers = std::collections::BTreeMap<u64, Vec<ProducerBatch>>;

/// What a segment switch does besides sealing the open segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Open a new segment starting at the sealed end.
    Open,
    /// Leave the stream without an open segment (the writer closes).
    None,
    /// Mark the stream ended: nothing more is ever appended.
    EndStream,
}

pub(super) async fn acquire(
    log: &Log,
    name: &StreamName,
    opts: WriterOptions,
) -> Result<Task, LogError> {
    // 1. Take the stream: every older writer's next commit now fails.
    let mut state = take(log, name).await?;
    let epoch = state.record.epoch;
    let mut dedup = DedupTable::from_snapshot(&state.record.producers);
    // 2. Seal what the previous writer left open, at its true end.
    let sealed = match state.open_segment().cloned() {
        Some((seg, _)) => Some(recover_segment(log, &seg, &mut dedup, &opts).await?),
        None => None,
    };
    let (end, max_ts, max_txid) = match &sealed {
        Some(s) => (s.end_offset, s.max_ts, s.max_txid),
        None => {
            let last = state.segments.last().map(|(s, _)| s);
            (
                state.sealed_end(),
                last.and_then(|s| s.max_timestamp_ms),
                last.and_then(|s| s.max_txid),
            )
        }
    };
    // Batches remembered at or past the true end never made it into the stream: a retry of
    // one is new.
    dedup.forget_from(end);
    // 3. Open a new segment (and seal the old one) in one commit.
    let switch = Switch {
        sealed,
        start: end,
        next: Next::Open,
        close: None,
        producers: dedup.snapshot_below(end),
    };
    let seg = switch_segment(log, &mut state, epoch, switch, None)
        .await?
        .expect("Next::Open opens a segment");
    info!(stream = %name, epoch, segment = seg.seq, start = end, "writer acquired the stream");
    Ok(Task::new(
        log.clone(),
        name.clone(),
        opts,
        epoch,
        state.record.policy.clone(),
        seg,
        end,
        max_ts,
        max_txid,
        dedup,
    ))
}

/// Bumps the stream's epoch. A stream record changed meanwhile by the current writer (a roll)
/// or an admin is read again; one changed by another new writer means that one won.
async fn take(log: &Log, name: &StreamName) -> Result<StreamState, LogError> {
    let mut state = log.load(name).await?;
    for _ in 0..10 {
        if state.record.ended {
            return Err(LogError::StreamEnded(name.to_string()));
        }
        let mut rec = state.record.clone();
        rec.epoch += 1;
        let put = Op::put(
            stream_key(name),
            rec.encode(),
            Expect::Version(state.version),
        );
        match log.store.commit(vec![put]).await {
            Ok(version) => {
                return Ok(StreamState {
                    record: rec,
                    version,
                    ..state
                });
            }
            Err(MetadataError::Conflict { .. }) => {
                let fresh = log.load(name).await?;
                if fresh.record.epoch != state.record.epoch {
                    return Err(LogError::Fenced(format!(
                        "{name} was taken by another writer meanwhile"
                    )));
                }
                state = fresh;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LogError::Unavailable(format!(
        "{name}: the stream record kept changing while a writer took it"
    )))
}

/// Recovers the open segment's ledger (fencing its writer) and reads where it really ends;
/// adds the producers' batches of its last entries to `dedup`.
async fn recover_segment(
    log: &Log,
    seg: &SegmentRecord,
    dedup: &mut DedupTable,
    opts: &WriterOptions,
) -> Result<SealedEnd, LogError> {
    let id = LedgerId(seg.ledger);
    let meta = recover_ledger(log, id).await?;
    let empty = SealedEnd {
        end_offset: seg.first_offset,
        bytes: 0,
        max_ts: None,
        max_txid: None,
        first_ts: None,
        min_txid: None,
    };
    let Some(meta) = meta else {
        return Ok(empty);
    };
    let Some(last) = meta.last_entry else {
        return Ok(empty);
    };
    let mut reader = log.ledgers.open_reader(id).await?;
    let from = last
        .0
        .saturating_sub(opts.dedup_scan_entries.saturating_sub(1));
    let mut end = empty;
    end.bytes = meta.length;
    (end.first_ts, end.min_txid) = first_values(&mut reader, id).await?;
    for e in from..=last.0 {
        let entry = reader.read(EntryId(e)).await?;
        let se = StreamEntry::decode(entry.payload)
            .map_err(|err| LogError::Corrupt(format!("ledger {id} entry {e}: {err}")))?;
        let mut offset = se.first_offset;
        for s in &se.sets {
            if s.producer_id != 0 {
                dedup.record(
                    s.producer_id,
                    ProducerBatch {
                        first_seq: s.first_seq,
                        count: s.count,
                        first_offset: offset,
                    },
                );
            }
            offset += u64::from(s.count);
        }
        end.end_offset = se.end_offset();
        end.max_ts = Some(se.max_timestamp_ms);
        end.max_txid = se.max_txid;
    }
    Ok(end)
}

/// The first record's timestamp and the lowest txid in a segment's first entry (txids never
/// decrease, so the first one found is the lowest; a segment whose txids start after its first
/// entry reports none — the writer's own seals record them exactly).
async fn first_values(
    reader: &mut dlog_ledger::LedgerReader,
    id: LedgerId,
) -> Result<(Option<i64>, Option<u64>), LogError> {
    let limits = dlog_api::record::RecordSetLimits {
        max_payload: usize::MAX,
        ..Default::default()
    };
    let entry = reader.read(EntryId(0)).await?;
    let se = StreamEntry::decode(entry.payload)
        .map_err(|err| LogError::Corrupt(format!("ledger {id} entry 0: {err}")))?;
    let mut first_ts = None;
    for s in se.sets {
        let records = dlog_api::record::decode_record_set(s.records, &limits)
            .map_err(|err| LogError::Corrupt(format!("ledger {id} entry 0: {err}")))?;
        for r in records {
            first_ts = first_ts.or(Some(r.timestamp_ms));
            if r.txid.is_some() {
                return Ok((first_ts, r.txid));
            }
        }
    }
    Ok((first_ts, None))
}

/// Seals the open segment of `state` at `sealed` (if any) and, as `next` says, opens the next
/// one on a new ledger (`spare` if given, created ahead of time) or ends the stream.
pub(super) async fn switch_segment(
    log: &Log,
    state: &mut StreamState,
    epoch: u64,
    switch: Switch,
    mut spare: Option<LedgerWriter>,
) -> Result<Option<Segment>, LogError> {
    if switch.next != Next::Open
        && let Some(l) = spare.take()
    {
        discard(log, l).await;
    }
    let ledger = match (switch.next, spare) {
        (Next::Open, Some(l)) => Some(l),
        (Next::Open, None) => {
            let q = quorum(&state.record.policy)?;
            Some(log.ledgers.create(q, Epoch(epoch)).await?)
        }
        (Next::None | Next::EndStream, _) => None,
    };
    let id = ledger.as_ref().map(|l| l.id());
    match commit_switch(log, state, epoch, &switch, id).await {
        Ok((seq, created_ms)) => Ok(ledger.map(|ledger| Segment {
            seq,
            ..Segment::new(ledger, switch.start, created_ms)
        })),
        Err(e) => {
            if let Some(l) = ledger {
                discard(log, l).await;
            }
            Err(e)
        }
    }
}

/// Commits a segment switch: the seal of the open segment at `switch.sealed`, the stream
/// record, and the next open segment on `ledger` (if `switch.next` opens one) — in one commit
/// guarded by the stream record's version. A lost compare-and-set because of a newer epoch is
/// `Fenced`; one because of an admin change (policy, truncation) is retried on the fresh state,
/// with the same ledger. Returns the new segment's number and creation time.
pub(super) async fn commit_switch(
    log: &Log,
    state: &mut StreamState,
    epoch: u64,
    switch: &Switch,
    ledger: Option<LedgerId>,
) -> Result<(u64, i64), LogError> {
    for _ in 0..5 {
        let now = log.now_ms();
        let mut ops: Vec<Op> = switch.close.iter().cloned().collect();
        if let (Some((open, v)), Some(s)) = (state.open_segment(), switch.sealed) {
            let mut done = open.clone();
            done.state = SegmentState::Sealed;
            done.end_offset = s.end_offset;
            done.bytes = s.bytes;
            done.sealed_ms = Some(now);
            done.max_timestamp_ms = s.max_ts.or(done.max_timestamp_ms);
            done.max_txid = s.max_txid.or(done.max_txid);
            done.first_timestamp_ms = s.first_ts;
            done.min_txid = s.min_txid;
            ops.push(Op::put(
                segment_key(&state.name, done.seq),
                done.encode(),
                Expect::Version(*v),
            ));
        }
        let seq = state.record.next_seq;
        let mut rec = state.record.clone();
        rec.producers = switch.producers.clone();
        rec.ended |= switch.next == Next::EndStream;
        if ledger.is_some() {
            rec.next_seq += 1;
        }
        ops.push(Op::put(
            stream_key(&state.name),
            rec.encode(),
            Expect::Version(state.version),
        ));
        if let Some(l) = ledger {
            let seg_rec = SegmentRecord {
                seq,
                ledger: l.0,
                epoch,
                state: SegmentState::Open,
                first_offset: switch.start,
                end_offset: switch.start,
                bytes: 0,
                created_ms: now,
                sealed_ms: None,
                max_timestamp_ms: None,
                max_txid: None,
                first_timestamp_ms: None,
                min_txid: None,
                object: None,
                local_deleted_ms: None,
            };
            ops.push(Op::put(
                segment_key(&state.name, seq),
                seg_rec.encode(),
                Expect::Absent,
            ));
        }
        match log.store.commit(ops).await {
            Ok(_) => return Ok((seq, now)),
            Err(MetadataError::Conflict { .. }) => {
                let fresh = log.load(&state.name).await?;
                let ours = fresh.open_segment().map(|(s, _)| s.seq)
                    == state.open_segment().map(|(s, _)| s.seq);
                if fresh.record.epoch != epoch || !ours {
                    return Err(LogError::Fenced(format!(
                        "{} was taken over at epoch {}",
                        state.name, fresh.record.epoch
                    )));
                }
                *state = fresh;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LogError::Unavailable(format!(
        "{}: the stream record kept changing during a segment switch",
        state.name
    )))
}

/// Creates a ledger for the stream's next segment, ahead of the roll that will need it.
pub(super) async fn spare_ledger(
    log: &Log,
    policy: &dlog_api::stream::StreamPolicy,
    epoch: u64,
) -> Result<LedgerWriter, LogError> {
    Ok(log.ledgers.create(quorum(policy)?, Epoch(epoch)).await?)
}

/// Deletes a ledger no segment refers to.
pub(super) async fn discard(log: &Log, ledger: LedgerWriter) {
    let id = ledger.id();
    drop(ledger);
    if let Err(e) = log.ledgers.delete(id).await {
        warn!(ledger = %id, error = %e, "delete unused ledger");
    }
}

/// Recovers a ledger, retrying transient failures; `None` if it does not exist.
pub(super) async fn recover_ledger(
    log: &Log,
    id: LedgerId,
) -> Result<Option<dlog_ledger::LedgerMetadata>, LogError> {
    let mut attempt = 0;
    loop {
        match log.ledgers.recover(id).await {
            Ok(m) => return Ok(Some(m)),
            Err(LedgerError::NoSuchLedger(_)) => return Ok(None),
            Err(e) if e.is_retryable() && attempt < 10 => {
                attempt += 1;
                warn!(ledger = %id, error = %e, attempt, "recover ledger; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
