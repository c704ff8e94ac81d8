//! The journal thread: group commit.
//!
//! One OS thread owns the journal file. It blocks for the first queued operation, takes
//! everything else queued (up to `max_commit_bytes`), writes it as one commit at the next 4 KiB
//! boundary and fsyncs. While it writes and syncs, new operations queue up; the next commit
//! starts as soon as the previous fsync returns and takes them all. A second thread applies each
//! durable commit to the index, in order, and only then completes its operations, so indexing
//! one commit overlaps with writing the next. There is no timer: under light load a commit holds one
//! entry and latency is one write plus one fsync; under heavy load commits grow and throughput
//! follows the disk's sequential bandwidth.
//!
//! A failed write or fsync is never retried: the file's state is unknown, so the journal is
//! marked failed, nothing in that commit or after it is acknowledged, and the bookie serves
//! reads only until restarted (replay then decides, from checksums, what is on disk).

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::file::{AlignedBuf, IoMode, WriteFile};
use super::format::{
    BLOCK, COMMIT_HEADER_LEN, CommitHeader, FLAG_END_OF_FILE, Location, Record, align_up,
};
use super::spares::Spares;
use crate::apply::{Applier, DurableCommit};
use crate::error::BookieError;
use crate::health::Health;
use crate::index::AppliedPos;
use crate::queue::BatchQueue;

/// Told when an operation is durable (or failed): through a channel, or by running a callback
/// on the apply thread (the server's way to answer without a task per request).
pub enum Completion {
    Channel(oneshot::Sender<Result<(), BookieError>>),
    Callback(Box<dyn FnOnce(Result<(), BookieError>) + Send>),
}

impl Completion {
    pub fn send(self, r: Result<(), BookieError>) {
        match self {
            Completion::Channel(tx) => {
                let _ = tx.send(r);
            }
            Completion::Callback(f) => f(r),
        }
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Completion::Channel(_) => "Completion::Channel",
            Completion::Callback(_) => "Completion::Callback",
        })
    }
}

#[derive(Debug)]
pub enum Op {
    /// Records journaled together, in one commit, and completed together.
    Write {
        records: Vec<Record>,
        done: Completion,
    },
    /// Completes once everything queued before it is durable.
    Barrier { done: Completion },
    /// Finish everything queued before it, then stop.
    Shutdown,
}

/// Submits operations to the journal thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JournalHandle {
    tx: Arc<BatchQueue<Op>>,
}

impl JournalHandle {
    /// Queues `record`; the receiver resolves once it is durable. Never blocks.
    pub fn submit(&self, record: Record) -> oneshot::Receiver<Result<(), BookieError>> {
        self.submit_all(vec![record])
    }

    /// Queues `records` to be journaled in one commit; resolves once all are durable.
    pub fn submit_all(&self, records: Vec<Record>) -> oneshot::Receiver<Result<(), BookieError>> {
        let (tx, rx) = oneshot::channel();
        self.submit_then(records, Completion::Channel(tx));
        rx
    }

    /// Queues `records` to be journaled in one commit; `done` is told once all are durable.
    pub fn submit_then(&self, records: Vec<Record>, done: Completion) {
        if let Err(Op::Write { done, .. }) = self.tx.push(Op::Write { records, done }) {
            done.send(Err(BookieError::ShuttingDown));
        }
    }

    pub fn barrier(&self) -> oneshot::Receiver<Result<(), BookieError>> {
        let (tx, rx) = oneshot::channel();
        let done = Completion::Channel(tx);
        if let Err(Op::Barrier { done }) = self.tx.push(Op::Barrier { done }) {
            done.send(Err(BookieError::ShuttingDown));
        }
        rx
    }

    pub fn shutdown(&self) {
        let _ = self.tx.push(Op::Shutdown);
    }

