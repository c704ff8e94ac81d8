//! Offloading on real bookies (in-process, loopback) and real buckets (a local folder and a
//! SeaweedFS server): sealed segments go to Parquet objects, the manifest and the segment
//! metadata commit them, the bookie copies are reclaimed, and readers see every record in order
//! through both tiers. A crash (fail point) after each step is repaired by running again, with
//! no duplicate object and no bookie copy deleted before its object is committed.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, decode_record_set, encode_record_set};
use dlog_api::stream::{SegmentState, StreamName, StreamPolicy};
use dlog_api::{Compression, LedgerId, Record};
use dlog_ledger::local::{LocalBookie, start_bookies};
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{AppendBatch, Log, StreamReader, StreamWriter, SystemClock, WriterOptions};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};
use dlog_objects::testing::S3Server;
use dlog_objects::{Bucket, Manifests, ObjectReader, UploadOptions};
use dlog_offloader::{OffloadOptions, Offloader};

struct Cluster {
    _dir: tempfile::TempDir,
    log: Log,
    bookies: Vec<LocalBookie>,
}

impl Cluster {
    async fn stop(self) {
        for b in self.bookies {
            b.stop().await;
        }
    }
}

/// An offloader that reclaims bookie copies at once, compacting segments below
/// `compact_below` bytes.
fn offloader(c: &Cluster, bucket: &Bucket, compact_below: u64) -> Offloader {
    let opts = OffloadOptions {
        grace: Duration::ZERO,
        compact_below,
        ..OffloadOptions::default()
    };
    Offloader::new(c.log.clone(), bucket.clone(), opts)
}

async fn cluster(bucket: &Bucket) -> Cluster {
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
    let log = Log::new(
        store.clone(),
        LedgerClient::new(store, o),
        Arc::new(SystemClock),
    )
    .with_objects(ObjectReader::new(bucket.clone(), 16 << 20));
    Cluster {
        _dir: dir,
        log,
        bookies,
    }
}

/// Record `i`: 1 KiB-ish payload naming it, a key on every fifth, timestamp 1000 + i, txid 2i.
fn record(i: u64) -> Record {
    let mut p = format!("rec-{i}-").into_bytes();
    p.resize(900 + (i % 200) as usize, b'x');
    Record {
        payload: Bytes::from(p),
        key: i
            .is_multiple_of(5)
            .then(|| Bytes::from(format!("k{}", i % 7))),
        timestamp_ms: 1_000 + i as i64,
        txid: Some(2 * i),
    }
}

/// Appends records `0..n` in batches of 100 over 1 MiB segments; returns the open writer.
async fn fill(log: &Log, s: &StreamName, n: u64) -> StreamWriter {
    let policy = StreamPolicy {
        segment_bytes: 1 << 20,
        ..StreamPolicy::default()
    };
    log.create_stream(s, policy.clone()).await.unwrap();
    let w = StreamWriter::open(log, s, WriterOptions::default())
        .await
        .unwrap();
    let mut acks = Vec::new();
    for b in 0..n.div_ceil(100) {
        let records: Vec<Record> = (b * 100..((b + 1) * 100).min(n)).map(record).collect();
        let set =
            encode_record_set(&records, Compression::None, &RecordSetLimits::default()).unwrap();
        acks.push(
            w.append(AppendBatch::from_record_set(0, 0, set, &policy).unwrap())
                .await,
        );
    }
    for a in acks {
        a.await.unwrap().unwrap();
    }
    w
}

/// Reads `[0, end)` and checks every record.
async fn read_all(log: &Log, s: &StreamName, end: u64) {
    let mut r = StreamReader::new(log.clone(), s.clone());
    let mut at = 0;
    while at < end {
        let b = r.read(at, 256 << 10, Duration::from_secs(5)).await.unwrap();
        assert!(b.count > 0, "nothing at {at}");
        let mut off = b.first_offset;
        for set in b.sets {
            let limits = RecordSetLimits {
                max_payload: usize::MAX,
                ..RecordSetLimits::default()
            };
            for rec in decode_record_set(set, &limits).unwrap() {
                if off >= at && off < end {
                    assert_eq!(rec, record(off), "offset {off}");
                }
                off += 1;
            }
        }
        at = off;
    }
}

