//! [`Client`]: the handle applications start from, and its options.
//!
//! A client is cheap to clone; clones share one pipelined connection per service node and what
//! has been learned about stream owners. [`Client::writer`], [`Client::reader`] and
//! [`Client::admin`] build the high-level APIs on it; [`Client::read`], [`Client::seek`] and
//! [`Client::lookup`] are the single requests underneath, for callers that want them.

use std::sync::Arc;
use std::time::Duration;

use dlog_api::wire::client::{
    MAX_READ_WAIT_MS, OwnerInfo, Read, Records, Request, Response, Seek, SeekBy,
};
use dlog_api::{Offset, StreamName};

use crate::admin::Admin;
use crate::connection::ConnectionConfig;
use crate::error::ClientError;
use crate::reader::{Reader, ReaderOptions};
use crate::routing::{Router, unexpected};
use crate::writer::{Writer, WriterOptions};

/// How a [`Client`] connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest time to open a connection and complete the handshake (default 5 s).
    pub connect_timeout: Duration,
    /// Longest time a request may go unanswered, not counting a long-poll's wait (default
    /// 30 s). A request that times out fails with a retryable error.
    pub request_timeout: Duration,
    /// Most "not owner" redirects one request follows before failing (default 10).
    pub max_redirects: usize,
    /// Largest response frame accepted, in bytes (default 64 MiB). Read answers carry whole
    /// stored batches, so they may exceed the bytes a reader asked for by up to one batch.
    pub max_response_bytes: usize,
    /// The name this client gives in the handshake, for the nodes' logs (default
    /// `dlog-client/VERSION`).
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_redirects: 10,
            max_response_bytes: 64 << 20,
            client_name: concat!("dlog-client/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// What the node the client first connected to announced in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The node's identity.
    pub server_id: String,
    /// The largest request frame the node accepts; append batches are sized to fit it.
    pub max_frame_len: u32,
    /// The largest record payload the node accepts.
    pub max_record_bytes: u32,
}

/// A connection to a dlog cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    router: Router,
    server: ServerInfo,
    options: ClientOptions,
}

impl Client {
    /// Connects to the service node at `addr` (`host:port`) with default options.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Self::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects to the service node at `addr` (`host:port`): opens the connection and
    /// completes the handshake, so an unreachable or incompatible node fails here.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        if addr.is_empty() {
            return Err(ClientError::invalid("server address is empty"));
        }
        let config = ConnectionConfig {
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            max_response_len: options.max_response_bytes,
            client_name: options.client_name.clone(),
        };
        let router = Router::new(addr.to_string(), config, options.max_redirects);
        let conn = router.pool().get(addr).await?;
        let hello = conn.hello();
        let server = ServerInfo {
            server_id: hello.server_id.clone(),
            max_frame_len: hello.max_frame_len,
            max_record_bytes: hello.max_record_bytes,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                router,
                server,
                options,
            }),
        })
    }

    /// The address the client was given.
    pub fn address(&self) -> &str {
        self.inner.router.bootstrap()
    }

    /// What the first node announced in its handshake (its id and limits).
    pub fn server_info(&self) -> &ServerInfo {
        &self.inner.server
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// A writer appending to `stream`; see [`Writer`].
    pub fn writer(&self, stream: &StreamName, options: WriterOptions) -> Writer {
        Writer::new(self.clone(), stream.clone(), options)
    }

    /// A reader of `stream`; see [`Reader`].
    pub fn reader(&self, stream: &StreamName, options: ReaderOptions) -> Reader {
        Reader::new(self.clone(), stream.clone(), options)
    }

    /// Administrative operations (create, describe, delete streams …).
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// Asks which node owns `stream` now, and its writer epoch.
    pub async fn lookup(&self, stream: &StreamName) -> Result<OwnerInfo, ClientError> {
        self.inner.router.lookup(stream).await
    }

    /// The offset of the first record of `stream` whose timestamp (or txid) is at or after the
    /// given one.
    pub async fn seek(&self, stream: &StreamName, by: SeekBy) -> Result<Offset, ClientError> {
        let request = Request::Seek(Seek {
            stream: stream.clone(),
            by,
        });
        match self
            .router()
            .call(Some(stream), request, Duration::ZERO)
            .await
        {
            Ok(Response::Position(offset)) => Ok(offset),
            Ok(other) => Err(unexpected("seek", &other)),
            Err(e) => Err(e.context(format!("seek in {stream}"))),
        }
    }

    /// One read request: records of `stream` from `offset` on (about `max_bytes` of them, as
    /// whole stored batches, so the first may start below `offset`), and where the stream
    /// stands. With nothing to read yet, the node waits up to `wait` (at most 60 s) for records.
    /// [`Reader`] builds on this.
    pub async fn read(
        &self,
        stream: &StreamName,
        offset: u64,
        max_bytes: u32,
        wait: Duration,
    ) -> Result<Records, ClientError> {
        let wait_ms = u32::try_from(wait.as_millis())
            .unwrap_or(u32::MAX)
            .min(MAX_READ_WAIT_MS);
        let request = Request::Read(Read {
            stream: stream.clone(),
            offset: Offset(offset),
            max_bytes,
            wait_ms,
        });
        let extra = Duration::from_millis(u64::from(wait_ms));
        match self.router().call(Some(stream), request, extra).await {
            Ok(Response::Records(records)) => Ok(records),
            Ok(other) => Err(unexpected("read", &other)),
            Err(e) => Err(e.context(format!("read {stream} at offset {offset}"))),
        }
    }

    pub(crate) fn router(&self) -> &Router {
        &self.inner.router
    }
}