    pub fn channel() -> (JournalHandle, Arc<BatchQueue<Op>>) {
        let q = Arc::new(BatchQueue::default());
        (JournalHandle { tx: q.clone() }, q)
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

/// Work for the apply thread, in journal order.
#[derive(Debug)]
enum ApplyJob {
    Commit {
        pos: AppliedPos,
        records: Vec<(Record, Option<Location>)>,
        dones: Vec<Completion>,
    },
    Barrier(Completion),
}

#[derive(Debug)]
pub struct Writer {
    cfg: WriterConfig,
    file: WriteFile,
    pos: Position,
    buf: AlignedBuf,
    spares: Arc<Spares>,
    health: Arc<Health>,
    apply_tx: Arc<BatchQueue<ApplyJob>>,
    apply_thread: Option<std::thread::JoinHandle<()>>,
    stats: Stats,
}

/// What the journal has done, logged when it stops.
#[derive(Debug, Default)]
struct Stats {
    commits: u64,
    records: u64,
    bytes: u64,
    write_nanos: u64,
    sync_nanos: u64,
    max_write_nanos: u64,
    max_sync_nanos: u64,
}

/// One operation's records, with its completion.
type Pending = (Vec<Record>, Completion);

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
        let apply_tx = Arc::new(BatchQueue::default());
        let apply_rx = apply_tx.clone();
        let h = health.clone();
        let apply_thread = std::thread::Builder::new()
            .name("dlog-apply".into())
            .spawn(move || apply_loop(&applier, &h, &apply_rx))
            .map_err(BookieError::io("spawn the apply thread"))?;
        Ok(Writer {
            cfg,
            file,
            pos,
            buf: AlignedBuf::with_capacity(cap),
            spares,
            health,
            apply_tx,
            apply_thread: Some(apply_thread),
            stats: Stats::default(),
        })
    }

    /// The thread body: runs until [`Op::Shutdown`] or until every handle is dropped, then
    /// waits for the apply thread to finish what was written.
    pub fn run(mut self, rx: Arc<BatchQueue<Op>>) {
        let mut batch: Vec<Op> = Vec::new();
        while rx.drain_into(&mut batch) {
            let stop = batch.iter().position(|op| matches!(op, Op::Shutdown));
            if let Some(i) = stop {
                let after: Vec<Op> = batch.drain(i..).collect();
                self.process(std::mem::take(&mut batch));
                refuse(after, || BookieError::ShuttingDown);
                break;
            }
            self.process(std::mem::take(&mut batch));
        }
        // Refuse whatever is still queued.
        self.health.set_draining();
        refuse(rx.close_and_take(), || BookieError::ShuttingDown);
        self.apply_tx.close();
        if let Some(t) = self.apply_thread.take() {
            let _ = t.join();
        }
        let st = &self.stats;
        let per = |x: u64| x as f64 / st.commits.max(1) as f64;
        info!(
            commits = st.commits,
            records = st.records,
            bytes = st.bytes,
            records_per_commit = per(st.records),
            kib_per_commit = per(st.bytes) / 1024.0,
            write_ms_per_commit = per(st.write_nanos) / 1e6,
            sync_ms_per_commit = per(st.sync_nanos) / 1e6,
            max_write_ms = st.max_write_nanos as f64 / 1e6,
            max_sync_ms = st.max_sync_nanos as f64 / 1e6,
            "journal writer stopped"
        );
    }

