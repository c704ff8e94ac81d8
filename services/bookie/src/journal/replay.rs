//! Start-up recovery: validate the journal files, replay every commit after the index's applied
//! position, and find where the writer resumes.
//!
//! How the end of the data is told apart from damage:
//! - A commit is valid if its header checks (magic, salted CRC, this file's id), its sequence
//!   number follows the previous one and its body matches the body CRC.
//! - The writer starts commit n+1 only after commit n's fsync returned, so after a crash only the
//!   last commit can be incomplete. An invalid commit with no valid commit anywhere after it is
//!   that torn tail: it was never acknowledged, and the writer resumes at its offset.
//! - An invalid commit followed by a valid one is damage to acknowledged data. Replay skips to
//!   the next valid commit, and the bookie records that it is damaged: from then on it answers
//!   "unknown", never "no such entry", for entries it cannot find, because it cannot tell which
//!   ones it lost.
//! - Every file but the newest ends with an end-of-file marker; a file without one, followed by
//!   files with data, lost its tail: also damage.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use tracing::{info, warn};

use super::file::{file_name, list_files};
use super::format::{
    BLOCK, COMMIT_HEADER_LEN, CommitHeader, FileHeader, Location, Record, verify_body,
};
use super::writer::Position;
use crate::apply::{Applier, DurableCommit};
use crate::error::BookieError;
use crate::index::AppliedPos;

#[derive(Debug)]
pub struct ReplayOutcome {
    /// Where the writer resumes; `None` if there are no journal files yet.
    pub position: Option<Position>,
    /// Empty journal files after the current one: the first is the spare, others are reusable.
    pub empty_after: Vec<u64>,
    /// Descriptions of damage found.
    pub damage: Vec<String>,
    pub commits_replayed: u64,
    pub bytes_replayed: u64,
}

#[derive(Debug)]
pub struct ReplayParams<'a> {
    pub dir: &'a Path,
    pub salt: u64,
    pub instance_id: u64,
    pub applied: Option<AppliedPos>,
    pub max_entry: usize,
    /// No commit body can be larger than this (the journal file size).
    pub max_body: u64,
}

enum Slot {
    Valid(CommitHeader, Vec<(Record, usize)>),
    Invalid,
}

/// One journal file being scanned.
struct FileReader<'a> {
    f: File,
    size: u64,
    file_id: u64,
    p: &'a ReplayParams<'a>,
}

impl FileReader<'_> {
    /// The commit at `off`, if it is a valid one following `last_seq`.
    fn read_commit(&self, off: u64, last_seq: u64) -> std::io::Result<Slot> {
        let mut head = [0u8; COMMIT_HEADER_LEN];
        if off + BLOCK as u64 > self.size {
            return Ok(Slot::Invalid);
        }
        self.f.read_exact_at(&mut head, off)?;
        let Some(h) = CommitHeader::decode(&head, self.p.salt, self.file_id) else {
            return Ok(Slot::Invalid);
        };
        if h.seq <= last_seq
            || u64::from(h.body_len) > self.p.max_body
            || off + h.span() > self.size
        {
            return Ok(Slot::Invalid);
        }
        let mut body = vec![0u8; h.body_len as usize];
        self.f
            .read_exact_at(&mut body, off + COMMIT_HEADER_LEN as u64)?;
        Ok(
            match verify_body(Bytes::from(body), h.heads_crc, self.p.max_entry) {
                Some(records) => Slot::Valid(h, records),
                None => Slot::Invalid,
            },
        )
    }

    /// The offset of the first valid commit at or after `from`, if any.
    fn find_next_valid(&self, from: u64, last_seq: u64) -> std::io::Result<Option<u64>> {
        const CHUNK: u64 = 1 << 20;
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = from;
        while at + BLOCK as u64 <= self.size {
            let n = CHUNK.min(self.size - at) as usize;
            self.f.read_exact_at(&mut buf[..n], at)?;
            let mut i = 0;
            while i + BLOCK <= n {
                let here = &buf[i..i + COMMIT_HEADER_LEN];
                if CommitHeader::decode(here, self.p.salt, self.file_id).is_some()
                    && let Slot::Valid(..) = self.read_commit(at + i as u64, last_seq)?
                {
                    return Ok(Some(at + i as u64));
                }
                i += BLOCK;
            }
            at += n as u64;
        }
        Ok(None)
    }
}

