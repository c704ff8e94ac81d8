//! A pipelined client for one bookie over one TCP connection.
//!
//! Any number of requests may be outstanding: each gets a fresh request id, a writer task
//! coalesces queued frames into few writes, and a reader task routes each response to its
//! waiter by id. When the connection fails, every outstanding request fails with
//! [`ClientError::Disconnected`] and the client stays closed; reconnecting is the caller's
//! decision (the replication layer replaces failed bookies rather than waiting for them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dlog_api::wire::bookie::{
    AddEntry, BookieInfo, Fence, Hello, LacInfo, ReadEntry, ReadEntryOk, ReadLac, Request,
    Response, ResponseError, WriteLac,
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
    /// Name sent in the handshake, for the bookie's logs.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(5),
            client_name: "dlog".into(),
        }
    }
}

type Waiter = oneshot::Sender<Result<Response, ClientError>>;

#[derive(Debug)]
struct Shared {
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    next_id: AtomicU64,
    max_frame_len: usize,
}

impl Shared {
    /// Fails every waiter and refuses new requests.
    fn close(&self, why: &str) {
        if let Some(pending) = self.pending.lock().take() {
            for (_, w) in pending {
                let _ = w.send(Err(ClientError::Disconnected(why.to_string())));
            }
        }
    }
}

/// A connection to one bookie. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct BookieClient {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<BytesMut>,
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
            next_id: AtomicU64::new(1),
            max_frame_len: opts.max_frame_len,
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();

        let s = shared.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(256 << 10);
            while let Some(first) = rx.recv().await {
                buf.unsplit(first);
                while buf.len() < (1 << 20) {
                    match rx.try_recv() {
                        Ok(more) => buf.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if let Err(e) = wr.write_all(&buf).await {
                    s.close(&format!("write: {e}"));
                    return;
                }
                buf.clear();
            }
            let _ = wr.shutdown().await;
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
                        let waiter = s
                            .pending
                            .lock()
                            .as_mut()
                            .and_then(|p| p.remove(&frame.request_id));
                        let Some(waiter) = waiter else {
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
                        let _ = waiter.send(r);
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
                client.hello = Arc::new(h);
                Ok(client)
            }
            Ok(Ok(other)) => Err(ClientError::Protocol(format!(
                "hello answered with {other:?}"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(connect_err("handshake timed out".into())),
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
        self.shared.pending.lock().is_none()
    }

    /// Sends one request and waits for its response.
    pub async fn call(&self, req: Request) -> Result<Response, ClientError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut buf = BytesMut::new();
        req.encode(id, &mut buf, self.shared.max_frame_len)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let (w, rx) = oneshot::channel();
        {
            let mut pending = self.shared.pending.lock();
            let Some(p) = pending.as_mut() else {
                return Err(ClientError::Disconnected("connection closed".into()));
            };
            p.insert(id, w);
        }
        if self.tx.send(buf).is_err() {
            self.shared.close("writer stopped");
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Disconnected("connection closed".into())))
    }

    pub async fn add(&self, a: AddEntry) -> Result<(), ClientError> {
        match self.call(Request::Add(a)).await? {
            Response::Added { .. } => Ok(()),
            other => Err(unexpected("add", &other)),
        }
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