/// Objects in the bucket for `s` (segment files only).
async fn objects(b: &Bucket, s: &StreamName) -> Vec<String> {
    b.list(&format!("streams/{}", s))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".parquet"))
        .collect()
}

/// Staging objects (of multipart uploads) under `dir`.
async fn staged(b: &Bucket, dir: &str) -> Vec<String> {
    b.list(dir)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| dlog_objects::layout::is_staging(k))
        .collect()
}

async fn offload_reclaim_read(bucket: Bucket, upload: UploadOptions) {
    let c = cluster(&bucket).await;
    let s: StreamName = "ns/tiered".parse().unwrap();
    let n = 10_000;
    let w = fill(&c.log, &s, n).await;
    let off = Offloader::new(
        c.log.clone(),
        bucket.clone(),
        OffloadOptions {
            grace: Duration::ZERO,
            compact_below: 0,
            upload,
            ..OffloadOptions::default()
        },
    );
    // (The writer may still seal a full segment after its last ack: offload what the
    // metadata says when it runs.)
    let done = off.offload_stream(&s, |_| true).await.unwrap();
    let info = c.log.describe(&s).await.unwrap();
    let sealed: Vec<_> = info
        .segments
        .iter()
        .filter(|g| g.object_key.is_some())
        .collect();
    assert!(sealed.len() >= 4, "{info:?}");
    assert_eq!(done.len(), sealed.len());
    for g in &sealed {
        assert_eq!(g.state, SegmentState::Sealed);
        assert_eq!(g.tier, "bookies+objects", "{g:?}");
        assert!(g.object_key.as_ref().unwrap().contains("/dt=1970-01-01/"));
    }
    // The manifest lists them, contiguous from 0.
    let m = Manifests::new(bucket.clone())
        .latest(&s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.objects.len(), done.len());
    assert_eq!((m.start_offset, m.objects[0].first_offset), (0, 0));
    assert_eq!(m.end_offset(), sealed.last().unwrap().end_offset);
    // Running again offloads only what was sealed since, and never writes an object twice.
    let more = off.offload_stream(&s, |_| true).await.unwrap();
    assert_eq!(objects(&bucket, &s).await.len(), done.len() + more.len());
    let sealed: Vec<_> = c
        .log
        .describe(&s)
        .await
        .unwrap()
        .segments
        .into_iter()
        .filter(|g| g.object_key.is_some())
        .collect();
    read_all(&c.log, &s, n).await;

    // The bookie copies go; everything is still there, from the objects.
    let reclaimed = off.reclaim(&s).await.unwrap();
    assert!(reclaimed.len() >= sealed.len());
    for g in &sealed {
        assert!(c.log.ledgers().metadata(LedgerId(g.ledger)).await.is_err());
    }
    let info = c.log.describe(&s).await.unwrap();
    assert!(
        info.segments
            .iter()
            .filter(|g| g.object_key.is_some())
            .all(|g| g.tier == "objects")
    );
    read_all(&c.log, &s, n).await;
    let mut r = StreamReader::new(c.log.clone(), s.clone());
    assert_eq!(r.seek_timestamp(1_000 + 1_234).await.unwrap(), 1_234);
    assert_eq!(r.seek_txid(2 * 2_345).await.unwrap(), 2_345);
    // Truncation reaches the bucket: the manifest starts at the new start, and the objects
    // entirely below it are deleted.
    let cut = m.objects[1].first_offset + 10;
    c.log.truncate(&s, cut).await.unwrap();
    let deleted = off.trim(&s).await.unwrap();
    assert_eq!(deleted, [m.objects[0].key.clone()]);
    let trimmed = Manifests::new(bucket.clone())
        .latest(&s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trimmed.start_offset, cut);
    assert_eq!(trimmed.objects[0].key, m.objects[1].key);
    assert!(!objects(&bucket, &s).await.contains(&m.objects[0].key));
    assert!(off.trim(&s).await.unwrap().is_empty());
    // The writer goes on in the open segment.
    w.close().await.unwrap();
    c.stop().await;
}

