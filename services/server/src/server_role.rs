//! `dlogd server` and `dlogd standalone`: a log service node — the client protocol, stream
//! ownership and the control plane — until SIGTERM or SIGINT; then it seals the streams it
//! writes, gives up their ownership and exits 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dlog_api::stream::StreamPolicy;
use dlog_ledger::local::{LocalBookie, start_bookies};
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{Log, SystemClock};
use dlog_metadata::MetadataStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::bookie_role::wait_for_signal;
use crate::server_config::ServerConfig;
use crate::service::{Service, ServiceOptions, conn};

/// Flags of `dlogd server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// TOML config file (see docs/operations.md and `server_config.rs`).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Validate the config file and exit (0 if valid, 1 with the offending key if not).
    #[arg(long)]
    pub check_config: bool,
}

/// Flags of `dlogd standalone`.
#[derive(Debug, Clone, clap::Args)]
pub struct StandaloneArgs {
    /// Where everything lives: `metadata/` and `bookies/bookie-N/`. Kept across restarts.
    #[arg(long, env = "DLOG_DATA_DIR", default_value = "dlog-data")]
    pub data_dir: PathBuf,
    /// Bookies to run in this process (streams default to min(3, N) copies, acknowledged by
    /// min(2, N)).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub bookies: u8,
    /// Client protocol address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Control plane (HTTP) address.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub http_listen: String,
    /// How often stream retention policies are applied.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,
    /// Where sealed segments are offloaded (`file:///path` or `s3://bucket/prefix`; S3
    /// settings from the AWS environment). Default: DATA_DIR/objects.
    #[arg(long)]
    pub object_store: Option<String>,
    /// How long a segment's bookie copy stays after its offload.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub offload_grace: Duration,
    /// Adjacent sealed segments smaller than this are offloaded together, as one object
    /// (fewer, larger objects); 0 offloads each segment alone.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub compact_below: u64,
}

/// A size in bytes: `1048576`, `64KiB`, `64MiB` or `1GiB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 67108864 or 64MiB"))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => return Err(format!("{s:?}: unknown unit {u:?} (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("{s:?}: too large"))
}

pub async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig::load(&args.config)?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    let store = dlog_metadata::open(&cfg.metadata)
        .await
        .context("open metadata store")?;
    let mut lo = LedgerOptions::default();
    lo.bookie.request_timeout = cfg.ledger_request_timeout;
    let node = Node::start(
        store,
        lo,
        cfg.service,
        &cfg.listen.to_string(),
        &cfg.http_listen.to_string(),
    )
    .await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    shutdown.cancelled().await;
    node.stop().await;
    Ok(())
}

/// The object tier of a standalone: `--object-store`, or a folder in the data dir.
fn standalone_objects(args: &StandaloneArgs) -> anyhow::Result<crate::service::ObjectsOptions> {
    let url = match &args.object_store {
        Some(u) => u.clone(),
        None => {
            let dir = std::path::absolute(args.data_dir.join("objects"))
                .context("resolve the data dir")?;
            format!("file://{}", dir.display())
        }
    };
    let mut o = crate::service::ObjectsOptions::new(url);
    o.s3.endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    o.grace = args.offload_grace;
    o.compact_below = args.compact_below;
    Ok(o)
}

pub async fn run_standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let store: Arc<dyn MetadataStore> =
        dlog_metadata::open(&dlog_metadata::Location::Embedded(dir.join("metadata")))
            .await
            .context("open the embedded metadata store")?;
    let bookies = start_bookies(
        store.clone(),
        &dir.join("bookies"),
        usize::from(args.bookies),
        |_| {},
    )
    .await
    .context("start bookies")?;
    let n = args.bookies;
    let service = ServiceOptions {
        node: "standalone".into(),
        advertise: args.listen.clone(),
        // One process: a restart is the only way ownership moves, and it reclaims its own.
        ownership_ttl: Duration::from_secs(5),
        retention_interval: args.retention_interval,
        objects: Some(standalone_objects(&args)?),
        default_policy: StreamPolicy {
            ensemble: n.min(3),
            write_quorum: n.min(3),
            ack_quorum: n.min(2),
            ..StreamPolicy::default()
        },
        ..ServiceOptions::default()
    };
    let node = Node::start(
        store,
        LedgerOptions::default(),
        service,
        &args.listen,
        &args.http_listen,
    )
    .await?;
    info!(
        data_dir = %dir.display(),
        bookies = n,
        client = %args.listen,
        http = %args.http_listen,
        ready_ms = started.elapsed().as_millis() as u64,
        "dlog standalone ready"
    );
    println!(
        "dlog standalone ready in {} ms: streams on {} (DLOG_SERVER), control plane on http://{}, \
         data in {}",
        started.elapsed().as_millis(),
        args.listen,
        args.http_listen,
        dir.display()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    shutdown.cancelled().await;
    node.stop().await;
    stop_bookies(bookies).await;
    info!("dlog standalone stopped");
    Ok(())
}

async fn stop_bookies(bookies: Vec<LocalBookie>) {
    for b in bookies {
        b.stop().await;
    }
}

/// A running service node: client protocol and control plane.
pub struct Node {
    pub service: Arc<Service>,
    pub client_addr: String,
    pub http_addr: String,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("client_addr", &self.client_addr)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

impl Node {
    /// Binds both listeners (port 0: any free port) and serves until [`Node::stop`].
    pub async fn start(
        store: Arc<dyn MetadataStore>,
        ledger: LedgerOptions,
        mut opts: ServiceOptions,
        listen: &str,
        http_listen: &str,
    ) -> anyhow::Result<Node> {
        let client = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        let http = TcpListener::bind(http_listen)
            .await
            .with_context(|| format!("listen on {http_listen}"))?;
        let client_addr = client.local_addr()?.to_string();
        let http_addr = http.local_addr()?.to_string();
        if opts.advertise.ends_with(":0") {
            opts.advertise = client_addr.clone();
        }
        let log = Log::new(
            store.clone(),
            LedgerClient::new(store, ledger),
            Arc::new(SystemClock),
        );
        let service = Service::new(log, opts).context("open the object store")?;
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(conn::serve(
            service.clone(),
            client,
            stop.clone(),
        )));
        tasks.push(tokio::spawn(service.clone().retention_loop(stop.clone())));
        let app = crate::http::app(service.clone());
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let r = axum::serve(http, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "control plane stopped");
            }
        }));
        Ok(Node {
            service,
            client_addr,
            http_addr,
            stop,
            tasks,
        })
    }

    /// Stops accepting, seals the streams this node writes and releases their ownership.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.service.ownership.release_all().await;
    }
}
