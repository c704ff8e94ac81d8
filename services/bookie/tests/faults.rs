//! Disk faults, each test in its own process under nextest (fail points are process-global):
//! read-only thresholds and ENOSPC on a real, tiny tmpfs; GC on a full disk; a failed fsync.
//!
//! The tmpfs tests mount a filesystem and so need root (CI has it). Set DLOG_SKIP_MOUNT_TESTS=1
//! to skip them on a machine where that is impossible; they fail otherwise, rather than pass
//! without testing anything.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dlog_api::wire::bookie::BookieState;
use dlog_api::{EntryId, Epoch, ErrorCode, LedgerId};
use dlog_bookie::disk::disk_usage;
use dlog_ledger::{BookieClient, ClientError};

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a bookie error: {e}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A tmpfs of a fixed size, unmounted on drop.
struct TmpFs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TmpFs {
    fn mount(bytes: u64) -> Option<TmpFs> {
        if std::env::var_os("DLOG_SKIP_MOUNT_TESTS").is_some() {
            eprintln!("DLOG_SKIP_MOUNT_TESTS is set: skipping");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {} (set DLOG_SKIP_MOUNT_TESTS=1 to skip)",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(TmpFs { path, _dir: dir })
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

async fn wait_state(c: &BookieClient, want: BookieState) {
    let t = Instant::now();
    loop {
        let info = c.info().await.unwrap();
        if info.state == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "state stayed {:?} ({}), wanted {want:?}",
            info.state,
            info.state_reason
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fill(path: &Path, bytes: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_above_the_disk_threshold_and_back() {
    let Some(fs) = TmpFs::mount(24 << 20) else {
        return;
    };
    let data = fs.path.join("bookie");
    let mut cfg = small_config(&data);
    cfg.disk.read_only_above = 0.6;
    cfg.disk.writable_below = 0.5;
    cfg.disk.check_interval = Duration::from_millis(20);
    let r = Running::start(cfg).await;
    let c = r.client().await;
    let l = LedgerId(1);
    for e in 0..10 {
        c.add(add(l, e, 1, 1000)).await.unwrap();
    }
    let (total, used) = disk_usage(&fs.path).unwrap();
    let filler = fs.path.join("filler");
    fill(&filler, (total as f64 * 0.65) as u64 - used);
    wait_state(&c, BookieState::ReadOnly).await;
    assert!(
        c.info()
            .await
            .unwrap()
            .state_reason
            .contains("read-only threshold")
    );

    // Adds and explicit LACs are refused with a clear code; reads, fences and deletes work.
    assert_eq!(code(c.add(add(l, 10, 1, 1000)).await), ErrorCode::ReadOnly);
    assert_eq!(
        code(c.write_lac(l, Epoch(1), EntryId(9)).await),
        ErrorCode::ReadOnly
    );
    for e in 0..10 {
        c.read(l, EntryId(e), None).await.unwrap();
    }
    c.fence(LedgerId(2), Epoch(3)).await.unwrap();
    c.delete(LedgerId(3)).await.unwrap();

    std::fs::remove_file(&filler).unwrap();
    wait_state(&c, BookieState::Writable).await;
    c.add(add(l, 10, 1, 1000)).await.unwrap();
    r.stop().await;
}

/// With the disk full, the journal cannot preallocate its next file: adds are refused (never
/// acknowledged, never a failed bookie), and deleting ledgers plus GC makes room by recycling
/// dead files, without any free space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_refuses_adds_and_gc_recovers_on_a_full_disk() {
    let Some(fs) = TmpFs::mount(12 << 20) else {
        return;
    };
    let data = fs.path.join("bookie");
    let mut cfg = small_config(&data);
    // Thresholds out of the way: this test is about real ENOSPC.
    cfg.disk.read_only_above = 1.0;
    cfg.disk.writable_below = 1.0;
    let r = Running::start(cfg.clone()).await;
    let c = r.client().await;
    // Let the spare file be preallocated, then fill all but 300 KiB.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (total, used) = disk_usage(&fs.path).unwrap();
    fill(&fs.path.join("filler"), total - used - (300 << 10));

    let old = LedgerId(1);
    let mut acked = Vec::new();
    let mut refusal = None;
    for e in 0..200u64 {
        match c.add(add(old, e, 1, 30_000)).await {
            Ok(()) => acked.push(e),
            Err(err) => {
                refusal = Some(err);
                break;
            }
        }
    }
    let err = refusal.expect("the journal ran out of space");
    assert_eq!(err.code(), Some(ErrorCode::ReadOnly), "{err}");
    assert!(err.to_string().contains("cannot roll"), "{err}");
    assert!(
        acked.len() > 30,
        "{} acked before the disk filled",
        acked.len()
    );
    let info = c.info().await.unwrap();
    assert_eq!(info.state, BookieState::ReadOnly, "{}", info.state_reason);
    for &e in &acked {
        let got = c.read(old, EntryId(e), None).await.unwrap();
        assert_eq!(got.data, entry_bytes(old, EntryId(e), 30_000));
    }

    // Free space only by deleting a ledger: GC recycles its files and the journal rolls again.
    c.delete(old).await.unwrap();
    let b = r.bookie.clone();
    tokio::task::spawn_blocking(move || b.gc_now())
        .await
        .unwrap()
        .unwrap();
    let report = r.bookie.gc_totals();
    assert!(report.files_removed >= 1, "{report:?}");
    // One recycled file's worth of adds fits without any free space.
    let new = LedgerId(2);
    let t = Instant::now();
    let mut next = 0u64;
    while next < 25 {
        match c.add(add(new, next, 1, 30_000)).await {
            Ok(()) => next += 1,
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::ReadOnly), "{e}");
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "never recovered: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(c.info().await.unwrap().state, BookieState::Writable);
    r.stop().await;
    let r = Running::start(cfg).await;
    let c = r.client().await;
    for e in 0..25 {
        c.read(new, EntryId(e), None).await.unwrap();
    }
    r.stop().await;
}

/// A failed fsync is never acknowledged and never retried into an acknowledgement: the journal
/// stops, the bookie reports itself failed and keeps serving what was durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_is_never_acknowledged() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    let l = LedgerId(1);
    for e in 0..5 {
        c.add(add(l, e, 1, 100)).await.unwrap();
    }
    fail::cfg("journal::fsync", "return").unwrap();
    assert_eq!(
        code(c.add(add(l, 5, 1, 100)).await),
        ErrorCode::JournalFailed
    );
    fail::remove("journal::fsync");
    // Even with the disk healthy again, nothing more is acknowledged until restart.
    assert_eq!(
        code(c.add(add(l, 6, 1, 100)).await),
        ErrorCode::JournalFailed
    );
    assert_eq!(code(c.fence(l, Epoch(2)).await), ErrorCode::JournalFailed);
    let info = c.info().await.unwrap();
    assert_eq!(info.state, BookieState::Failed);
    assert!(info.state_reason.contains("fsync"), "{}", info.state_reason);
    for e in 0..5 {
        c.read(l, EntryId(e), None).await.unwrap();
    }
    r.stop().await;

    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    for e in 0..5 {
        c.read(l, EntryId(e), None).await.unwrap();
    }
    c.add(add(l, 7, 1, 100)).await.unwrap();
    assert_eq!(c.info().await.unwrap().state, BookieState::Writable);
    r.stop().await;
    scenario.teardown();
}

/// A failed write (as ENOSPC or EIO on the journal file would give) is treated like a failed
/// fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_journal_write_is_never_acknowledged() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    c.add(add(LedgerId(1), 0, 1, 100)).await.unwrap();
    fail::cfg("journal::write", "return").unwrap();
    assert_eq!(
        code(c.add(add(LedgerId(1), 1, 1, 100)).await),
        ErrorCode::JournalFailed
    );
    fail::remove("journal::write");
    assert_eq!(c.info().await.unwrap().state, BookieState::Failed);
    r.stop().await;
    scenario.teardown();
}
