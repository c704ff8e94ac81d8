//! The conformance suite every [`MetadataStore`] backend must pass (built with the `testing`
//! feature). Each case works under its own key prefix, so one store — even a shared etcd —
//! can run the whole suite, and so can several runs at once.
//!
//! A failed check panics with what was expected: this is test code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::MetadataError;
use crate::store::{Expect, MetadataStore, Op, WatchEvent};
use crate::{LeaseKeeper, Watch};

/// A store shared by the concurrent cases.
pub type Shared = Arc<dyn MetadataStore>;

/// Runs every case, under `prefix` (which should be unique to this run).
pub async fn run_all(store: Shared, prefix: &str) {
    macro_rules! case {
        ($name:ident) => {{
            eprintln!("conformance: {}", stringify!($name));
            $name(store.clone(), &format!("{prefix}{}/", stringify!($name))).await;
        }};
    }
    case!(put_get_and_compare_and_set);
    case!(commits_are_atomic);
    case!(revisions_increase);
    case!(list_is_by_prefix_and_ordered);
    case!(watch_delivers_changes_in_order);
    case!(watch_resumes_from_a_past_revision);
    case!(watch_ends_when_dropped_and_others_continue);
    case!(leases_bind_keys);
    case!(unkept_lease_expires);
    case!(lease_keeper_keeps_and_revokes);
    case!(ids_are_unique_under_contention);
    case!(compare_and_set_is_linearizable);
    case!(bad_requests_are_invalid);
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn is_conflict<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(MetadataError::Conflict { .. }))
}

async fn next_event(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

async fn no_event(w: &mut Watch) {
    if let Ok(x) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        panic!("expected no watch event, got {x:?}");
    }
}

pub async fn put_get_and_compare_and_set(s: Shared, p: &str) {
    let k = format!("{p}k");
    assert_eq!(s.get(&k).await.unwrap(), None);
    let r1 = s.put(&k, b("v1"), Expect::Absent).await.unwrap();
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!((kv.key.as_str(), &kv.value[..]), (k.as_str(), &b"v1"[..]));
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.lease),
        (r1, r1, None)
    );
    assert!(is_conflict(s.put(&k, b("again"), Expect::Absent).await));
    let r2 = s.put(&k, b("v2"), Expect::Version(r1)).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (&kv.value[..], kv.create_revision, kv.mod_revision),
        (&b"v2"[..], r1, r2)
    );
    // A stale version is refused, and says which key and what it found.
    match s.put(&k, b("stale"), Expect::Version(r1)).await {
        Err(MetadataError::Conflict { key, .. }) => assert_eq!(key, k),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(is_conflict(s.delete(&k, Expect::Version(r1)).await));
    assert!(is_conflict(
        s.put(&format!("{p}absent"), b("x"), Expect::Version(r2))
            .await
    ));
    s.delete(&k, Expect::Version(r2)).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
    // Deleting an absent key: fine without an expectation, a conflict with one.
    s.delete(&k, Expect::Any).await.unwrap();
    assert!(is_conflict(s.delete(&k, Expect::Version(r2)).await));
    // Recreated, it starts a new life.
    let r3 = s.put(&k, b("v3"), Expect::Any).await.unwrap();
    let kv = s.get(&k).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r3, r3));
    // Values are bytes, any bytes, including empty.
    s.put(&k, Bytes::from_static(&[0, 255, 1]), Expect::Any)
        .await
        .unwrap();
    assert_eq!(&s.get(&k).await.unwrap().unwrap().value[..], &[0, 255, 1]);
    s.put(&k, Bytes::new(), Expect::Any).await.unwrap();
    assert!(s.get(&k).await.unwrap().unwrap().value.is_empty());
}

