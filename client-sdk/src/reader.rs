//! [`Reader`]: a stream of a dlog stream's records, from a chosen start, optionally following
//! the tail.
//!
//! The reader resolves its start once ([`StartAt`]: the stream's start or end from a
//! `describe`, a timestamp or txid with a `seek`), then reads forward. Each read answer carries
//! whole stored batches, so its first batch may begin below the asked offset: the records below
//! it are skipped. One read is always in flight ahead of the consumer (in a spawned task), so a
//! catching-up reader overlaps the network with the caller's work, and a following reader's
//! long-poll is already waiting at the node when the caller asks for more.
//!
//! A reader that does not follow ends once it has caught up: it has delivered every record
//! below the `end_offset` of an answer that had nothing more to give (or the stream has ended). A following reader
//! long-polls at the end ([`ReaderOptions::wait`] per request) and ends only if the stream ends.
//! Retryable failures are retried with backoff for up to [`ReaderOptions::retry_timeout`]; any
//! other failure is yielded once, and the reader ends after it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dlog_api::record::{RecordSetLimits, decode_record_set};
use dlog_api::stream::{MAX_RECORD_BYTES, StreamInfo};
use dlog_api::wire::client::{Records, SeekBy, split_record_sets};
use dlog_api::{ErrorCode, Record, StreamName};
use futures::Stream;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::ClientError;

/// Where a [`Reader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first readable offset (the stream's start offset).
    Beginning,
    /// The end: only records appended from now on.
    End,
    /// This offset.
    Offset(u64),
    /// The first record whose timestamp (ms since the Unix epoch) is at or after this one.
    Timestamp(i64),
    /// The first record whose transaction id is at or after this one.
    Txid(u64),
}

/// How a [`Reader`] reads.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Where to start (default: the beginning).
    pub start: StartAt,
    /// Keep following the tail once caught up (default false: end once caught up).
    pub follow: bool,
    /// About how many bytes of records one read request asks for (default 1 MiB).
    pub max_bytes: u32,
    /// How long one long-poll waits at the node for new records when following (default 10 s).
    pub wait: Duration,
    /// How long retryable failures are retried before the reader gives up (default 30 s).
    pub retry_timeout: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            start: StartAt::Beginning,
            follow: false,
            max_bytes: 1 << 20,
            wait: Duration::from_secs(10),
            retry_timeout: Duration::from_secs(30),
        }
    }
}

/// A record and its offset in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The record's offset.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

/// A read answer and the offset it was asked for.
#[derive(Debug)]
struct Fetched {
    asked: u64,
    records: Records,
}

/// Reads a stream's records in offset order; see the [module docs](self). A
/// [`futures::Stream`] of `Result<ReadRecord, ClientError>`.
#[derive(Debug)]
pub struct Reader {
    client: Client,
    stream: StreamName,
    options: ReaderOptions,
    /// The offset the next read asks for; `None` until the start is resolved.
    next_offset: Option<u64>,
    /// Decoded records not yet yielded.
    buffer: VecDeque<ReadRecord>,
    /// The read in flight.
    fetch: Option<JoinHandle<Result<Fetched, ClientError>>>,
    /// The latest answer showed nothing beyond `next_offset`.
    at_end: bool,
    /// The stream has ended and everything has been read.
    ended: bool,
    /// Nothing more will be yielded (ended, caught up without following, or failed).
    done: bool,
}

impl Reader {
    pub(crate) fn new(client: Client, stream: StreamName, options: ReaderOptions) -> Self {
        let next_offset = match options.start {
            StartAt::Offset(o) => Some(o),
            _ => None,
        };
        Self {
            client,
            stream,
            options,
            next_offset,
            buffer: VecDeque::new(),
            fetch: None,
            at_end: false,
            ended: false,
            done: false,
        }
    }

    /// The stream this reader reads.
    pub fn stream(&self) -> &StreamName {
        &self.stream
    }

    /// The offset of the next record this reader will yield (the offset after the last one
    /// yielded); `None` until its start is resolved.
    pub fn position(&self) -> Option<u64> {
        self.buffer.front().map(|r| r.offset).or(self.next_offset)
    }

    /// Whether the reader has yielded every record up to the end of the stream as of the
    /// latest answer.
    pub fn caught_up(&self) -> bool {
        self.buffer.is_empty() && (self.at_end || self.ended)
    }

    /// Starts the next read, unless one is in flight or nothing more will be read.
    fn start_fetch(&mut self) {
        if self.fetch.is_some() || self.ended || (self.at_end && !self.options.follow) {
            return;
        }
        let client = self.client.clone();
        let stream = self.stream.clone();
        let options = self.options.clone();
        let position = self.next_offset;
        let wait = if self.at_end && self.options.follow {
            self.options.wait
        } else {
            Duration::ZERO
        };
        self.fetch = Some(tokio::spawn(async move {
            let asked = match position {
                Some(offset) => offset,
                None => resolve_start(&client, &stream, &options).await?,
            };
            let records = retrying(options.retry_timeout, || {
                client.read(&stream, asked, options.max_bytes, wait)
            })
            .await?;
            Ok(Fetched { asked, records })
        }));
    }

