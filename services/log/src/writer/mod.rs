//! [`StreamWriter`]: the single writer of a stream.
//!
//! **Acquiring** a stream bumps its epoch with a compare-and-set on the stream record, which
//! makes every older writer's next segment change fail. The new writer then recovers the open
//! segment's ledger — fencing the old writer on the bookies, so it can no longer be
//! acknowledged — seals the segment at the ledger's true end, and opens a new segment on a new
//! ledger, all in one commit that expects the stream record's version.
//!
//! **Appending**: one task owns the stream's state. It takes every append waiting in its
//! mailbox, assigns dense offsets, packs the batches into entries of up to
//! `max_entry_bytes` (without re-encoding them) and pipelines the entries to the segment's
//! ledger. An append is answered, in offset order, once its entry is durable on Qa bookies.
//!
//! **Rolling** by size is pipelined (`task/roll.rs`): entries go on to the next segment's
//! ledger, created ahead of time, while the full segment's last entries complete; then one
//! commit closes the full ledger, seals its segment and opens the next. The next segment's
//! appends are answered only after that commit. Rolling by age, and sealing on close, wait
//! for the entries in flight first.
//!
//! **A failing ledger** (bookies lost and no replacement): recover the ledger to learn exactly
//! which entries made it, answer those appends, fail the others (they are definitely not in
//! the stream, so a retry cannot duplicate them), seal there, and go on in a new segment.
//! A fenced ledger or a lost compare-and-set on the stream record means a newer writer: every
//! pending append fails with `Fenced` and the writer stops.

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, decode_record_set};
use dlog_api::stream::{StreamName, StreamPolicy};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LogError;
use crate::streams::Log;

mod acquire;
mod task;

/// Tuning of a stream writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Largest entry the writer builds from queued appends.
    pub max_entry_bytes: usize,
    /// Bytes appended but not yet acknowledged before new appends wait.
    pub max_pending_bytes: usize,
    /// Entries of the open segment a new writer scans for producers' batches.
    pub dedup_scan_entries: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_entry_bytes: 1 << 20,
            max_pending_bytes: 64 << 20,
            dedup_scan_entries: 4096,
        }
    }
}

/// One client append: a record set as the client encoded it, and what the writer needs to
/// know about it.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// 0: no idempotence.
    pub producer_id: u64,
    /// The producer's sequence number of the first record.
    pub sequence: u64,
    pub records: Bytes,
    pub count: u32,
    pub max_timestamp_ms: i64,
    /// The first record's timestamp.
    pub first_timestamp_ms: i64,
    pub min_txid: Option<u64>,
    pub max_txid: Option<u64>,
}

