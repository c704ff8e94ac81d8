//! [`Writer`]: a pipelined, batching, idempotent producer for one stream.
//!
//! Appending is two-phase, like a Kafka producer: `writer.append(record).await` returns an
//! [`AppendFuture`] as soon as the record is queued (waiting first if the writer's buffer is
//! full), and awaiting that future gives the record's offset once it is durable. Many appends
//! can thus be outstanding from one task:
//!
//! ```no_run
//! # async fn example(client: dlog_client::Client) -> Result<(), dlog_client::ClientError> {
//! use dlog_client::{Record, WriterOptions};
//! let stream: dlog_client::StreamName = "app/events".parse()?;
//! let writer = client.writer(&stream, WriterOptions::default());
//! let mut pending = Vec::new();
//! for i in 0..1000 {
//!     pending.push(writer.append(Record::new(format!("event {i}"))).await);
//! }
//! for p in pending {
//!     println!("durable at offset {}", p.await?);
//! }
//! # Ok(()) }
//! ```
//!
//! A background task (one per writer, see [`task`]) batches queued records into record sets of
//! up to [`WriterOptions::max_batch_bytes`], waiting at most [`WriterOptions::linger`] for a
//! batch to fill, and sends up to [`WriterOptions::max_inflight_batches`] append requests at
//! once to the stream's owner. Each batch carries the producer id and the producer's sequence
//! number of its first record (the count of records this producer sent before), so when a
//! retryable failure (a lost connection, a timeout, `not owner`, `stream unavailable`) forces
//! the writer to send a batch again, the node recognises one it already holds and answers with
//! the original offsets: retries never duplicate records. Batches are always (re)sent in
//! sequence order. A non-retryable failure (or retrying for longer than
//! [`WriterOptions::retry_timeout`]) fails the batch's records and stops the writer, since the
//! sequence numbers after the failed batch could never be accepted: every later append fails
//! with the same error. Start a new writer (a new producer id) to continue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dlog_api::record::RecordSetLimits;
use dlog_api::{Compression, Offset, Record, StreamName};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::client::Client;
use crate::error::ClientError;

mod batch;
mod task;

use batch::{Pending, REQUEST_OVERHEAD, encoded_size};
use task::Command;

/// How a [`Writer`] batches, pipelines and retries.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The producer id that makes retries idempotent. `None` (the default) picks a random
    /// non-zero id. `Some(0)` turns idempotence off: a retried batch may then be appended
    /// twice. An id must not be used by two writers at once.
    pub producer_id: Option<u64>,
    /// The sequence number of this writer's first record (default 0). A writer that reuses
    /// the producer id of an earlier one continues its numbering here; a number the node has
    /// already seen would be taken for a retry and not appended.
    pub first_sequence: u64,
    /// How long a batch may wait for more records before it is sent (default 1 ms).
    pub linger: Duration,
    /// Largest batch (encoded record set), in bytes (default 1 MiB). Also bounded by the
    /// node's frame limit. One `append_batch` call larger than this is sent on its own.
    pub max_batch_bytes: usize,
    /// Most append requests awaiting their answer at once (default 64).
    pub max_inflight_batches: usize,
    /// Most record bytes queued or awaiting acknowledgement (default 64 MiB); appends wait for
    /// room beyond it.
    pub max_buffered_bytes: usize,
    /// Compression of the batches (default none).
    pub compression: Compression,
    /// How long the writer keeps retrying a batch after a retryable failure before it gives
    /// up and stops (default 30 s).
    pub retry_timeout: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            producer_id: None,
            first_sequence: 0,
            linger: Duration::from_millis(1),
            max_batch_bytes: 1 << 20,
            max_inflight_batches: 64,
            max_buffered_bytes: 64 << 20,
            compression: Compression::None,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

/// What the handles and the task share.
#[derive(Debug)]
struct Shared {
    stream: StreamName,
    producer_id: u64,
    /// Buffer space in bytes; closed when the writer stops, waking waiting appends.
    budget: Arc<Semaphore>,
    budget_total: usize,
    /// Set when the writer stops: the error every later append fails with.
    stopped: Mutex<Option<ClientError>>,
    max_record_bytes: usize,
    /// The largest encoded `append_batch` call that fits one request.
    max_call_bytes: usize,
}

impl Shared {
    fn stopped(&self) -> Option<ClientError> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn stop(&self, err: ClientError) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_none() {
            *stopped = Some(err);
        }
        drop(stopped);
        self.budget.close();
    }
}

