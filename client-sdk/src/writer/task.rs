//! The writer's owning task: batching, pipelining, acknowledgements and retries.
//!
//! One task per [`Writer`](super::Writer), looping on one `select!` over its command queue
//! (appends and flushes from the handles), the answers of the append requests in flight, and
//! one timer (the linger of the oldest queued append, or the end of a retry's backoff).
//!
//! Invariants:
//! - Sequence numbers are dense: a batch of `n` records numbered `s` is followed by `s + n`.
//!   A batch gets its number only once it is encoded, so an append refused before sending uses
//!   none.
//! - Batches go out in sequence order on one connection, and after a retryable failure every
//!   unacknowledged batch is sent again, in order, on the (possibly new) owner's connection.
//!   Each round of resending is a new *generation*; an error answering a send of an older
//!   generation is ignored (that batch has been sent again), while a success of any generation
//!   completes its batch (a duplicate answer for a batch already completed is ignored).
//! - A `producer sequence gap` for a batch behind an unacknowledged one is the consequence of
//!   that earlier batch's failure, not an error of its own: it is retried with it.
//! - Once stopped, the task fails everything it holds and every later command with the error.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dlog_api::ErrorCode;
use dlog_api::record::RecordSetLimits;
use dlog_api::wire::client::{Append, OwnerInfo, Request, Response};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug};

use super::batch::{Batch, Pending, REQUEST_OVERHEAD};
use super::{Shared, WriterOptions};
use crate::backoff::Backoff;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::ClientError;
use crate::routing::unexpected;

/// What the writer handles send the task.
#[derive(Debug)]
pub(super) enum Command {
    Append(Pending),
    /// Answer once every append received before this command has completed.
    Flush(oneshot::Sender<Result<(), ClientError>>),
}

/// The answer to one send of a batch: its generation, its sequence number and the outcome.
type Answer = Pin<Box<dyn Future<Output = (u64, u64, Result<Response, ClientError>)> + Send>>;

/// How many commands are taken off the queue per turn of the loop.
const COMMANDS_PER_TURN: usize = 1024;

pub(super) struct WriterTask {
    client: Client,
    shared: Arc<Shared>,
    options: WriterOptions,
    limits: RecordSetLimits,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Every handle is gone: finish what is queued, then end.
    input_closed: bool,
    /// The number the next received append gets.
    next_item: u64,
    /// Appends not yet in a batch, in the order received.
    queue: VecDeque<Pending>,
    queued_bytes: usize,
    next_sequence: u64,
    /// Batches sent and not yet acknowledged, by sequence number.
    unacked: BTreeMap<u64, Batch>,
    answers: FuturesUnordered<Answer>,
    generation: u64,
    /// The connection batches are sent on; `None` until (re)connected.
    conn: Option<Arc<Connection>>,
    /// The address batches are sent to: the stream's owner as far as known.
    target: String,
    /// A retry is waiting for its backoff to end.
    retry_at: Option<Instant>,
    /// The next reconnect asks who the owner is first.
    needs_lookup: bool,
    /// When the current run of failures began (none since the last success).
    failing_since: Option<Instant>,
    backoff: Backoff,
    /// "Not owner" redirects followed since the last success.
    redirects: usize,
    /// Flushes waiting, each with the last append number it waits for.
    flushes: Vec<(u64, oneshot::Sender<Result<(), ClientError>>)>,
    /// Appends up to this number are sent without waiting for their linger.
    flush_upto: Option<u64>,
    stopped: Option<ClientError>,
}

impl std::fmt::Debug for WriterTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterTask")
            .field("stream", &self.shared.stream)
            .field("producer_id", &self.shared.producer_id)
            .field("next_sequence", &self.next_sequence)
            .field("queued", &self.queue.len())
            .field("unacked", &self.unacked.len())
            .finish_non_exhaustive()
    }
}

impl WriterTask {
    pub(super) fn new(
        client: Client,
        shared: Arc<Shared>,
        options: WriterOptions,
        limits: RecordSetLimits,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        let target = client.router().target(&shared.stream);
        Self {
            client,
            next_sequence: options.first_sequence,
            options,
            limits,
            commands,
            input_closed: false,
            next_item: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            unacked: BTreeMap::new(),
            answers: FuturesUnordered::new(),
            generation: 0,
            conn: None,
            target,
            retry_at: None,
            needs_lookup: false,
            failing_since: None,
            backoff: Backoff::default(),
            redirects: 0,
            flushes: Vec::new(),
            flush_upto: None,
            stopped: None,
            shared,
        }
    }

    /// Runs until every handle is gone and everything queued has completed.
    pub(super) async fn run(self) {
        let span = tracing::debug_span!(
            "writer",
            stream = %self.shared.stream,
            producer = self.shared.producer_id
        );
        self.run_loop().instrument(span).await;
    }

