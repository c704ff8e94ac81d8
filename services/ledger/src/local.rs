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

use crate::registry::{BookieRegistration, RegisteredState, Registration};

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
    registration: Option<Registration>,
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
        // State and disk usage as of start-up (a `dlogd bookie` process republishes them as
        // they change; in-process bookies report them once).
        let info = bookie.info();
        let registration = Registration::register(
            store,
            BookieRegistration {
                id: id.clone(),
                address: addr.clone(),
                zone: String::new(),
                instance_id: bookie.cookie().instance_id,
                state: RegisteredState::from(info.state),
                disk_total: info.disk_total,
                disk_used: info.disk_used,
            },
            Duration::from_secs(30),
        )
        .await?;
        Ok(LocalBookie {
            id,
            addr,
            bookie,
            stop,
            server,
            registration: Some(registration),
        })
    }

    /// Deregisters, stops serving and shuts the bookie down.
    pub async fn stop(mut self) {
        if let Some(r) = self.registration.take() {
            let _ = r.deregister().await;
        }
        self.kill().await;
    }

    /// Stops serving and shuts down without deregistering (as if the process died; the
    /// registration lapses with its lease).
    pub async fn kill(self) {
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
