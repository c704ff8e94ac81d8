//! `dlogd bookie`: runs one storage node until SIGTERM or SIGINT, then drains (answers what is in
//! flight, makes everything queued durable, flushes the index) and exits 0.

use std::path::PathBuf;

use anyhow::Context;
use dlog_bookie::{Bookie, BookieConfig, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Flags of `dlogd bookie`; they override the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BookieArgs {
    /// TOML config file (see docs/operations.md); flags below override it.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Data directory: cookie, journal and index live here.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to serve the bookie protocol on.
    #[arg(long)]
    pub listen: Option<String>,
    /// Bookie id. Optional: generated and kept in the data dir's cookie on first start. Given,
    /// it must match the cookie.
    #[arg(long)]
    pub id: Option<String>,
    /// Format an empty data dir under the id given with --id.
    #[arg(long)]
    pub init: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

impl BookieArgs {
    /// Merges the file and the flags into a validated config.
    pub fn resolve(&self) -> anyhow::Result<BookieConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read config {}", path.display()))?;
                BookieConfig::from_toml(&text)
                    .with_context(|| format!("config {}", path.display()))?
            }
            None => BookieConfig::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(l) = &self.listen {
            cfg.listen = l
                .parse()
                .with_context(|| format!("--listen {l:?} is not a socket address"))?;
        }
        if let Some(id) = &self.id {
            cfg.bookie_id = Some(id.parse().context("--id")?);
        }
        cfg.init = self.init;
        cfg.validate()?;
        Ok(cfg)
    }
}

pub async fn run(args: BookieArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    if args.check_config {
        println!("config ok");
        return Ok(());
    }
    let listen = cfg.listen;
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
        .await
        .context("bookie start-up task")??;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind {listen}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    info!(addr = %listener.local_addr()?, "dlogd bookie ready");
    server::serve(bookie.clone(), listener, shutdown).await;
    tokio::task::spawn_blocking(move || bookie.shutdown())
        .await
        .context("bookie shutdown task")?;
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn wait_for_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining"),
        _ = int.recv() => info!("SIGINT: draining"),
    }
    token.cancel();
}