/// A cluster lost whole (metadata and bookies): a new one restores the streams from the
/// bucket, reads the offloaded history, and appends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_restores_the_streams_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local(&dir.path().join("objects")).unwrap();
    let n;
    {
        let c = cluster(&bucket).await;
        let s: StreamName = "ns/kept".parse().unwrap();
        let w = fill(&c.log, &s, 10_000).await;
        w.roll().await.unwrap();
        let off = Offloader::new(c.log.clone(), bucket.clone(), OffloadOptions::default());
        off.offload_stream(&s, |_| true).await.unwrap();
        n = Manifests::new(bucket.clone())
            .latest(&s)
            .await
            .unwrap()
            .unwrap()
            .end_offset();
        assert_eq!(n, 10_000);
        w.close().await.unwrap();
        c.stop().await;
    } // the first cluster's metadata and bookies are gone with its temporary folder
    let c = cluster(&bucket).await;
    let s: StreamName = "ns/kept".parse().unwrap();
    let r = dlog_offloader::restore(&c.log, &bucket).await.unwrap();
    assert_eq!(
        r,
        [(
            s.clone(),
            dlog_offloader::Restored::Created {
                segments: count_objects(&bucket, &s).await,
                start: 0,
                end: n
            }
        )]
    );
    let info = c.log.describe(&s).await.unwrap();
    assert_eq!(info.end_offset, n);
    assert_eq!(
        info.policy.segment_bytes,
        1 << 20,
        "the policy came from the manifest"
    );
    assert!(info.segments.iter().all(|g| g.tier == "objects"));
    read_all(&c.log, &s, n).await;
    // A writer goes on after the restored history.
    let w = StreamWriter::open(&c.log, &s, WriterOptions::default())
        .await
        .unwrap();
    let set =
        encode_record_set(&[record(n)], Compression::None, &RecordSetLimits::default()).unwrap();
    let a = w
        .append_wait(AppendBatch::from_record_set(0, 0, set, &info.policy).unwrap())
        .await
        .unwrap();
    assert_eq!(a.first_offset, n);
    read_all(&c.log, &s, n + 1).await;
    // Restoring again leaves the live stream alone.
    assert_eq!(
        dlog_offloader::restore(&c.log, &bucket).await.unwrap(),
        [(s.clone(), dlog_offloader::Restored::Exists)]
    );
    w.close().await.unwrap();
    c.stop().await;
}

async fn count_objects(b: &Bucket, s: &StreamName) -> usize {
    objects(b, s).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_to_a_local_folder_then_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    offload_reclaim_read(
        Bucket::local(&dir.path().join("objects")).unwrap(),
        UploadOptions::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_to_an_s3_server_then_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    offload_reclaim_read(server.bucket("cluster-a").await, UploadOptions::default()).await;
}

/// The same with every object uploaded in parts: staging key, parts, conditional copy on a
/// real S3-compatible server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_to_an_s3_server_in_parts_then_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    let bucket = server.bucket("cluster-b").await;
    let every_object_in_parts = UploadOptions {
        multipart_threshold: 0,
        part_size: 5 << 20,
        concurrency: 2,
    };
    offload_reclaim_read(bucket.clone(), every_object_in_parts).await;
    let staged = staged(&bucket, "streams").await;
    assert!(staged.is_empty(), "{staged:?}");
}

