//! Which node a request goes to: a pool of connections by address, the owners of streams as
//! last learned, and the following of "not owner" redirects.
//!
//! Appends must reach a stream's owner; reads, seeks and admin requests may go to any node, and
//! go to the remembered owner when there is one (it has the freshest end of the stream), else
//! to the address the client was given (the bootstrap node). A node that does not own a stream
//! answers `not owner` with the owner's address, or none while ownership moves: the client then
//! connects to that address and remembers it, or waits (100 ms, growing) and asks the bootstrap
//! node with a `lookup`. Redirects are bounded ([`crate::ClientOptions::max_redirects`]) because
//! ownership may keep moving. A remembered owner that cannot be reached is forgotten, so the
//! next attempt starts over at the bootstrap node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dlog_api::StreamName;
use dlog_api::wire::client::{OwnerInfo, Request, Response};

use crate::backoff::Backoff;
use crate::connection::{Connection, ConnectionConfig};
use crate::error::ClientError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single map operation: a poisoned map is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The connection to one address, if open; its async lock makes concurrent first uses share
/// one connect.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// One connection per node address, opened on first use and reopened after it fails.
#[derive(Debug)]
pub(crate) struct Pool {
    config: ConnectionConfig,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Pool {
    pub(crate) fn new(config: ConnectionConfig) -> Self {
        Self {
            config,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The open connection to `addr`, connecting (or reconnecting) if there is none.
    pub(crate) async fn get(&self, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let slot = lock(&self.slots)
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = Arc::new(Connection::connect(addr, &self.config).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Routes requests about streams to the right node.
#[derive(Debug)]
pub(crate) struct Router {
    bootstrap: String,
    pool: Pool,
    max_redirects: usize,
    owners: Mutex<HashMap<StreamName, String>>,
}

impl Router {
    pub(crate) fn new(bootstrap: String, config: ConnectionConfig, max_redirects: usize) -> Self {
        Self {
            bootstrap,
            pool: Pool::new(config),
            max_redirects,
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// The address the client was given.
    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub(crate) fn max_redirects(&self) -> usize {
        self.max_redirects
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where to send a request about `stream`: its remembered owner, else the bootstrap node.
    pub(crate) fn target(&self, stream: &StreamName) -> String {
        lock(&self.owners)
            .get(stream)
            .cloned()
            .unwrap_or_else(|| self.bootstrap.clone())
    }

    /// Remembers `addr` as the owner of `stream`.
    pub(crate) fn remember(&self, stream: &StreamName, addr: &str) {
        if addr != self.bootstrap {
            lock(&self.owners).insert(stream.clone(), addr.to_string());
        } else {
            lock(&self.owners).remove(stream);
        }
    }

    /// Forgets `addr` as the owner of `stream` (if it still is the remembered one).
    pub(crate) fn forget(&self, stream: &StreamName, addr: &str) {
        let mut owners = lock(&self.owners);
        if owners.get(stream).is_some_and(|a| a == addr) {
            owners.remove(stream);
        }
    }

    /// Asks the bootstrap node who owns `stream`.
    pub(crate) async fn lookup(&self, stream: &StreamName) -> Result<OwnerInfo, ClientError> {
        let conn = self.pool.get(&self.bootstrap).await?;
        match conn
            .call(Request::Lookup(stream.clone()), Duration::ZERO)
            .await?
        {
            Response::Owner(info) => Ok(info),
            other => Err(unexpected("lookup", &other)),
        }
    }

    /// Where to retry after `err` (a "not owner" answer) about `stream`: the owner it names,
    /// or, when it names none, the owner a lookup finds after a pause (the bootstrap node if
    /// none is found). Remembers what it learns.
    pub(crate) async fn redirect(
        &self,
        stream: &StreamName,
        err: &ClientError,
        backoff: &mut Backoff,
    ) -> String {
        if let Some(owner) = err.owner() {
            self.remember(stream, owner);
            return owner.to_string();
        }
        tokio::time::sleep(backoff.next_delay()).await;
        match self.lookup(stream).await {
            Ok(OwnerInfo {
                owner: Some(owner), ..
            }) => {
                self.remember(stream, &owner);
                owner
            }
            Ok(_) | Err(_) => {
                lock(&self.owners).remove(stream);
                self.bootstrap.clone()
            }
        }
    }

    /// Sends `request` about `stream` (or about no stream: to the bootstrap node), following
    /// "not owner" redirects. Other errors are returned as they are; a connection failure at a
    /// remembered owner also forgets it, so the caller's retry starts at the bootstrap node.
    pub(crate) async fn call(
        &self,
        stream: Option<&StreamName>,
        request: Request,
        extra_wait: Duration,
    ) -> Result<Response, ClientError> {
        let Some(stream) = stream else {
            let conn = self.pool.get(&self.bootstrap).await?;
            return conn.call(request, extra_wait).await;
        };
        let mut addr = self.target(stream);
        let mut backoff = Backoff::default();
        let mut redirects = 0;
        loop {
            let result = match self.pool.get(&addr).await {
                Ok(conn) => conn.call(request.clone(), extra_wait).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_not_owner() => {
                    redirects += 1;
                    if redirects > self.max_redirects {
                        return Err(e.context(format!(
                            "{stream}: gave up after {} redirects",
                            self.max_redirects
                        )));
                    }
                    addr = self.redirect(stream, &e, &mut backoff).await;
                }
                Err(e) if e.code().is_none() && e.is_retryable() => {
                    self.forget(stream, &addr);
                    return Err(e);
                }
                other => return other,
            }
        }
    }
}

/// The error for an answer of the wrong shape.
pub(crate) fn unexpected(what: &str, answer: &Response) -> ClientError {
    ClientError::protocol(format!(
        "unexpected answer to {what}: an answer of op {}",
        answer.op()
    ))
}