impl AppendBatch {
    /// Checks a client's record set against the stream's limits (every payload within
    /// `max_record_bytes`, txids non-decreasing) and summarises it.
    pub fn from_record_set(
        producer_id: u64,
        sequence: u64,
        records: Bytes,
        policy: &StreamPolicy,
    ) -> Result<AppendBatch, LogError> {
        let limits = RecordSetLimits {
            max_payload: usize::MAX,
            ..RecordSetLimits::default()
        };
        let decoded = decode_record_set(records.clone(), &limits)
            .map_err(|e| LogError::BadRequest(e.to_string()))?;
        if decoded.is_empty() {
            return Err(LogError::BadRequest(
                "an append needs at least one record".into(),
            ));
        }
        let limit = policy.max_record_bytes as usize;
        let mut max_ts = i64::MIN;
        let (mut min_txid, mut max_txid) = (None, None::<u64>);
        for (index, r) in decoded.iter().enumerate() {
            if r.payload.len() > limit {
                return Err(LogError::RecordTooLarge {
                    index,
                    len: r.payload.len(),
                    limit,
                });
            }
            max_ts = max_ts.max(r.timestamp_ms);
            if let Some(t) = r.txid {
                if max_txid.is_some_and(|m| t < m) {
                    return Err(LogError::BadRequest(format!(
                        "record {index}: txid {t} is below an earlier txid of the batch"
                    )));
                }
                min_txid = min_txid.or(Some(t));
                max_txid = Some(t);
            }
        }
        Ok(AppendBatch {
            producer_id,
            sequence,
            records,
            count: decoded.len() as u32,
            max_timestamp_ms: max_ts,
            first_timestamp_ms: decoded[0].timestamp_ms,
            min_txid,
            max_txid,
        })
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_offset: u64,
    pub count: u32,
    /// A retry of a batch appended before: these are its original offsets.
    pub duplicate: bool,
}

type Reply = oneshot::Sender<Result<Appended, LogError>>;

/// Resolves once the append is durable, with its offsets.
pub type AppendFuture = oneshot::Receiver<Result<Appended, LogError>>;

enum Msg {
    Append(AppendBatch, Reply),
    /// Seal the open segment now (if it holds anything) and open the next.
    Roll(oneshot::Sender<Result<u64, LogError>>),
    Close {
        end_stream: bool,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
}

/// The writer of one stream at one epoch. Cheap to clone; the stream is sealed when
/// [`StreamWriter::close`] is called or the last clone is dropped (then without waiting).
#[derive(Debug, Clone)]
pub struct StreamWriter {
    name: StreamName,
    epoch: u64,
    policy: std::sync::Arc<StreamPolicy>,
    tx: mpsc::Sender<Msg>,
    acked: watch::Receiver<u64>,
}

impl StreamWriter {
    /// Takes the stream over: see the module docs.
    pub async fn open(
        log: &Log,
        name: &StreamName,
        opts: WriterOptions,
    ) -> Result<StreamWriter, LogError> {
        let task = acquire::acquire(log, name, opts).await?;
        let (tx, rx) = mpsc::channel(1024);
        let acked = task.acked.subscribe();
        let epoch = task.epoch;
        let policy = std::sync::Arc::new(task.policy().clone());
        tokio::spawn(task.run(rx));
        Ok(StreamWriter {
            name: name.clone(),
            epoch,
            policy,
            tx,
            acked,
        })
    }

    pub fn name(&self) -> &StreamName {
        &self.name
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The stream's policy when this writer acquired it (what appends are checked against).
    pub fn policy(&self) -> &StreamPolicy {
        &self.policy
    }

    /// The offset after the last acknowledged record, as it moves.
    pub fn acked_end(&self) -> watch::Receiver<u64> {
        self.acked.clone()
    }

    /// Queues an append (waits while the writer's queue is full) and returns a future of its
    /// offsets.
    pub async fn append(&self, batch: AppendBatch) -> AppendFuture {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(Msg::Append(_, reply))) =
            self.tx.send(Msg::Append(batch, reply)).await
        {
            let _ = reply.send(Err(self.stopped()));
        }
        rx
    }

    /// Appends and waits until it is durable.
    pub async fn append_wait(&self, batch: AppendBatch) -> Result<Appended, LogError> {
        self.append(batch)
            .await
            .await
            .unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Waits for every queued append, then seals the open segment; returns the stream's end.
    pub async fn close(&self) -> Result<u64, LogError> {
        self.close_inner(false).await
    }

    /// Seals the open segment with everything appended so far (unless it is empty) and goes
    /// on in a new one: what an offload with `--seal` needs. Returns the sealed end.
    pub async fn roll(&self) -> Result<u64, LogError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Roll(reply)).await.is_err() {
            return Err(self.stopped());
        }
        rx.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Like [`StreamWriter::close`], and marks the stream ended: nothing more is ever appended.
    pub async fn end_stream(&self) -> Result<u64, LogError> {
        self.close_inner(true).await
    }

    async fn close_inner(&self, end_stream: bool) -> Result<u64, LogError> {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::Close { end_stream, reply })
            .await
            .is_err()
        {
            return Err(self.stopped());
        }
        rx.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    fn stopped(&self) -> LogError {
        LogError::Unavailable(format!("the writer of {} has stopped", self.name))
    }
}
