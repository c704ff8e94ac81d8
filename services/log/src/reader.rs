//! [`StreamReader`]: reads a stream by offset across its segments, seeks by timestamp or txid,
//! and tails the open segment with long-polls on its ledger's LAC.
//!
//! A reader never returns a record past the LAC of the open segment, so it never shows what
//! was not acknowledged. It finds the entry holding an offset by binary search over the
//! segment's entries (each entry's header carries its first offset), then reads forward; a
//! sequential reader keeps its place and needs no search.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, decode_record_set, encode_record_set};
use dlog_api::stream::{SegmentState, StreamName};
use dlog_api::{Compression, Record};
use dlog_api::{EntryId, LedgerId};
use dlog_ledger::{LedgerReader, LedgerState};

use crate::entry::StreamEntry;
use crate::error::LogError;
use crate::meta::{SegmentObject, SegmentRecord, StreamState};
use crate::streams::Log;

/// How often a reader waiting at the end of a stream without an open segment looks again.
const POLL: Duration = Duration::from_millis(20);
/// Longest single LAC long-poll: then the reader looks whether the segment was sealed meanwhile
/// (a new writer took over and writes elsewhere).
const LAC_POLL: Duration = Duration::from_millis(250);

/// Records read from a stream.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    /// Offset of the first record of `sets`; it may be below the offset asked for (entries are
    /// returned whole): skip records until the asked offset.
    pub first_offset: u64,
    /// Record sets, in order.
    pub sets: Vec<Bytes>,
    /// Records in `sets`.
    pub count: u64,
    /// Offset after the last readable record, as far as the reader knows.
    pub end_offset: u64,
    pub start_offset: u64,
    /// The stream has ended and everything up to `end_offset` has been read.
    pub end_of_stream: bool,
}

impl ReadBatch {
    fn empty(at: u64, end: u64, start: u64) -> ReadBatch {
        ReadBatch {
            first_offset: at,
            end_offset: end,
            start_offset: start,
            ..Default::default()
        }
    }
}

/// A reader of one stream. Keeps its place between sequential reads.
#[derive(Debug)]
pub struct StreamReader {
    log: Log,
    name: StreamName,
    state: Option<StreamState>,
    /// The ledger being read, and whether it was opened as sealed.
    ledger: Option<(u64, bool, LedgerReader)>,
    /// The next entry of that ledger and its first offset.
    next: Option<(u64, EntryId, u64)>,
    /// The end offset of the last entry seen at the LAC: (ledger, entry, end).
    lac_end: Option<(u64, EntryId, u64)>,
    /// An entry read but not returned (it would have made an answer too large).
    peeked: Option<(u64, EntryId, StreamEntry)>,
    /// The stream's end as of the state loaded (computed when first needed).
    stream_end: Option<u64>,
}

impl StreamReader {
    pub fn new(log: Log, name: StreamName) -> StreamReader {
        StreamReader {
            log,
            name,
            state: None,
            ledger: None,
            next: None,
            lac_end: None,
            peeked: None,
            stream_end: None,
        }
    }

    pub fn name(&self) -> &StreamName {
        &self.name
    }

    async fn state(&mut self, reload: bool) -> Result<&StreamState, LogError> {
        if reload || self.state.is_none() {
            self.state = Some(self.log.load(&self.name).await?);
            self.stream_end = None;
        }
        Ok(self.state.as_ref().expect("loaded above"))
    }