    /// Decodes an answer into the buffer and moves the position past it.
    fn absorb(&mut self, fetched: Fetched) -> Result<(), ClientError> {
        let Fetched { asked, records } = fetched;
        // The largest payload any stream allows; the default bound on a set's uncompressed
        // body keeps a hostile length from allocating more than that.
        let limits = RecordSetLimits {
            max_payload: MAX_RECORD_BYTES as usize,
            ..RecordSetLimits::default()
        };
        let sets = split_record_sets(records.records).map_err(|e| {
            ClientError::protocol(format!("read {}: split record sets: {e}", self.stream))
        })?;
        let mut offset = records.first_offset.0;
        let had_records = !sets.is_empty();
        for set in sets {
            let decoded = decode_record_set(set, &limits).map_err(|e| {
                ClientError::new(
                    dlog_api::ErrorKind::Corrupt,
                    format!("read {} at offset {offset}: {e}", self.stream),
                )
            })?;
            for record in decoded {
                if offset >= asked {
                    self.buffer.push_back(ReadRecord { offset, record });
                }
                offset += 1;
            }
        }
        let next = offset.max(asked);
        let end = records.end_offset.0;
        if !self.options.follow && asked > end {
            // A follower may wait for the stream to reach its offset; a one-off read may not.
            return Err(ClientError::from_code(
                ErrorCode::OffsetOutOfRange,
                format!("offset {asked} is past the end of {} ({end})", self.stream),
            ));
        }
        if had_records && next == asked && end > asked {
            return Err(ClientError::protocol(format!(
                "read {} at offset {asked}: the answer holds no record at or after it",
                self.stream
            )));
        }
        self.next_offset = Some(next);
        let reached = next >= end;
        self.ended = records.end_of_stream && reached;
        // A reader that stops at the end confirms it with an answer that has nothing more:
        // an answer's `end_offset` may be the end of the segment it came from rather than of
        // the stream, and stopping there would cut the read short. (A follower needs no such
        // care: its next long-poll returns at once when there is more.)
        self.at_end = reached && (self.options.follow || !had_records || self.ended);
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(fetch) = self.fetch.take() {
            fetch.abort();
        }
    }
}

impl Stream for Reader {
    type Item = Result<ReadRecord, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(record) = this.buffer.pop_front() {
                // Read ahead while the caller works on what it has.
                this.start_fetch();
                return Poll::Ready(Some(Ok(record)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.ended || (this.at_end && !this.options.follow) {
                this.done = true;
                return Poll::Ready(None);
            }
            this.start_fetch();
            let Some(fetch) = this.fetch.as_mut() else {
                this.done = true;
                return Poll::Ready(None);
            };
            let joined = match Pin::new(fetch).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(joined) => joined,
            };
            this.fetch = None;
            let fetched = joined
                .map_err(|e| ClientError::protocol(format!("read task failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = fetched.and_then(|f| this.absorb(f)) {
                this.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            this.start_fetch();
        }
    }
}

/// Runs `op` until it succeeds, fails for good, or retryable failures have lasted `timeout`.
async fn retrying<T, F, Fut>(timeout: Duration, mut op: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let started = Instant::now();
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Err(e) if e.is_retryable() && started.elapsed() < timeout => {
                tracing::debug!(error = %e, "read failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

/// The offset a reader starts at.
async fn resolve_start(
    client: &Client,
    stream: &StreamName,
    options: &ReaderOptions,
) -> Result<u64, ClientError> {
    let timeout = options.retry_timeout;
    let seek = |by| retrying(timeout, move || client.seek(stream, by));
    match options.start {
        StartAt::Offset(offset) => Ok(offset),
        StartAt::Timestamp(ms) => Ok(seek(SeekBy::Timestamp(ms)).await?.0),
        StartAt::Txid(txid) => Ok(seek(SeekBy::Txid(txid)).await?.0),
        StartAt::Beginning => {
            let info = retrying(timeout, || describe(client, stream)).await?;
            Ok(info.start_offset)
        }
        StartAt::End => end_offset(client, stream, timeout).await,
    }
}

/// The offset after the last acknowledged record of `stream`, as the node serving reads
/// knows it.
pub(crate) async fn end_offset(
    client: &Client,
    stream: &StreamName,
    retry_timeout: Duration,
) -> Result<u64, ClientError> {
    let info = retrying(retry_timeout, || describe(client, stream)).await?;
    // A describe may be answered by a node behind the owner; a read answer states the end as
    // the node serving reads knows it.
    match client
        .read(stream, info.end_offset, 1, Duration::ZERO)
        .await
    {
        Ok(r) => Ok(r.end_offset.0.max(info.end_offset)),
        Err(_) => Ok(info.end_offset),
    }
}

async fn describe(client: &Client, stream: &StreamName) -> Result<StreamInfo, ClientError> {
    client.admin().describe_stream(stream).await
}
