//! Bookies a bench starts itself, in folders next to the build (not in /tmp, which may be a RAM
//! disk and would flatter fsync), stopped and removed at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dlog_api::BookieId;
use dlog_bookie::journal::file::IoMode;
use dlog_bookie::{Bookie, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct LocalBookie {
    pub addr: String,
    pub bookie: Bookie,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl LocalBookie {
    /// Starts a bookie with the config file `config` (or defaults), in `data_dir` (or a
    /// temporary folder under `target/bench`), on a free loopback port.
    pub async fn start(
        config: Option<&Path>,
        io_mode: Option<IoMode>,
        data_dir: Option<PathBuf>,
        id: Option<BookieId>,
    ) -> anyhow::Result<LocalBookie> {
        let (dir, tmp) = match data_dir {
            Some(d) => (d, None),
            None => {
                let base = std::env::current_dir()?.join("target").join("bench");
                std::fs::create_dir_all(&base)
                    .with_context(|| format!("create {}", base.display()))?;
                let t = tempfile::tempdir_in(&base)?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut cfg = crate::bookie_role::load_config(config)?;
        cfg.data_dir = dir;
        if let Some(m) = io_mode {
            cfg.journal.io_mode = m;
        }
        if id.is_some() {
            cfg.bookie_id = id;
            cfg.init = true;
        }
        let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
            .await
            .context("bookie start-up task")??;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server::serve(bookie.clone(), listener, shutdown.clone()));
        Ok(LocalBookie {
            addr,
            bookie,
            shutdown,
            server,
            _dir: tmp,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let b = self.bookie;
        let _ = tokio::task::spawn_blocking(move || b.shutdown()).await;
    }
}
