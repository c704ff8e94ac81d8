//! A pipelined client for one bookie over one TCP connection.
//!
//! Any number of requests may be outstanding: each gets a fresh request id, a writer task
//! coalesces queued frames into few writes, and a reader task routes each response to its
//! waiter by id. Adds queued at the same moment for the same ledger and epoch are sent as one
//! `add batch` request (no waiting to fill a batch: only what is already queued is combined),
//! which the bookie admits and journals as a unit; each add still gets its own answer.
//!
//! When the connection fails, every outstanding request fails with
//! [`ClientError::Disconnected`] and the client stays closed; reconnecting is the caller's
//! decision (the replication layer replaces failed bookies rather than waiting for them). A
//! request that gets no answer within `ClientOptions::request_timeout` (plus its long-poll
//! wait) fails with [`ClientError::Timeout`], so a paused or partitioned bookie never leaves a
//! caller waiting forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dlog_api::wire::bookie::{
    AddBatch, AddEntry, BookieInfo, Fence, Hello, LacInfo, MAX_BATCH_ENTRIES, ReadEntry,
    ReadEntryOk, ReadLac, Request, Response, ResponseError, WriteLac,
};
use dlog_api::wire::{DEFAULT_MAX_FRAME_LEN, FrameCodec, PROTOCOL_VERSION};
use dlog_api::{EntryId, Epoch, ErrorCode, ErrorKind, LedgerId};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tracing::debug;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("connect to bookie {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("connection to bookie lost: {0}")]
    Disconnected(String),
    #[error("bookie answered: {0}")]
    Server(#[from] ResponseError),
    #[error("bad response from bookie: {0}")]
    Protocol(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("request refused locally: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The bookie's error code, if it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Server(e) => e.code.kind(),
            ClientError::Connect { .. }
            | ClientError::Disconnected(_)
            | ClientError::Timeout(_) => ErrorKind::Unavailable,
            ClientError::Protocol(_) => ErrorKind::Internal,
            ClientError::Invalid(_) => ErrorKind::Invalid,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub max_frame_len: usize,
    pub connect_timeout: Duration,
    /// How long a request may go unanswered before it fails with [`ClientError::Timeout`]
    /// (a long-poll gets its wait on top).
    pub request_timeout: Duration,
    /// Name sent in the handshake, for the bookie's logs.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            client_name: "dlog".into(),
        }
    }
}

type Reply = oneshot::Sender<Result<Response, ClientError>>;

/// The answer to adds sent with [`BookieClient::add_to`]: one message per request, so a batch
/// acknowledges (or fails) several entries at once.
#[derive(Debug)]
pub struct AddAck {
    pub ledger: LedgerId,
    pub entries: Vec<EntryId>,
    pub result: Result<(), ClientError>,
}

/// Where [`AddAck`]s are delivered.
pub type AckSender = mpsc::UnboundedSender<AddAck>;

/// How the sender of one add wants to hear about it.
#[derive(Debug)]
enum Notify {
    Reply(Reply),
    Ack(AckSender),
}

/// Who waits for a response: one request, or the adds of a batch.
#[derive(Debug)]
enum Waiter {
    One(Reply),
    /// Adds whose senders all listen on one ack channel: one message for the whole batch.
    Acks(LedgerId, Vec<EntryId>, AckSender),
    Batch(LedgerId, Vec<(EntryId, Notify)>),
}

impl Waiter {
    fn complete(self, r: Result<Response, ClientError>) {
        let expect = |n: usize| -> Result<(), ClientError> {
            match &r {
                Ok(Response::AddedBatch { count, .. }) if *count as usize == n => Ok(()),
                Ok(Response::Added { .. }) if n == 1 => Ok(()),
                Ok(other) => Err(unexpected("add", other)),
                Err(e) => Err(e.clone()),
            }
        };
        match self {
            Waiter::One(w) => {
                let _ = w.send(r);
            }
            Waiter::Acks(ledger, entries, tx) => {
                let result = expect(entries.len());
                let _ = tx.send(AddAck {
                    ledger,
                    entries,
                    result,
                });
            }
            Waiter::Batch(ledger, adds) => {
                let result = expect(adds.len());
                for (entry, n) in adds {
                    match n {
                        Notify::Reply(w) => {
                            let _ =
                                w.send(result.clone().map(|()| Response::Added { ledger, entry }));
                        }
                        Notify::Ack(tx) => {
                            let _ = tx.send(AddAck {
                                ledger,
                                entries: vec![entry],
                                result: result.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
}

/// What callers queue for the writer task.
#[derive(Debug)]
enum Outgoing {
    /// An encoded frame whose waiter is already registered.
    Frame(BytesMut),
    /// An add, which the writer may combine with adjacent ones.
    Add(AddEntry, Notify),
}

#[derive(Debug)]
struct Shared {
    /// Waiters by request id, with the time after which they are failed with a timeout.
    pending: Mutex<Option<HashMap<u64, (Instant, Waiter)>>>,
    next_id: AtomicU64,
    request_timeout: Duration,
    /// The smaller of ours and the bookie's limit, once the handshake told us.
    max_frame_len: AtomicUsize,
    closed: AtomicBool,
}

impl Shared {
    /// Fails every waiter and refuses new requests.
    fn close(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        if let Some(pending) = self.pending.lock().take() {
            for (_, (_, w)) in pending {
                w.complete(Err(ClientError::Disconnected(why.to_string())));
            }
        }
    }

    /// Registers a waiter under a fresh request id, due within the request timeout plus
    /// `extra` (a long-poll's wait); gives it back if the connection is closed.
    fn register(&self, w: Waiter, extra: Duration) -> Result<u64, Waiter> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.request_timeout + extra;
        match self.pending.lock().as_mut() {
            Some(p) => {
                p.insert(id, (deadline, w));
                Ok(id)
            }
            None => Err(w),
        }
    }

    fn take(&self, id: u64) -> Option<Waiter> {
        self.pending
            .lock()
            .as_mut()
            .and_then(|p| p.remove(&id))
            .map(|(_, w)| w)
    }

    /// Fails the waiters whose time is up. A late answer is then ignored.
    fn expire(&self, now: Instant) {
        let expired: Vec<Waiter> = {
            let mut pending = self.pending.lock();
            let Some(p) = pending.as_mut() else {
                return;
            };
            let ids: Vec<u64> = p
                .iter()
                .filter(|(_, (due, _))| *due <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| p.remove(&id).map(|(_, w)| w))
                .collect()
        };
        for w in expired {
            w.complete(Err(ClientError::Timeout(self.request_timeout)));
        }
    }
}

/// Encodes queued items into `buf`, combining runs of adds to the same ledger and epoch.
fn encode_outgoing(shared: &Shared, items: Vec<Outgoing>, buf: &mut BytesMut) {
    let max = shared.max_frame_len.load(Ordering::Relaxed);
    let mut run: Vec<(AddEntry, Notify)> = Vec::new();
    let mut run_bytes = 0usize;
    for item in items {
        match item {
            Outgoing::Frame(f) => {
                flush_adds(shared, &mut run, buf, max);
                run_bytes = 0;
                buf.extend_from_slice(&f);
            }
            Outgoing::Add(a, n) => {
                let size = a.data.len() + 12;
                if size + 256 > max {
                    // Refused alone, so that it does not fail the adds it would have joined.
                    refuse_add(a, n, max);
                    continue;
                }
                let same = run.first().is_some_and(|(r, _)| {
                    (r.ledger, r.epoch, r.recovery) == (a.ledger, a.epoch, a.recovery)
                });
                if !same || run.len() >= MAX_BATCH_ENTRIES || run_bytes + size + 256 > max {
                    flush_adds(shared, &mut run, buf, max);
                    run_bytes = 0;
                }
                run_bytes += size;
                run.push((a, n));
            }
        }
    }
    flush_adds(shared, &mut run, buf, max);
}

/// Fails an add too large for any frame the bookie takes.
fn refuse_add(a: AddEntry, n: Notify, max: usize) {
    let err = ClientError::Invalid(format!(
        "entry of {} bytes does not fit the bookie's frame limit of {max}",
        a.data.len()
    ));
    match n {
        Notify::Reply(w) => {
            let _ = w.send(Err(err));
        }
        Notify::Ack(tx) => {
            let _ = tx.send(AddAck {
                ledger: a.ledger,
                entries: vec![a.entry],
                result: Err(err),
            });
        }
    }
}

/// Sends a run of adds as one request: an add, or an add batch. Adds sent together share one
/// fate: the bookie takes all of them or none.
fn flush_adds(shared: &Shared, run: &mut Vec<(AddEntry, Notify)>, buf: &mut BytesMut, max: usize) {
    if run.is_empty() {
        return;
    }
    let adds = std::mem::take(run);
    let first = &adds[0].0;
    let (ledger, epoch, recovery) = (first.ledger, first.epoch, first.recovery);
    let one_channel = match &adds[0].1 {
        Notify::Ack(tx0) => adds
            .iter()
            .all(|(_, n)| matches!(n, Notify::Ack(tx) if tx.same_channel(tx0))),
        Notify::Reply(_) => false,
    };
    let (waiter, req) = if adds.len() == 1 {
        let (a, n) = adds.into_iter().next().expect("one add");
        let waiter = match n {
            Notify::Reply(w) => Waiter::One(w),
            Notify::Ack(tx) => Waiter::Acks(a.ledger, vec![a.entry], tx),
        };
        (waiter, Request::Add(a))
    } else {
        let lac = adds.iter().map(|(a, _)| a.lac).max().flatten();
        let mut entries = Vec::with_capacity(adds.len());
        let mut notifies = Vec::with_capacity(adds.len());
        for (a, n) in adds {
            entries.push((a.entry, a.data));
            notifies.push((a.entry, n));
        }
        let waiter = if one_channel {
            let ids = notifies.iter().map(|(e, _)| *e).collect();
            match notifies.pop() {
                Some((_, Notify::Ack(tx))) => Waiter::Acks(ledger, ids, tx),
                _ => Waiter::Batch(ledger, notifies),
            }
        } else {
            Waiter::Batch(ledger, notifies)
        };
        let req = Request::AddBatch(AddBatch {
            ledger,
            epoch,
            lac,
            recovery,
            entries,
        });
        (waiter, req)
    };
    match shared.register(waiter, Duration::ZERO) {
        Ok(id) => {
            if let Err(e) = req.encode(id, buf, max)
                && let Some(w) = shared.take(id)
            {
                w.complete(Err(ClientError::Invalid(e.to_string())));
            }
        }
        Err(w) => w.complete(Err(ClientError::Disconnected("connection closed".into()))),
    }
}

/// A connection to one bookie. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct BookieClient {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    hello: Arc<dlog_api::wire::bookie::HelloOk>,
}

impl BookieClient {
    /// Connects and performs the handshake.
    pub async fn connect(addr: &str, opts: ClientOptions) -> Result<BookieClient, ClientError> {
        let connect_err = |message: String| ClientError::Connect {
            addr: addr.to_string(),
            message,
        };
        let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {:?}", opts.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Some(HashMap::new())),
            request_timeout: opts.request_timeout,
            next_id: AtomicU64::new(1),
            max_frame_len: AtomicUsize::new(opts.max_frame_len),
            closed: AtomicBool::new(false),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();

        let s = shared.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(256 << 10);
            let mut items = Vec::new();
            while let Some(first) = rx.recv().await {
                items.push(first);
                while items.len() < 4096 {
                    match rx.try_recv() {
                        Ok(more) => items.push(more),
                        Err(_) => break,
                    }
                }
                encode_outgoing(&s, std::mem::take(&mut items), &mut buf);
                if let Err(e) = wr.write_all(&buf).await {
                    s.close(&format!("write: {e}"));
                    break;
                }
                buf.clear();
            }
            // Fail what is still queued (the connection is gone or the client was dropped).
            rx.close();
            while let Ok(item) = rx.try_recv() {
                if let Outgoing::Add(a, n) = item {
                    let err = Err(ClientError::Disconnected("connection closed".into()));
                    match n {
                        Notify::Reply(w) => {
                            let _ = w.send(err);
                        }
                        Notify::Ack(tx) => {
                            let _ = tx.send(AddAck {
                                ledger: a.ledger,
                                entries: vec![a.entry],
                                result: err.map(|_: Response| ()),
                            });
                        }
                    }
                }
            }
            let _ = wr.shutdown().await;
        });

        // Fails requests a silent bookie never answers (paused, partitioned, overloaded).
        let weak = Arc::downgrade(&shared);
        let tick =
            (opts.request_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(s) = weak.upgrade() else { return };
                if s.closed.load(Ordering::Acquire) {
                    return;
                }
                s.expire(Instant::now());
            }
        });

        let s = shared.clone();
        let max = opts.max_frame_len;
        tokio::spawn(async move {
            let mut frames = FramedRead::with_capacity(rd, FrameCodec::new(max), 256 << 10);
            let why = loop {
                match frames.next().await {
                    None => break "closed by bookie".to_string(),
                    Some(Err(e)) => break format!("read: {e}"),
                    Some(Ok(frame)) => {
                        let Some(waiter) = s.take(frame.request_id) else {
                            if frame.request_id == 0 {
                                // A connection-level error the bookie sent before closing.
                                let msg = match Response::decode(&frame) {
                                    Ok(Err(e)) => e.to_string(),
                                    _ => "unexpected frame".into(),
                                };
                                break msg;
                            }
                            debug!(id = frame.request_id, "response to unknown request");
                            continue;
                        };
                        let r = match Response::decode(&frame) {
                            Ok(Ok(resp)) => Ok(resp),
                            Ok(Err(e)) => Err(ClientError::Server(e)),
                            Err(e) => Err(ClientError::Protocol(e.to_string())),
                        };
                        waiter.complete(r);
                    }
                }
            };
            s.close(&why);
        });

        let mut client = BookieClient {
            shared,
            tx,
            hello: Arc::new(dlog_api::wire::bookie::HelloOk {
                version: 0,
                bookie_id: String::new(),
                instance_id: 0,
                max_frame_len: 0,
            }),
        };
        let hello = Request::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client: opts.client_name.clone(),
            auth_method: String::new(),
            auth_data: Bytes::new(),
        });
        match tokio::time::timeout(opts.connect_timeout, client.call(hello)).await {
            Ok(Ok(Response::Hello(h))) => {
                let theirs = h.max_frame_len as usize;
                if theirs > opts.max_frame_len {
                    client.shared.close("frame limits do not match");
                    return Err(connect_err(format!(
                        "the bookie sends frames of up to {theirs} bytes, this client reads up to \
                         {}: raise ClientOptions::max_frame_len",
                        opts.max_frame_len
                    )));
                }
                client
                    .shared
                    .max_frame_len
                    .fetch_min(theirs.max(4096), Ordering::Relaxed);
                client.hello = Arc::new(h);
                Ok(client)
            }
            Ok(Ok(other)) => Err(ClientError::Protocol(format!(
                "hello answered with {other:?}"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                client.shared.close("handshake timed out");
                Err(connect_err("handshake timed out".into()))
            }
        }
    }

    /// The bookie's id, from the handshake.
    pub fn bookie_id(&self) -> &str {
        &self.hello.bookie_id
    }

    pub fn instance_id(&self) -> u64 {
        self.hello.instance_id
    }

    /// Whether the connection has failed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Sends one request and waits for its response (at most the request timeout).
    pub async fn call(&self, req: Request) -> Result<Response, ClientError> {
        let extra = match &req {
            Request::ReadLac(r) => Duration::from_millis(u64::from(r.wait_ms)),
            _ => Duration::ZERO,
        };
        let (w, rx) = oneshot::channel();
        let id = self
            .shared
            .register(Waiter::One(w), extra)
            .map_err(|_| ClientError::Disconnected("connection closed".into()))?;
        let mut buf = BytesMut::new();
        let max = self.shared.max_frame_len.load(Ordering::Relaxed);
        if let Err(e) = req.encode(id, &mut buf, max) {
            self.shared.take(id);
            return Err(ClientError::Invalid(e.to_string()));
        }
        if self.tx.send(Outgoing::Frame(buf)).is_err() {
            self.shared.close("writer stopped");
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Disconnected("connection closed".into())))
    }

    /// Adds one entry; resolves once the bookie has it durably. Adds queued together for the
    /// same ledger and epoch travel as one batch.
    pub async fn add(&self, a: AddEntry) -> Result<(), ClientError> {
        let (w, rx) = oneshot::channel();
        if self.tx.send(Outgoing::Add(a, Notify::Reply(w))).is_err() {
            return Err(ClientError::Disconnected("connection closed".into()));
        }
        match rx
            .await
            .unwrap_or_else(|_| Err(ClientError::Disconnected("connection closed".into())))?
        {
            Response::Added { .. } => Ok(()),
            other => Err(unexpected("add", &other)),
        }
    }

    /// Queues an add without waiting: its acknowledgement (or failure) arrives on `acks`, one
    /// [`AddAck`] per request the client sent. Cheaper than [`BookieClient::add`] when many
    /// adds are in flight, since no future or task per add is needed.
    pub fn add_to(&self, a: AddEntry, acks: &AckSender) -> Result<(), ClientError> {
        self.tx
            .send(Outgoing::Add(a, Notify::Ack(acks.clone())))
            .map_err(|_| ClientError::Disconnected("connection closed".into()))
    }

    pub async fn read(
        &self,
        ledger: LedgerId,
        entry: EntryId,
        fence: Option<Epoch>,
    ) -> Result<ReadEntryOk, ClientError> {
        match self
            .call(Request::Read(ReadEntry {
                ledger,
                entry,
                fence,
            }))
            .await?
        {
            Response::Entry(e) => Ok(e),
            other => Err(unexpected("read", &other)),
        }
    }

    pub async fn read_lac(
        &self,
        ledger: LedgerId,
        known: Option<EntryId>,
        wait: Duration,
    ) -> Result<LacInfo, ClientError> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        match self
            .call(Request::ReadLac(ReadLac {
                ledger,
                known,
                wait_ms,
            }))
            .await?
        {
            Response::Lac(i) => Ok(i),
            other => Err(unexpected("read lac", &other)),
        }
    }

    pub async fn fence(&self, ledger: LedgerId, epoch: Epoch) -> Result<LacInfo, ClientError> {
        match self.call(Request::Fence(Fence { ledger, epoch })).await? {
            Response::Fenced(i) => Ok(i),
            other => Err(unexpected("fence", &other)),
        }
    }

    pub async fn write_lac(
        &self,
        ledger: LedgerId,
        epoch: Epoch,
        lac: EntryId,
    ) -> Result<(), ClientError> {
        match self
            .call(Request::WriteLac(WriteLac { ledger, epoch, lac }))
            .await?
        {
            Response::LacWritten => Ok(()),
            other => Err(unexpected("write lac", &other)),
        }
    }

    pub async fn delete(&self, ledger: LedgerId) -> Result<(), ClientError> {
        match self.call(Request::Delete(ledger)).await? {
            Response::Deleted => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }

    pub async fn info(&self) -> Result<BookieInfo, ClientError> {
        match self.call(Request::Info).await? {
            Response::Info(i) => Ok(i),
            other => Err(unexpected("info", &other)),
        }
    }
}

fn unexpected(what: &str, resp: &Response) -> ClientError {
    ClientError::Protocol(format!("{what} answered with op {}", resp.op()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlog_api::wire::FrameCodec;
    use dlog_api::wire::bookie::HelloOk;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_util::codec::Decoder;

    /// A "bookie" that completes the handshake and then never answers.
    async fn silent_bookie(max_frame_len: u32) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let mut codec = FrameCodec::new(1 << 20);
            let hello = loop {
                if let Some(f) = codec.decode(&mut buf).unwrap() {
                    break f;
                }
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            };
            let mut out = BytesMut::new();
            Response::Hello(HelloOk {
                version: PROTOCOL_VERSION,
                bookie_id: "silent".into(),
                instance_id: 1,
                max_frame_len,
            })
            .encode(hello.request_id, &mut out, 1 << 20)
            .unwrap();
            s.write_all(&out).await.unwrap();
            // Read and ignore everything else, keeping the connection open.
            let mut sink = vec![0u8; 1 << 16];
            while s.read(&mut sink).await.unwrap_or(0) > 0 {}
        });
        addr
    }

    #[tokio::test]
    async fn unanswered_requests_time_out() {
        let addr = silent_bookie(1 << 20).await;
        let opts = ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let c = BookieClient::connect(&addr, opts).await.unwrap();
        let t = Instant::now();
        let e = c.info().await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e}");
        assert!(e.is_retryable());
        assert!(t.elapsed() < Duration::from_secs(5));
        // Adds reported on an ack channel time out too.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let data = dlog_api::Entry::encode(LedgerId(1), EntryId(0), 1, b"x");
        c.add_to(
            AddEntry {
                ledger: LedgerId(1),
                entry: EntryId(0),
                epoch: Epoch(1),
                lac: None,
                recovery: false,
                data,
            },
            &tx,
        )
        .unwrap();
        let ack = rx.recv().await.unwrap();
        assert!(matches!(ack.result, Err(ClientError::Timeout(_))));
        // A long-poll gets its wait on top of the timeout.
        let t = Instant::now();
        let e = c
            .read_lac(LedgerId(1), None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e}");
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn a_bookie_sending_larger_frames_than_we_read_is_refused() {
        let addr = silent_bookie(8 << 20).await;
        let opts = ClientOptions {
            max_frame_len: 1 << 20,
            ..Default::default()
        };
        let e = BookieClient::connect(&addr, opts).await.unwrap_err();
        assert!(e.to_string().contains("max_frame_len"), "{e}");
    }
}