    /// Reads records from `offset`, up to about `max_bytes` (at least one entry), waiting up to
    /// `wait` for new records when `offset` is at the end.
    pub async fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<ReadBatch, LogError> {
        let deadline = Instant::now() + wait;
        let mut reloaded = false;
        loop {
            let state = self.state(false).await?;
            let start = state.record.start_offset;
            let ended = state.record.ended;
            let sealed_end = state.sealed_end();
            if offset < start {
                if !reloaded {
                    reloaded = true;
                    self.state(true).await?;
                    continue;
                }
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    start,
                    end: sealed_end,
                });
            }
            let seg = state
                .segments
                .iter()
                .rev()
                .find(|(s, _)| s.first_offset <= offset)
                .map(|(s, _)| s.clone());
            match seg {
                Some(seg) if seg.state == SegmentState::Open || offset < seg.end_offset => {
                    if let Some(obj) = &seg.object {
                        // Offloaded: the committed metadata sends the reader to the object.
                        let mut b = self.read_object(obj, offset, max_bytes, start).await?;
                        b.end_offset = b.end_offset.max(self.stream_end().await?);
                        return Ok(b);
                    }
                    let mut b = self.read_segment(&seg, offset, max_bytes, start).await?;
                    if b.count > 0 {
                        if seg.state == SegmentState::Sealed {
                            // More segments follow: report the stream's end, not this one's.
                            b.end_offset = b.end_offset.max(self.stream_end().await?);
                        }
                        return Ok(b);
                    }
                    // At the LAC of the open segment (or an empty sealed one): wait for more,
                    // or for the segment to be sealed and the next one opened.
                    let left = deadline.saturating_duration_since(Instant::now());
                    if seg.state == SegmentState::Open && !left.is_zero() {
                        let moved = self.wait_lac(&seg, left.min(LAC_POLL)).await?;
                        if !moved {
                            self.state(true).await?;
                        }
                        continue;
                    }
                    if seg.state == SegmentState::Open {
                        self.state(true).await?;
                        let still_open = self
                            .state
                            .as_ref()
                            .and_then(|s| s.open_segment())
                            .is_some_and(|(s, _)| s.seq == seg.seq);
                        if still_open {
                            return Ok(b);
                        }
                        continue;
                    }
                    return Ok(b);
                }
                _ => {
                    // At (or past) the end of the sealed segments, with no open segment.
                    if !reloaded {
                        reloaded = true;
                        self.state(true).await?;
                        continue;
                    }
                    if offset > sealed_end {
                        return Err(LogError::OffsetOutOfRange {
                            offset,
                            start,
                            end: sealed_end,
                        });
                    }
                    let mut b = ReadBatch::empty(offset, sealed_end, start);
                    b.end_of_stream = ended;
                    if ended || Instant::now() >= deadline {
                        return Ok(b);
                    }
                    tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
                    reloaded = false;
                }
            }
        }
    }

    /// The stream's end offset as of the loaded state.
    async fn stream_end(&mut self) -> Result<u64, LogError> {
        if let Some(e) = self.stream_end {
            return Ok(e);
        }
        let state = self.state.as_ref().expect("loaded by read");
        let e = self.log.end_offset(state).await?;
        self.stream_end = Some(e);
        Ok(e)
    }

    /// Records from an offloaded segment's object, as one record set.
    async fn read_object(
        &mut self,
        obj: &SegmentObject,
        offset: u64,
        max_bytes: usize,
        start: u64,
    ) -> Result<ReadBatch, LogError> {
        let records = self.object_records(obj, offset, max_bytes).await?;
        let count = records.len() as u64;
        let records: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
        let limits = RecordSetLimits {
            max_payload: usize::MAX,
            ..RecordSetLimits::default()
        };
        let set = encode_record_set(&records, Compression::None, &limits)
            .map_err(|e| LogError::Internal(format!("re-encode records of {}: {e}", obj.key)))?;
        Ok(ReadBatch {
            first_offset: offset,
            sets: vec![set],
            count,
            end_offset: offset + count,
            start_offset: start,
            end_of_stream: false,
        })
    }

    async fn object_records(
        &self,
        obj: &SegmentObject,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Record)>, LogError> {
        let objects = self.log.objects.as_ref().ok_or_else(|| {
            LogError::Unavailable(format!(
                "{}: offset {offset} is in the object tier ({}), and this service has no object \
                 store configured",
                self.name, obj.key
            ))
        })?;
        // The object of the segment after this one, for read-ahead across the boundary.
        let then = self.state.as_ref().and_then(|st| {
            st.segments
                .iter()
                .find(|(s, _)| s.first_offset == obj.end_offset)
                .and_then(|(s, _)| s.object.as_ref())
                .filter(|o| o.key != obj.key)
                .map(|o| (o.key.clone(), o.size))
        });
        let records = objects
            .read_at(
                &obj.key,
                obj.size,
                obj.first_offset..obj.end_offset,
                offset,
                max_bytes,
                then.as_ref().map(|(k, s)| (k.as_str(), *s)),
            )
            .await?;
        if records.first().map(|(o, _)| *o) != Some(offset) {
            return Err(LogError::Corrupt(format!(
                "object {} does not hold offset {offset}",
                obj.key
            )));
        }
        Ok(records)
    }

    /// A reader for the segment's ledger, reopened when the segment was sealed since.
    async fn ledger_reader(&mut self, seg: &SegmentRecord) -> Result<&mut LedgerReader, LogError> {
        let sealed = seg.state == SegmentState::Sealed;
        let fresh =
            matches!(&self.ledger, Some((id, s, _)) if *id == seg.ledger && (*s || !sealed));
        if !fresh {
            let mut r = self.log.ledgers.open_reader(LedgerId(seg.ledger)).await?;
            if r.metadata().state == LedgerState::Open {
                r.read_lac().await?;
            }
            let sealed = r.metadata().state == LedgerState::Closed;
            self.ledger = Some((seg.ledger, sealed, r));
        }
        Ok(&mut self.ledger.as_mut().expect("opened above").2)
    }

    async fn read_segment(
        &mut self,
        seg: &SegmentRecord,
        offset: u64,
        max_bytes: usize,
        start: u64,
    ) -> Result<ReadBatch, LogError> {
        let ledger = seg.ledger;
        let hint = self
            .next
            .filter(|(l, _, first)| *l == ledger && *first == offset)
            .map(|(_, e, _)| e);
        let mut peeked = self.peeked.take();
        let mut stash = None;
        let reader = self.ledger_reader(seg).await?;
        let Some(last) = reader.readable_end() else {
            return Ok(ReadBatch::empty(offset, seg.first_offset, start));
        };
        let first_entry = match hint {
            Some(e) => e,
            None => match find_entry(reader, last, offset).await? {
                Some(e) => e,
                None => return Ok(ReadBatch::empty(offset, offset, start)),
            },
        };
        let mut b = ReadBatch::empty(offset, offset, start);
        let mut bytes = 0;
        let mut e = first_entry;
        while e <= last && bytes < max_bytes {
            let se = match peeked.take() {
                Some((l, pe, se)) if l == ledger && pe == e => se,
                _ => {
                    let entry = reader.read(e).await?;
                    decode(ledger, e, entry.payload)?
                }
            };
            let len = se.encoded_len();
            if bytes > 0 && bytes + len > max_bytes {
                // Keep the answer within its size; this entry starts the next one.
                stash = Some((ledger, e, se));
                break;
            }
            bytes += len;
            if b.sets.is_empty() {
                b.first_offset = se.first_offset;
            }
            b.count += u64::from(se.count);
            b.end_offset = se.end_offset();
            b.sets.extend(se.sets.into_iter().map(|s| s.records));
            e = e.next();
        }
        self.peeked = stash;
        if b.count > 0 {
            self.next = Some((ledger, e, b.end_offset));
        }
        if b.count == 0 {
            b.end_offset = offset;
        } else if e <= last {
            // Stopped for size: the end is at the LAC entry.
            b.end_offset = self.end_at(seg, last).await?.max(b.end_offset);
        }
        Ok(b)
    }

    /// The end offset of entry `last` of the segment's ledger (cached per LAC).
    async fn end_at(&mut self, seg: &SegmentRecord, last: EntryId) -> Result<u64, LogError> {
        if let Some((l, e, end)) = self.lac_end
            && l == seg.ledger
            && e == last
        {
            return Ok(end);
        }
        let reader = self.ledger_reader(seg).await?;
        let entry = reader.read(last).await?;
        let (first, count, _, _) = StreamEntry::decode_header(&entry.payload)
            .map_err(|err| LogError::Corrupt(err.to_string()))?;
        let end = first + u64::from(count);
        self.lac_end = Some((seg.ledger, last, end));
        Ok(end)
    }

    /// Waits up to `wait` for the open segment's LAC to move; whether it did.
    async fn wait_lac(&mut self, seg: &SegmentRecord, wait: Duration) -> Result<bool, LogError> {
        let reader = self.ledger_reader(seg).await?;
        let known = reader.readable_end();
        let now = reader.wait_lac(known, wait).await?;
        Ok(now > known)
    }

    /// The offset of the first record whose timestamp is at or after `ts_ms` (timestamps are
    /// taken as their running maximum along the stream); the end offset if there is none.
    pub async fn seek_timestamp(&mut self, ts_ms: i64) -> Result<u64, LogError> {
        self.seek(
            |se| se.max_timestamp_ms >= ts_ms,
            |r| r.timestamp_ms >= ts_ms,
            |s| s.max_timestamp_ms.is_some_and(|m| m >= ts_ms),
        )
        .await
    }

    /// The offset of the first record whose txid is at or after `txid`; the end offset if
    /// there is none.
    pub async fn seek_txid(&mut self, txid: u64) -> Result<u64, LogError> {
        self.seek(
            |se| se.max_txid.is_some_and(|t| t >= txid),
            |r| r.txid.is_some_and(|t| t >= txid),
            |s| s.max_txid.is_some_and(|t| t >= txid),
        )
        .await
    }

    async fn seek(
        &mut self,
        entry_reaches: impl Fn(&StreamEntry) -> bool,
        record_reaches: impl Fn(&dlog_api::Record) -> bool,
        segment_reaches: impl Fn(&SegmentRecord) -> bool,
    ) -> Result<u64, LogError> {
        let state = self.state(true).await?.clone();
        let end = self.log.end_offset(&state).await?;
        let Some(seg) = state
            .segments
            .iter()
            .map(|(s, _)| s)
            .find(|s| s.state == SegmentState::Open || segment_reaches(s))
            .cloned()
        else {
            return Ok(end);
        };
        if let Some(obj) = &seg.object {
            // Offloaded: scan the object from the segment's start.
            let mut at = seg.first_offset;
            while at < seg.end_offset {
                let records = self.object_records(obj, at, 4 << 20).await?;
                for (o, r) in &records {
                    if *o >= seg.end_offset {
                        break;
                    }
                    if record_reaches(r) {
                        return Ok(*o);
                    }
                }
                at = records.last().map_or(seg.end_offset, |(o, _)| o + 1);
            }
            return Ok(seg.end_offset);
        }
        let reader = self.ledger_reader(&seg).await?;
        let Some(last) = reader.readable_end() else {
            return Ok(end);
        };
        // First entry whose running maximum reaches the target.
        let (mut lo, mut hi) = (0u64, last.0 + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry = reader.read(EntryId(mid)).await?;
            let se = decode(seg.ledger, EntryId(mid), entry.payload)?;
            if entry_reaches(&se) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo > last.0 {
            return Ok(end);
        }
        let entry = reader.read(EntryId(lo)).await?;
        let se = decode(seg.ledger, EntryId(lo), entry.payload)?;
        let mut offset = se.first_offset;
        let limits = RecordSetLimits {
            max_payload: usize::MAX,
            ..RecordSetLimits::default()
        };
        for set in se.sets {
            let records = decode_record_set(set.records, &limits)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            for r in &records {
                if record_reaches(r) {
                    return Ok(offset);
                }
                offset += 1;
            }
        }
        Ok(offset)
    }
}

