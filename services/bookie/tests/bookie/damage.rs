//! Torn journal tails and damage to acknowledged data, found on restart: a torn tail is cut
//! at the last valid commit; damage before valid commits, missing or truncated files and
//! corrupt stored entries make the bookie answer "unknown" rather than "no such entry".
//! Part of the `bookie` test binary.

use super::*;

/// The commits of journal file `file_id`, in order: (offset, header).
fn commits(data: &std::path::Path, file_id: u64) -> Vec<(u64, CommitHeader)> {
    let cookie: Cookie =
        serde_json::from_slice(&std::fs::read(data.join("COOKIE")).unwrap()).unwrap();
    let bytes = std::fs::read(journal_dir(data).join(format!("{file_id:016x}.jnl"))).unwrap();
    let mut out = Vec::new();
    let mut off = BLOCK;
    let mut last_seq = 0;
    while off + BLOCK <= bytes.len() {
        match CommitHeader::decode(
            &bytes[off..off + COMMIT_HEADER_LEN],
            cookie.journal_salt,
            file_id,
        ) {
            Some(h) if h.seq > last_seq => {
                last_seq = h.seq;
                out.push((off as u64, h));
                off += h.span() as usize;
            }
            _ => break,
        }
    }
    out
}

fn flip_byte(data: &std::path::Path, file_id: u64, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(journal_dir(data).join(format!("{file_id:016x}.jnl")))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

/// Ten acknowledged adds, one commit each, then a stop that leaves the index unflushed, as a
/// crash would.
async fn ten_commits_then_crash(dir: &std::path::Path) {
    let r = Running::start(small_config(dir)).await;
    let c = r.client().await;
    for e in 0..10 {
        c.add(add(L, e, 1, 500)).await.unwrap();
    }
    r.bookie.halt_without_index_flush();
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_at_the_last_valid_commit() {
    for tear in ["flip body byte", "zero header"] {
        let dir = tempfile::tempdir().unwrap();
        ten_commits_then_crash(dir.path()).await;
        let cs = commits(dir.path(), 1);
        assert_eq!(cs.len(), 10, "one commit per awaited add");
        let (off, h) = cs[9];
        match tear {
            "flip body byte" => flip_byte(dir.path(), 1, off + COMMIT_HEADER_LEN as u64 + 20),
            _ => {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(journal_dir(dir.path()).join("0000000000000001.jnl"))
                    .unwrap();
                f.write_all_at(&[0u8; COMMIT_HEADER_LEN], off).unwrap();
            }
        }
        assert_eq!(h.seq, 10);

        let r = Running::start(small_config(dir.path())).await;
        let c = r.client().await;
        read_back(&c, L, &(0..9).collect::<Vec<_>>(), 500).await;
        // The torn commit was never acknowledged (its fsync never returned): it is simply gone.
        assert_eq!(
            code(c.read(L, EntryId(9), None).await),
            ErrorCode::NoSuchEntry,
            "{tear}"
        );
        assert!(
            !c.info().await.unwrap().damaged,
            "{tear}: a torn tail is not damage"
        );
        // Writing resumes where the valid data ended, and survives another restart.
        c.add(add(L, 9, 1, 500)).await.unwrap();
        c.add(add(L, 10, 1, 500)).await.unwrap();
        r.bookie.halt_without_index_flush();
        r.stop().await;
        let r = Running::start(small_config(dir.path())).await;
        let c = r.client().await;
        read_back(&c, L, &(0..11).collect::<Vec<_>>(), 500).await;
        assert!(!c.info().await.unwrap().damaged);
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_valid_commits_makes_missing_entries_unknown() {
    let dir = tempfile::tempdir().unwrap();
    ten_commits_then_crash(dir.path()).await;
    let cs = commits(dir.path(), 1);
    let (off, _) = cs[4]; // entry 4's commit, followed by five valid ones
    flip_byte(dir.path(), 1, off + COMMIT_HEADER_LEN as u64 + 40);

    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    let info = c.info().await.unwrap();
    assert!(info.damaged, "acknowledged data was damaged");
    let mut good: Vec<u64> = (0..10).collect();
    good.retain(|&e| e != 4);
    read_back(&c, L, &good, 500).await;
    // The lost entry, and any entry the bookie cannot find, is unknown: never "no such entry".
    assert_eq!(
        code(c.read(L, EntryId(4), None).await),
        ErrorCode::UnknownEntry
    );
    assert_eq!(
        code(c.read(L, EntryId(50), None).await),
        ErrorCode::UnknownEntry
    );
    assert_eq!(
        code(c.read(LedgerId(12345), EntryId(0), None).await),
        ErrorCode::UnknownEntry
    );
    // A fence may have been lost with the damage: the epoch this bookie has seen is refused (so
    // its writer replaces the bookie); a higher one, a writer that recovered the ledger, is not.
    assert_eq!(
        code(c.add(add(L, 10, 1, 500)).await),
        ErrorCode::LedgerSuspect
    );
    c.add(add(L, 10, 2, 500)).await.unwrap();
    r.stop().await;
    // The damage is remembered across restarts.
    let r = Running::start(small_config(dir.path())).await;
    assert!(r.client().await.info().await.unwrap().damaged);
    r.stop().await;
}

/// Adds enough to spread over several journal files, then stops as a crash would.
async fn several_files_then_crash(dir: &std::path::Path) -> Vec<u64> {
    let r = Running::start(small_config(dir)).await;
    let c = r.client().await;
    for e in 0..120 {
        c.add(add(L, e, 1, 30_000)).await.unwrap();
    }
    r.bookie.halt_without_index_flush();
    r.stop().await;
    let mut files: Vec<u64> = std::fs::read_dir(journal_dir(dir))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_suffix(".jnl")?, 16).ok()
        })
        .collect();
    files.sort_unstable();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_truncated_journal_file_is_damage() {
    // A file lost from the middle: its commits leave a gap in the sequence.
    let dir = tempfile::tempdir().unwrap();
    let files = several_files_then_crash(dir.path()).await;
    assert!(files.len() >= 4, "{files:?}");
    std::fs::remove_file(journal_dir(dir.path()).join(format!("{:016x}.jnl", files[1]))).unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    assert!(
        c.info().await.unwrap().damaged,
        "a missing file must be noticed"
    );
    c.read(L, EntryId(0), None).await.unwrap();
    c.read(L, EntryId(119), None).await.unwrap();
    let mut unknown = 0;
    for e in 1..119u64 {
        match c.read(L, EntryId(e), None).await {
            Ok(_) => {}
            Err(err) => {
                assert_eq!(err.code(), Some(ErrorCode::UnknownEntry), "{e}: {err}");
                unknown += 1;
            }
        }
    }
    assert!(unknown > 0, "the missing file held entries");
    r.stop().await;

    // The newest file cut short: whatever it held past the cut is gone, and that is damage,
    // not a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let files = several_files_then_crash(dir.path()).await;
    let newest = files.iter().rev().find(|&&f| {
        let p = journal_dir(dir.path()).join(format!("{f:016x}.jnl"));
        // The spare holds no commits: its second block is zeros.
        let bytes = std::fs::read(p).unwrap();
        bytes[BLOCK..BLOCK + 4] != [0, 0, 0, 0]
    });
    let newest = *newest.unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(journal_dir(dir.path()).join(format!("{newest:016x}.jnl")))
        .unwrap();
    f.set_len(BLOCK as u64 * 8).unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    assert!(
        c.info().await.unwrap().damaged,
        "a truncated file must be noticed"
    );
    c.read(L, EntryId(0), None).await.unwrap();
    assert_eq!(
        code(c.read(L, EntryId(119), None).await),
        ErrorCode::UnknownEntry
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_entry_is_unknown_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    for e in 0..3 {
        c.add(add(L, e, 1, 500)).await.unwrap();
    }
    r.stop().await; // index flushed: entries are read through it, not replayed
    let cs = commits(dir.path(), 1);
    flip_byte(dir.path(), 1, cs[1].0 + COMMIT_HEADER_LEN as u64 + 100);
    let r = Running::start(small_config(dir.path())).await;
    let c = r.client().await;
    read_back(&c, L, &[0, 2], 500).await;
    assert_eq!(
        code(c.read(L, EntryId(1), None).await),
        ErrorCode::UnknownEntry
    );
    r.stop().await;
}
