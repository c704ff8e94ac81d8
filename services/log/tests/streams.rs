//! Streams on real bookies (in-process, on loopback ports) and the embedded metadata store:
//! appends and reads across segments, seeks, tails, takeover by a new writer, idempotent
//! retries, truncation, retention, subscriptions, end of stream.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, decode_record_set, encode_record_set};
use dlog_api::stream::{SegmentState, StreamName, StreamPolicy};
use dlog_api::{Compression, Record};
use dlog_ledger::local::{LocalBookie, start_bookies};
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{
    AppendBatch, Clock, Log, LogError, ManualClock, StreamReader, StreamWriter, SystemClock,
    WriterOptions,
};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};

struct Cluster {
    _dir: tempfile::TempDir,
    log: Log,
    bookies: Vec<LocalBookie>,
}

impl Cluster {
    async fn start(clock: Arc<dyn Clock>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            EmbeddedStore::open(dir.path().join("meta"), EmbeddedOptions::default())
                .await
                .unwrap(),
        );
        let bookies = start_bookies(store.clone(), dir.path(), 3, |c| {
            c.journal.file_size = 16 << 20;
        })
        .await
        .unwrap();
        let mut o = LedgerOptions::default();
        o.bookie.request_timeout = Duration::from_secs(3);
        let log = Log::new(store.clone(), LedgerClient::new(store, o), clock);
        Cluster {
            _dir: dir,
            log,
            bookies,
        }
    }

    /// Creates stream `n` with `policy` and opens its writer.
    async fn stream(&self, n: &str, policy: StreamPolicy) -> (StreamName, StreamWriter) {
        let s = name(n);
        self.log.create_stream(&s, policy).await.unwrap();
        let w = StreamWriter::open(&self.log, &s, WriterOptions::default())
            .await
            .unwrap();
        (s, w)
    }

    async fn stop(self) {
        for b in self.bookies {
            b.stop().await;
        }
    }
}

fn name(s: &str) -> StreamName {
    s.parse().unwrap()
}

fn small_segments() -> StreamPolicy {
    StreamPolicy {
        segment_bytes: 1 << 20,
        ..StreamPolicy::default()
    }
}

/// A batch of `n` records `tag-i` of `size` bytes, timestamps `ts0 + i`, txids if given.
fn batch(tag: &str, n: usize, size: usize, ts0: i64, txid0: Option<u64>) -> AppendBatch {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let mut p = format!("{tag}-{i}-").into_bytes();
            p.resize(size.max(p.len()), b'.');
            Record {
                payload: Bytes::from(p),
                key: None,
                timestamp_ms: ts0 + i as i64,
                txid: txid0.map(|t| t + i as u64),
            }
        })
        .collect();
    let set = encode_record_set(&records, Compression::None, &RecordSetLimits::default()).unwrap();
    AppendBatch::from_record_set(0, 0, set, &StreamPolicy::default()).unwrap()
}

fn with_producer(mut b: AppendBatch, producer: u64, seq: u64) -> AppendBatch {
    b.producer_id = producer;
    b.sequence = seq;
    b
}

/// Reads `[from, to)` and returns the payloads in order.
async fn read_range(log: &Log, s: &StreamName, from: u64, to: u64) -> Vec<Bytes> {
    let mut r = StreamReader::new(log.clone(), s.clone());
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let b = r.read(at, 256 << 10, Duration::from_secs(5)).await.unwrap();
        assert!(b.count > 0, "nothing read at {at} (end {})", b.end_offset);
        let mut off = b.first_offset;
        for set in b.sets {
            for rec in decode_record_set(set, &RecordSetLimits::default()).unwrap() {
                if off >= at && off < to {
                    out.push(rec.payload);
                }
                off += 1;
            }
        }
        at = off;
    }
    out
}