/// A crash after each step leaves a state that the next run completes: one object per
/// segment, a contiguous manifest, and bookie copies deleted only after their commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_step_is_repaired_by_running_again() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local(&dir.path().join("objects")).unwrap();
    let c = cluster(&bucket).await;
    let s: StreamName = "ns/crashy".parse().unwrap();
    let n = 10_000;
    let w = fill(&c.log, &s, n).await;
    let off = offloader(&c, &bucket, 5 << 20);
    let steps = [
        "offload::uploaded",
        "offload::verified",
        "offload::manifest_committed",
        "offload::metadata_committed",
    ];
    let mut rounds = 0;
    loop {
        let step = steps[rounds % steps.len()];
        fail::cfg(step, "return").unwrap();
        let r = off.offload_stream(&s, |_| true).await;
        fail::remove(step);
        rounds += 1;
        match r {
            Err(e) => assert!(e.to_string().contains(step), "{e}"),
            Ok(done) => {
                assert!(done.is_empty(), "{done:?}");
                break;
            }
        }
        // Nothing is reclaimed while a segment's offload has not committed.
        fail::cfg("offload::before_reclaim", "return").unwrap();
        let stopped = off.reclaim(&s).await;
        fail::remove("offload::before_reclaim");
        let info = c.log.describe(&s).await.unwrap();
        let committed = info
            .segments
            .iter()
            .filter(|g| g.object_key.is_some())
            .count();
        assert!(stopped.is_err() || committed == 0);
        for g in &info.segments {
            assert!(c.log.ledgers().metadata(LedgerId(g.ledger)).await.is_ok());
        }
        assert!(rounds < 100, "offload never finished");
    }
    let info = c.log.describe(&s).await.unwrap();
    let offloaded: Vec<_> = info
        .segments
        .iter()
        .filter(|g| g.object_key.is_some())
        .collect();
    assert!(offloaded.len() >= 4);
    // Exactly the manifest's objects in the bucket, contiguous, every segment in one of them,
    // and compacted: fewer objects than segments.
    let keys = objects(&bucket, &s).await;
    assert!(keys.len() < offloaded.len(), "{keys:?}");
    let m = Manifests::new(bucket.clone())
        .latest(&s)
        .await
        .unwrap()
        .unwrap();
    let mut in_manifest: Vec<String> = m.objects.iter().map(|o| o.key.clone()).collect();
    in_manifest.sort();
    assert_eq!(in_manifest, keys);
    m.validate().unwrap();
    for g in &offloaded {
        let o = m.find(g.first_offset).unwrap();
        assert_eq!(Some(&o.key), g.object_key.as_ref());
        assert!(o.segments.contains(&g.seq) && o.end_offset >= g.end_offset);
    }
    off.reclaim(&s).await.unwrap();
    read_all(&c.log, &s, n).await;
    w.close().await.unwrap();
    c.stop().await;
}

/// Object store faults — server errors, lost replies to writes that happened, latency — make
/// offload attempts fail (retryably), never lose or duplicate anything: running again until
/// done leaves one verified object per segment in a contiguous manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_faults_lose_and_duplicate_nothing() {
    faults_lose_and_duplicate_nothing(UploadOptions::default()).await;
}

/// The same with every object uploaded in parts (staging key, parts, conditional copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_faults_during_multipart_uploads_lose_and_duplicate_nothing() {
    faults_lose_and_duplicate_nothing(UploadOptions {
        multipart_threshold: 0,
        part_size: 5 << 20,
        concurrency: 2,
    })
    .await;
}

async fn faults_lose_and_duplicate_nothing(upload: UploadOptions) {
    use dlog_objects::testing::{Faults, FaultyStore};
    let dir = tempfile::tempdir().unwrap();
    let clean = Bucket::local(&dir.path().join("objects")).unwrap();
    let faulty = Arc::new(FaultyStore::new(clean.store().clone(), 7));
    let bucket = Bucket::from_store(faulty.clone(), "", "faulty://objects");
    let c = cluster(&clean).await;
    let s: StreamName = "ns/faulty".parse().unwrap();
    let w = fill(&c.log, &s, 10_000).await;
    w.roll().await.unwrap();
    let off = Offloader::new(
        c.log.clone(),
        bucket.clone(),
        OffloadOptions {
            grace: Duration::ZERO,
            upload,
            ..OffloadOptions::default()
        },
    );
    faulty.set(Faults {
        error: 0.15,
        lost_reply: 0.3,
        latency: Duration::from_millis(1),
    });
    let mut failures = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 500, "offload never finished under faults");
        match off.offload_stream(&s, |_| true).await {
            Ok(done) if done.is_empty() => break,
            Ok(_) => {}
            Err(e) => {
                assert!(
                    matches!(e, dlog_log::LogError::Unavailable(_)),
                    "a fault must be retryable: {e}"
                );
                failures += 1;
                // No bookie copy goes while faults interrupt offloads: reclaim only what
                // committed.
                let _ = off.reclaim(&s).await;
            }
        }
    }
    assert!(failures > 0, "no fault was injected");
    faulty.set(Faults::default());
    off.reclaim(&s).await.unwrap();
    let info = c.log.describe(&s).await.unwrap();
    let sealed: Vec<_> = info
        .segments
        .iter()
        .filter(|g| g.end_offset > g.first_offset && g.state == SegmentState::Sealed)
        .collect();
    assert!(sealed.iter().all(|g| g.tier == "objects"), "{info:?}");
    let keys = objects(&clean, &s).await;
    let m = Manifests::new(clean.clone())
        .latest(&s)
        .await
        .unwrap()
        .unwrap();
    let mut in_manifest: Vec<String> = m.objects.iter().map(|o| o.key.clone()).collect();
    in_manifest.sort();
    assert_eq!(in_manifest, keys, "no object beyond the manifest's");
    let staged = staged(&clean, &format!("streams/{s}")).await;
    assert!(staged.is_empty(), "staging objects left: {staged:?}");
    m.validate().unwrap();
    assert_eq!((m.start_offset, m.end_offset()), (0, 10_000));
    read_all(&c.log, &s, 10_000).await;
    w.close().await.unwrap();
    c.stop().await;
}