    async fn run_loop(mut self) {
        loop {
            // A connection lost with batches in flight shows up as their failed answers (and a
            // retry); one lost while idle is just replaced.
            if self.unacked.is_empty() && self.conn.as_ref().is_some_and(|c| c.is_closed()) {
                self.conn = None;
            }
            if self.stopped.is_none()
                && self.conn.is_none()
                && self.retry_at.is_none()
                && self.has_work()
            {
                self.reconnect().await;
            }
            self.pump();
            self.complete_flushes();
            if self.input_closed && !self.has_work() {
                break;
            }
            // One timer: the end of a retry's backoff, else the oldest append's linger.
            let wake = self
                .retry_at
                .or_else(|| self.linger_deadline())
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                command = self.commands.recv(), if !self.input_closed => self.on_command(command),
                Some((generation, sequence, answer)) = self.answers.next(),
                    if !self.answers.is_empty() =>
                {
                    self.on_answer(generation, sequence, answer);
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                        self.retry_at = None;
                    }
                }
            }
        }
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.unacked.is_empty()
    }

    fn on_command(&mut self, first: Option<Command>) {
        let mut next = first;
        for _ in 0..COMMANDS_PER_TURN {
            match next {
                None => {
                    self.input_closed = true;
                    return;
                }
                Some(Command::Append(p)) => self.on_append(p),
                Some(Command::Flush(tx)) => self.on_flush(tx),
            }
            next = match self.commands.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        // More than a turn's worth: keep the one taken, look at the rest next turn.
        if let Some(c) = next {
            match c {
                Command::Append(p) => self.on_append(p),
                Command::Flush(tx) => self.on_flush(tx),
            }
        }
    }

    fn on_append(&mut self, mut p: Pending) {
        if let Some(e) = &self.stopped {
            p.fail(e);
            return;
        }
        p.item = self.next_item;
        self.next_item += 1;
        self.queued_bytes += p.bytes;
        self.queue.push_back(p);
    }

    fn on_flush(&mut self, tx: oneshot::Sender<Result<(), ClientError>>) {
        if let Some(e) = &self.stopped {
            let _ = tx.send(Err(e.clone()));
            return;
        }
        match self.next_item.checked_sub(1) {
            None => {
                let _ = tx.send(Ok(()));
            }
            Some(last) => {
                self.flushes.push((last, tx));
                self.flush_upto = Some(self.flush_upto.map_or(last, |u| u.max(last)));
            }
        }
    }

    /// Answers the flushes whose appends have all completed.
    fn complete_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest_queued = self.queue.front().map(|p| p.item);
        let oldest_unacked = self.unacked.values().next().map(|b| b.first_item);
        let oldest = match (oldest_queued, oldest_unacked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (done, waiting) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(last, _)| oldest.is_none_or(|o| o > *last));
        self.flushes = waiting;
        let done: Vec<(u64, oneshot::Sender<_>)> = done;
        for (_, tx) in done {
            let _ = tx.send(Ok(()));
        }
        if self.flushes.is_empty() {
            self.flush_upto = None;
        }
    }

    /// When the oldest queued append's linger ends, if a batch could be sent then.
    fn linger_deadline(&self) -> Option<Instant> {
        if self.stopped.is_some()
            || self.conn.is_none()
            || self.unacked.len() >= self.max_inflight()
        {
            return None;
        }
        self.queue
            .front()
            .map(|p| p.queued_at + self.options.linger)
    }

    fn max_inflight(&self) -> usize {
        self.options.max_inflight_batches.max(1)
    }

    /// Cuts and sends batches while a batch is due and the in-flight limit allows.
    fn pump(&mut self) {
        if self.stopped.is_some() || self.retry_at.is_some() {
            return;
        }
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let max_bytes = self
            .options
            .max_batch_bytes
            .min(conn.max_frame_len().saturating_sub(REQUEST_OVERHEAD))
            .max(1);
        let now = Instant::now();
        while self.unacked.len() < self.max_inflight() {
            let Some(front) = self.queue.front() else {
                break;
            };
            let due = self.input_closed
                || self.queued_bytes >= max_bytes
                || self.flush_upto.is_some_and(|upto| front.item <= upto)
                || now >= front.queued_at + self.options.linger;
            if !due {
                break;
            }
            let mut items = Vec::new();
            let mut bytes = 0;
            while let Some(p) = self.queue.front() {
                if !items.is_empty() && bytes + p.bytes > max_bytes {
                    break;
                }
                let Some(p) = self.queue.pop_front() else {
                    break;
                };
                bytes += p.bytes;
                self.queued_bytes -= p.bytes;
                items.push(p);
            }
            let sequence = self.next_sequence;
            match Batch::encode(items, self.options.compression, &self.limits) {
                Ok(batch) => {
                    self.next_sequence += u64::from(batch.count);
                    self.unacked.insert(sequence, batch);
                    self.send(&conn, sequence);
                }
                // Its appends have been failed; no sequence number was used.
                Err(e) => debug!(error = %e, "batch refused before sending"),
            }
        }
    }

    fn send(&mut self, conn: &Connection, sequence: u64) {
        let Some(batch) = self.unacked.get(&sequence) else {
            return;
        };
        let request = Request::Append(Append {
            stream: self.shared.stream.clone(),
            producer_id: self.shared.producer_id,
            sequence,
            records: batch.records.clone(),
        });
        let answer = conn.call(request, Duration::ZERO);
        let generation = self.generation;
        self.answers.push(Box::pin(
            async move { (generation, sequence, answer.await) },
        ));
    }

    fn on_answer(&mut self, generation: u64, sequence: u64, answer: Result<Response, ClientError>) {
        match answer {
            Ok(Response::Appended(a)) => {
                // Absent: an earlier send of it was acknowledged already.
                let Some(batch) = self.unacked.remove(&sequence) else {
                    return;
                };
                if a.count != batch.count {
                    let e = ClientError::protocol(format!(
                        "the node acknowledged {} records of a batch of {}",
                        a.count, batch.count
                    ));
                    batch.fail(&e);
                    self.stop(e);
                    return;
                }
                if a.duplicate {
                    debug!(sequence, "batch was appended before; keeping its offsets");
                }
                batch.complete(a.first_offset);
                if generation == self.generation {
                    self.backoff.reset();
                    self.redirects = 0;
                    self.failing_since = None;
                }
            }
            Ok(other) => {
                let e = unexpected("append", &other);
                if let Some(batch) = self.unacked.remove(&sequence) {
                    batch.fail(&e);
                }
                self.stop(e);
            }
            Err(e) => {
                if generation != self.generation || !self.unacked.contains_key(&sequence) {
                    return;
                }
                let behind_unacked = self.unacked.keys().next().is_some_and(|&s| s < sequence);
                let gap_behind = e.code() == Some(ErrorCode::SequenceGap) && behind_unacked;
                if e.is_retryable() || gap_behind {
                    self.retry(e);
                } else {
                    let e = e.context(format!("append to {}", self.shared.stream));
                    if let Some(batch) = self.unacked.remove(&sequence) {
                        batch.fail(&e);
                    }
                    self.stop(e);
                }
            }
        }
    }

    /// Schedules sending every unacknowledged batch again after a retryable failure, to the
    /// owner it names or after a backoff; stops the writer once retrying has taken too long.
    fn retry(&mut self, e: ClientError) {
        self.generation += 1;
        self.conn = None;
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        if now.duration_since(since) > self.options.retry_timeout {
            let e = e.context(format!(
                "append to {}: gave up after retrying for {:?}",
                self.shared.stream, self.options.retry_timeout
            ));
            self.stop(e);
            return;
        }
        let router = self.client.router();
        let delay = if e.is_not_owner() {
            self.redirects += 1;
            match e.owner() {
                Some(owner) if self.redirects <= router.max_redirects() => {
                    router.remember(&self.shared.stream, owner);
                    self.target = owner.to_string();
                    Duration::ZERO
                }
                _ => {
                    self.needs_lookup = true;
                    self.backoff.next_delay()
                }
            }
        } else {
            if e.code().is_none() {
                // The node could not be reached: start over from the bootstrap node.
                router.forget(&self.shared.stream, &self.target);
                self.target = router.bootstrap().to_string();
            }
            self.backoff.next_delay()
        };
        debug!(
            error = %e,
            ?delay,
            target = %self.target,
            unacked = self.unacked.len(),
            "append failed; retrying"
        );
        self.retry_at = Some(now + delay);
    }

    /// Connects to the target (asking for the owner first if needed) and sends every
    /// unacknowledged batch again, in sequence order.
    async fn reconnect(&mut self) {
        let client = self.client.clone();
        let router = client.router();
        if self.needs_lookup {
            match router.lookup(&self.shared.stream).await {
                Ok(OwnerInfo { owner, .. }) => {
                    self.needs_lookup = false;
                    self.target = match owner {
                        Some(owner) => {
                            router.remember(&self.shared.stream, &owner);
                            owner
                        }
                        None => router.bootstrap().to_string(),
                    };
                }
                Err(e) => {
                    self.retry(e.context("look up the stream's owner"));
                    return;
                }
            }
        }
        match router.pool().get(&self.target).await {
            Ok(conn) => {
                let sequences: Vec<u64> = self.unacked.keys().copied().collect();
                for sequence in sequences {
                    self.send(&conn, sequence);
                }
                self.conn = Some(conn);
            }
            Err(e) => self.retry(e),
        }
    }

    /// Fails everything held, and everything that comes later, with `e`.
    fn stop(&mut self, e: ClientError) {
        debug!(error = %e, "writer stopped");
        self.shared.stop(e.clone());
        for (_, batch) in std::mem::take(&mut self.unacked) {
            batch.fail(&e);
        }
        for p in self.queue.drain(..) {
            p.fail(&e);
        }
        self.queued_bytes = 0;
        for (_, tx) in self.flushes.drain(..) {
            let _ = tx.send(Err(e.clone()));
        }
        self.flush_upto = None;
        self.answers = FuturesUnordered::new();
        self.conn = None;
        self.retry_at = None;
        self.stopped = Some(e);
    }
}
