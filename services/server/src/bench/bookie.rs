//! `dlogd bench bookie`: pipelined adds to one bookie over the real protocol on loopback.
//!
//! Each entry carries one record of `--entry-size` payload bytes, sealed in the entry envelope
//! (CRC32C) like the replication layer sends it; every add is acknowledged only after fsync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::wire::bookie::AddEntry;
use dlog_api::{Compression, Entry, EntryId, Epoch, LedgerId, Record};
use dlog_bookie::journal::file::IoMode;
use dlog_bookie::{Bookie, BookieConfig, server};
use dlog_ledger::{BookieClient, ClientOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::report::{LoadArgs, Pacer, Recorder, Report};

#[derive(Debug, Clone, clap::Args)]
pub struct BookieBenchArgs {
    /// Address of a running bookie. Without it, a bookie is started in a temporary folder.
    #[arg(long)]
    pub addr: Option<String>,
    /// Data dir for the bookie the bench starts (default: a temporary folder, removed after).
    #[arg(long, conflicts_with = "addr")]
    pub data_dir: Option<PathBuf>,
    /// Journal IO mode of the bookie the bench starts: direct, direct-dsync or buffered.
    #[arg(long, value_parser = parse_io_mode, conflicts_with = "addr")]
    pub io_mode: Option<IoMode>,
    #[command(flatten)]
    pub load: LoadArgs,
}

fn parse_io_mode(s: &str) -> Result<IoMode, String> {
    match s {
        "direct" => Ok(IoMode::Direct),
        "direct-dsync" => Ok(IoMode::DirectDsync),
        "buffered" => Ok(IoMode::Buffered),
        _ => Err(format!("{s:?}: expected direct, direct-dsync or buffered")),
    }
}

/// A bookie the bench started itself; stopped when dropped.
struct OwnBookie {
    bookie: Bookie,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

async fn start_own(args: &BookieBenchArgs) -> anyhow::Result<(String, OwnBookie)> {
    let (dir, tmp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            // Next to the build, not in /tmp: /tmp may be a RAM disk, which would flatter fsync.
            let base = std::env::current_dir()?.join("target").join("bench");
            std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
            let t = tempfile::tempdir_in(&base)?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut cfg = BookieConfig::for_dir(dir);
    if let Some(m) = args.io_mode {
        cfg.journal.io_mode = m;
    }
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
        .await
        .context("bookie start-up task")??;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(bookie.clone(), listener, shutdown.clone()));
    Ok((
        addr,
        OwnBookie {
            bookie,
            shutdown,
            server,
            _dir: tmp,
        },
    ))
}

impl OwnBookie {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let b = self.bookie;
        let _ = tokio::task::spawn_blocking(move || b.shutdown()).await;
    }
}

pub async fn run(args: BookieBenchArgs) -> anyhow::Result<Report> {
    args.load.validate()?;
    let (addr, own) = match &args.addr {
        Some(a) => (a.clone(), None),
        None => {
            let (a, o) = start_own(&args).await?;
            (a, Some(o))
        }
    };
    let client = BookieClient::connect(
        &addr,
        ClientOptions {
            client_name: "dlogd-bench".into(),
            ..Default::default()
        },
    )
    .await?;
    let report = drive(&client, &args.load).await;
    if let Some(o) = own {
        o.stop().await;
    }
    let report = report?;
    anyhow::ensure!(
        report.records > 0,
        "no add succeeded (first error: {})",
        report.first_error.as_deref().unwrap_or("none")
    );
    Ok(report)
}

async fn drive(client: &BookieClient, load: &LoadArgs) -> anyhow::Result<Report> {
    let limits = RecordSetLimits {
        max_payload: load.entry_size,
        ..Default::default()
    };
    let payload = Bytes::from(
        (0..load.entry_size)
            .map(|_| fastrand::u8(..))
            .collect::<Vec<u8>>(),
    );
    let record_set = encode_record_set(&[Record::new(payload)], Compression::None, &limits)?;
    // A fresh ledger id, so runs against a shared bookie never collide.
    let ledger = LedgerId(fastrand::u64(1 << 40..));
    let epoch = Epoch(1);
    let rec = Recorder::new();
    let bar = ProgressBar::new((load.seconds * 10.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let mut pacer = Pacer::new(load.rate);
    let mut next_entry = 0u64;
    let mut last_tick = start;
    let payload_bytes = load.entry_size as u64;
    let mut inflight = FuturesUnordered::new();
    let mut due = pacer.next().await;
    loop {
        let now = Instant::now();
        if now >= deadline || client.is_closed() {
            break;
        }
        if inflight.len() < load.inflight && now >= due {
            let entry = EntryId(next_entry);
            next_entry += 1;
            let data = Entry::encode(ledger, entry, &record_set);
            let sent = if load.rate.is_some() { due } else { now };
            let lac = entry
                .0
                .checked_sub(u64::try_from(load.inflight).unwrap_or(u64::MAX))
                .map(EntryId);
            let add = client.add(AddEntry {
                ledger,
                entry,
                epoch,
                lac,
                recovery: false,
                data,
            });
            inflight.push(async move { (add.await, sent) });
            due = pacer.next_due();
            continue;
        }
        // Wait for a completion, or (under --rate) for the next request to be due.
        let done = if load.rate.is_none() || inflight.len() >= load.inflight {
            if inflight.is_empty() {
                tokio::time::sleep_until(due.into()).await;
                None
            } else {
                inflight.next().await
            }
        } else {
            tokio::select! {
                d = inflight.next(), if !inflight.is_empty() => d,
                _ = tokio::time::sleep_until(due.min(deadline).into()) => None,
            }
        };
        if let Some((res, sent)) = done {
            match res {
                Ok(()) => rec.ok(sent.elapsed(), payload_bytes),
                Err(e) => rec.error(e),
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let (ok, bytes) = rec.completed();
            let secs = start.elapsed().as_secs_f64();
            bar.set_position((secs * 10.0) as u64);
            bar.set_message(format!(
                "{:.0} records/s {:.1} MB/s",
                ok as f64 / secs,
                bytes as f64 / secs / 1e6
            ));
        }
    }
    // Wait for everything in flight.
    while let Some((res, sent)) = inflight.next().await {
        match res {
            Ok(()) => rec.ok(sent.elapsed(), payload_bytes),
            Err(e) => rec.error(e),
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(rec.report("bookie", load, elapsed))
}
