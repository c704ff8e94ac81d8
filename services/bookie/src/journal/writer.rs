//! The journal thread: group commit.
//!
//! One OS thread owns the journal file. It blocks for the first queued operation, takes
//! everything else queued (up to `max_commit_bytes`), writes it as one commit at the next 4 KiB
//! boundary, fsyncs, applies it to the index, and only then completes the operations. While it
//! writes and syncs, new operations queue up; the next commit starts as soon as the previous
//! fsync returns and takes them all. There is no timer: under light load a commit holds one
//! entry and latency is one write plus one fsync; under heavy load commits grow and throughput
//! follows the disk's sequential bandwidth.
//!
//! A failed write or fsync is never retried: the file's state is unknown, so the journal is
//! marked failed, nothing in that commit or after it is acknowledged, and the bookie serves
//! reads only until restarted (replay then decides, from checksums, what is on disk).

use std::sync::Arc;

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::file::{AlignedBuf, IoMode, WriteFile};
use super::format::{
    BLOCK, COMMIT_HEADER_LEN, CommitHeader, FLAG_END_OF_FILE, Location, Record, align_up,
};
use super::spares::Spares;
use crate::apply::{Applier, DurableCommit};
use crate::error::BookieError;
use crate::health::Health;
use crate::index::AppliedPos;

/// Completes when the operation is durable (or failed).
pub type Completion = oneshot::Sender<Result<(), BookieError>>;

#[derive(Debug)]
pub enum Op {
    Record {
        record: Record,
        done: Completion,
    },
    /// Completes once everything queued before it is durable.
    Barrier {
        done: Completion,
    },
    /// Finish everything queued before it, then stop.
    Shutdown,
}

/// Submits operations to the journal thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JournalHandle {
    tx: Sender<Op>,
}

impl JournalHandle {
    /// Queues `record`; the receiver resolves once it is durable. Never blocks.
    pub fn submit(&self, record: Record) -> oneshot::Receiver<Result<(), BookieError>> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.tx.send(Op::Record { record, done })
            && let Op::Record { done, .. } = e.0
        {
            let _ = done.send(Err(BookieError::ShuttingDown));
        }
        rx
    }

    pub fn barrier(&self) -> oneshot::Receiver<Result<(), BookieError>> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.tx.send(Op::Barrier { done })
            && let Op::Barrier { done } = e.0
        {
            let _ = done.send(Err(BookieError::ShuttingDown));
        }
        rx
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Op::Shutdown);
    }

    pub fn channel() -> (JournalHandle, Receiver<Op>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (JournalHandle { tx }, rx)
    }
}

/// Where the writer resumes.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub file_id: u64,
    pub offset: u64,
    pub next_seq: u64,
    /// The current file already ends with an end-of-file marker.
    pub ended: bool,
}

#[derive(Debug)]
pub struct WriterConfig {
    pub dir: std::path::PathBuf,
    /// Bytes at the end of each file kept for fences and deletes (see `Writer::limit`).
    pub reserve: u64,
    pub io_mode: IoMode,
    pub max_commit_bytes: usize,
    pub salt: u64,
}

#[derive(Debug)]
pub struct Writer {
    cfg: WriterConfig,
    file: WriteFile,
    pos: Position,
    buf: AlignedBuf,
    body: BytesMut,
    spares: Arc<Spares>,
    applier: Applier,
    health: Arc<Health>,
}

/// Bytes an operation adds to a commit.
fn op_len(op: &Op) -> usize {
    match op {
        Op::Record { record, .. } => record.encoded_len(),
        Op::Barrier { .. } | Op::Shutdown => 0,
    }
}

impl Writer {
    pub fn new(
        cfg: WriterConfig,
        pos: Position,
        spares: Arc<Spares>,
        applier: Applier,
        health: Arc<Health>,
    ) -> Result<Writer, BookieError> {
        let path = cfg.dir.join(super::file::file_name(pos.file_id));
        let file = WriteFile::open(&path, pos.file_id, cfg.io_mode).map_err(BookieError::io(
            format!("open journal file {}", path.display()),
        ))?;
        spares.want(pos.file_id + 1);
        let cap = cfg.max_commit_bytes + BLOCK;
        Ok(Writer {
            cfg,
            file,
            pos,
            buf: AlignedBuf::with_capacity(cap),
            body: BytesMut::with_capacity(cap),
            spares,
            applier,
            health,
        })
    }

