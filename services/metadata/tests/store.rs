//! The metadata store against its conformance suite — embedded in a temporary folder, and on a
//! real etcd server started here — plus what only one backend has: persistence across reopen,
//! bounded watch history, and an etcd restart under a live watch.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_metadata::testing::Etcd;
use dlog_metadata::{
    EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Expect, MetadataError, MetadataStore,
    WatchEvent, conformance,
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn embedded(dir: &Path) -> Arc<dyn MetadataStore> {
    Arc::new(
        EmbeddedStore::open(dir, EmbeddedOptions::default())
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(embedded(dir.path()).await, "suite/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let store = Arc::new(etcd.connect("/conformance/").await);
    conformance::run_all(store, "suite/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_roots_keep_clusters_apart() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let a = etcd.connect("/a/").await;
    let b = etcd.connect("/ab/").await;
    a.put("k", Bytes::from_static(b"in a"), Expect::Absent)
        .await
        .unwrap();
    b.put("k", Bytes::from_static(b"in ab"), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(&a.get("k").await.unwrap().unwrap().value[..], b"in a");
    let la = a.list("").await.unwrap();
    assert_eq!(la.kvs.len(), 1);
    assert_eq!(la.kvs[0].key, "k");
}

/// A watch on etcd keeps delivering every change, exactly once and in order, while etcd is
/// killed with -9 and restarted under it, and while commits fail during the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_misses_nothing_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(dir.path());
    let store = etcd.connect("/restart/").await;
    let start = store.list("w/").await.unwrap().revision;
    let mut w = store.watch("w/", start).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(
            store
                .put(
                    &format!("w/{i}"),
                    Bytes::from(i.to_string()),
                    Expect::Absent,
                )
                .await
                .unwrap(),
        );
    }
    etcd.kill9();
    // Unavailable, not a hang and not a panic.
    let r = store
        .put("w/during", Bytes::from_static(b"x"), Expect::Absent)
        .await;
    assert!(matches!(r, Err(MetadataError::Unavailable(_))), "{r:?}");
    etcd.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut i = 20;
    while i < 40 {
        match store
            .put(
                &format!("w/{i}"),
                Bytes::from(i.to_string()),
                Expect::Absent,
            )
            .await
        {
            Ok(r) => {
                acked.push(r);
                i += 1;
            }
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("etcd did not come back: {e}"),
        }
    }
    for (i, rev) in acked.iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
            Ok(Some(Ok(WatchEvent::Put(kv)))) => {
                assert_eq!(
                    (kv.key.as_str(), kv.mod_revision),
                    (format!("w/{i}").as_str(), *rev)
                );
            }
            other => panic!("event {i}: expected the put at revision {rev}, got {other:?}"),
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), w.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_from_a_compacted_revision_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let store = etcd.connect("/compact/").await;
    let first = store
        .put("k", Bytes::from_static(b"1"), Expect::Any)
        .await
        .unwrap();
    let last = store
        .put("k", Bytes::from_static(b"2"), Expect::Any)
        .await
        .unwrap();
    let status = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "compact",
            &last.to_string(),
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let mut w = store.watch("", first - 1).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(MetadataError::Compacted { oldest, .. }))) => assert!(oldest >= last),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_that_is_not_there_is_a_clear_error() {
    let mut o = EtcdOptions::new(vec![format!("127.0.0.1:{}", free_port())]);
    o.connect_timeout = Duration::from_secs(1);
    o.request_timeout = Duration::from_secs(1);
    let t = std::time::Instant::now();
    let e = EtcdStore::connect(o).await.unwrap_err();
    assert!(matches!(e, MetadataError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = EtcdStore::connect(EtcdOptions::new(vec![]))
        .await
        .unwrap_err();
    assert!(matches!(e, MetadataError::Invalid(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_keeps_everything_across_reopen_except_leased_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (rev, id) = {
        let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
            .await
            .unwrap();
        s.put("a", Bytes::from_static(b"1"), Expect::Absent)
            .await
            .unwrap();
        let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        s.put_leased("eph", Bytes::from_static(b"x"), Expect::Absent, lease)
            .await
            .unwrap();
        let id = s.next_id("ledgers").await.unwrap();
        (
            s.put("b", Bytes::from_static(b"2"), Expect::Absent)
                .await
                .unwrap(),
            id,
        )
    };
    let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let b = s.get("b").await.unwrap().unwrap();
    assert_eq!((&b.value[..], b.mod_revision), (&b"2"[..], rev));
    assert!(s.get("a").await.unwrap().is_some());
    // The lease died with the previous run, and so did its key.
    assert_eq!(s.get("eph").await.unwrap(), None);
    assert!(s.list("").await.unwrap().revision > rev);
    // Counters continue; revisions continue upward.
    assert_eq!(s.next_id("ledgers").await.unwrap(), id + 1);
    assert!(s.put("c", Bytes::new(), Expect::Absent).await.unwrap() > rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let _s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let e = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("another process"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_watch_past_its_history_is_compacted_not_gappy() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            history_bytes: 4096,
        },
    )
    .await
    .unwrap();
    let first = s
        .put("k", Bytes::from(vec![1u8; 100]), Expect::Any)
        .await
        .unwrap();
    // A slow watcher: created at the start, not read until history has moved on.
    let mut slow = s.watch("", first).await.unwrap();
    for _ in 0..100 {
        s.put("k", Bytes::from(vec![1u8; 100]), Expect::Any)
            .await
            .unwrap();
    }
    let e = s.watch("", first).await.unwrap_err();
    assert!(matches!(e, MetadataError::Compacted { .. }), "{e}");
    // The slow one either got its events in order before history moved, or ends with
    // Compacted: never a gap.
    let mut last = first;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), slow.next()).await {
            Ok(Some(Ok(ev))) => {
                assert_eq!(ev.revision(), last + 1, "gap after {last}");
                last = ev.revision();
            }
            Ok(Some(Err(MetadataError::Compacted { .. }))) => break,
            Err(_) => {
                // Drained everything: then it must have seen all 100.
                assert_eq!(last, first + 100);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_failed_write_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
        .await
        .unwrap();
    let r0 = s
        .put("k", Bytes::from_static(b"before"), Expect::Absent)
        .await
        .unwrap();
    let mut w = s.watch("", r0).await.unwrap();
    fail::cfg("metadata::embedded::write", "return").unwrap();
    let e = s
        .put("k", Bytes::from_static(b"after"), Expect::Any)
        .await
        .unwrap_err();
    fail::remove("metadata::embedded::write");
    assert!(matches!(e, MetadataError::Unavailable(_)), "{e}");
    let kv = s.get("k").await.unwrap().unwrap();
    assert_eq!((&kv.value[..], kv.mod_revision), (&b"before"[..], r0));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), w.next())
            .await
            .is_err()
    );
    let r1 = s
        .put("k", Bytes::from_static(b"again"), Expect::Version(r0))
        .await
        .unwrap();
    assert_eq!(r1, r0 + 1);
}
