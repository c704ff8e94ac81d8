//! In-process tests of the bookie through its real TCP server: durability across restarts,
//! fencing against racing adds, torn tails and damage, disk thresholds on a real tiny
//! filesystem, garbage collection, long-poll, identity and malformed input.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::*;
use dlog_api::wire::bookie::{BookieState, Hello, Request, Response, op};
use dlog_api::wire::frame::{FrameKind, write_frame};
use dlog_api::wire::{FrameCodec, PROTOCOL_VERSION};
use dlog_api::{EntryId, Epoch, ErrorCode, LedgerId};
use dlog_bookie::cookie::Cookie;
use dlog_bookie::journal::format::{BLOCK, COMMIT_HEADER_LEN, CommitHeader};
use dlog_ledger::ClientError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const L: LedgerId = LedgerId(7);

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a bookie error: {e}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

async fn read_back(c: &dlog_ledger::BookieClient, ledger: LedgerId, entries: &[u64], len: usize) {
    for &e in entries {
        let got = c
            .read(ledger, EntryId(e), None)
            .await
            .unwrap_or_else(|err| panic!("read {ledger}/{e}: {err}"));
        assert_eq!(
            got.data,
            entry_bytes(ledger, EntryId(e), len),
            "{ledger}/{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_adds_survive_restart_and_reads_verify() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    // 3000 pipelined adds of 700 B: several group commits and journal rolls.
    let futs: Vec<_> = (0..3000).map(|e| c.add(add(L, e, 1, 700))).collect();
    for res in futures::future::join_all(futs).await {
        res.unwrap();
    }
    let all: Vec<u64> = (0..3000).collect();
    read_back(&c, L, &all, 700).await;
    let lac = c.read_lac(L, None, Duration::ZERO).await.unwrap();
    assert_eq!(lac.lac, Some(EntryId(2998)));
    assert_eq!(lac.last_entry, Some(EntryId(2999)));
    assert_eq!(
        code(c.read(L, EntryId(3000), None).await),
        ErrorCode::NoSuchEntry
    );
    assert_eq!(
        code(c.read(LedgerId(999), EntryId(0), None).await),
        ErrorCode::NoSuchLedger
    );
    r.stop().await;

    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    read_back(&c, L, &all, 700).await;
    assert_eq!(
        c.read_lac(L, None, Duration::ZERO).await.unwrap().lac,
        Some(EntryId(2998))
    );
    let info = c.info().await.unwrap();
    assert_eq!(info.state, BookieState::Writable);
    assert!(!info.damaged);
    assert_eq!(info.ledgers, 1);
    r.stop().await;
}

/// A fence racing a stream of adds: every acknowledged add of the old epoch is at or below the
/// last entry the fence reports, adds after the fence are refused, and everything acknowledged
/// reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_racing_adds_never_acknowledges_past_the_fence() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let writer = r.client().await;
    let fencer = r.client().await;
    for round in 0..10u64 {
        let ledger = LedgerId(100 + round);
        let fenced = Arc::new(AtomicBool::new(false));
        let acked_count = Arc::new(AtomicUsize::new(0));
        // The writer keeps 64 adds in flight until it sees itself fenced.
        let adds = tokio::spawn({
            let (w, fenced, acked_count) = (writer.clone(), fenced.clone(), acked_count.clone());
            async move {
                let permits = Arc::new(tokio::sync::Semaphore::new(64));
                let mut tasks = Vec::new();
                let mut e = 0u64;
                while !fenced.load(Ordering::Acquire) && e < 200_000 {
                    let p = permits.clone().acquire_owned().await.unwrap();
                    let (w, fenced, acked_count) = (w.clone(), fenced.clone(), acked_count.clone());
                    tasks.push(tokio::spawn(async move {
                        let res = w
                            .add(add(ledger, e, 1, 200))
                            .await
                            .map_err(|err| err.code());
                        match res {
                            Ok(()) => {
                                acked_count.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(Some(ErrorCode::Fenced)) => fenced.store(true, Ordering::Release),
                            Err(_) => {}
                        }
                        drop(p);
                        (e, res)
                    }));
                    e += 1;
                }
                futures::future::join_all(tasks).await
            }
        });
        // Fence once some adds are through, while more are in flight.
        let wait_for = 50 + 150 * round as usize;
        while acked_count.load(Ordering::Acquire) < wait_for {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let info = fencer.fence(ledger, Epoch(2)).await.unwrap();
        let results = adds.await.unwrap();
        let last = info.last_entry.expect("some adds were admitted").0;
        let mut acked = Vec::new();
        let mut refused = 0;
        for res in results {
            let (e, res) = res.unwrap();
            match res {
                Ok(()) => {
                    assert!(
                        e <= last,
                        "round {round}: add {e} acked past fence at {last}"
                    );
                    acked.push(e);
                }
                Err(Some(ErrorCode::Fenced)) => refused += 1,
                Err(other) => panic!("round {round}: add {e} failed with {other:?}"),
            }
        }
        assert!(
            acked.len() >= wait_for && refused > 0,
            "round {round}: no race"
        );
        read_back(&writer, ledger, &acked, 200).await;
        // After the fence: old epoch refused, new epoch (recovery) accepted, stale fence refused.
        assert_eq!(
            code(writer.add(add(ledger, last + 1, 1, 200)).await),
            ErrorCode::Fenced
        );
        writer.add(add(ledger, last + 1, 2, 200)).await.unwrap();
        assert_eq!(
            code(fencer.fence(ledger, Epoch(1)).await),
            ErrorCode::Fenced
        );
        assert_eq!(
            fencer.fence(ledger, Epoch(2)).await.unwrap().fence_epoch,
            Epoch(2)
        );
    }
    r.stop().await;
}

/// Torn tails and damage: journal files cut, flipped or removed between runs.
#[path = "bookie/damage.rs"]
mod damage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_lac_wakes_when_the_lac_moves() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    c.add(add(L, 0, 1, 100)).await.unwrap();
    // Nothing new: returns after the wait with the current value.
    let t = Instant::now();
    let i = c
        .read_lac(L, None, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(i.lac, None);
    assert!(t.elapsed() >= Duration::from_millis(190));
    // A waiter wakes as soon as an add carries a higher LAC.
    let c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.read_lac(L, None, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    c.add(add(L, 1, 1, 100)).await.unwrap(); // piggybacks lac 0
    let i = waiter.await.unwrap().unwrap();
    assert_eq!(i.lac, Some(EntryId(0)));
    assert!(t.elapsed() < Duration::from_secs(2));
    // Explicit LAC write.
    c.write_lac(L, Epoch(1), EntryId(1)).await.unwrap();
    let i = c
        .read_lac(L, Some(EntryId(0)), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(i.lac, Some(EntryId(1)));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_ledgers_refuse_adds_and_reads_and_gc_reclaims_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(dir.path());
    cfg.gc.compact_below = 0.6;
    let r = Running::start(cfg.clone()).await;
    let c = r.client().await;
    let big = LedgerId(1);
    let small = LedgerId(2);
    // ~3.5 MiB of `big` across several 1 MiB files, with `small` sprinkled in between.
    let mut small_entries = Vec::new();
    for e in 0..900u64 {
        c.add(add(big, e, 1, 4000)).await.unwrap();
        if e % 30 == 0 {
            let s = e / 30;
            c.add(add(small, s, 1, 300)).await.unwrap();
            small_entries.push(s);
        }
    }
    let files_before = std::fs::read_dir(journal_dir(dir.path()))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jnl")
        })
        .count();
    assert!(files_before >= 4, "{files_before} journal files");
    c.delete(big).await.unwrap();
    assert_eq!(
        code(c.read(big, EntryId(0), None).await),
        ErrorCode::LedgerDeleted
    );
    assert_eq!(
        code(c.add(add(big, 900, 1, 10)).await),
        ErrorCode::LedgerDeleted
    );
    c.delete(big).await.unwrap(); // idempotent

    let b = r.bookie.clone();
    tokio::task::spawn_blocking(move || b.gc_now())
        .await
        .unwrap()
        .unwrap();
    // The delete also kicked the GC thread; count what both rounds did.
    let report = r.bookie.gc_totals();
    assert!(report.files_removed >= 2, "{report:?}");
    assert!(
        report.files_compacted >= 1 && report.entries_relocated > 0,
        "{report:?}"
    );
    read_back(&c, small, &small_entries, 300).await;
    let files_after = std::fs::read_dir(journal_dir(dir.path()))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jnl")
        })
        .count();
    assert!(
        files_after < files_before,
        "{files_before} -> {files_after}"
    );
    r.stop().await;

    // Relocated entries and the deletion survive a restart, with and without an index flush.
    let r = Running::start(cfg.clone()).await;
    let c = r.client().await;
    read_back(&c, small, &small_entries, 300).await;
    assert_eq!(
        code(c.read(big, EntryId(5), None).await),
        ErrorCode::LedgerDeleted
    );
    c.add(add(small, 1000, 1, 300)).await.unwrap();
    r.bookie.halt_without_index_flush();
    r.stop().await;
    let r = Running::start(cfg).await;
    let c = r.client().await;
    read_back(&c, small, &small_entries, 300).await;
    read_back(&c, small, &[1000], 300).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_checked_on_start() {
    let dx = tempfile::tempdir().unwrap();
    let dy = tempfile::tempdir().unwrap();
    for d in [&dx, &dy] {
        let r = Running::start(small_config(d.path())).await;
        r.client().await.add(add(L, 0, 1, 100)).await.unwrap();
        r.stop().await;
    }
    let err = |e: dlog_bookie::BookieError| e.to_string();

    // The same data dir cannot be opened twice at once.
    let r = Running::start(small_config(dx.path())).await;
    let e = Running::try_start(small_config(dx.path()))
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("in use"), "{e}");
    r.stop().await;

    // Another bookie's id.
    let mut cfg = small_config(dx.path());
    cfg.bookie_id = Some("someone-else".parse().unwrap());
    let e = Running::try_start(cfg).await.err().map(err).unwrap();
    assert!(e.contains("belongs to bookie"), "{e}");

    // A journal file of another bookie slipped in.
    std::fs::copy(
        journal_dir(dx.path()).join("0000000000000001.jnl"),
        journal_dir(dy.path()).join("0000000000000009.jnl"),
    )
    .unwrap();
    let e = Running::try_start(small_config(dy.path()))
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("belongs to bookie instance"), "{e}");
    std::fs::remove_file(journal_dir(dy.path()).join("0000000000000009.jnl")).unwrap();
    Running::start(small_config(dy.path())).await.stop().await;

    // A wiped index, and a wiped journal.
    std::fs::remove_dir_all(dy.path().join("index")).unwrap();
    let e = Running::try_start(small_config(dy.path()))
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("index") && e.contains("wiped"), "{e}");
    std::fs::remove_dir_all(journal_dir(dx.path())).unwrap();
    std::fs::create_dir(journal_dir(dx.path())).unwrap();
    let e = Running::try_start(small_config(dx.path()))
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("wiped"), "{e}");

    // Journal and index wiped together, cookie left behind (NVMe lost, cookie elsewhere).
    let dw = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dw.path())).await;
    r.client().await.add(add(L, 0, 1, 100)).await.unwrap();
    r.stop().await;
    std::fs::remove_dir_all(dw.path().join("index")).unwrap();
    std::fs::remove_dir_all(journal_dir(dw.path())).unwrap();
    let e = Running::try_start(small_config(dw.path()))
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("wiped"), "{e}");

    // A wiped data dir under an explicit id needs --init.
    let dz = tempfile::tempdir().unwrap();
    let mut cfg = small_config(dz.path());
    cfg.bookie_id = Some("bookie-z".parse().unwrap());
    let e = Running::try_start(cfg.clone())
        .await
        .err()
        .map(err)
        .unwrap();
    assert!(e.contains("--init"), "{e}");
    cfg.init = true;
    let r = Running::start(cfg).await;
    assert_eq!(r.client().await.bookie_id(), "bookie-z");
    r.stop().await;
}