/// Checks that every journal file belongs to this bookie instance; returns the files with
/// their headers.
pub fn check_files(dir: &Path, instance_id: u64) -> Result<Vec<(u64, FileHeader)>, BookieError> {
    let files = list_files(dir).map_err(BookieError::io(format!(
        "list journal dir {}",
        dir.display()
    )))?;
    let mut out = Vec::with_capacity(files.len());
    for &id in &files {
        let path = dir.join(file_name(id));
        let f = File::open(&path).map_err(BookieError::io(format!("open {}", path.display())))?;
        let mut block = vec![0u8; BLOCK];
        let n = f
            .read_at(&mut block, 0)
            .map_err(BookieError::io(format!("read {}", path.display())))?;
        match FileHeader::decode(&block[..n]) {
            Ok(h) if h.instance_id != instance_id => {
                return Err(BookieError::Identity(format!(
                    "journal file {} belongs to bookie instance {:016x}, not this bookie's \
                     {instance_id:016x}: the journal dir holds another bookie's data",
                    path.display(),
                    h.instance_id
                )));
            }
            Ok(h) if h.file_id != id => {
                return Err(BookieError::Identity(format!(
                    "journal file {} says it is file {}; files were renamed or mixed up",
                    path.display(),
                    h.file_id
                )));
            }
            Ok(h) => out.push((id, h)),
            Err(e) => {
                return Err(BookieError::Identity(format!(
                    "journal file {}: {e}; refusing to start on a damaged or foreign journal",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

struct FileScan {
    file_id: u64,
    end: u64,
    ended: bool,
    had_data: bool,
}

pub fn replay(p: &ReplayParams<'_>, applier: &Applier) -> Result<ReplayOutcome, BookieError> {
    let headers = check_files(p.dir, p.instance_id)?;
    let files: Vec<u64> = headers.iter().map(|(id, _)| *id).collect();
    let mut out = ReplayOutcome {
        position: None,
        empty_after: Vec::new(),
        damage: Vec::new(),
        commits_replayed: 0,
        bytes_replayed: 0,
    };
    let Some(&first) = files.first() else {
        if let Some(a) = p.applied {
            return Err(BookieError::Identity(format!(
                "the index has applied journal commits up to file {} but the journal dir {} is \
                 empty: it was wiped or replaced; refusing to start",
                a.file_id,
                p.dir.display()
            )));
        }
        return Ok(out);
    };
    let (start_file, start_off, applied_seq) = match p.applied {
        Some(a) => {
            if !files.contains(&a.file_id) {
                return Err(BookieError::Identity(format!(
                    "journal file {} holding the index's last applied commit is missing from {}: \
                     the journal was wiped or replaced; refusing to start",
                    file_name(a.file_id),
                    p.dir.display()
                )));
            }
            (a.file_id, a.offset, a.seq)
        }
        None => (first, BLOCK as u64, 0),
    };
    let mut last_seq = applied_seq;
    let mut scans = Vec::new();
    for &file_id in files.iter().filter(|&&f| f >= start_file) {
        let path = p.dir.join(file_name(file_id));
        let io = |what: &str| BookieError::io(format!("{what} {}", path.display()));
        let f = File::open(&path).map_err(io("open"))?;
        let size = f.metadata().map_err(io("stat"))?.len();
        let made = headers
            .iter()
            .find(|(id, _)| *id == file_id)
            .map_or(size, |(_, h)| h.size);
        if size < made {
            // Files are preallocated in full: a shorter one lost its end.
            let msg = format!("journal file {file_id} is truncated to {size} of its {made} bytes");
            warn!(%msg, "journal damage");
            out.damage.push(msg);
        }
        let reader = FileReader {
            f,
            size,
            file_id,
            p,
        };
        let mut off = if file_id == start_file {
            start_off
        } else {
            BLOCK as u64
        };
        let mut scan = FileScan {
            file_id,
            end: off,
            ended: false,
            had_data: file_id == start_file && p.applied.is_some(),
        };
        loop {
            match reader.read_commit(off, last_seq).map_err(io("read"))? {
                Slot::Valid(h, decoded) => {
                    scan.had_data = true;
                    if h.seq != last_seq + 1 {
                        // Every commit takes the next number, across files: a gap is lost
                        // commits (a missing file, or damage that left no trace here).
                        let msg = format!(
                            "journal commits {} to {} are missing (resumed in file {file_id} at \
                             offset {off})",
                            last_seq + 1,
                            h.seq - 1
                        );
                        warn!(%msg, "journal damage");
                        out.damage.push(msg);
                    }
                    last_seq = h.seq;
                    off += h.span();
                    if h.is_end_of_file() {
                        scan.ended = true;
                        break;
                    }
                    if h.seq <= applied_seq {
                        continue;
                    }
                    let base = off - h.span() + COMMIT_HEADER_LEN as u64;
                    let records: Vec<(Record, Option<Location>)> = decoded
                        .into_iter()
                        .map(|(rec, at)| {
                            let loc = match &rec {
                                Record::Add { data, .. } | Record::Relocate { data, .. } => {
                                    Some(Location {
                                        file_id,
                                        offset: base + at as u64,
                                        len: data.len() as u32,
                                    })
                                }
                                _ => None,
                            };
                            (rec, loc)
                        })
                        .collect();
                    applier.apply(&DurableCommit {
                        pos: AppliedPos {
                            seq: h.seq,
                            file_id,
                            offset: off,
                        },
                        records: &records,
                    })?;
                    out.commits_replayed += 1;
                    out.bytes_replayed += u64::from(h.body_len);
                }
                Slot::Invalid => {
                    match reader
                        .find_next_valid(off + BLOCK as u64, last_seq)
                        .map_err(io("scan"))?
                    {
                        Some(next) => {
                            let msg = format!(
                                "journal file {file_id}: unreadable commit(s) between offsets \
                                 {off} and {next}, followed by valid commits"
                            );
                            warn!(%msg, "journal damage");
                            out.damage.push(msg);
                            off = next;
                        }
                        None => break,
                    }
                }
            }
        }
        scan.end = off;
        scans.push(scan);
    }
    let last_data = scans.iter().rposition(|s| s.had_data);
    let current = last_data.unwrap_or(0);
    for s in &scans[..current] {
        if !s.ended {
            let msg = format!(
                "journal file {} has no end marker (data ends at offset {}) but later files hold \
                 commits: its tail was lost",
                s.file_id, s.end
            );
            warn!(%msg, "journal damage");
            out.damage.push(msg);
        }
    }
    let cur = &scans[current];
    out.position = Some(Position {
        file_id: cur.file_id,
        offset: cur.end,
        next_seq: last_seq + 1,
        ended: cur.ended,
    });
    out.empty_after = scans[current + 1..].iter().map(|s| s.file_id).collect();
    info!(
        commits = out.commits_replayed,
        bytes = out.bytes_replayed,
        file_id = cur.file_id,
        offset = cur.end,
        "journal replayed"
    );
    Ok(out)
}