/// The scrubber finds a planted orphan and deletes it, keeps the object of an offload still
/// in flight, and reports an object the manifest lists but the bucket lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_finds_orphans_and_missing_objects() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local(&dir.path().join("objects")).unwrap();
    let c = cluster(&bucket).await;
    let s: StreamName = "ns/scrubbed".parse().unwrap();
    let w = fill(&c.log, &s, 10_000).await;
    w.roll().await.unwrap();
    let off = Offloader::new(c.log.clone(), bucket.clone(), OffloadOptions::default());
    // Offload all but the last sealed segment; the last one's upload "crashes" after upload.
    let info = c.log.describe(&s).await.unwrap();
    let last_sealed = info
        .segments
        .iter()
        .filter(|g| g.state == SegmentState::Sealed && g.end_offset > g.first_offset)
        .map(|g| g.seq)
        .max()
        .unwrap();
    off.offload_stream(&s, |g| g.seq < last_sealed)
        .await
        .unwrap();
    fail::cfg("offload::uploaded", "return").unwrap();
    assert!(off.offload_stream(&s, |_| true).await.is_err());
    fail::remove("offload::uploaded");
    // A planted orphan: a copy of a committed object under another range's name.
    let m = Manifests::new(bucket.clone())
        .latest(&s)
        .await
        .unwrap()
        .unwrap();
    let planted =
        "streams/ns/scrubbed/dt=1970-01-01/00000000000099999000-00000000000099999999.parquet";
    bucket
        .put_new(planted, bucket.get(&m.objects[0].key).await.unwrap())
        .await
        .unwrap();
    // A staging object a crash left behind, for a committed range.
    let staged = dlog_objects::layout::staging_key(&m.objects[0].key, 42);
    bucket
        .put_new(&staged, bytes::Bytes::from_static(b"part"))
        .await
        .unwrap();
    let r = dlog_offloader::scrub(&c.log, &bucket, &s, true, 0)
        .await
        .unwrap();
    // The planted one, the staging one and the in-flight one.
    assert_eq!(r.orphans.len(), 3, "{r:?}");
    let mut deleted = r.deleted.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        [staged, planted.to_string()],
        "the in-flight object is kept"
    );
    assert!(r.missing.is_empty());
    // The interrupted offload completes with the object the scrubber kept.
    let done = off.offload_stream(&s, |_| true).await.unwrap();
    assert_eq!((done.len(), done[0].reused), (1, true));
    let r = dlog_offloader::scrub(&c.log, &bucket, &s, true, 0)
        .await
        .unwrap();
    assert_eq!(r, dlog_offloader::ScrubReport::default());
    // A lost object is reported.
    bucket.delete(&m.objects[0].key).await.unwrap();
    let r = dlog_offloader::scrub(&c.log, &bucket, &s, false, 0)
        .await
        .unwrap();
    assert_eq!(r.missing, [m.objects[0].key.clone()]);
    w.close().await.unwrap();
    c.stop().await;
}
