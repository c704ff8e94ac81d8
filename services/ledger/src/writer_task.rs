//! [`LedgerWriter`]: the handle of an open ledger's writer, and the one task that owns the
//! ledger's [`WriterCore`] — looping over its mailbox (appends, close), the bookies' answers, the
//! metadata changes it asked for and an idle timer, and executing the core's commands.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::{BookieId, EntryId, ErrorCode, LedgerId};
use dlog_metadata::{Expect, MetadataError, Revision};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::bookie_client::{AckSender, AddAck, ClientError};
use crate::client::Inner;
use crate::metadata::{LedgerMetadata, LedgerState, ledger_key};
use crate::placement;
use crate::registry::list_bookies;
use crate::writer::{AddFailure, Token, WriteError, WriterCommand, WriterCore, WriterEvent};

enum Msg {
    Append {
        payload: Bytes,
        reply: oneshot::Sender<Result<EntryId, WriteError>>,
    },
    Close {
        reply: oneshot::Sender<Result<LedgerMetadata, WriteError>>,
    },
    /// Close, but hand the closing metadata write to the caller instead of doing it.
    CloseOp {
        reply: oneshot::Sender<Result<dlog_metadata::Op, WriteError>>,
    },
}

/// What the task hears back from what it started.
enum Feedback {
    Acks(BookieId, AddAck),
    SendFailed(BookieId, EntryId, ClientError),
    Changed(Result<(LedgerMetadata, Revision), WriteError>),
    Closed(Result<(LedgerMetadata, Revision), WriteError>),
}

/// The writer of one open ledger. Appends are pipelined: [`LedgerWriter::append`] waits only
/// for room in the writer's queue and returns a future of the acknowledgement.
#[derive(Debug, Clone)]
pub struct LedgerWriter {
    id: LedgerId,
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Append { .. } => "Append",
            Msg::Close { .. } => "Close",
            Msg::CloseOp { .. } => "CloseOp",
        })
    }
}

/// Resolves with the entry id once the entry is durable on an ack quorum and every entry before
/// it is too.
pub type AppendAck = oneshot::Receiver<Result<EntryId, WriteError>>;

impl LedgerWriter {
    pub(crate) fn start(inner: Arc<Inner>, meta: LedgerMetadata, version: Revision) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let id = meta.id;
        let core = WriterCore::new(meta, inner.opts.max_payload);
        tokio::spawn(run(inner, core, version, rx));
        LedgerWriter { id, tx }
    }

    pub fn id(&self) -> LedgerId {
        self.id
    }

    /// Queues `payload` as the next entry. Waits while the writer holds its limit of
    /// unacknowledged bytes; the returned future resolves once the entry is acknowledged.
    pub async fn append(&self, payload: Bytes) -> AppendAck {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(Msg::Append { reply, .. })) =
            self.tx.send(Msg::Append { payload, reply }).await
        {
            let _ = reply.send(Err(WriteError::Closed));
        }
        rx
    }

    /// Appends and waits for the acknowledgement.
    pub async fn append_wait(&self, payload: Bytes) -> Result<EntryId, WriteError> {
        self.append(payload)
            .await
            .await
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Waits for every pending entry, then returns the metadata write that seals the ledger
    /// at its last entry (a compare-and-set on the version this writer holds) without doing
    /// it: the caller commits it together with its own changes, atomically. The writer takes
    /// no more appends. If the caller's commit does not happen, the ledger stays open in the
    /// metadata with no writer, and a recovery seals it.
    pub async fn close_op(&self) -> Result<dlog_metadata::Op, WriteError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::CloseOp { reply }).await.is_err() {
            return Err(WriteError::Closed);
        }
        rx.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Waits for every pending entry, then seals the ledger; returns the closed metadata.
    pub async fn close(&self) -> Result<LedgerMetadata, WriteError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Close { reply }).await.is_err() {
            return Err(WriteError::Closed);
        }
        rx.await.unwrap_or(Err(WriteError::Closed))
    }
}

struct Task {
    inner: Arc<Inner>,
    core: WriterCore,
    version: Revision,
    fb_tx: mpsc::UnboundedSender<Feedback>,
    acks: HashMap<BookieId, AckSender>,
    /// Connections this task sends on, with their ack channels.
    conns: HashMap<BookieId, (crate::bookie_client::BookieClient, AckSender)>,
    replies: Replies,
    close_waiters: Vec<oneshot::Sender<Result<LedgerMetadata, WriteError>>>,
    /// Set by [`LedgerWriter::close_op`]: the closing write goes to it instead of the store.
    close_op: Option<oneshot::Sender<Result<dlog_metadata::Op, WriteError>>>,
    next_token: Token,
    pending_bytes: usize,
    idle_at: Option<Instant>,
    result: Option<Result<LedgerMetadata, WriteError>>,
}

