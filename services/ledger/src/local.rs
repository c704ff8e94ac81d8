//! Bookies in this process (feature `local`): what `dlogd standalone` runs, and what tests of
//! the layers above use. Each is a real bookie — journal, index, server on a loopback port —
//! registered in the metadata store like a bookie process would register itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dlog_api::BookieId;
use dlog_bookie::{Bookie, BookieConfig, BookieError, server};
use dlog_metadata::MetadataStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::presence::{self, Announce};

/// Why a local bookie could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalBookieError {
    #[error("open bookie: {0}")]
    Bookie(#[from] BookieError),
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("register bookie: {0}")]
    Register(#[from] crate::registry::RegistryError),
    #[error("bookie start-up task failed: {0}")]
    Task(String),
}

/// One bookie serving on a loopback port, registered under a lease.
#[derive(Debug)]
pub struct LocalBookie {
    pub id: BookieId,
    pub addr: String,
    pub bookie: Bookie,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    /// Keeps the registration current; deregisters when `deregister` is cancelled.
    presence: tokio::task::JoinHandle<()>,
    deregister: CancellationToken,
}

impl LocalBookie {
    /// Opens (or formats, under `id`) the bookie in `cfg.data_dir`, serves it on `listen`
    /// (port 0: any free port) and registers it in `store`.
    pub async fn start(
        store: Arc<dyn MetadataStore>,
        mut cfg: BookieConfig,
        id: BookieId,
        listen: &str,
    ) -> Result<LocalBookie, LocalBookieError> {
        cfg.bookie_id = Some(id);
        cfg.init = true;
        let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
            .await
            .map_err(|e| LocalBookieError::Task(e.to_string()))??;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?.to_string();
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::serve(bookie.clone(), listener, stop.clone()));
        let id = bookie.cookie().bookie_id.clone();
        // Registered like a `dlogd bookie` process: state and disk usage republished as they
        // change, registered again if the lease is lost.
        let announce = Announce {
            address: addr.clone(),
            zone: String::new(),
            ttl: Duration::from_secs(30),
            refresh: Duration::from_secs(10),
        };
        let reg = presence::register(store.clone(), &bookie, &announce).await?;
        let deregister = CancellationToken::new();
        let presence = tokio::spawn(presence::maintain(
            store,
            bookie.clone(),
            announce,
            reg,
            deregister.clone(),
        ));
        Ok(LocalBookie {
            id,
            addr,
            bookie,
            stop,
            server,
            presence,
            deregister,
        })
    }

    /// Deregisters, stops serving and shuts the bookie down.
    pub async fn stop(mut self) {
        self.deregister.cancel();
        let _ = (&mut self.presence).await;
        self.kill().await;
    }

    /// Stops serving and shuts down without deregistering (as if the process died; the
    /// registration lapses with its lease).
    pub async fn kill(self) {
        self.presence.abort();
        self.stop.cancel();
        let _ = self.server.await;
        let b = self.bookie;
        let _ = tokio::task::spawn_blocking(move || b.shutdown()).await;
    }
}

/// `n` local bookies in `dir/bookie-I` folders, with the bookie's default settings adjusted
/// by `tune`.
pub async fn start_bookies(
    store: Arc<dyn MetadataStore>,
    dir: &std::path::Path,
    n: usize,
    tune: impl Fn(&mut BookieConfig),
) -> Result<Vec<LocalBookie>, LocalBookieError> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let data: PathBuf = dir.join(format!("bookie-{i}"));
        let mut cfg = BookieConfig::for_dir(data);
        tune(&mut cfg);
        let id = BookieId::new(format!("bookie-{i}")).expect("a valid bookie id");
        out.push(LocalBookie::start(store.clone(), cfg, id, "127.0.0.1:0").await?);
    }
    Ok(out)
}