/// Describes the stream until its end offset is `end` (at most 5 s).
async fn described_end(log: &Log, s: &StreamName, end: u64) -> dlog_api::stream::StreamInfo {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = log.describe(s).await.unwrap();
        if info.end_offset == end || Instant::now() > deadline {
            assert_eq!(info.end_offset, end);
            return info;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_list_describe_delete() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let s = name("ns/one");
    c.log
        .create_stream(&s, StreamPolicy::default())
        .await
        .unwrap();
    c.log
        .create_stream(&name("ns/two"), StreamPolicy::default())
        .await
        .unwrap();
    c.log
        .create_stream(&name("other/x"), StreamPolicy::default())
        .await
        .unwrap();
    assert!(matches!(
        c.log.create_stream(&s, StreamPolicy::default()).await,
        Err(LogError::StreamExists(_))
    ));
    let bad = StreamPolicy {
        ack_quorum: 3,
        write_quorum: 2,
        ..Default::default()
    };
    let e = c.log.create_stream(&name("ns/bad"), bad).await.unwrap_err();
    assert!(matches!(e, LogError::InvalidPolicy(_)), "{e}");
    assert!(e.to_string().contains("ack_quorum"), "{e}");
    let all = c.log.list_streams(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        c.log.list_streams(Some("ns")).await.unwrap(),
        vec![name("ns/one"), name("ns/two")]
    );
    let info = c.log.describe(&s).await.unwrap();
    assert_eq!(
        (info.start_offset, info.end_offset, info.segments.len()),
        (0, 0, 0)
    );
    c.log.delete_stream(&s).await.unwrap();
    assert!(matches!(
        c.log.describe(&s).await,
        Err(LogError::NoSuchStream(_))
    ));
    assert!(matches!(
        c.log.delete_stream(&s).await,
        Err(LogError::NoSuchStream(_))
    ));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_roll_read_and_seek() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let s = name("ns/rolling");
    c.log.create_stream(&s, small_segments()).await.unwrap();
    let w = StreamWriter::open(&c.log, &s, WriterOptions::default())
        .await
        .unwrap();
    // 40 batches of 10 × 10 KiB: about 4 MiB, so several 1 MiB segments.
    let mut acks = Vec::new();
    for i in 0..40u64 {
        let b = batch(
            &format!("b{i}"),
            10,
            10 << 10,
            1_000 + 10 * i as i64,
            Some(100 * i),
        );
        acks.push(w.append(b).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        let a = a.await.unwrap().unwrap();
        assert_eq!((a.first_offset, a.count), (10 * i as u64, 10));
    }
    assert_eq!(*w.acked_end().borrow(), 400);
    // The bookies learn the last LAC with the writer's next add or its idle LAC write.
    let info = described_end(&c.log, &s, 400).await;
    assert!(info.segments.len() >= 3, "{} segments", info.segments.len());
    for pair in info.segments.windows(2) {
        assert_eq!(
            pair[0].end_offset, pair[1].first_offset,
            "segments are contiguous"
        );
        assert_eq!(pair[0].state, SegmentState::Sealed);
    }
    // Everything back, in order, across segments.
    let all = read_range(&c.log, &s, 0, 400).await;
    assert_eq!(all.len(), 400);
    for (i, p) in all.iter().enumerate() {
        let want = format!("b{}-{}-", i / 10, i % 10);
        assert!(p.starts_with(want.as_bytes()), "offset {i}");
    }
    // A read from the middle of a segment finds its entry.
    let mid = read_range(&c.log, &s, 257, 263).await;
    assert!(mid[0].starts_with(b"b25-7-"));
    // Seeks.
    let mut r = StreamReader::new(c.log.clone(), s.clone());
    assert_eq!(r.seek_timestamp(1_000 + 10 * 31 + 4).await.unwrap(), 314);
    assert_eq!(r.seek_timestamp(0).await.unwrap(), 0);
    assert_eq!(r.seek_timestamp(i64::MAX).await.unwrap(), 400);
    assert_eq!(r.seek_txid(100 * 12 + 3).await.unwrap(), 123);
    assert_eq!(r.seek_txid(u64::MAX - 1).await.unwrap(), 400);
    // Past the LAC of the open segment: nothing yet (the LAC may lag the acks).
    assert_eq!(r.read(401, 1024, Duration::ZERO).await.unwrap().count, 0);
    assert_eq!(w.close().await.unwrap(), 400);
    // Past the end of a sealed stream: out of range.
    assert!(matches!(
        r.read(401, 1024, Duration::ZERO).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let info = c.log.describe(&s).await.unwrap();
    assert!(
        info.segments
            .iter()
            .all(|s| s.state == SegmentState::Sealed)
    );
    // Each segment knows its first timestamp and txid range (record o has timestamp
    // 1000 + o and txid 100 * (o / 10) + o % 10).
    for g in info
        .segments
        .iter()
        .filter(|g| g.end_offset > g.first_offset)
    {
        // The seal closed the segment's ledger in the same commit.
        let (meta, _) = c
            .log
            .ledgers()
            .metadata(dlog_api::LedgerId(g.ledger))
            .await
            .unwrap();
        assert_eq!(meta.state, dlog_ledger::LedgerState::Closed, "{g:?}");
        let (o, last) = (g.first_offset, g.end_offset - 1);
        assert_eq!(g.first_timestamp_ms, Some(1000 + o as i64), "{g:?}");
        assert_eq!(g.min_txid, Some(100 * (o / 10) + o % 10), "{g:?}");
        assert_eq!(g.max_txid, Some(100 * (last / 10) + last % 10), "{g:?}");
    }
    c.stop().await;
}

/// 1 MiB segments filled by pipelined appends in 16 KiB entries: every roll happens with
/// entries in flight, the next segment takes appends while the full one seals, and a next
/// segment often fills before the previous seal has committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_rolls_keep_records_dense_in_order_and_deduplicated() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let s = name("ns/pipelined");
    let policy = StreamPolicy {
        segment_bytes: 1 << 20,
        ..StreamPolicy::default()
    };
    c.log.create_stream(&s, policy).await.unwrap();
    let opts = WriterOptions {
        max_entry_bytes: 16 << 10,
        ..WriterOptions::default()
    };
    let w = StreamWriter::open(&c.log, &s, opts.clone()).await.unwrap();
    const BATCHES: u64 = 1200;
    let mut acks = Vec::new();
    for i in 0..BATCHES {
        let b = with_producer(
            batch(&format!("p{i}"), 8, 1 << 10, i as i64, None),
            77,
            8 * i,
        );
        acks.push(w.append(b).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        let a = a.await.unwrap().unwrap();
        assert_eq!(
            (a.first_offset, a.count, a.duplicate),
            (8 * i as u64, 8, false)
        );
    }
    let end = 8 * BATCHES;
    // A retry of a batch acknowledged in an earlier segment gets its offsets back.
    let retry = w
        .append_wait(with_producer(
            batch("p1190", 8, 1 << 10, 0, None),
            77,
            8 * 1190,
        ))
        .await
        .unwrap();
    assert_eq!((retry.first_offset, retry.duplicate), (8 * 1190, true));
    assert_eq!(w.close().await.unwrap(), end);
    let info = c.log.describe(&s).await.unwrap();
    assert!(info.segments.len() >= 8, "{} segments", info.segments.len());
    assert_eq!(info.segments[0].first_offset, 0);
    assert_eq!(info.segments.last().unwrap().end_offset, end);
    for pair in info.segments.windows(2) {
        assert_eq!(pair[0].end_offset, pair[1].first_offset, "{pair:?}");
    }
    for g in &info.segments {
        assert_eq!(g.state, SegmentState::Sealed, "{g:?}");
        let (meta, _) = c
            .log
            .ledgers()
            .metadata(dlog_api::LedgerId(g.ledger))
            .await
            .unwrap();
        assert_eq!(meta.state, dlog_ledger::LedgerState::Closed, "{g:?}");
    }
    // The stream record promises the next writer only batches below the sealed end.
    let state = c.log.load(&s).await.unwrap();
    assert!(
        state.record.producers[&77]
            .iter()
            .all(|b| b.first_offset + u64::from(b.count) <= end)
    );
    let all = read_range(&c.log, &s, 0, end).await;
    assert_eq!(all.len() as u64, end);
    for (o, p) in all.iter().enumerate() {
        let want = format!("p{}-{}-", o / 8, o % 8);
        assert!(p.starts_with(want.as_bytes()), "offset {o}");
    }
    // A new writer recognises the last batch too (from the table in the stream record).
    let w2 = StreamWriter::open(&c.log, &s, opts).await.unwrap();
    let again = w2
        .append_wait(with_producer(
            batch("p1199", 8, 1 << 10, 0, None),
            77,
            8 * 1199,
        ))
        .await
        .unwrap();
    assert_eq!((again.first_offset, again.duplicate), (8 * 1199, true));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_reader_sees_a_record_soon_after_its_ack() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let (s, w) = c.stream("ns/tail", StreamPolicy::default()).await;
    w.append_wait(batch("x", 1, 10, 1, None)).await.unwrap();
    let log = c.log.clone();
    let s2 = s.clone();
    let tail = tokio::spawn(async move {
        let mut r = StreamReader::new(log, s2);
        let b = r.read(1, 1 << 20, Duration::from_secs(10)).await.unwrap();
        (b, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = w.append_wait(batch("y", 1, 10, 2, None)).await.unwrap();
    let acked = Instant::now();
    let (b, seen) = tail.await.unwrap();
    assert_eq!((a.first_offset, b.first_offset, b.count), (1, 1, 1));
    let lag = seen.saturating_duration_since(acked);
    assert!(
        lag < Duration::from_millis(500),
        "tail saw the record {lag:?} after its ack"
    );
    // Caught up: a read at the end with no wait returns nothing, at once.
    let mut r = StreamReader::new(c.log.clone(), s.clone());
    let b = r.read(2, 1 << 20, Duration::ZERO).await.unwrap();
    assert_eq!((b.count, b.end_offset), (0, 2));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_writer_fences_the_old_one_and_keeps_every_ack() {
    takeover("ns/takeover", StreamPolicy::default(), 50, 100).await;
}

/// The takeover happens while the old writer rolls small segments with entries in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_during_pipelined_rolls_keeps_every_ack() {
    takeover("ns/takeover-rolling", small_segments(), 150, 20 << 10).await;
}

/// `batches` pipelined appends of two records of `size` bytes, and a new writer meanwhile.
async fn takeover(stream: &str, policy: StreamPolicy, batches: u64, size: usize) {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let (s, old) = c.stream(stream, policy).await;
    let mut pending = Vec::new();
    for i in 0..batches {
        pending.push(
            old.append(with_producer(batch("old", 2, size, 0, None), 9, 2 * i))
                .await,
        );
    }
    // Take over once a third has been acknowledged (or at once, if that takes long).
    let mut acked_end = old.acked_end();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        acked_end.wait_for(|&e| e >= 2 * batches / 3),
    )
    .await;
    let new = StreamWriter::open(&c.log, &s, WriterOptions::default())
        .await
        .unwrap();
    assert!(new.epoch() > old.epoch());
    let mut acked = 0u64;
    for p in pending {
        match p.await.unwrap() {
            Ok(a) => {
                assert_eq!(a.first_offset, acked, "acks are dense and in order");
                acked += 2;
            }
            Err(e) => assert!(
                matches!(e, LogError::Fenced(_) | LogError::Unavailable(_)),
                "{e}"
            ),
        }
    }
    // The old writer is done.
    let e = old
        .append_wait(batch("late", 1, 10, 0, None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, LogError::Fenced(_) | LogError::Unavailable(_)),
        "{e}"
    );
    // The new writer starts exactly at the sealed end, at or after every old ack.
    let a = new.append_wait(batch("new", 1, 10, 0, None)).await.unwrap();
    assert!(a.first_offset >= acked);
    let records = read_range(&c.log, &s, 0, a.first_offset + 1).await;
    assert_eq!(records.len() as u64, a.first_offset + 1);
    assert!(records.last().unwrap().starts_with(b"new-0-"));
    // The segment the new writer sealed for the old one was read for its first values.
    let first = c.log.describe(&s).await.unwrap().segments[0].clone();
    assert_eq!(
        (first.first_timestamp_ms, first.min_txid),
        (Some(0), None),
        "{first:?}"
    );
    // A retry of the last acknowledged batch through the new writer is recognised (its table
    // came from the last seal and the recovered segment), with the original offsets.
    if acked >= 2 {
        let retry = new
            .append_wait(with_producer(batch("old", 2, size, 0, None), 9, acked - 2))
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.first_offset, acked - 2);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_and_sequence_gaps() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let (s, w) = c.stream("ns/idem", StreamPolicy::default()).await;
    let a = w
        .append_wait(with_producer(batch("a", 3, 10, 0, None), 5, 0))
        .await
        .unwrap();
    let dup = w
        .append_wait(with_producer(batch("a", 3, 10, 0, None), 5, 0))
        .await
        .unwrap();
    assert_eq!(
        (dup.first_offset, dup.count, dup.duplicate),
        (a.first_offset, 3, true)
    );
    let e = w
        .append_wait(with_producer(batch("gap", 1, 10, 0, None), 5, 7))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LogError::SequenceGap {
                expected_next: 3,
                got: 7,
                ..
            }
        ),
        "{e}"
    );
    let b = w
        .append_wait(with_producer(batch("b", 1, 10, 0, None), 5, 3))
        .await
        .unwrap();
    assert_eq!(b.first_offset, 3);
    // The table survives a seal and a new writer.
    w.close().await.unwrap();
    let w2 = StreamWriter::open(&c.log, &s, WriterOptions::default())
        .await
        .unwrap();
    let again = w2
        .append_wait(with_producer(batch("b", 1, 10, 0, None), 5, 3))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.first_offset, 3);
    described_end(&c.log, &s, 4).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_retention_and_subscriptions() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = Cluster::start(clock.clone()).await;
    let s = name("ns/retained");
    let policy = StreamPolicy {
        retention_age_ms: Some(60_000),
        retain_for_subscriptions: true,
        ..small_segments()
    };
    c.log.create_stream(&s, policy).await.unwrap();
    let w = StreamWriter::open(&c.log, &s, WriterOptions::default())
        .await
        .unwrap();
    for i in 0..30 {
        w.append_wait(batch(&format!("r{i}"), 10, 10 << 10, 0, None))
            .await
            .unwrap();
    }
    let info = c.log.describe(&s).await.unwrap();
    let sealed: Vec<_> = info
        .segments
        .iter()
        .filter(|g| g.state == SegmentState::Sealed)
        .collect();
    assert!(sealed.len() >= 2, "{info:?}");
    // Subscriptions move forward only.
    c.log
        .commit_subscription(&s, "app", 5, false)
        .await
        .unwrap();
    assert!(matches!(
        c.log.commit_subscription(&s, "app", 3, false).await,
        Err(LogError::Conflict(_))
    ));
    assert_eq!(c.log.fetch_subscription(&s, "app").await.unwrap(), Some(5));
    assert_eq!(c.log.fetch_subscription(&s, "none").await.unwrap(), None);
    // Old enough, but the subscription has not read past the first segment: kept.
    clock.advance(120_000);
    assert!(c.log.enforce_retention(&s).await.unwrap().is_empty());
    // Once it has, the segments it read go.
    let cut = sealed[1].end_offset;
    c.log
        .commit_subscription(&s, "app", cut, false)
        .await
        .unwrap();
    let gone = c.log.enforce_retention(&s).await.unwrap();
    assert_eq!(gone.len(), 2);
    let info = described_end(&c.log, &s, 300).await;
    assert_eq!(info.start_offset, cut);
    let mut r = StreamReader::new(c.log.clone(), s.clone());
    assert!(matches!(
        r.read(0, 1024, Duration::ZERO).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_range(&c.log, &s, cut, cut + 1).await.len(), 1);
    // Truncation moves the start inside a segment; whole segments below it go.
    let end = info.end_offset;
    assert_eq!(c.log.truncate(&s, cut + 7).await.unwrap(), cut + 7);
    assert_eq!(c.log.describe(&s).await.unwrap().start_offset, cut + 7);
    assert!(matches!(
        c.log.truncate(&s, end + 1).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_stream() {
    let c = Cluster::start(Arc::new(SystemClock)).await;
    let (s, w) = c.stream("ns/ending", StreamPolicy::default()).await;
    w.append_wait(batch("last", 2, 10, 0, None)).await.unwrap();
    assert_eq!(w.end_stream().await.unwrap(), 2);
    assert!(matches!(
        StreamWriter::open(&c.log, &s, WriterOptions::default()).await,
        Err(LogError::StreamEnded(_))
    ));
    let mut r = StreamReader::new(c.log.clone(), s.clone());
    let b = r.read(0, 1 << 20, Duration::ZERO).await.unwrap();
    assert_eq!(b.count, 2);
    let b = r.read(2, 1 << 20, Duration::from_secs(5)).await.unwrap();
    assert!(b.end_of_stream && b.count == 0);
    c.stop().await;
}