pub async fn commits_are_atomic(s: Shared, p: &str) {
    let (a, bk, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let ra = s.put(&a, b("a1"), Expect::Absent).await.unwrap();
    // One failed expectation: nothing applies.
    let r = s
        .commit(vec![
            Op::put(&a, b("a2"), Expect::Version(ra)),
            Op::put(&bk, b("b1"), Expect::Version(ra)),
        ])
        .await;
    match r {
        Err(MetadataError::Conflict { key, .. }) => assert_eq!(key, bk),
        other => panic!("expected a conflict on {bk}, got {other:?}"),
    }
    assert_eq!(&s.get(&a).await.unwrap().unwrap().value[..], b"a1");
    assert_eq!(s.get(&bk).await.unwrap(), None);
    // All hold: everything applies at one revision.
    let rev = s
        .commit(vec![
            Op::put(&a, b("a2"), Expect::Version(ra)),
            Op::put(&bk, b("b1"), Expect::Absent),
            Op::put(&c, b("c1"), Expect::Any),
        ])
        .await
        .unwrap();
    for k in [&a, &bk, &c] {
        assert_eq!(s.get(k).await.unwrap().unwrap().mod_revision, rev);
    }
    let rev2 = s
        .commit(vec![
            Op::delete(&a, Expect::Version(rev)),
            Op::delete(&bk, Expect::Any),
        ])
        .await
        .unwrap();
    assert!(rev2 > rev);
    assert_eq!(s.get(&a).await.unwrap(), None);
    assert_eq!(s.get(&bk).await.unwrap(), None);
    assert!(s.get(&c).await.unwrap().is_some());
}

pub async fn revisions_increase(s: Shared, p: &str) {
    let mut last = 0;
    for i in 0..20 {
        let r = s
            .put(&format!("{p}k{}", i % 3), b(&i.to_string()), Expect::Any)
            .await
            .unwrap();
        assert!(r > last, "revision {r} after {last}");
        last = r;
    }
    let l = s.list(p).await.unwrap();
    assert!(l.revision >= last);
}

pub async fn list_is_by_prefix_and_ordered(s: Shared, p: &str) {
    for k in ["dir/b", "dir/a", "dir/c/deep", "dir", "dirx", "other"] {
        s.put(&format!("{p}{k}"), b(k), Expect::Any).await.unwrap();
    }
    let l = s.list(&format!("{p}dir/")).await.unwrap();
    let keys: Vec<_> = l
        .kvs
        .iter()
        .map(|kv| kv.key.strip_prefix(p).unwrap())
        .collect();
    assert_eq!(keys, ["dir/a", "dir/b", "dir/c/deep"]);
    assert_eq!(&l.kvs[0].value[..], b"dir/a");
    let all = s.list(p).await.unwrap();
    assert_eq!(all.kvs.len(), 6);
    assert!(
        s.list(&format!("{p}nothing/"))
            .await
            .unwrap()
            .kvs
            .is_empty()
    );
    // Many keys: every one comes back (backends may page internally).
    let many = format!("{p}many/");
    for chunk in (0..1500).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| Op::put(format!("{many}{i:05}"), b("x"), Expect::Absent))
            .collect();
        s.commit(ops).await.unwrap();
    }
    let l = s.list(&many).await.unwrap();
    assert_eq!(l.kvs.len(), 1500);
    assert!(l.kvs.windows(2).all(|w| w[0].key < w[1].key));
}

pub async fn watch_delivers_changes_in_order(s: Shared, p: &str) {
    let dir = format!("{p}w/");
    s.put(&format!("{dir}before"), b("0"), Expect::Any)
        .await
        .unwrap();
    let l = s.list(&dir).await.unwrap();
    let mut w = s.watch(&dir, l.revision).await.unwrap();
    no_event(&mut w).await;
    let r1 = s
        .put(&format!("{dir}a"), b("1"), Expect::Absent)
        .await
        .unwrap();
    s.put(&format!("{p}outside"), b("x"), Expect::Any)
        .await
        .unwrap();
    let r2 = s
        .commit(vec![
            Op::put(format!("{dir}b"), b("2"), Expect::Absent),
            Op::put(format!("{dir}c"), b("3"), Expect::Absent),
        ])
        .await
        .unwrap();
    let r3 = s
        .delete(&format!("{dir}a"), Expect::Version(r1))
        .await
        .unwrap();
    match next_event(&mut w).await {
        WatchEvent::Put(kv) => {
            assert_eq!((kv.key, kv.mod_revision), (format!("{dir}a"), r1));
            assert_eq!(&kv.value[..], b"1");
        }
        e => panic!("expected put of a, got {e:?}"),
    }
    let e2 = next_event(&mut w).await;
    let e3 = next_event(&mut w).await;
    let mut keys = vec![e2.key().to_string(), e3.key().to_string()];
    keys.sort();
    assert_eq!(keys, [format!("{dir}b"), format!("{dir}c")]);
    assert_eq!((e2.revision(), e3.revision()), (r2, r2));
    assert_eq!(
        next_event(&mut w).await,
        WatchEvent::Delete {
            key: format!("{dir}a"),
            revision: r3
        }
    );
    no_event(&mut w).await;
}

