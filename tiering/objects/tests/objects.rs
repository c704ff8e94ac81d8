//! The object tier's conformance suite, run against a local folder and against a real
//! S3-compatible server (SeaweedFS on 127.0.0.1, started here): conditional creates, ranged
//! reads, listing, Parquet segment objects written, read back whole and by offset, manifests
//! committed with conditional creates; and the files read by pyarrow and DuckDB.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use bytes::Bytes;
use dlog_api::Record;
use dlog_api::stream::StreamName;
use dlog_objects::layout::{manifest_key, segment_key, stream_dir};
use dlog_objects::segment::decode;
use dlog_objects::testing::S3Server;
use dlog_objects::{
    Bucket, Manifest, Manifests, ObjectEntry, ObjectError, ObjectReader, SegmentOptions,
    SegmentWriter, UploadOptions,
};
use object_store::ObjectStoreExt;

/// A record at `offset`: varied sizes, every third with a key, txids from 100 on.
fn record(offset: u64) -> Record {
    let mut payload = format!("payload-{offset}-").into_bytes();
    payload.resize(
        20 + (offset as usize * 37) % 3000,
        b'a' + (offset % 26) as u8,
    );
    Record {
        payload: Bytes::from(payload),
        key: offset
            .is_multiple_of(3)
            .then(|| Bytes::from(format!("key-{}", offset % 10))),
        timestamp_ms: 1_764_115_200_000 + offset as i64,
        txid: (offset >= 100).then_some(offset * 2),
    }
}

/// Writes records `[first, end)` as one object and returns its manifest entry.
async fn put_segment(b: &Bucket, s: &StreamName, first: u64, end: u64, seq: u64) -> ObjectEntry {
    let opts = SegmentOptions {
        row_group_bytes: 64 << 10,
        ..SegmentOptions::default()
    };
    let mut w = SegmentWriter::new(s, first, opts).unwrap();
    for o in first..end {
        w.push(o, &record(o)).unwrap();
    }
    // Offsets are dense: a gap is refused.
    assert!(matches!(
        w.push(end + 1, &record(end + 1)),
        Err(ObjectError::Invalid(_))
    ));
    let (bytes, sum) = w.finish(&[seq]).unwrap();
    let key = segment_key(s, first, end - 1, sum.first_timestamp_ms.unwrap());
    b.put_new(&key, bytes.clone()).await.unwrap();
    ObjectEntry::new(key, bytes.len() as u64, &sum, vec![seq], 0)
}

