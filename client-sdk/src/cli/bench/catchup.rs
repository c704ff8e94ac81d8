//! `dlog bench catchup`: write a volume, then read it all back from its first offset.

use std::time::{Duration, Instant};

use clap::Args;
use dlog_api::{Record, StreamName};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::report::{Payloads, Tally, mb_per_s, print_json_line, progress_bar};
use super::{check_size, ensure_stream};
use crate::cli::units::parse_bytes;
use crate::{AppendFuture, Client, ReaderOptions, StartAt, WriterOptions};

/// `dlog bench catchup`.
#[derive(Debug, Args)]
pub struct CatchupBenchArgs {
    /// The stream to write and read back (created if missing).
    #[arg(long, default_value = "bench/catchup")]
    pub stream: StreamName,
    /// How much payload to write and read (e.g. 1GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub bytes: u64,
    /// Payload bytes per record.
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub size: u64,
    /// Bytes of records one read request asks for (the node may answer with one more
    /// batch than this).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub read_bytes: u64,
    /// Before reading, seal the stream and offload it to the service's object tier, so that
    /// the read back comes from the objects (the node must have an object store).
    #[arg(long)]
    pub offload: bool,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct CatchupReport {
    /// `"catchup"`.
    pub bench: &'static str,
    /// The stream.
    pub stream: String,
    /// Payload bytes per record.
    pub size: u64,
    /// Records written and read back.
    pub records: u64,
    /// Payload bytes written and read back.
    pub bytes: u64,
    /// Seconds of writing (until the last acknowledgement).
    pub write_seconds: f64,
    /// Write throughput, payload MB (10⁶ bytes) per second.
    pub write_mb_per_s: f64,
    /// Seconds of reading.
    pub read_seconds: f64,
    /// Read throughput, payload MB per second.
    pub read_mb_per_s: f64,
    /// Records read per second.
    pub read_records_per_s: f64,
    /// Where the records were read from: `bookies`, or `objects` with `--offload`.
    pub tier: &'static str,
    /// Seconds the offload took (with `--offload`).
    pub offload_seconds: Option<f64>,
}

/// Runs `dlog bench catchup`.
pub async fn run(client: &Client, args: CatchupBenchArgs, json: bool) -> anyhow::Result<()> {
    let size = check_size(client, args.size, 1)?;
    anyhow::ensure!(args.bytes > 0, "--bytes must be positive");
    let read_bytes = u32::try_from(args.read_bytes)
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| anyhow::anyhow!("--read-bytes must be between 1 and 4GiB"))?;
    let records = args.bytes.div_ceil(size as u64);
    ensure_stream(client, &args.stream).await?;

    // Write.
    let writer = client.writer(&args.stream, WriterOptions::default());
    let mut payloads = Payloads::new(size);
    let tally = Tally::default();
    let (acks, mut rx) = mpsc::channel::<AppendFuture>(1 << 16);
    let t = tally.clone();
    let collector = tokio::spawn(async move {
        let mut first = None;
        while let Some(ack) = rx.recv().await {
            match ack.await {
                Ok(offset) => {
                    first.get_or_insert(offset.0);
                    t.ok(Duration::ZERO, size as u64);
                }
                Err(e) => t.error(e),
            }
        }
        first
    });
    let bar = progress_bar(records, "records written");
    let started = Instant::now();
    for i in 0..records {
        let ack = writer.append(Record::new(payloads.next_payload())).await;
        if acks.send(ack).await.is_err() {
            break;
        }
        if i % 4096 == 0 {
            bar.set_position(i);
            if tally.counts().2 > 0 {
                break;
            }
        }
    }
    drop(acks);
    let first = collector.await?;
    let write_elapsed = started.elapsed();
    bar.finish_and_clear();
    let written = tally.snapshot();
    if let Some(e) = written.first_error {
        anyhow::bail!("{} appends failed: {e}", written.errors);
    }
    let Some(first) = first else {
        anyhow::bail!("nothing was written");
    };

    // Move everything to the object tier first.
    let offload_seconds = if args.offload {
        eprintln!("offloading {} …", args.stream);
        let t = Instant::now();
        let (segments, _) = client
            .admin()
            .offload(&args.stream, true)
            .await
            .map_err(|e| anyhow::Error::new(e).context("offload"))?;
        anyhow::ensure!(
            !segments.is_empty(),
            "the offload moved nothing: does the node have an object store?"
        );
        Some(t.elapsed().as_secs_f64())
    } else {
        None
    };

    // Read back.
    let mut reader = client.reader(
        &args.stream,
        ReaderOptions {
            start: StartAt::Offset(first),
            max_bytes: read_bytes,
            ..ReaderOptions::default()
        },
    );
    let bar = progress_bar(records, "records read");
    let started = Instant::now();
    let (mut read, mut read_bytes_total) = (0u64, 0u64);
    while read < records {
        match reader.next().await {
            Some(Ok(r)) => {
                read += 1;
                read_bytes_total += r.record.payload.len() as u64;
                if read % 4096 == 0 {
                    bar.set_position(read);
                }
            }
            Some(Err(e)) => return Err(anyhow::Error::new(e).context("read back")),
            None => break,
        }
    }
    let read_elapsed = started.elapsed();
    bar.finish_and_clear();
    anyhow::ensure!(
        read == records,
        "read back {read} of {records} records: the stream ended early"
    );

    let report = CatchupReport {
        bench: "catchup",
        stream: args.stream.to_string(),
        size: args.size,
        records,
        bytes: written.bytes,
        write_seconds: write_elapsed.as_secs_f64(),
        write_mb_per_s: mb_per_s(written.bytes, write_elapsed),
        read_seconds: read_elapsed.as_secs_f64(),
        read_mb_per_s: mb_per_s(read_bytes_total, read_elapsed),
        read_records_per_s: read as f64 / read_elapsed.as_secs_f64().max(1e-9),
        tier: if args.offload { "objects" } else { "bookies" },
        offload_seconds,
    };
    outln!(
        "catchup: {} records of {} B ({:.1} MB) on {}",
        report.records,
        report.size,
        report.bytes as f64 / 1e6,
        report.stream
    );
    outln!(
        "  write  {:.1} MB/s in {:.1} s",
        report.write_mb_per_s,
        report.write_seconds
    );
    outln!(
        "  read   {:.1} MB/s, {:.0} records/s in {:.1} s from the {}",
        report.read_mb_per_s,
        report.read_records_per_s,
        report.read_seconds,
        report.tier
    );
    if json {
        print_json_line(&report)?;
    }
    Ok(())
}