    fn process(&mut self, batch: Vec<Op>) {
        if self.health.is_failed() {
            let reason = self.health.failed_reason();
            refuse(batch, || BookieError::JournalFailed(reason.clone()));
            return;
        }
        let mut ops: Vec<Pending> = Vec::with_capacity(batch.len());
        let mut barriers = Vec::new();
        for op in batch {
            match op {
                Op::Write { records, done } => ops.push((records, done)),
                Op::Barrier { done } => barriers.push(done),
                Op::Shutdown => {}
            }
        }
        let mut rest = ops.into_iter().peekable();
        while rest.peek().is_some() {
            if self.pos.ended
                && let Err(e) = self.roll()
            {
                let (_, done) = rest.next().expect("peeked");
                done.send(Err(BookieError::ReadOnly(format!(
                    "journal cannot roll: {e}"
                ))));
                continue;
            }
            // Take whole operations while they fit in this file.
            let mut size = COMMIT_HEADER_LEN as u64;
            let mut group: Vec<Pending> = Vec::new();
            while let Some((recs, _)) = rest.peek() {
                let next = size + recs.iter().map(Record::encoded_len).sum::<usize>() as u64;
                let too_big = next > self.cfg.max_commit_bytes as u64 && !group.is_empty();
                if too_big || self.pos.offset + align_up(next) > self.limit(recs) {
                    break;
                }
                size = next;
                group.push(rest.next().expect("peeked"));
            }
            if group.is_empty() {
                let (recs, done) = rest.next().expect("peeked");
                if self.pos.offset == BLOCK as u64 {
                    // A fresh file cannot hold it: impossible with a validated config.
                    done.send(Err(BookieError::Internal(format!(
                        "journal operation of {} bytes does not fit in a journal file",
                        recs.iter().map(Record::encoded_len).sum::<usize>()
                    ))));
                    continue;
                }
                // Not even the first operation fits: move to the next file, then try again.
                match self.roll() {
                    Ok(()) => {
                        let mut again = vec![(recs, done)];
                        again.extend(rest.by_ref());
                        rest = again.into_iter().peekable();
                    }
                    Err(e) => {
                        done.send(Err(BookieError::ReadOnly(format!(
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
        for b in barriers {
            // Completed by the apply thread once everything before it is applied.
            if let Err(ApplyJob::Barrier(b)) = self.apply_tx.push(ApplyJob::Barrier(b)) {
                b.send(Err(BookieError::ShuttingDown));
            }
        }
    }

    /// Writes and syncs one commit, then hands it to the apply thread, which completes it.
    fn commit(&mut self, group: Vec<Pending>) -> Result<(), (String, Vec<Completion>)> {
        let start = self.pos.offset;
        let file_id = self.file.file_id;
        self.buf.clear();
        self.buf.zero_extend_to(COMMIT_HEADER_LEN);
        let mut records: Vec<(Record, Option<Location>)> = Vec::with_capacity(group.len());
        let mut dones = Vec::with_capacity(group.len());
        let mut head = Vec::with_capacity(64);
        let mut heads_crc = 0u32;
        for (recs, done) in group {
            for rec in recs {
                head.clear();
                let data = rec.encode_head(&mut head);
                heads_crc = crc32c::crc32c_append(heads_crc, &head);
                self.buf.extend_from_slice(&head);
                let loc = data.map(|d| {
                    let at = start + self.buf.len() as u64;
                    self.buf.extend_from_slice(d);
                    Location {
                        file_id,
                        offset: at,
                        len: d.len() as u32,
                    }
                });
                records.push((rec, loc));
            }
            dones.push(done);
        }
        self.stats.records += records.len() as u64;
        let body = &self.buf.as_slice()[COMMIT_HEADER_LEN..];
        let header = CommitHeader {
            flags: 0,
            file_id,
            seq: self.pos.next_seq,
            body_len: body.len() as u32,
            heads_crc,
        };
        header.encode(
            self.cfg.salt,
            &mut self.buf.as_mut_slice()[..COMMIT_HEADER_LEN],
        );
        self.buf.zero_extend_to(header.span() as usize);
        if let Err(e) = self.write_and_sync(start) {
            return Err((e, dones));
        }
        self.pos.offset = start + header.span();
        self.pos.next_seq += 1;
        let job = ApplyJob::Commit {
            pos: AppliedPos {
                seq: header.seq,
                file_id,
                offset: self.pos.offset,
            },
            records,
            dones,
        };
        if let Err(ApplyJob::Commit { dones, .. }) = self.apply_tx.push(job) {
            for d in dones {
                d.send(Err(BookieError::ShuttingDown));
            }
        }
        Ok(())
    }

    fn write_and_sync(&mut self, at: u64) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        self.file
            .write_at(self.buf.as_slice(), at)
            .map_err(|e| format!("write journal file {} at {at}: {e}", self.file.file_id))?;
        let t1 = std::time::Instant::now();
        self.file
            .sync()
            .map_err(|e| format!("sync journal file {}: {e}", self.file.file_id))?;
        self.stats.commits += 1;
        self.stats.bytes += self.buf.len() as u64;
        let (w, y) = ((t1 - t0).as_nanos() as u64, t1.elapsed().as_nanos() as u64);
        self.stats.write_nanos += w;
        self.stats.sync_nanos += y;
        self.stats.max_write_nanos = self.stats.max_write_nanos.max(w);
        self.stats.max_sync_nanos = self.stats.max_sync_nanos.max(y);
        Ok(())
    }

    /// The offset a commit holding `recs` may extend to. One block is always kept for the
    /// end-of-file marker; ordinary records also leave the reserve free, so that fences and
    /// deletes can still be journaled when the next file cannot be created (disk full): deletes
    /// are how the bookie gets out of that state.
    fn limit(&self, recs: &[Record]) -> u64 {
        let control = recs.iter().all(uses_reserve);
        let keep = BLOCK as u64 + if control { 0 } else { self.cfg.reserve };
        self.file.size.saturating_sub(keep)
    }

    /// Writes the end-of-file marker so replay knows this file ended cleanly.
    fn end_file(&mut self) -> Result<(), String> {
        let header = CommitHeader {
            flags: FLAG_END_OF_FILE,
            file_id: self.file.file_id,
            seq: self.pos.next_seq,
            body_len: 0,
            heads_crc: 0,
        };
        self.buf.clear();
        self.buf.zero_extend_to(BLOCK);
        header.encode(
            self.cfg.salt,
            &mut self.buf.as_mut_slice()[..COMMIT_HEADER_LEN],
        );
        self.write_and_sync(self.pos.offset)?;
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
            d.send(Err(BookieError::JournalFailed(reason.clone())));
        }
    }
}

/// Records that may use the journal's reserve: the ones a full bookie still needs.
fn uses_reserve(rec: &Record) -> bool {
    matches!(rec, Record::Fence { .. } | Record::Delete { .. })
}

/// The apply thread: applies durable commits in journal order, then completes them.
fn apply_loop(applier: &Applier, health: &Health, rx: &BatchQueue<ApplyJob>) {
    // Once one commit failed to apply, later ones are not applied either: the index would have
    // a hole. They are durable in the journal; a restart replays them.
    let mut broken: Option<String> = None;
    let mut jobs = Vec::new();
    while rx.drain_into(&mut jobs) {
        for job in jobs.drain(..) {
            apply_job(applier, health, &mut broken, job);
        }
    }
}

fn apply_job(applier: &Applier, health: &Health, broken: &mut Option<String>, job: ApplyJob) {
    match job {
        ApplyJob::Commit {
            pos,
            records,
            dones,
        } => {
            let result = match broken {
                Some(why) => Err(why.clone()),
                None => applier
                    .apply(&DurableCommit {
                        pos,
                        records: &records,
                    })
                    .map_err(|e| {
                        // The bytes are durable but the index did not take them: do not
                        // acknowledge, stop taking writes; a restart replays the journal.
                        let reason = format!("index apply failed after commit {}: {e}", pos.seq);
                        error!(%reason, "journal stops accepting writes");
                        health.set_failed(reason.clone());
                        *broken = Some(reason.clone());
                        reason
                    }),
            };
            for d in dones {
                d.send(result.clone().map_err(BookieError::JournalFailed));
            }
        }
        ApplyJob::Barrier(done) => {
            done.send(if health.is_failed() {
                Err(BookieError::JournalFailed(health.failed_reason()))
            } else {
                Ok(())
            });
        }
    }
}

fn refuse(ops: Vec<Op>, err: impl Fn() -> BookieError) {
    for op in ops {
        match op {
            Op::Write { done, .. } | Op::Barrier { done } => {
                done.send(Err(err()));
            }
            Op::Shutdown => {}
        }
    }
}
