//! `dlogd bench ledger`: pipelined appends to one replicated ledger through the replication
//! client — striped over the ensemble, acknowledged at the ack quorum, every copy fsynced.
//!
//! The bookies are either running ones (`--bookies A,B,C`; the bench registers them in a
//! private embedded metadata store) or `--local-bookies N` it starts in folders under
//! `target/bench`, each with its own journal, all sharing this machine's disk and cores.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dlog_api::{BookieId, Epoch};
use dlog_ledger::registry::{BookieRegistration, RegisteredState, Registration};
use dlog_ledger::{BookieClient, ClientOptions, LedgerClient, LedgerOptions, Quorum};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};

use super::local::LocalBookie;
use super::report::{LoadArgs, Pacer, Recorder, Report, one_record_set, progress_bar, tick};

#[derive(Debug, Clone, clap::Args)]
pub struct LedgerBenchArgs {
    /// Running bookies to write to (host:port, comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "local_bookies")]
    pub bookies: Vec<String>,
    /// Start this many bookies in temporary folders (default 3 without --bookies).
    #[arg(long)]
    pub local_bookies: Option<usize>,
    /// Bookie config file (TOML) for the bookies the bench starts.
    #[arg(long, conflicts_with = "bookies")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub quorum: crate::ledger_cmd::QuorumArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

pub async fn run(args: LedgerBenchArgs) -> anyhow::Result<Report> {
    args.load.validate()?;
    let quorum = args.quorum.quorum()?;
    let meta_dir = tempfile::tempdir().context("create the bench's metadata folder")?;
    let store: Arc<dyn MetadataStore> =
        Arc::new(EmbeddedStore::open(meta_dir.path(), EmbeddedOptions::default()).await?);
    let mut local = Vec::new();
    let addrs: Vec<String> = if args.bookies.is_empty() {
        let n = args.local_bookies.unwrap_or(3);
        anyhow::ensure!(
            (1..=32).contains(&n),
            "--local-bookies must be between 1 and 32"
        );
        for i in 0..n {
            let id = BookieId::new(format!("bench-{i}")).expect("valid id");
            local.push(LocalBookie::start(args.config.as_deref(), None, None, Some(id)).await?);
        }
        local.iter().map(|b| b.addr.clone()).collect()
    } else {
        args.bookies.clone()
    };
    anyhow::ensure!(
        addrs.len() >= usize::from(quorum.ensemble),
        "an ensemble of {} needs at least that many bookies, {} given",
        quorum.ensemble,
        addrs.len()
    );
    // Register every bookie under the id it reports, so that placement finds them.
    let mut regs = Vec::new();
    for addr in &addrs {
        let c = BookieClient::connect(addr, ClientOptions::default())
            .await
            .with_context(|| format!("connect to bookie {addr}"))?;
        let id = BookieId::new(c.bookie_id()).context("bookie id")?;
        regs.push(
            Registration::register(
                store.clone(),
                BookieRegistration {
                    id,
                    address: addr.clone(),
                    zone: String::new(),
                    instance_id: c.instance_id(),
                    state: RegisteredState::Writable,
                    disk_total: 0,
                    disk_used: 0,
                },
                Duration::from_secs(60),
            )
            .await?,
        );
    }
    let client = LedgerClient::new(store, LedgerOptions::default());
    let report = drive(&client, quorum, &args.load).await;
    drop(regs);
    for b in local {
        b.stop().await;
    }
    let report = report?;
    anyhow::ensure!(
        report.records > 0,
        "no append succeeded (first error: {})",
        report.first_error.as_deref().unwrap_or("none")
    );
    Ok(report)
}

async fn drive(client: &LedgerClient, quorum: Quorum, load: &LoadArgs) -> anyhow::Result<Report> {
    let writer = client.create(quorum, Epoch(1)).await?;
    let payload = one_record_set(load.entry_size)?;
    let rec = Recorder::new();
    let bar = progress_bar(load.seconds);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let mut pacer = Pacer::new(load.rate);
    let paced = load.rate.is_some();
    let mut due = pacer.next_due();
    let mut window = VecDeque::with_capacity(load.inflight);
    let mut last_tick = start;
    let bytes = load.entry_size as u64;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        while window.len() < load.inflight && (!paced || due <= now) {
            let ack = writer.append(payload.clone()).await;
            // Under --rate, latency counts from when the append was due.
            window.push_back((if paced { due } else { Instant::now() }, ack));
            due = pacer.next_due();
        }
        // Acknowledgements come in entry order: wait for the oldest, or the next due time.
        let wake = if paced && window.len() < load.inflight {
            due.min(deadline)
        } else {
            deadline
        };
        if let Some((sent, ack)) = window.front_mut() {
            let sent = *sent;
            tokio::select! {
                r = ack => {
                    window.pop_front();
                    match r {
                        Ok(Ok(_)) => rec.ok(sent.elapsed(), bytes),
                        Ok(Err(e)) => rec.error(e),
                        Err(_) => rec.error("writer stopped"),
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        } else {
            tokio::time::sleep_until(wake.into()).await;
        }
        tick(&bar, &rec, start, &mut last_tick);
    }
    for (sent, ack) in window {
        match ack.await {
            Ok(Ok(_)) => rec.ok(sent.elapsed(), bytes),
            Ok(Err(e)) => rec.error(e),
            Err(_) => rec.error("writer stopped"),
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let closed = writer.close().await;
    if let Ok(m) = &closed {
        let _ = client.delete(m.id).await;
    }
    Ok(rec.report("ledger", load, elapsed))
}
