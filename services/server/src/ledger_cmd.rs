//! `dlogd ledger …` and `dlogd autorecovery`: operator tools over the replication client.
//!
//! - `ledger append` creates a ledger and appends N entries (pipelined), printing one JSON line
//!   per acknowledged entry (`{"acked":E}`) as soon as it is acknowledged — a writer whose
//!   output says exactly what it was promised, which the fault tests kill, pause and resume.
//! - `ledger recover ID` fences, recovers and closes a ledger; prints its metadata.
//! - `ledger describe ID` prints a ledger's metadata.
//! - `autorecovery` runs re-replication rounds until SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use dlog_api::{Epoch, LedgerId};
use dlog_ledger::{LedgerClient, LedgerOptions, Quorum, WriteError};
use dlog_metadata::{Location, MetadataStore};
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, Clone, clap::Args)]
pub struct MetadataArg {
    /// The cluster's metadata store: `etcd://host:2379[,…][/root]`, or a folder.
    #[arg(long, env = "DLOG_METADATA")]
    pub metadata: String,
}

impl MetadataArg {
    async fn client(&self) -> anyhow::Result<LedgerClient> {
        let location: Location = self.metadata.parse().context("--metadata")?;
        let store: Arc<dyn MetadataStore> = dlog_metadata::open(&location)
            .await
            .with_context(|| format!("open metadata store {}", self.metadata))?;
        Ok(LedgerClient::new(store, LedgerOptions::default()))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Create a ledger and append entries, printing each acknowledgement as a JSON line.
    Append(AppendArgs),
    /// Fence, recover and close a ledger; print its metadata.
    Recover {
        #[command(flatten)]
        meta: MetadataArg,
        /// The ledger id.
        id: u64,
    },
    /// Print a ledger's metadata.
    Describe {
        #[command(flatten)]
        meta: MetadataArg,
        id: u64,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct AppendArgs {
    #[command(flatten)]
    pub meta: MetadataArg,
    /// Entries to append.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Payload bytes per entry; entry `e` holds "entry e " repeated to this size.
    #[arg(long, default_value_t = 1024)]
    pub entry_size: usize,
    /// Appends in flight at once.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    #[command(flatten)]
    pub quorum: QuorumArgs,
    /// Close the ledger after the last entry.
    #[arg(long)]
    pub close: bool,
}

/// The payload `dlogd ledger append` writes as entry `e`: checkable without remembering it.
pub fn payload(e: u64, size: usize) -> Bytes {
    let unit = format!("entry {e} ");
    Bytes::from(unit.repeat(size / unit.len() + 1).into_bytes()[..size].to_vec())
}

/// E/Qw/Qa flags, shared by the ledger tools and the ledger bench.
#[derive(Debug, Clone, clap::Args)]
pub struct QuorumArgs {
    /// Bookies per ledger (E).
    #[arg(long, default_value_t = 3)]
    pub ensemble: u8,
    /// Copies of each entry (Qw).
    #[arg(long, default_value_t = 3)]
    pub write_quorum: u8,
    /// Copies that must be durable before an entry is acknowledged (Qa).
    #[arg(long, default_value_t = 2)]
    pub ack_quorum: u8,
}

impl QuorumArgs {
    pub fn quorum(&self) -> anyhow::Result<Quorum> {
        Ok(Quorum::new(
            self.ensemble,
            self.write_quorum,
            self.ack_quorum,
        )?)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct AutorecoveryArgs {
    #[command(flatten)]
    pub meta: MetadataArg,
    /// How long a bookie may be unregistered before its ledgers are re-replicated.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Time between audit rounds.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

fn line(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

pub async fn run(cmd: LedgerCommand) -> anyhow::Result<()> {
    match cmd {
        LedgerCommand::Append(a) => append(a).await,
        LedgerCommand::Recover { meta, id } => {
            let m = meta.client().await?.recover(LedgerId(id)).await?;
            println!("{}", String::from_utf8_lossy(&m.encode()));
            Ok(())
        }
        LedgerCommand::Describe { meta, id } => {
            let (m, version) = meta.client().await?.metadata(LedgerId(id)).await?;
            println!("{}", String::from_utf8_lossy(&m.encode()));
            info!(version, "metadata version");
            Ok(())
        }
    }
}

async fn append(a: AppendArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.entry_size > 0, "--entry-size must be at least 1");
    anyhow::ensure!(
        (1..=100_000).contains(&a.inflight),
        "--inflight must be between 1 and 100000"
    );
    let quorum = a.quorum.quorum()?;
    let client = a.meta.client().await?;
    let w = client.create(quorum, Epoch(1)).await?;
    line(serde_json::json!({ "ledger": w.id().0 }));
    let mut window = std::collections::VecDeque::new();
    let mut result: Result<(), WriteError> = Ok(());
    let mut next = 0;
    while next < a.count || !window.is_empty() {
        while next < a.count && window.len() < a.inflight {
            window.push_back(w.append(payload(next, a.entry_size)).await);
            next += 1;
        }
        let Some(ack) = window.pop_front() else { break };
        match ack.await.unwrap_or(Err(WriteError::Closed)) {
            Ok(e) => line(serde_json::json!({ "acked": e.0 })),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Err(e) = result {
        line(serde_json::json!({ "error": e.to_string(), "fenced": e == WriteError::Fenced }));
        anyhow::bail!("append failed: {e}");
    }
    if a.close {
        let m = w.close().await?;
        line(serde_json::json!({ "closed": m.last_entry.map(|e| e.0) }));
    }
    Ok(())
}

pub async fn autorecovery(a: AutorecoveryArgs) -> anyhow::Result<()> {
    let client = a.meta.client().await?;
    let stop = CancellationToken::new();
    tokio::spawn(crate::bookie_role::wait_for_signal(stop.clone()));
    info!(grace = ?a.grace, interval = ?a.interval, "autorecovery running");
    dlog_ledger::rereplication::run_forever(client, a.grace, a.interval, stop).await;
    Ok(())
}