/// Appends records to one stream; see the [module docs](self). Cheap to clone: clones share
/// the queue and the background task, which finishes the queued appends after the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Writer {
    pub(crate) fn new(client: Client, stream: StreamName, options: WriterOptions) -> Writer {
        let producer_id = options.producer_id.unwrap_or_else(|| fastrand::u64(1..));
        let info = client.server_info();
        let max_record_bytes = info.max_record_bytes as usize;
        let budget_total = options.max_buffered_bytes.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            stream: stream.clone(),
            producer_id,
            budget: Arc::new(Semaphore::new(budget_total)),
            budget_total,
            stopped: Mutex::new(None),
            max_record_bytes,
            max_call_bytes: (info.max_frame_len as usize).saturating_sub(REQUEST_OVERHEAD),
        });
        let limits = RecordSetLimits {
            max_payload: max_record_bytes,
            max_body: usize::MAX,
            ..RecordSetLimits::default()
        };
        let (commands, rx) = mpsc::unbounded_channel();
        let task = task::WriterTask::new(client, shared.clone(), options, limits, rx);
        tokio::spawn(task.run());
        Writer { shared, commands }
    }

    /// The stream this writer appends to.
    pub fn stream(&self) -> &StreamName {
        &self.shared.stream
    }

    /// The producer id its appends carry (0: not idempotent).
    pub fn producer_id(&self) -> u64 {
        self.shared.producer_id
    }

    /// Queues `record` and returns a future of its offset, resolved once the record is durable.
    /// Waits first while the writer's buffer is full. A `timestamp_ms` of 0 is set to the
    /// current time. A payload over the node's limit fails at once, without being sent.
    pub async fn append(&self, record: Record) -> AppendFuture {
        self.append_batch(vec![record]).await
    }

    /// Queues `records` to be appended together, with consecutive offsets, and returns a
    /// future of the first one's offset. See [`Writer::append`].
    pub async fn append_batch(&self, mut records: Vec<Record>) -> AppendFuture {
        match self.admit(&mut records) {
            Ok(bytes) => self.enqueue(records, bytes).await,
            Err(e) => AppendFuture::failed(e),
        }
    }

    /// Waits until every append queued before this call has completed (durable or failed).
    /// Fails if the writer has stopped.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_err() {
            return Err(self.closed_error());
        }
        rx.await.unwrap_or_else(|_| Err(self.closed_error()))
    }

    /// Checks records before queueing them and fills in missing timestamps; returns their
    /// encoded size.
    fn admit(&self, records: &mut [Record]) -> Result<usize, ClientError> {
        if let Some(e) = self.shared.stopped() {
            return Err(e);
        }
        if records.is_empty() {
            return Err(ClientError::invalid("append of no records"));
        }
        let limits = RecordSetLimits::default();
        let now = now_ms();
        for r in records.iter_mut() {
            if r.payload.len() > self.shared.max_record_bytes {
                return Err(ClientError::invalid(format!(
                    "record payload of {} bytes exceeds the limit of {} bytes",
                    r.payload.len(),
                    self.shared.max_record_bytes
                )));
            }
            if let Some(k) = &r.key
                && k.len() > limits.max_key
            {
                return Err(ClientError::invalid(format!(
                    "record key of {} bytes exceeds the limit of {} bytes",
                    k.len(),
                    limits.max_key
                )));
            }
            if r.timestamp_ms == 0 {
                r.timestamp_ms = now;
            }
        }
        let bytes = encoded_size(records);
        if bytes > self.shared.max_call_bytes {
            return Err(ClientError::invalid(format!(
                "{} records of {bytes} bytes do not fit one request (limit {} bytes)",
                records.len(),
                self.shared.max_call_bytes
            )));
        }
        Ok(bytes)
    }

    async fn enqueue(&self, records: Vec<Record>, bytes: usize) -> AppendFuture {
        // An append larger than the whole buffer takes all of it, rather than waiting forever.
        let permits = bytes.clamp(1, self.shared.budget_total);
        let permit = match u32::try_from(permits) {
            Ok(n) => self.shared.budget.clone().acquire_many_owned(n).await.ok(),
            Err(_) => None,
        };
        let Some(permit) = permit else {
            return AppendFuture::failed(self.closed_error());
        };
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            item: 0, // numbered by the task, in the order it receives appends
            records,
            bytes,
            queued_at: std::time::Instant::now(),
            reply,
            permit: Some(permit),
        };
        match self.commands.send(Command::Append(pending)) {
            Ok(()) => AppendFuture::waiting(rx),
            Err(_) => AppendFuture::failed(self.closed_error()),
        }
    }

    /// The error for an append or flush the stopped (or gone) task cannot take.
    fn closed_error(&self) -> ClientError {
        self.shared
            .stopped()
            .unwrap_or_else(|| ClientError::unavailable("writer task ended"))
    }
}

/// The current time in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The outcome of one append: the offset of its (first) record once durable, or why it failed.
#[must_use = "an append's outcome is only known by awaiting its future"]
#[derive(Debug)]
pub struct AppendFuture {
    state: AppendState,
}

#[derive(Debug)]
enum AppendState {
    Failed(Option<ClientError>),
    Waiting(oneshot::Receiver<Result<Offset, ClientError>>),
}

impl AppendFuture {
    fn failed(e: ClientError) -> Self {
        Self {
            state: AppendState::Failed(Some(e)),
        }
    }

    fn waiting(rx: oneshot::Receiver<Result<Offset, ClientError>>) -> Self {
        Self {
            state: AppendState::Waiting(rx),
        }
    }
}

impl Future for AppendFuture {
    type Output = Result<Offset, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            AppendState::Failed(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| ClientError::invalid("append future polled after completion")))),
            AppendState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(ClientError::unavailable("writer task ended")))),
        }
    }
}
