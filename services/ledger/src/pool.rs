//! Connections to bookies by id: the address comes from the bookie's registration in the
//! metadata store, one pipelined connection per bookie is shared by every ledger, and a closed
//! connection is replaced on next use.

use std::collections::HashMap;
use std::sync::Arc;

use dlog_api::BookieId;
use dlog_metadata::MetadataStore;
use parking_lot::Mutex;
use tokio::sync::Mutex as AsyncMutex;

use crate::bookie_client::{BookieClient, ClientError, ClientOptions};
use crate::registry::{BookieRegistration, bookie_key};

#[derive(Debug)]
pub struct BookiePool {
    store: Arc<dyn MetadataStore>,
    opts: ClientOptions,
    conns: Mutex<HashMap<BookieId, BookieClient>>,
    /// Serializes connection attempts per bookie, so that a burst of requests to a new bookie
    /// opens one connection, not many — and a bookie that hangs while connecting holds up
    /// only its own requests.
    connecting: Mutex<HashMap<BookieId, Arc<AsyncMutex<()>>>>,
}

impl BookiePool {
    pub fn new(store: Arc<dyn MetadataStore>, opts: ClientOptions) -> BookiePool {
        BookiePool {
            store,
            opts,
            conns: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// A live connection to `id`, connecting if needed.
    pub async fn get(&self, id: &BookieId) -> Result<BookieClient, ClientError> {
        if let Some(c) = self.cached_client(id) {
            return Ok(c);
        }
        let gate = self
            .connecting
            .lock()
            .entry(id.clone())
            .or_default()
            .clone();
        let _one = gate.lock().await;
        if let Some(c) = self.cached_client(id) {
            return Ok(c);
        }
        let addr = self.address(id).await?;
        let c = BookieClient::connect(&addr, self.opts.clone()).await?;
        if c.bookie_id() != id.as_str() {
            return Err(ClientError::Connect {
                addr,
                message: format!(
                    "the bookie there is {}, not {id} (stale registration?)",
                    c.bookie_id()
                ),
            });
        }
        self.conns.lock().insert(id.clone(), c.clone());
        Ok(c)
    }

    /// A live connection to `id` if one is open already.
    pub fn cached_client(&self, id: &BookieId) -> Option<BookieClient> {
        let mut conns = self.conns.lock();
        match conns.get(id) {
            Some(c) if !c.is_closed() => Some(c.clone()),
            Some(_) => {
                conns.remove(id);
                None
            }
            None => None,
        }
    }

    async fn address(&self, id: &BookieId) -> Result<String, ClientError> {
        let unreachable = |message: String| ClientError::Connect {
            addr: format!("bookie {id}"),
            message,
        };
        let kv = self
            .store
            .get(&bookie_key(id))
            .await
            .map_err(|e| unreachable(format!("look up its address: {e}")))?
            .ok_or_else(|| unreachable("it is not registered (down?)".into()))?;
        let reg: BookieRegistration = serde_json::from_slice(&kv.value)
            .map_err(|e| unreachable(format!("its registration is unreadable: {e}")))?;
        Ok(reg.address)
    }
}
