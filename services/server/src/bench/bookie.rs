//! `dlogd bench bookie`: pipelined adds to one bookie over the real protocol on loopback.
//!
//! Each entry carries one record of `--entry-size` payload bytes, sealed in the entry envelope
//! (CRC32C) like the replication layer sends it; every add is acknowledged only after fsync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dlog_api::wire::bookie::AddEntry;
use dlog_api::{Entry, EntryId, Epoch, LedgerId};
use dlog_bookie::journal::file::IoMode;
use dlog_ledger::{AddAck, BookieClient, ClientOptions};

use super::local::LocalBookie;
use super::report::{LoadArgs, Pacer, Recorder, Report, one_record_set, progress_bar, tick};

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
    /// Bookie config file (TOML, as for `dlogd bookie --config`) for the bookie the bench
    /// starts; --data-dir and --io-mode override it.
    #[arg(long, conflicts_with = "addr")]
    pub config: Option<PathBuf>,
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

pub async fn run(args: BookieBenchArgs) -> anyhow::Result<Report> {
    args.load.validate()?;
    let (addr, own) = match &args.addr {
        Some(a) => (a.clone(), None),
        None => {
            let o = LocalBookie::start(
                args.config.as_deref(),
                args.io_mode,
                args.data_dir.clone(),
                None,
            )
            .await?;
            (o.addr.clone(), Some(o))
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
    let (ledger, report) = drive(&client, &args.load).await;
    // Leave nothing behind on a shared bookie.
    if let Err(e) = client.delete(ledger).await {
        tracing::warn!(%ledger, error = %e, "could not delete the benchmark's ledger");
    }
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

/// Runs the load; returns the ledger it wrote to and the report.
async fn drive(client: &BookieClient, load: &LoadArgs) -> (LedgerId, anyhow::Result<Report>) {
    // A fresh ledger id, so runs against a shared bookie never collide.
    let ledger = LedgerId(fastrand::u64(1 << 40..));
    (ledger, drive_ledger(client, load, ledger).await)
}

async fn drive_ledger(
    client: &BookieClient,
    load: &LoadArgs,
    ledger: LedgerId,
) -> anyhow::Result<Report> {
    let record_set = one_record_set(load.entry_size)?;
    let epoch = Epoch(1);
    let rec = Recorder::new();
    let bar = progress_bar(load.seconds);
    // Acks arrive per request on one channel; each in-flight entry's send time sits in a ring
    // slot (entry id modulo its size), which is free again once that entry is acknowledged.
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let ring_len = (load.inflight * 4).next_power_of_two();
    let mut sent: Vec<Option<Instant>> = vec![None; ring_len];
    let slot = |e: u64| (e % ring_len as u64) as usize;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let mut pacer = Pacer::new(load.rate);
    let paced = load.rate.is_some();
    let mut due = pacer.next_due();
    let mut next_entry = 0u64;
    let mut inflight = 0usize;
    let mut last_tick = start;
    let payload_bytes = load.entry_size as u64;
    let on_ack = |ack: AddAck, inflight: &mut usize, sent: &mut Vec<Option<Instant>>| {
        let now = Instant::now();
        for e in &ack.entries {
            *inflight -= 1;
            let t = sent[slot(e.0)].take();
            match (&ack.result, t) {
                (Ok(()), Some(t)) => rec.ok(now - t, payload_bytes),
                (Ok(()), None) => rec.error("ack for an entry not in flight"),
                (Err(err), _) => rec.error(err),
            }
        }
    };
    loop {
        let now = Instant::now();
        if now >= deadline || client.is_closed() {
            break;
        }
        // Issue everything that is due and fits in the window.
        while inflight < load.inflight && (!paced || due <= now) && sent[slot(next_entry)].is_none()
        {
            let entry = EntryId(next_entry);
            let data = Entry::encode(
                ledger,
                entry,
                (entry.0 + 1) * record_set.len() as u64,
                &record_set,
            );
            let lac = next_entry
                .checked_sub(u64::try_from(load.inflight).unwrap_or(u64::MAX))
                .map(EntryId);
            client.add_to(
                AddEntry {
                    ledger,
                    entry,
                    epoch,
                    lac,
                    recovery: false,
                    data,
                },
                &acks_tx,
            )?;
            // Under --rate, latency counts from when the add was due.
            sent[slot(next_entry)] = Some(if paced { due } else { now });
            next_entry += 1;
            inflight += 1;
            due = pacer.next_due();
        }
        let ack = if !paced || inflight >= load.inflight {
            tokio::select! {
                a = acks.recv() => a,
                _ = tokio::time::sleep_until(deadline.into()) => None,
            }
        } else {
            tokio::select! {
                a = acks.recv() => a,
                _ = tokio::time::sleep_until(due.min(deadline).into()) => None,
            }
        };
        if let Some(ack) = ack {
            on_ack(ack, &mut inflight, &mut sent);
            while let Ok(more) = acks.try_recv() {
                on_ack(more, &mut inflight, &mut sent);
            }
        }
        tick(&bar, &rec, start, &mut last_tick);
    }
    // Wait for everything in flight.
    while inflight > 0 {
        match acks.recv().await {
            Some(ack) => on_ack(ack, &mut inflight, &mut sent),
            None => break,
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(rec.report("bookie", load, elapsed))
}