async fn run(inner: Arc<Inner>, core: WriterCore, version: Revision, mut rx: mpsc::Receiver<Msg>) {
    let (fb_tx, mut fb_rx) = mpsc::unbounded_channel();
    let max_pending = inner.opts.max_pending_bytes;
    let mut t = Task {
        inner,
        core,
        version,
        fb_tx,
        acks: HashMap::new(),
        conns: HashMap::new(),
        replies: Replies::default(),
        close_waiters: Vec::new(),
        close_op: None,
        next_token: 0,
        pending_bytes: 0,
        idle_at: None,
        result: None,
    };
    let mut mailbox_open = true;
    // One timer, re-armed, rather than a new one per loop turn.
    let idle_timer = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(idle_timer);
    let mut armed: Option<Instant> = None;
    let mut msgs = Vec::with_capacity(256);
    let mut fbs = Vec::with_capacity(256);
    loop {
        if t.idle_at != armed {
            armed = t.idle_at;
            if let Some(at) = armed {
                idle_timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            biased;
            n = fb_rx.recv_many(&mut fbs, 256) => {
                if n > 0 {
                    for fb in fbs.drain(..) {
                        t.feedback(fb);
                    }
                }
            }
            n = rx.recv_many(&mut msgs, 256), if mailbox_open && t.pending_bytes < max_pending => {
                if n == 0 {
                    mailbox_open = false;
                }
                for m in msgs.drain(..) {
                    t.message(m);
                }
            }
            _ = &mut idle_timer, if armed.is_some() => {
                t.idle_at = None;
                armed = None;
                let cmds = t.core.handle(WriterEvent::Idle);
                t.execute(cmds);
            }
        }
        if !mailbox_open && (t.core.is_finished() || t.core.pending() == 0) {
            // Every handle is gone and nothing is owed to anyone.
            break;
        }
    }
    debug!(ledger = %t.core.ledger(), "ledger writer task ends");
}

type Reply = oneshot::Sender<Result<EntryId, WriteError>>;

/// Waiting appenders by token. Tokens are handed out in order and mostly answered in order, so
/// a deque indexed from the oldest unanswered token does.
#[derive(Default)]
struct Replies {
    base: Token,
    slots: VecDeque<Option<(Reply, usize)>>,
}

impl Replies {
    fn insert(&mut self, token: Token, r: (Reply, usize)) {
        debug_assert_eq!(token, self.base + self.slots.len() as u64);
        self.slots.push_back(Some(r));
    }

    fn remove(&mut self, token: Token) -> Option<(Reply, usize)> {
        let i = usize::try_from(token.checked_sub(self.base)?).ok()?;
        let r = self.slots.get_mut(i)?.take();
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        r
    }
}

impl Task {
    fn message(&mut self, m: Msg) {
        match m {
            Msg::Append { payload, reply } => {
                let token = self.next_token;
                self.next_token += 1;
                self.pending_bytes += payload.len();
                self.replies.insert(token, (reply, payload.len()));
                self.idle_at = None;
                let cmds = self.core.handle(WriterEvent::Append { token, payload });
                self.execute(cmds);
            }
            Msg::Close { reply } => {
                if let Some(r) = &self.result {
                    let _ = reply.send(r.clone());
                    return;
                }
                self.close_waiters.push(reply);
                let cmds = self.core.handle(WriterEvent::Close);
                self.execute(cmds);
            }
            Msg::CloseOp { reply } => {
                if let Some(r) = &self.result {
                    let _ = reply.send(r.clone().and(Err(WriteError::Closed)));
                    return;
                }
                self.close_op = Some(reply);
                let cmds = self.core.handle(WriterEvent::Close);
                self.execute(cmds);
            }
        }
    }

    fn feedback(&mut self, fb: Feedback) {
        let events: Vec<WriterEvent> = match fb {
            Feedback::Acks(bookie, ack) => match ack.result {
                Ok(()) => ack
                    .entries
                    .into_iter()
                    .map(|entry| WriterEvent::AddAcked {
                        bookie: bookie.clone(),
                        entry,
                    })
                    .collect(),
                Err(e) => ack
                    .entries
                    .into_iter()
                    .map(|entry| WriterEvent::AddFailed {
                        bookie: bookie.clone(),
                        entry,
                        failure: add_failure(&e),
                    })
                    .collect(),
            },
            Feedback::SendFailed(bookie, entry, e) => vec![WriterEvent::AddFailed {
                bookie,
                entry,
                failure: add_failure(&e),
            }],
            Feedback::Changed(Ok((metadata, version))) => {
                self.version = version;
                info!(ledger = %metadata.id, ensemble = ?metadata.current_ensemble(), "ensemble changed");
                vec![WriterEvent::EnsembleChanged { metadata }]
            }
            Feedback::Changed(Err(error)) => vec![WriterEvent::EnsembleChangeFailed { error }],
            Feedback::Closed(Ok((metadata, version))) => {
                self.version = version;
                vec![WriterEvent::Closed { metadata }]
            }
            Feedback::Closed(Err(error)) => vec![WriterEvent::CloseFailed { error }],
        };
        for ev in events {
            let cmds = self.core.handle(ev);
            self.execute(cmds);
        }
    }

    fn execute(&mut self, cmds: Vec<WriterCommand>) {
        let mut acked = false;
        for c in cmds {
            match c {
                WriterCommand::Send { bookie, add } => self.send(bookie, add),
                WriterCommand::WriteLac { bookie, lac } => {
                    let inner = self.inner.clone();
                    let (ledger, epoch) = (self.core.ledger(), self.core.metadata().epoch);
                    tokio::spawn(async move {
                        if let Ok(c) = inner.pool.get(&bookie).await
                            && let Err(e) = c.write_lac(ledger, epoch, lac).await
                        {
                            debug!(%ledger, %bookie, error = %e, "explicit LAC write failed");
                        }
                    });
                }
                WriterCommand::Acked { token, entry } => {
                    if let Some((reply, len)) = self.replies.remove(token) {
                        self.pending_bytes -= len;
                        let _ = reply.send(Ok(entry));
                    }
                    acked = true;
                }
                WriterCommand::Failed { token, error } => {
                    if let Some((reply, len)) = self.replies.remove(token) {
                        self.pending_bytes -= len;
                        let _ = reply.send(Err(error));
                    }
                }
                WriterCommand::ReplaceBookies {
                    first_entry,
                    failed,
                } => self.replace(first_entry, failed),
                WriterCommand::CloseLedger { last_entry, length } => {
                    let mut closed = self.core.metadata().clone();
                    closed.state = LedgerState::Closed;
                    closed.last_entry = last_entry;
                    closed.length = length;
                    let (inner, version, tx) =
                        (self.inner.clone(), self.version, self.fb_tx.clone());
                    if let Some(reply) = self.close_op.take() {
                        let op = dlog_metadata::Op::put(
                            ledger_key(closed.id),
                            closed.encode(),
                            Expect::Version(version),
                        );
                        let _ = reply.send(Ok(op));
                        // This writer is done; the caller's commit makes the close durable.
                        let _ = tx.send(Feedback::Closed(Ok((closed, version))));
                        continue;
                    }
                    tokio::spawn(async move {
                        let r = put_metadata(&inner, &closed, version).await;
                        let _ = tx.send(Feedback::Closed(r.map(|v| (closed, v))));
                    });
                }
                WriterCommand::Finished(r) => {
                    match &r {
                        Ok(m) => {
                            info!(ledger = %m.id, last_entry = ?m.last_entry, length = m.length, "ledger closed")
                        }
                        Err(e) => {
                            warn!(ledger = %self.core.ledger(), error = %e, "ledger writer failed")
                        }
                    }
                    for w in self.close_waiters.drain(..) {
                        let _ = w.send(r.clone());
                    }
                    if let Some(w) = self.close_op.take() {
                        let _ = w.send(r.clone().and(Err(WriteError::Closed)));
                    }
                    self.result = Some(r);
                }
            }
        }
        if acked {
            // Tell the bookies the LAC explicitly if no append follows soon.
            self.idle_at = Some(Instant::now() + self.inner.opts.lac_flush_delay);
        }
    }

    fn send(&mut self, bookie: BookieId, add: dlog_api::wire::bookie::AddEntry) {
        let entry = add.entry;
        // Fast path: this task's own handle on a live connection.
        if let Some((c, acks)) = self.conns.get(&bookie)
            && !c.is_closed()
        {
            if let Err(e) = c.add_to(add, acks) {
                let _ = self.fb_tx.send(Feedback::SendFailed(bookie, entry, e));
            }
            return;
        }
        let acks = self.ack_sender(&bookie);
        if let Some(c) = self.inner.pool.cached_client(&bookie) {
            let r = c.add_to(add, &acks);
            self.conns.insert(bookie.clone(), (c, acks));
            if let Err(e) = r {
                let _ = self.fb_tx.send(Feedback::SendFailed(bookie, entry, e));
            }
            return;
        }
        // Connect in the background; the next send finds the connection in the pool.
        let (inner, tx) = (self.inner.clone(), self.fb_tx.clone());
        tokio::spawn(async move {
            let r = match inner.pool.get(&bookie).await {
                Ok(c) => c.add_to(add, &acks),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                let _ = tx.send(Feedback::SendFailed(bookie, entry, e));
            }
        });
    }

    /// The ack channel for `bookie`: its acknowledgements come back tagged with its id.
    fn ack_sender(&mut self, bookie: &BookieId) -> AckSender {
        if let Some(s) = self.acks.get(bookie) {
            return s.clone();
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<AddAck>();
        let (fb, id) = (self.fb_tx.clone(), bookie.clone());
        tokio::spawn(async move {
            while let Some(a) = rx.recv().await {
                if fb.send(Feedback::Acks(id.clone(), a)).is_err() {
                    return;
                }
            }
        });
        self.acks.insert(bookie.clone(), tx.clone());
        tx
    }

    fn replace(&mut self, first_entry: EntryId, failed: Vec<BookieId>) {
        let meta = self.core.metadata().clone();
        let (inner, version, tx) = (self.inner.clone(), self.version, self.fb_tx.clone());
        tokio::spawn(async move {
            let r = change_ensemble(&inner, &meta, version, first_entry, &failed).await;
            let _ = tx.send(Feedback::Changed(r));
        });
    }
}

fn add_failure(e: &ClientError) -> AddFailure {
    use dlog_api::ErrorKind;
    match (e.code(), e.kind()) {
        (Some(ErrorCode::Fenced), _) => AddFailure::Fenced,
        (_, ErrorKind::Invalid | ErrorKind::Corrupt) => AddFailure::Rejected(e.to_string()),
        _ => AddFailure::Unavailable(e.to_string()),
    }
}

async fn change_ensemble(
    inner: &Inner,
    meta: &LedgerMetadata,
    version: Revision,
    first_entry: EntryId,
    failed: &[BookieId],
) -> Result<(LedgerMetadata, Revision), WriteError> {
    let regs = list_bookies(&*inner.store)
        .await
        .map_err(|e| WriteError::Unavailable(format!("list bookies: {e}")))?;
    let keep: Vec<BookieId> = meta
        .current_ensemble()
        .iter()
        .filter(|b| !failed.contains(b))
        .cloned()
        .collect();
    let exclude = failed.iter().cloned().collect();
    let chosen = {
        let mut rng = inner.rng.lock();
        placement::choose(&regs, failed.len(), &keep, &exclude, &mut rng)
            .map_err(|e| WriteError::Unavailable(format!("replace {failed:?}: {e}")))?
    };
    let pairs: Vec<_> = failed.iter().cloned().zip(chosen).collect();
    let next = meta
        .with_replacements(first_entry, &pairs)
        .map_err(|e| WriteError::Unavailable(e.to_string()))?;
    let v = put_metadata(inner, &next, version).await?;
    Ok((next, v))
}

/// Writes the writer's next metadata over the version it holds. A conflict means a recovery
/// took the ledger over: the writer is fenced.
async fn put_metadata(
    inner: &Inner,
    meta: &LedgerMetadata,
    version: Revision,
) -> Result<Revision, WriteError> {
    let key = ledger_key(meta.id);
    let value = meta.encode();
    let mut attempt = 0;
    loop {
        match inner
            .store
            .put(&key, value.clone(), Expect::Version(version))
            .await
        {
            Ok(v) => return Ok(v),
            Err(MetadataError::Conflict { .. }) => {
                // After a retry, the "other" change may be our own earlier attempt, whose
                // answer was lost.
                if attempt > 0
                    && let Ok(Some(kv)) = inner.store.get(&key).await
                    && kv.value == value
                {
                    return Ok(kv.mod_revision);
                }
                return Err(WriteError::Fenced);
            }
            Err(e) if e.is_retryable() && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => {
                return Err(WriteError::Unavailable(format!(
                    "write ledger metadata: {e}"
                )));
            }
        }
    }
}