    /// The thread body: runs until [`Op::Shutdown`] or until every handle is dropped.
    pub fn run(mut self, rx: Receiver<Op>) {
        let mut batch: Vec<Op> = Vec::new();
        'outer: while let Ok(first) = rx.recv() {
            let mut bytes = op_len(&first);
            batch.push(first);
            while bytes < self.cfg.max_commit_bytes {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op_len(&op);
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            let stop = batch.iter().position(|op| matches!(op, Op::Shutdown));
            if let Some(i) = stop {
                let after: Vec<Op> = batch.drain(i..).collect();
                self.process(std::mem::take(&mut batch));
                refuse(after, || BookieError::ShuttingDown);
                break 'outer;
            }
            self.process(std::mem::take(&mut batch));
        }
        // Refuse whatever is still queued.
        self.health.set_draining();
        refuse(rx.try_iter().collect(), || BookieError::ShuttingDown);
        debug!("journal writer stopped");
    }

    fn process(&mut self, batch: Vec<Op>) {
        if self.health.is_failed() {
            let reason = self.health.failed_reason();
            refuse(batch, || BookieError::JournalFailed(reason.clone()));
            return;
        }
        let mut records: Vec<(Record, Completion)> = Vec::with_capacity(batch.len());
        let mut barriers = Vec::new();
        for op in batch {
            match op {
                Op::Record { record, done } => records.push((record, done)),
                Op::Barrier { done } => barriers.push(done),
                Op::Shutdown => {}
            }
        }
        let mut rest = records.into_iter().peekable();
        while rest.peek().is_some() {
            if self.pos.ended
                && let Err(e) = self.roll()
            {
                let (_, done) = rest.next().expect("peeked");
                let _ = done.send(Err(BookieError::ReadOnly(format!(
                    "journal cannot roll: {e}"
                ))));
                continue;
            }
            let mut size = COMMIT_HEADER_LEN as u64;
            let mut group = Vec::new();
            while let Some((rec, _)) = rest.peek() {
                let next = size + rec.encoded_len() as u64;
                if self.pos.offset + align_up(next) > self.limit(rec) {
                    break;
                }
                size = next;
                group.push(rest.next().expect("peeked"));
            }
            if group.is_empty() {
                let (rec, done) = rest.next().expect("peeked");
                if self.pos.offset == BLOCK as u64 {
                    // A fresh file cannot hold it: impossible with a validated config.
                    let _ = done.send(Err(BookieError::Internal(format!(
                        "journal record of {} bytes does not fit in a journal file",
                        rec.encoded_len()
                    ))));
                    continue;
                }
                // Not even the first record fits: move to the next file, then try again.
                match self.roll() {
                    Ok(()) => {
                        let mut again = vec![(rec, done)];
                        again.extend(rest.by_ref());
                        rest = again.into_iter().peekable();
                    }
                    Err(e) => {
                        let _ = done.send(Err(BookieError::ReadOnly(format!(
                            "journal cannot roll: {e}"
                        ))));
                        if self.health.is_failed() {
                            let dones = rest.by_ref().map(|(_, d)| d).collect();
                            self.fail(self.health.failed_reason(), dones);
                            break;
                        }
                    }
                }
                continue;
            }
            if let Err((e, dones)) = self.commit(group) {
                let dones = dones
                    .into_iter()
                    .chain(rest.by_ref().map(|(_, d)| d))
                    .collect();
                self.fail(e, dones);
                break;
            }
        }
        let result = if self.health.is_failed() {
            Err(self.health.failed_reason())
        } else {
            Ok(())
        };
        for b in barriers {
            let _ = b.send(result.clone().map_err(BookieError::JournalFailed));
        }
    }

    /// Writes, syncs and applies one commit, then completes its operations.
    fn commit(
        &mut self,
        group: Vec<(Record, Completion)>,
    ) -> Result<(), (String, Vec<Completion>)> {
        let start = self.pos.offset;
        self.body.clear();
        let mut applied: Vec<(Record, Option<Location>)> = Vec::with_capacity(group.len());
        let file_id = self.file.file_id;
        let data_base = start + COMMIT_HEADER_LEN as u64;
        let mut pending = Vec::with_capacity(group.len());
        for (rec, done) in group {
            let at = self.body.len();
            let loc = rec.encode(&mut self.body).map(|off| Location {
                file_id,
                offset: data_base + (at + off) as u64,
                len: match &rec {
                    Record::Add { data, .. } | Record::Relocate { data, .. } => data.len() as u32,
                    _ => 0,
                },
            });
            applied.push((rec, loc));
            pending.push(done);
        }
        let header = CommitHeader {
            flags: 0,
            file_id,
            seq: self.pos.next_seq,
            body_len: self.body.len() as u32,
            body_crc: crc32c::crc32c(&self.body),
        };
        let span = header.span();
        if let Err(e) = self.write_commit(&header, start) {
            return Err((e, pending));
        }
        self.pos.offset = start + span;
        self.pos.next_seq += 1;
        let commit = DurableCommit {
            pos: AppliedPos {
                seq: header.seq,
                file_id,
                offset: self.pos.offset,
            },
            records: &applied,
        };
        if let Err(e) = self.applier.apply(&commit) {
            // The bytes are durable but the index did not take them: do not acknowledge, stop
            // taking writes; a restart replays the journal into the index.
            for done in pending {
                let _ = done.send(Err(BookieError::JournalFailed(format!(
                    "apply commit: {e}"
                ))));
            }
            let reason = format!("index apply failed after commit {}: {e}", header.seq);
            error!(%reason, "journal stops accepting writes");
            self.health.set_failed(reason);
            self.health
                .set_damaged("index missed a durable commit until restart".into());
            return Ok(());
        }
        for done in pending {
            let _ = done.send(Ok(()));
        }
        Ok(())
    }

