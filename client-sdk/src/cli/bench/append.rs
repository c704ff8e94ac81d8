//! `dlog bench append`: durable appends through one [`Writer`](crate::Writer).

use std::time::{Duration, Instant};

use clap::Args;
use dlog_api::{Record, StreamName};
use serde::Serialize;
use tokio::sync::mpsc;

use super::report::{Pacer, Payloads, Tally, check_rate, mb_per_s, print_json_line, progress_bar};
use super::{check_seconds, check_size, ensure_stream};
use crate::cli::units::{parse_bytes, parse_duration};
use crate::{AppendFuture, Client, WriterOptions};

/// `dlog bench append`.
#[derive(Debug, Args)]
pub struct AppendBenchArgs {
    /// The stream to append to (created if missing).
    #[arg(long, default_value = "bench/append")]
    pub stream: StreamName,
    /// Payload bytes per record.
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub size: u64,
    /// Append requests (batches) in flight at once.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// How long to append, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Stop after this many measured records instead of after --seconds.
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Give records keys `key-0` … `key-(N-1)` in turn (default: no keys).
    #[arg(long, value_name = "N")]
    pub keys: Option<u32>,
    /// Seconds of appends at the same rate before the measurement starts; they are neither
    /// counted nor timed (a fresh process's first appends pay one-time costs: connections,
    /// first journal files, buffers).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Offered records per second (default: as fast as acknowledgements allow).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Largest batch (one append request).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub batch_bytes: u64,
    /// How long a batch waits for more records (0 sends at once).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub linger: Duration,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct AppendReport {
    /// `"append"`.
    pub bench: &'static str,
    /// The stream.
    pub stream: String,
    /// Payload bytes per record.
    pub size: u64,
    /// Batches in flight.
    pub inflight: usize,
    /// Offered rate, if capped.
    pub rate: Option<f64>,
    /// Seconds of uncounted appends before the measurement.
    pub warmup_s: f64,
    /// Seconds from the first measured append to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged records.
    pub records: u64,
    /// Failed records.
    pub errors: u64,
    /// The first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Acknowledged records per second.
    pub records_per_s: f64,
    /// Acknowledged payload MB (10⁶ bytes) per second.
    pub mb_per_s: f64,
    /// Append latency quantiles and extremes, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Runs `dlog bench append`.
pub async fn run(client: &Client, args: AppendBenchArgs, json: bool) -> anyhow::Result<()> {
    let size = check_size(client, args.size, 1)?;
    check_seconds(args.seconds)?;
    anyhow::ensure!(
        args.warmup.is_finite() && (0.0..=3600.0).contains(&args.warmup),
        "--warmup must be between 0 and 3600 seconds"
    );
    check_rate(args.rate)?;
    anyhow::ensure!(args.records != Some(0), "--records must be positive");
    anyhow::ensure!(args.keys != Some(0), "--keys must be positive");
    anyhow::ensure!(
        (1..=65_536).contains(&args.inflight),
        "--inflight must be between 1 and 65536"
    );
    let batch_bytes = usize::try_from(args.batch_bytes)
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| anyhow::anyhow!("--batch-bytes must be positive"))?;
    ensure_stream(client, &args.stream).await?;

    let writer = client.writer(
        &args.stream,
        WriterOptions {
            max_inflight_batches: args.inflight,
            max_batch_bytes: batch_bytes,
            linger: args.linger,
            ..WriterOptions::default()
        },
    );
    let mut payloads = Payloads::new(size);
    let keys: Vec<bytes::Bytes> = (0..args.keys.unwrap_or(0))
        .map(|k| bytes::Bytes::from(format!("key-{k}")))
        .collect();
    let tally = Tally::default();
    // (sent at, acknowledgement, counted: false during the warm-up)
    let (acks, mut rx) = mpsc::channel::<(Instant, AppendFuture, bool)>(1 << 16);
    let t = tally.clone();
    let collector = tokio::spawn(async move {
        while let Some((sent, ack, counted)) = rx.recv().await {
            match ack.await {
                Ok(_) if counted => t.ok(sent.elapsed(), size as u64),
                Ok(_) => {}
                Err(e) => t.error(e),
            }
        }
    });

    let bar = progress_bar(((args.warmup + args.seconds) * 10.0) as u64, "ds");
    let begin = Instant::now();
    let start = begin + Duration::from_secs_f64(args.warmup);
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let mut pacer = Pacer::new(args.rate);
    let mut last_tick = begin;
    let (mut sent_total, mut measured) = (0u64, 0u64);
    while match args.records {
        Some(n) => measured < n,
        None => Instant::now() < deadline,
    } {
        pacer.wait().await;
        let sent = Instant::now();
        let mut record = Record::new(payloads.next_payload());
        if !keys.is_empty() {
            record.key = Some(keys[(sent_total % keys.len() as u64) as usize].clone());
        }
        sent_total += 1;
        let counted = sent >= start;
        measured += u64::from(counted);
        let ack = writer.append(record).await;
        if acks.send((sent, ack, counted)).await.is_err() {
            break;
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let (ok, bytes, errors) = tally.counts();
            if errors > 0 {
                break; // the writer has stopped: every later append would fail too
            }
            bar.set_position((begin.elapsed().as_secs_f64() * 10.0) as u64);
            if last_tick < start {
                bar.set_message("warming up");
                continue;
            }
            let secs = start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "{:.0} records/s {:.1} MB/s",
                ok as f64 / secs,
                bytes as f64 / secs / 1e6
            ));
        }
    }
    drop(acks);
    bar.set_message("waiting for the last acknowledgements");
    collector.await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    let t = tally.snapshot();
    let report = AppendReport {
        bench: "append",
        stream: args.stream.to_string(),
        size: args.size,
        inflight: args.inflight,
        rate: args.rate,
        warmup_s: args.warmup,
        seconds: elapsed.as_secs_f64(),
        records: t.ok,
        errors: t.errors,
        first_error: t.first_error.clone(),
        records_per_s: t.ok as f64 / elapsed.as_secs_f64().max(1e-9),
        mb_per_s: mb_per_s(t.bytes, elapsed),
        p50_ms: t.latencies.ms(0.5),
        p99_ms: t.latencies.ms(0.99),
        p999_ms: t.latencies.ms(0.999),
        max_ms: t.latencies.max_ms(),
        mean_ms: t.latencies.mean_ms(),
    };
    let rate = report
        .rate
        .map_or_else(|| "unlimited".to_string(), |r| format!("{r:.0}/s"));
    let warmup = if report.warmup_s > 0.0 {
        format!(", after {:.1} s of warm-up", report.warmup_s)
    } else {
        String::new()
    };
    outln!(
        "append: {} records of {} B to {} in {:.1} s (inflight {}, offered rate {rate}{warmup})",
        report.records,
        report.size,
        report.stream,
        report.seconds,
        report.inflight
    );
    outln!(
        "  throughput  {:.0} records/s  {:.1} MB/s",
        report.records_per_s,
        report.mb_per_s
    );
    outln!(
        "  latency ms  p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}  mean {:.3}",
        report.p50_ms,
        report.p99_ms,
        report.p999_ms,
        report.max_ms,
        report.mean_ms
    );
    if let Some(e) = &report.first_error {
        outln!("  errors      {} (first: {e})", report.errors);
    }
    if json {
        print_json_line(&report)?;
    }
    if let Some(e) = report.first_error {
        anyhow::bail!("{} appends failed: {e}", report.errors);
    }
    Ok(())
}
