//! One pipelined TCP connection to one service node.
//!
//! The connection opens with the hello handshake (protocol version, client name; the node
//! answers with its id and limits). Afterwards any number of requests may be outstanding: each
//! gets the next request id, a writer task coalesces queued requests into few socket writes,
//! and a reader task hands each response to the waiter registered under its id, whatever order
//! the node answers in. Registering a waiter and queueing its request happen under one lock, so
//! requests go out in the order they were made with increasing ids: a caller that sends
//! appends one after another knows the node receives them in that order.
//!
//! When the connection fails (the node closes it, a read or write fails, a response cannot be
//! cut into frames) every outstanding request fails with a retryable
//! [`Unavailable`](dlog_api::ErrorKind::Unavailable) error and the connection stays closed; the
//! [`Pool`](crate::routing::Pool) opens a new one for the next request. A request unanswered
//! within the request timeout (plus a long-poll's wait) fails the same way, and its late
//! answer, if one comes, is dropped. Dropping the last handle stops both tasks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dlog_api::wire::client::{Hello, HelloOk, Request, Response, decode_response};
use dlog_api::wire::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, PROTOCOL_VERSION};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use crate::error::ClientError;

/// Request id of the hello; every later request gets a higher one.
const HELLO_REQUEST_ID: u64 = 1;
/// Stop coalescing queued requests into one socket write past this many bytes.
const MAX_WRITE_BATCH: usize = 4 << 20;

/// How connections are opened and how long requests may take.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// The largest response frame accepted (read answers carry whole stored batches).
    pub(crate) max_response_len: usize,
    /// Sent in the hello, for the node's logs.
    pub(crate) client_name: String,
}

type Reply = oneshot::Sender<Result<Response, ClientError>>;

/// The waiters of a connection and the queue its writer task drains. `pending` is `None` once
/// the connection has failed: nothing new is accepted.
#[derive(Debug)]
struct State {
    pending: Option<HashMap<u64, Reply>>,
    next_id: u64,
    queue: mpsc::UnboundedSender<(u64, Request)>,
    /// Why the connection closed, for the errors of requests made after it did.
    closed_because: Option<String>,
}

#[derive(Debug)]
struct Shared {
    addr: String,
    state: Mutex<State>,
    /// Cancelled when the connection fails or its last handle is dropped: stops both tasks.
    cancel: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails every waiter with a retryable error and refuses new requests.
    fn close(&self, why: String) {
        let (why, pending) = {
            let mut st = self.lock();
            // A refusal the node sent before closing says more than the closed socket.
            let why = st.closed_because.get_or_insert(why).clone();
            (why, st.pending.take())
        };
        self.cancel.cancel();
        if let Some(pending) = pending {
            if !pending.is_empty() {
                debug!(addr = %self.addr, outstanding = pending.len(), %why, "connection closed");
            }
            for (_, reply) in pending {
                let _ = reply.send(Err(ClientError::unavailable(why.clone())));
            }
        }
    }

    fn take(&self, id: u64) -> Option<Reply> {
        self.lock().pending.as_mut().and_then(|p| p.remove(&id))
    }

    /// Registers a waiter and queues its request, atomically, so ids follow queue order.
    fn submit(&self, request: Request, reply: Reply) -> Result<u64, ClientError> {
        let mut st = self.lock();
        let id = st.next_id;
        let Some(pending) = st.pending.as_mut() else {
            let why = st.closed_because.clone().unwrap_or_default();
            return Err(ClientError::unavailable(why));
        };
        pending.insert(id, reply);
        st.next_id += 1;
        if st.queue.send((id, request)).is_err() {
            // The writer task is gone: the connection is failing.
            if let Some(p) = st.pending.as_mut() {
                p.remove(&id);
            }
            return Err(ClientError::unavailable(format!(
                "connection to {} closed",
                self.addr
            )));
        }
        Ok(id)
    }
}

/// A handshaken connection to one node. Shared behind an `Arc` by everyone who talks to that
/// node.
#[derive(Debug)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
    hello: HelloOk,
    /// The largest request frame the node accepts.
    max_frame_len: usize,
    request_timeout: Duration,
    _stop_tasks: DropGuard,
}

impl Connection {
    /// Connects to `addr`, performs the hello handshake and starts the reader and writer tasks.
    pub(crate) async fn connect(
        addr: &str,
        config: &ConnectionConfig,
    ) -> Result<Connection, ClientError> {
        let (rd, wr, hello) = tokio::time::timeout(config.connect_timeout, handshake(addr, config))
            .await
            .map_err(|_| {
                ClientError::unavailable(format!(
                    "connect to {addr}: timed out after {:?}",
                    config.connect_timeout
                ))
            })??;
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            state: Mutex::new(State {
                pending: Some(HashMap::new()),
                next_id: HELLO_REQUEST_ID + 1,
                queue,
                closed_because: None,
            }),
            cancel: CancellationToken::new(),
        });
        let max_frame_len = hello.max_frame_len as usize;
        tokio::spawn(write_loop(shared.clone(), wr, rx, max_frame_len));
        tokio::spawn(read_loop(shared.clone(), rd));
        debug!(addr, server_id = %hello.server_id, "connected");
        Ok(Connection {
            _stop_tasks: shared.cancel.clone().drop_guard(),
            shared,
            hello,
            max_frame_len,
            request_timeout: config.request_timeout,
        })
    }

    /// What the node announced in the handshake.
    pub(crate) fn hello(&self) -> &HelloOk {
        &self.hello
    }

    /// The largest request frame the node accepts.
    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Whether the connection has failed (a new one must be opened).
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().pending.is_none()
    }

    /// Queues `request` now and returns a future of its answer. The request is on its way (in
    /// order with every request queued before it) whether or not the future is polled; the
    /// future fails after the request timeout plus `extra_wait` (a long-poll's wait).
    pub(crate) fn call(
        &self,
        request: Request,
        extra_wait: Duration,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let submitted = self.shared.submit(request, tx);
        let shared = self.shared.clone();
        let timeout = self.request_timeout.saturating_add(extra_wait);
        async move {
            let id = submitted?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(ClientError::unavailable(format!(
                    "connection to {} closed",
                    shared.addr
                ))),
                Err(_) => {
                    shared.take(id);
                    Err(ClientError::unavailable(format!(
                        "request to {} timed out after {timeout:?}",
                        shared.addr
                    )))
                }
            }
        }
    }
}