    fn write_commit(&mut self, header: &CommitHeader, at: u64) -> Result<(), String> {
        self.buf.clear();
        self.buf.zero_extend_to(COMMIT_HEADER_LEN);
        header.encode(self.cfg.salt, self.buf.as_mut_slice());
        self.buf.extend_from_slice(&self.body);
        self.buf.zero_extend_to(header.span() as usize);
        self.file
            .write_at(self.buf.as_slice(), at)
            .map_err(|e| format!("write journal file {} at {at}: {e}", self.file.file_id))?;
        self.file
            .sync()
            .map_err(|e| format!("sync journal file {}: {e}", self.file.file_id))
    }

    /// The offset a commit holding `rec` may extend to. One block is always kept for the
    /// end-of-file marker; ordinary records also leave the reserve free, so that fences and
    /// deletes can still be journaled when the next file cannot be created (disk full): deletes
    /// are how the bookie gets out of that state.
    fn limit(&self, rec: &Record) -> u64 {
        let keep = BLOCK as u64
            + if uses_reserve(rec) {
                0
            } else {
                self.cfg.reserve
            };
        self.file.size.saturating_sub(keep)
    }

    /// Writes the end-of-file marker so replay knows this file ended cleanly.
    fn end_file(&mut self) -> Result<(), String> {
        self.body.clear();
        let header = CommitHeader {
            flags: FLAG_END_OF_FILE,
            file_id: self.file.file_id,
            seq: self.pos.next_seq,
            body_len: 0,
            body_crc: crc32c::crc32c(&[]),
        };
        self.write_commit(&header, self.pos.offset)?;
        self.pos.offset += header.span();
        self.pos.next_seq += 1;
        self.pos.ended = true;
        Ok(())
    }

    /// Switches to the next (preallocated) file. The current file is ended only once the next
    /// one is in hand, so when no file can be had the current one stays open for what fits.
    fn roll(&mut self) -> Result<(), String> {
        let next = self.file.file_id + 1;
        let path = match self.spares.take(next) {
            Ok(p) => p,
            Err(e) => {
                if self
                    .health
                    .set_journal_full(Some(format!("journal cannot roll: {e}")))
                {
                    warn!(error = %e, "journal cannot roll; refusing adds until space frees");
                }
                return Err(e);
            }
        };
        let file = WriteFile::open(&path, next, self.cfg.io_mode)
            .map_err(|e| format!("open journal file {}: {e}", path.display()))?;
        if !self.pos.ended
            && let Err(e) = self.end_file()
        {
            self.health.set_failed(e.clone());
            return Err(e);
        }
        self.file = file;
        self.pos.file_id = next;
        self.pos.offset = BLOCK as u64;
        self.pos.ended = false;
        self.spares.want(next + 1);
        if self.health.set_journal_full(None) {
            warn!(file_id = next, "journal rolled; adds accepted again");
        }
        debug!(file_id = next, "journal rolled");
        Ok(())
    }

    fn fail(&mut self, reason: String, dones: Vec<Completion>) {
        error!(%reason, "journal failed; no further writes are acknowledged");
        self.health.set_failed(reason.clone());
        for d in dones {
            let _ = d.send(Err(BookieError::JournalFailed(reason.clone())));
        }
    }
}

/// Records that may use the journal's reserve: the ones a full bookie still needs.
fn uses_reserve(rec: &Record) -> bool {
    matches!(rec, Record::Fence { .. } | Record::Delete { .. })
}

fn refuse(ops: Vec<Op>, err: impl Fn() -> BookieError) {
    for op in ops {
        match op {
            Op::Record { done, .. } | Op::Barrier { done } => {
                let _ = done.send(Err(err()));
            }
            Op::Shutdown => {}
        }
    }
}