async fn suite(b: Bucket) {
    // Conditional create: a key is written once.
    b.put_new("t/a", Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(
        b.put_new("t/a", Bytes::from_static(b"two")).await,
        Err(ObjectError::AlreadyExists("t/a".into()))
    );
    assert_eq!(b.get("t/a").await.unwrap(), Bytes::from_static(b"one"));
    b.put_new("t/b/c", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(
        b.get_range("t/b/c", 2..5).await.unwrap(),
        Bytes::from_static(b"234")
    );
    assert_eq!(b.head("t/b/c").await.unwrap().size, 10);
    let keys: Vec<String> = b
        .list("t")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["t/a", "t/b/c"]);
    assert_eq!(b.list_dirs("t").await.unwrap(), ["b"]);
    assert!(matches!(
        b.get("t/none").await,
        Err(ObjectError::NotFound(_))
    ));
    b.delete("t/a").await.unwrap();
    b.delete("t/a").await.unwrap(); // deleting twice is fine
    assert!(matches!(b.get("t/a").await, Err(ObjectError::NotFound(_))));

    // Segment objects: written, decoded whole, read by offset through the cache.
    let s: StreamName = "ns/orders".parse().unwrap();
    let e1 = put_segment(&b, &s, 0, 3000, 0).await;
    let e2 = put_segment(&b, &s, 3000, 3500, 1).await;
    let d = decode(&e1.key, b.get(&e1.key).await.unwrap()).unwrap();
    assert_eq!(
        (d.stream.as_str(), d.segments.as_slice()),
        ("ns/orders", &[0u64][..])
    );
    assert_eq!(d.summary.crc32c, e1.crc32c);
    assert_eq!(d.records.len(), 3000);
    for (o, r) in &d.records {
        assert_eq!(r, &record(*o), "offset {o}");
    }
    assert_eq!((e1.min_txid, e1.max_txid), (Some(200), Some(5998)));
    let reader = ObjectReader::new(b.clone(), 64 << 20);
    for from in [0u64, 1, 777, 2999] {
        let got = reader.read(&e1, from, 100 << 10).await.unwrap();
        assert_eq!(got[0].0, from);
        for (o, r) in &got {
            assert_eq!(r, &record(*o));
        }
        let bytes: usize = got.iter().map(|(_, r)| r.payload.len()).sum();
        assert!(
            bytes >= (100 << 10) || got.last().unwrap().0 == 2999,
            "{from}"
        );
    }
    assert!(matches!(
        reader.read(&e1, 3000, 1).await,
        Err(ObjectError::Invalid(_))
    ));

    // Manifests: versions are created once; the newest is found.
    let ms = Manifests::new(b.clone());
    assert_eq!(ms.latest(&s).await.unwrap(), None);
    let mut m = Manifest::empty(&s);
    m.version = 1;
    m.objects.push(e1.clone());
    ms.commit(&m).await.unwrap();
    assert!(matches!(
        ms.commit(&m).await,
        Err(ObjectError::ManifestConflict { version: 1, .. })
    ));
    m.version = 2;
    m.objects.push(e2.clone());
    ms.commit(&m).await.unwrap();
    let latest = ms.latest(&s).await.unwrap().unwrap();
    assert_eq!(latest, m);
    assert_eq!(latest.find(3200).unwrap().key, e2.key);
    assert_eq!(latest.find(2999).unwrap().key, e1.key);
    assert_eq!(latest.find(3500), None);
    assert_eq!(ms.streams().await.unwrap(), std::slice::from_ref(&s));
    // A manifest with a hole is refused before it is written.
    let mut bad = m.clone();
    bad.version = 3;
    bad.objects.remove(0);
    bad.objects.insert(
        0,
        ObjectEntry {
            end_offset: 2000,
            ..e1.clone()
        },
    );
    assert!(matches!(
        ms.commit(&bad).await,
        Err(ObjectError::Invalid(_))
    ));
    // A damaged newest version is reported, not skipped.
    b.put_new(&manifest_key(&s, 9), Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    assert!(matches!(
        ms.latest(&s).await,
        Err(ObjectError::Corrupt { .. })
    ));

    // A damaged object is caught by its checksum or by Parquet.
    let mut raw = b.get(&e2.key).await.unwrap().to_vec();
    let mid = raw.len() / 3;
    raw[mid] ^= 0x55;
    let raw = Bytes::from(raw);
    assert!(matches!(
        decode("damaged", raw.clone()),
        Err(ObjectError::Corrupt { .. })
    ));
    assert!(matches!(
        dlog_objects::segment::check("damaged", raw),
        Err(ObjectError::Corrupt { .. })
    ));
    let good = dlog_objects::segment::check(&e2.key, b.get(&e2.key).await.unwrap()).unwrap();
    assert_eq!((good.summary.crc32c, good.records.len()), (e2.crc32c, 0));

    large_objects(&b).await;
}

/// 13 MiB that do not repeat.
fn big_bytes() -> Bytes {
    let mut rng = fastrand::Rng::with_seed(13);
    (0..13 << 20)
        .map(|_| rng.u8(..))
        .collect::<Vec<u8>>()
        .into()
}

/// Parts of 5 MiB (S3's smallest), two in flight, for anything from 6 MiB.
fn small_parts() -> UploadOptions {
    UploadOptions {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        concurrency: 2,
    }
}

/// Large objects: uploaded in parts to a staging key, then copied with a conditional copy; the
/// key is never overwritten and no staging object stays behind.
async fn large_objects(b: &Bucket) {
    let up = small_parts();
    let big = big_bytes();
    let s: StreamName = "ns/big".parse().unwrap();
    let key = segment_key(&s, 0, 9, 0);
    b.put_new_with(&key, big.clone(), &up).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap(), big);
    assert_eq!(
        b.put_new_with(&key, Bytes::from(vec![7u8; 7 << 20]), &up)
            .await,
        Err(ObjectError::AlreadyExists(key.clone()))
    );
    // The conditional copy itself refuses a taken key (two uploaders that both found the key
    // free before their uploads).
    b.put_new("t/staged", Bytes::from_static(b"other"))
        .await
        .unwrap();
    let e = b
        .store()
        .copy_if_not_exists(&b.path("t/staged"), &b.path(&key))
        .await
        .unwrap_err();
    assert!(
        matches!(e, object_store::Error::AlreadyExists { .. }),
        "{e}"
    );
    assert_eq!(b.get(&key).await.unwrap(), big);
    // Below the threshold: one PUT, conditional as well.
    let small = segment_key(&s, 10, 19, 0);
    b.put_new_with(&small, big.slice(..1 << 20), &up)
        .await
        .unwrap();
    assert_eq!(
        b.put_new_with(&small, big.slice(..1 << 20), &up).await,
        Err(ObjectError::AlreadyExists(small.clone()))
    );
    let keys: Vec<String> = b
        .list(&stream_dir(&s))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, [key, small], "no staging object stays");
    // Settings outside S3's limits are refused.
    for bad in [
        UploadOptions {
            part_size: 1 << 20,
            ..UploadOptions::default()
        },
        UploadOptions {
            concurrency: 0,
            ..UploadOptions::default()
        },
        UploadOptions {
            multipart_threshold: 6 << 30,
            ..UploadOptions::default()
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(ObjectError::Invalid(_))),
            "{bad:?}"
        );
    }
}