/// Opens the socket and exchanges the hello.
async fn handshake(
    addr: &str,
    config: &ConnectionConfig,
) -> Result<
    (
        FramedRead<OwnedReadHalf, FrameCodec>,
        OwnedWriteHalf,
        HelloOk,
    ),
    ClientError,
> {
    let io_err = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::unavailable(format!("{what} {addr}: {e}"))
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| io_err("connect to", &e))?;
    // Small requests (reads, acknowledgements) must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = FramedRead::new(rd, FrameCodec::new(config.max_response_len));
    let hello = Request::Hello(Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        client: config.client_name.clone(),
        auth_method: String::new(),
        auth_data: Bytes::new(),
    });
    let mut buf = BytesMut::new();
    hello
        .encode(HELLO_REQUEST_ID, &mut buf, DEFAULT_MAX_FRAME_LEN)
        .map_err(|e| ClientError::invalid(format!("encode hello: {e}")))?;
    wr.write_all(&buf)
        .await
        .map_err(|e| io_err("send hello to", &e))?;
    let frame = match rd.next().await {
        Some(Ok(frame)) => frame,
        Some(Err(e)) => return Err(io_err("read hello answer from", &e)),
        None => {
            return Err(ClientError::unavailable(format!(
                "{addr} closed the connection during the handshake"
            )));
        }
    };
    let hello = match decode_response(&frame) {
        Ok(Ok(Response::Hello(h))) => h,
        Ok(Ok(other)) => {
            return Err(ClientError::protocol(format!(
                "{addr} answered the hello with an answer of op {}",
                other.op()
            )));
        }
        Ok(Err(refusal)) => {
            return Err(ClientError::from(refusal).context(format!("hello to {addr}")));
        }
        Err(e) => {
            return Err(ClientError::protocol(format!(
                "decode hello answer from {addr}: {e}"
            )));
        }
    };
    if hello.version != PROTOCOL_VERSION {
        return Err(ClientError::protocol(format!(
            "{addr} chose protocol version {} (this client speaks {PROTOCOL_VERSION})",
            hello.version
        )));
    }
    Ok((rd, wr, hello))
}

/// Writes queued requests, coalescing what is queued at the same moment into one write.
async fn write_loop(
    shared: Arc<Shared>,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(u64, Request)>,
    max_frame_len: usize,
) {
    let mut buf = BytesMut::with_capacity(64 << 10);
    loop {
        let first = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        buf.clear();
        encode(&shared, first, &mut buf, max_frame_len);
        while buf.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(item) => encode(&shared, item, &mut buf, max_frame_len),
                Err(_) => break,
            }
        }
        if buf.is_empty() {
            continue;
        }
        let written = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            r = wr.write_all(&buf) => r,
        };
        if let Err(e) = written {
            shared.close(format!("write to {}: {e}", shared.addr));
            break;
        }
    }
    let _ = wr.shutdown().await;
}

/// Appends one request's frame, or fails its waiter if the node would refuse the frame.
fn encode(shared: &Shared, (id, request): (u64, Request), buf: &mut BytesMut, max: usize) {
    if let Err(e) = request.encode(id, buf, max)
        && let Some(reply) = shared.take(id)
    {
        let _ = reply.send(Err(ClientError::invalid(format!(
            "request to {} refused before sending: {e}",
            shared.addr
        ))));
    }
}

/// Routes each response to its waiter until the connection fails or is dropped.
async fn read_loop(shared: Arc<Shared>, mut rd: FramedRead<OwnedReadHalf, FrameCodec>) {
    let why = loop {
        let next = tokio::select! {
            _ = shared.cancel.cancelled() => break format!("connection to {} closed", shared.addr),
            next = rd.next() => next,
        };
        match next {
            Some(Ok(frame)) => dispatch(&shared, frame),
            Some(Err(e)) => break format!("read from {}: {e}", shared.addr),
            None => break format!("{} closed the connection", shared.addr),
        }
    };
    shared.close(why);
}

fn dispatch(shared: &Shared, frame: Frame) {
    let decoded = decode_response(&frame);
    let Some(reply) = shared.take(frame.request_id) else {
        // A late answer to a request that timed out, or the node refusing the whole
        // connection (request id 0) just before closing it: keep its reason for the errors.
        if let Ok(Err(refusal)) = decoded {
            let mut st = shared.lock();
            if st.closed_because.is_none() {
                st.closed_because = Some(format!(
                    "{} refused the connection: {}",
                    shared.addr,
                    ClientError::from(refusal)
                ));
            }
        }
        return;
    };
    let answer = match decoded {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(refusal)) => Err(ClientError::from(refusal)),
        Err(e) => Err(ClientError::protocol(format!(
            "decode answer from {}: {e}",
            shared.addr
        ))),
    };
    let _ = reply.send(answer);
}
