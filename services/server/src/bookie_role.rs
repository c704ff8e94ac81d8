//! `dlogd bookie`: runs one storage node until SIGTERM or SIGINT, then drains (answers what is in
//! flight, makes everything queued durable, flushes the index) and exits 0.

use std::path::PathBuf;

use anyhow::Context;
use dlog_bookie::{Bookie, BookieConfig, server};
use dlog_metadata::Location;

use dlog_ledger::presence::{self as registration, Announce};
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
    /// Join a cluster: register in this metadata store (`etcd://host:2379[,…][/root]`, or a
    /// folder for an embedded store) so that writers can place ledgers here. Without it the
    /// bookie runs alone.
    #[arg(long, env = "DLOG_METADATA")]
    pub metadata: Option<String>,
    /// Address clients should use to reach this bookie (default: --listen, which must then
    /// not be a wildcard address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Failure domain (availability zone or rack) used to spread ensembles.
    #[arg(long, default_value = "")]
    pub zone: String,
    /// How long the registration outlives this process if it dies without deregistering.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub registration_ttl: std::time::Duration,
}

/// The bookie config in the TOML file at `path`, or the defaults.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<BookieConfig> {
    let Some(path) = path else {
        return Ok(BookieConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read config {}", path.display()))?;
    BookieConfig::from_toml(&text).with_context(|| format!("config {}", path.display()))
}

impl BookieArgs {
    /// Merges the file and the flags into a validated config.
    pub fn resolve(&self) -> anyhow::Result<BookieConfig> {
        let mut cfg = load_config(self.config.as_deref())?;
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

/// Where the bookie is registered, from the flags; `None` without `--metadata`.
fn cluster(args: &BookieArgs, cfg: &BookieConfig) -> anyhow::Result<Option<(Location, Announce)>> {
    let Some(url) = &args.metadata else {
        return Ok(None);
    };
    let location: Location = url.parse().context("--metadata")?;
    let address = match &args.advertise {
        Some(a) => {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            anyhow::ensure!(ok, "--advertise {a:?} is not host:port");
            a.clone()
        }
        None => {
            anyhow::ensure!(
                !cfg.listen.ip().is_unspecified() && cfg.listen.port() != 0,
                "--listen {} is not an address clients can use: give --advertise host:port",
                cfg.listen
            );
            cfg.listen.to_string()
        }
    };
    anyhow::ensure!(
        args.registration_ttl >= std::time::Duration::from_secs(2)
            && args.registration_ttl <= std::time::Duration::from_secs(3600),
        "--registration-ttl must be between 2s and 1h"
    );
    anyhow::ensure!(
        args.zone.len() <= 64
            && args
                .zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "--zone may hold up to 64 letters, digits, '-', '_' and '.'"
    );
    Ok(Some((
        location,
        Announce {
            address,
            zone: args.zone.clone(),
            ttl: args.registration_ttl,
            refresh: std::time::Duration::from_secs(5),
        },
    )))
}

pub async fn run(args: BookieArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let cluster = cluster(&args, &cfg)?;
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
    // Registration stops (deregisters) first on a signal, then the server drains.
    let deregistered = match cluster {
        Some((location, announce)) => {
            let store = dlog_metadata::open(&location)
                .await
                .with_context(|| format!("open metadata store {location:?}"))?;
            let reg = registration::register(store.clone(), &bookie, &announce).await?;
            let (stop, done) = (CancellationToken::new(), CancellationToken::new());
            let (s, d) = (stop.clone(), done.clone());
            let b = bookie.clone();
            tokio::spawn(async move {
                registration::maintain(store, b, announce, reg, s).await;
                d.cancel();
            });
            Some((stop, done))
        }
        None => None,
    };
    info!(addr = %listener.local_addr()?, "dlogd bookie ready");
    let serving = CancellationToken::new();
    let server = tokio::spawn(server::serve(bookie.clone(), listener, serving.clone()));
    shutdown.cancelled().await;
    if let Some((stop, done)) = deregistered {
        stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done.cancelled()).await;
    }
    serving.cancel();
    server.await.context("bookie server task")?;
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