pub async fn watch_resumes_from_a_past_revision(s: Shared, p: &str) {
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(
            s.put(&format!("{p}k"), b(&i.to_string()), Expect::Any)
                .await
                .unwrap(),
        );
    }
    // From the 5th change: exactly the changes after it, then live ones.
    let mut w = s.watch(p, revs[4]).await.unwrap();
    for (i, r) in revs.iter().enumerate().skip(5) {
        match next_event(&mut w).await {
            WatchEvent::Put(kv) => {
                assert_eq!(kv.mod_revision, *r);
                assert_eq!(kv.value, b(&i.to_string()));
            }
            e => panic!("expected a put, got {e:?}"),
        }
    }
    no_event(&mut w).await;
    let r = s
        .put(&format!("{p}k"), b("live"), Expect::Any)
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.revision(), r);
}

pub async fn watch_ends_when_dropped_and_others_continue(s: Shared, p: &str) {
    let l = s.list(p).await.unwrap();
    let w1 = s.watch(p, l.revision).await.unwrap();
    let mut w2 = s.watch(p, l.revision).await.unwrap();
    drop(w1);
    for i in 0..50 {
        s.put(&format!("{p}k{i}"), b("x"), Expect::Any)
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(next_event(&mut w2).await.key(), format!("{p}k{i}"));
    }
}

pub async fn leases_bind_keys(s: Shared, p: &str) {
    let lease = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    let k = format!("{p}eph");
    let l = s.list(p).await.unwrap();
    let mut w = s.watch(p, l.revision).await.unwrap();
    s.put_leased(&k, b("here"), Expect::Absent, lease)
        .await
        .unwrap();
    s.put(&format!("{p}durable"), b("stays"), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(s.get(&k).await.unwrap().unwrap().lease, Some(lease));
    assert!(s.keep_alive(lease).await.unwrap() >= Duration::from_secs(29));
    assert!(matches!(next_event(&mut w).await, WatchEvent::Put(_)));
    assert!(matches!(next_event(&mut w).await, WatchEvent::Put(_)));
    s.revoke_lease(lease).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
    match next_event(&mut w).await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, k),
        e => panic!("expected the leased key's deletion, got {e:?}"),
    }
    assert!(s.get(&format!("{p}durable")).await.unwrap().is_some());
    let r = s.keep_alive(lease).await;
    assert!(matches!(r, Err(MetadataError::LeaseExpired(_))), "{r:?}");
    assert!(matches!(
        s.put_leased(&k, b("late"), Expect::Any, lease).await,
        Err(MetadataError::LeaseExpired(_))
    ));
    assert_eq!(s.get(&k).await.unwrap(), None);
    // Revoking twice is not an error.
    s.revoke_lease(lease).await.unwrap();
}

pub async fn unkept_lease_expires(s: Shared, p: &str) {
    let lease = s.grant_lease(Duration::from_secs(2)).await.unwrap();
    let k = format!("{p}eph");
    let rev = s
        .put_leased(&k, b("x"), Expect::Absent, lease)
        .await
        .unwrap();
    let mut w = s.watch(p, rev).await.unwrap();
    let t = std::time::Instant::now();
    match next_event(&mut w).await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, k),
        e => panic!("expected the expiry's deletion, got {e:?}"),
    }
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "expired after only {took:?}"
    );
    assert_eq!(s.get(&k).await.unwrap(), None);
    let r = s.keep_alive(lease).await;
    assert!(matches!(r, Err(MetadataError::LeaseExpired(_))), "{r:?}");
}