/// The last entry of `..=last` whose first offset is at or below `offset`.
async fn find_entry(
    reader: &mut LedgerReader,
    last: EntryId,
    offset: u64,
) -> Result<Option<EntryId>, LogError> {
    let ledger = reader.metadata().id.0;
    let (mut lo, mut hi) = (0u64, last.0);
    let first = header(reader, ledger, EntryId(0)).await?.0;
    if offset < first {
        return Ok(None);
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if header(reader, ledger, EntryId(mid)).await?.0 <= offset {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (first, count) = header(reader, ledger, EntryId(lo)).await?;
    if offset >= first + u64::from(count) {
        return Ok(None);
    }
    Ok(Some(EntryId(lo)))
}

async fn header(
    reader: &mut LedgerReader,
    ledger: u64,
    e: EntryId,
) -> Result<(u64, u32), LogError> {
    let entry = reader.read(e).await?;
    let (first, count, _, _) = StreamEntry::decode_header(&entry.payload)
        .map_err(|err| LogError::Corrupt(format!("ledger {ledger} entry {e}: {err}")))?;
    Ok((first, count))
}

fn decode(ledger: u64, e: EntryId, payload: Bytes) -> Result<StreamEntry, LogError> {
    StreamEntry::decode(payload)
        .map_err(|err| LogError::Corrupt(format!("ledger {ledger} entry {e}: {err}")))
}