// ---------- malformed input over a raw socket ----------

async fn raw_connect(addr: &str, hello: bool) -> Raw {
    let mut raw = Raw {
        s: TcpStream::connect(addr).await.unwrap(),
        buf: BytesMut::new(),
    };
    if hello {
        let mut b = BytesMut::new();
        Request::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client: "raw".into(),
            ..Default::default()
        })
        .encode(1, &mut b, 1 << 20)
        .unwrap();
        raw.send(&b).await;
        let (resp, _) = raw.next().await.unwrap();
        assert!(matches!(resp, Ok(Response::Hello(_))));
    }
    raw
}

/// Reads response frames from a raw socket, keeping what it has read past the last frame.
struct Raw {
    s: TcpStream,
    buf: BytesMut,
}

impl Raw {
    /// The next response frame, or `None` at EOF.
    async fn next(
        &mut self,
    ) -> Option<(Result<Response, dlog_api::wire::bookie::ResponseError>, u64)> {
        let mut codec = FrameCodec::new(8 << 20);
        loop {
            if let Some(f) = codec.decode(&mut self.buf).unwrap() {
                return Some((Response::decode(&f).unwrap(), f.request_id));
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk))
                .await
                .expect("bookie answers or closes")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn expect_error_then_close(&mut self, want: ErrorCode) {
        let (resp, _) = self.next().await.expect("an error response");
        assert_eq!(resp.unwrap_err().code, want);
        assert!(
            self.next().await.is_none(),
            "connection closed after {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_codes_and_never_crash_the_bookie() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path());
    let max_entry = cfg.max_entry_len;
    let r = Running::start(cfg).await;

    // A request before the handshake.
    let mut s = raw_connect(&r.addr, false).await;
    let mut b = BytesMut::new();
    Request::Info.encode(5, &mut b, 1 << 20).unwrap();
    s.send(&b).await;
    s.expect_error_then_close(ErrorCode::HandshakeRequired)
        .await;

    // A length shorter than the header, and one far over the limit (no allocation happens).
    let mut s = raw_connect(&r.addr, true).await;
    s.send(&3u32.to_le_bytes()).await;
    s.send(&[0; 8]).await;
    s.expect_error_then_close(ErrorCode::BadFrame).await;
    let mut s = raw_connect(&r.addr, true).await;
    s.send(&u32::MAX.to_le_bytes()).await;
    s.expect_error_then_close(ErrorCode::FrameTooLarge).await;

    // A version this bookie does not speak.
    let mut s = raw_connect(&r.addr, true).await;
    let mut b = BytesMut::new();
    b.put_u32_le(12);
    b.put_u8(9);
    b.put_u8(0);
    b.put_u8(op::INFO);
    b.put_u8(0);
    b.put_u64_le(77);
    s.send(&b).await;
    s.expect_error_then_close(ErrorCode::UnsupportedVersion)
        .await;

    // Unknown op and bad bodies: answered, and the connection goes on.
    let mut s = raw_connect(&r.addr, true).await;
    let mut b = BytesMut::new();
    write_frame(&mut b, FrameKind::Request, 200, 2, b"", 1 << 20).unwrap();
    write_frame(
        &mut b,
        FrameKind::Request,
        op::FENCE,
        3,
        &[1, 2, 3],
        1 << 20,
    )
    .unwrap();
    Request::Info.encode(4, &mut b, 1 << 20).unwrap();
    s.send(&b).await;
    let mut got = std::collections::HashMap::new();
    for _ in 0..3 {
        let (resp, id) = s.next().await.unwrap();
        got.insert(id, resp);
    }
    assert_eq!(got[&2].clone().unwrap_err().code, ErrorCode::UnknownOp);
    assert_eq!(got[&3].clone().unwrap_err().code, ErrorCode::BadFrame);
    assert!(matches!(got[&4], Ok(Response::Info(_))));

    // Entries with a bad checksum, the wrong id, or over the size limit.
    let c = r.client().await;
    let mut bad = add(L, 0, 1, 100);
    let mut raw = bad.data.to_vec();
    raw[dlog_api::entry::ENTRY_HEADER_LEN + 5] ^= 1; // a payload byte
    bad.data = raw.into();
    assert_eq!(code(c.add(bad).await), ErrorCode::ChecksumMismatch);
    let mut wrong = add(L, 0, 1, 100);
    wrong.entry = EntryId(1);
    assert_eq!(code(c.add(wrong).await), ErrorCode::ChecksumMismatch);
    assert_eq!(
        code(c.add(add(L, 0, 1, max_entry)).await),
        ErrorCode::EntryTooLarge
    );
    let mut reserved = add(L, 0, 1, 10);
    reserved.entry = EntryId(u64::MAX);
    assert!(c.add(reserved).await.is_err());

    // Random and mutated byte streams, with and without a handshake.
    let mut rng = fastrand::Rng::with_seed(0xD106);
    let mut valid = BytesMut::new();
    Request::Add(add(L, 5, 1, 64))
        .encode(9, &mut valid, 1 << 20)
        .unwrap();
    for i in 0..200 {
        let mut s = raw_connect(&r.addr, i % 2 == 0).await;
        let junk: Vec<u8> = if i % 3 == 0 {
            let mut v = valid.to_vec();
            let n = rng.usize(1..4);
            for _ in 0..n {
                let p = rng.usize(..v.len());
                v[p] = rng.u8(..);
            }
            v.truncate(rng.usize(1..=v.len()));
            v
        } else {
            (0..rng.usize(1..300)).map(|_| rng.u8(..)).collect()
        };
        let _ = s.s.write_all(&junk).await;
        let _ = s.s.shutdown().await;
        // Read whatever comes until the bookie closes.
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.s.read_to_end(&mut sink)).await;
    }
    // Still serving.
    let info = r.client().await.info().await.unwrap();
    assert_eq!(info.state, BookieState::Writable);
    r.stop().await;
}