pub async fn lease_keeper_keeps_and_revokes(s: Shared, p: &str) {
    let keeper = LeaseKeeper::start(s.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    let k = format!("{p}eph");
    s.put_leased(&k, b("x"), Expect::Absent, keeper.id())
        .await
        .unwrap();
    // Well past the TTL, the key is still there because the keeper renews it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(s.get(&k).await.unwrap().is_some());
    assert!(!keeper.lost().is_cancelled());
    keeper.revoke().await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
    // A lease revoked behind a keeper's back is reported lost.
    let keeper = LeaseKeeper::start(s.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    s.revoke_lease(keeper.id()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), keeper.lost().cancelled())
        .await
        .expect("the keeper notices its lease is gone");
}

pub async fn ids_are_unique_under_contention(s: Shared, p: &str) {
    let name = format!("{}ledgers", p.replace('/', "_"));
    assert_eq!(s.next_id(&name).await.unwrap(), 1);
    assert_eq!(s.next_id(&name).await.unwrap(), 2);
    assert_eq!(s.next_ids(&name, 10).await.unwrap(), 3..13);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..25 {
                    got.push(s.next_id(&name).await.unwrap());
                }
                got
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(all.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 200);
    assert_eq!(all.iter().min(), Some(&13));
    assert_eq!(all.iter().max(), Some(&212));
    assert!(matches!(
        s.next_ids(&name, 0).await,
        Err(MetadataError::Invalid(_))
    ));
}

pub async fn compare_and_set_is_linearizable(s: Shared, p: &str) {
    let k = format!("{p}counter");
    s.put(&k, b("0"), Expect::Absent).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while done < 10 {
                    let kv = s.get(&k).await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    match s
                        .put(
                            &k,
                            b(&(n + 1).to_string()),
                            Expect::Version(kv.mod_revision),
                        )
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(MetadataError::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(&s.get(&k).await.unwrap().unwrap().value[..], b"60");
}

pub async fn bad_requests_are_invalid(s: Shared, p: &str) {
    let invalid = |r: crate::Result<u64>| matches!(r, Err(MetadataError::Invalid(_)));
    assert!(invalid(s.put("", b("x"), Expect::Any).await));
    assert!(invalid(s.put(&"k".repeat(2000), b("x"), Expect::Any).await));
    assert!(invalid(
        s.put(&format!("{p}nul\0"), b("x"), Expect::Any).await
    ));
    let big = Bytes::from(vec![0u8; crate::store::MAX_VALUE_LEN + 1]);
    assert!(invalid(s.put(&format!("{p}big"), big, Expect::Any).await));
    assert!(invalid(s.commit(vec![]).await));
    let k = format!("{p}dup");
    assert!(invalid(
        s.commit(vec![
            Op::put(&k, b("1"), Expect::Any),
            Op::delete(&k, Expect::Any)
        ])
        .await
    ));
    let too_many = (0..=crate::store::MAX_OPS_PER_COMMIT)
        .map(|i| Op::put(format!("{p}m{i}"), b("x"), Expect::Any))
        .collect();
    assert!(invalid(s.commit(too_many).await));
    assert!(matches!(s.get("").await, Err(MetadataError::Invalid(_))));
    assert!(matches!(
        s.grant_lease(Duration::ZERO).await,
        Err(MetadataError::Invalid(_))
    ));
    // The largest allowed value is accepted.
    let max = Bytes::from(vec![7u8; crate::store::MAX_VALUE_LEN]);
    s.put(&format!("{p}max"), max.clone(), Expect::Any)
        .await
        .unwrap();
    assert_eq!(s.get(&format!("{p}max")).await.unwrap().unwrap().value, max);
    // Nothing of the refused requests was written.
    let keys: Vec<_> = s
        .list(p)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, [format!("{p}max")]);
}