/// Server errors on parts and completions, lost replies to copies: retrying until done leaves
/// exactly the uploaded bytes at the key and nothing in staging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_survive_store_faults() {
    use dlog_objects::testing::{Faults, FaultyStore};
    let dir = tempfile::tempdir().unwrap();
    let clean = Bucket::local(&dir.path().join("objects")).unwrap();
    let faulty = std::sync::Arc::new(FaultyStore::new(clean.store().clone(), 11));
    let b = Bucket::from_store(faulty.clone(), "", "faulty://objects");
    faulty.set(Faults {
        error: 0.2,
        lost_reply: 0.5,
        latency: std::time::Duration::ZERO,
    });
    let s: StreamName = "ns/faulty-big".parse().unwrap();
    let big = big_bytes();
    for i in 0..4u64 {
        let key = segment_key(&s, i * 10, i * 10 + 9, 0);
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(tries < 100, "{key}: never uploaded");
            match b.put_new_with(&key, big.clone(), &small_parts()).await {
                Ok(()) | Err(ObjectError::AlreadyExists(_)) => break,
                Err(e) => assert!(e.is_retryable(), "{e}"),
            }
        }
        assert_eq!(clean.get(&key).await.unwrap(), big, "{key}");
    }
    assert!(
        faulty.injected.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no fault was injected"
    );
    let keys = clean.list(&stream_dir(&s)).await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Bucket::local(&dir.path().join("objects")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    suite(server.bucket("clusters/one").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    let good = server.bucket("p").await;
    good.put_new("k", Bytes::from_static(b"v")).await.unwrap();
    let mut o = server.options();
    o.secret_access_key = Some("wrong".into());
    let bad = Bucket::open(&format!("s3://{}/p", dlog_objects::testing::BUCKET), &o).unwrap();
    let e = bad.get("k").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

/// pyarrow and DuckDB (from scripts/test's venv) read what dlog wrote: every offset, payload
/// sizes, keys, txids, and the Hive `dt` partition. (`offset` is an SQL keyword: quote it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let b = Bucket::local(&root).unwrap();
    let s: StreamName = "ns/orders".parse().unwrap();
    put_segment(&b, &s, 0, 3000, 0).await;
    put_segment(&b, &s, 3000, 3500, 1).await;
    let payload_bytes: usize = (0..3500).map(|o| record(o).payload.len()).sum();
    let venv = std::env::var("DLOG_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/../../target/test-venv", env!("CARGO_MANIFEST_DIR")));
    let py = r#"
import sys, pyarrow.dataset as ds, duckdb
root = sys.argv[1]
t = ds.dataset(root + "/streams/ns/orders", format="parquet", partitioning="hive").to_table()
t = t.sort_by("offset")
offs = t.column("offset").to_pylist()
assert offs == list(range(3500)), "offsets"
pay = t.column("payload").to_pylist()
print("pyarrow", len(offs), sum(len(p) for p in pay), str(t.schema.field("dt").type))
keys = t.column("key").to_pylist()
assert keys[3] == b"key-3" and keys[1] is None
tx = t.column("txid").to_pylist()
assert tx[99] is None and tx[100] == 200
con = duckdb.connect()
n, total, first, lastkey = con.execute(
  'SELECT count(*), sum(octet_length(payload)), min("offset"), max(dt) FROM read_parquet(?, hive_partitioning=true)',
  [root + "/streams/ns/orders/*/*.parquet"]).fetchone()
print("duckdb", n, total, first, lastkey)
by_key = con.execute(
  "SELECT key, count(*) FROM read_parquet(?) WHERE key IS NOT NULL GROUP BY key ORDER BY key",
  [root + "/streams/ns/orders/*/*.parquet"]).fetchall()
print("keys", len(by_key), sum(c for _, c in by_key))
"#;
    let out = Command::new(format!("{venv}/bin/python"))
        .arg("-c")
        .arg(py)
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("run {venv}/bin/python ({e}): scripts/test creates the venv"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("pyarrow 3500 {payload_bytes} ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("duckdb 3500 {payload_bytes} 0 2025-11-26")),
        "{stdout}"
    );
    assert!(stdout.contains("keys 10 1167"), "{stdout}");
}
