//! `dlog bench tail`: how soon a following reader sees an acknowledged record.
//!
//! A writer appends at a fixed rate; each payload carries a run id, a sequence number and its
//! send time. A reader follows the stream from where it ended before the run. Whichever of
//! the two sees a record second (the writer's acknowledgement or the reader's delivery)
//! records the delay from acknowledgement to delivery (zero when the reader was first). Send
//! to delivery is reported too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use clap::Args;
use dlog_api::{Record, StreamName};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::report::{Latencies, Pacer, Tally, check_rate, print_json_line, progress_bar};
use super::{check_seconds, check_size, ensure_stream};
use crate::cli::units::parse_bytes;
use crate::reader::end_offset;
use crate::{AppendFuture, Client, ReaderOptions, StartAt, WriterOptions};

/// Bytes of the header every payload starts with: run id, sequence, send time.
const HEADER: usize = 24;
/// How long the reader may take to deliver the last records after the writer stops.
const DRAIN: Duration = Duration::from_secs(10);

/// `dlog bench tail`.
#[derive(Debug, Args)]
pub struct TailBenchArgs {
    /// The stream to write and follow (created if missing).
    #[arg(long, default_value = "bench/tail")]
    pub stream: StreamName,
    /// Records per second the writer appends.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// How long to write, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Payload bytes per record (at least 24).
    #[arg(long, default_value = "100", value_parser = parse_bytes)]
    pub size: u64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct TailReport {
    /// `"tail"`.
    pub bench: &'static str,
    /// The stream.
    pub stream: String,
    /// Offered records per second.
    pub rate: f64,
    /// Payload bytes per record.
    pub size: u64,
    /// Seconds of writing.
    pub seconds: f64,
    /// Records acknowledged to the writer.
    pub acked: u64,
    /// Records of this run the reader received.
    pub read: u64,
    /// Acknowledged records the reader had not received when the run ended.
    pub missing: u64,
    /// Failed appends.
    pub errors: u64,
    /// The first failure (append or read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Acknowledgement to delivery, in milliseconds: median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Send (append call) to delivery, in milliseconds: median.
    pub send_p50_ms: f64,
    /// 99th percentile.
    pub send_p99_ms: f64,
}

/// Which side saw a record first, and when.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Acked(Instant),
    Read,
}

#[derive(Debug, Default)]
struct Meeting {
    seen: HashMap<u64, Seen>,
    ack_to_read: Latencies,
    send_to_read: Latencies,
    read: u64,
    read_error: Option<String>,
}

impl Meeting {
    fn acked(&mut self, seq: u64, at: Instant) {
        match self.seen.remove(&seq) {
            // The reader was first: delivered no later than acknowledged.
            Some(Seen::Read) => self.ack_to_read.record(Duration::ZERO),
            _ => {
                self.seen.insert(seq, Seen::Acked(at));
            }
        }
    }

    fn read(&mut self, seq: u64, at: Instant) {
        self.read += 1;
        match self.seen.remove(&seq) {
            Some(Seen::Acked(acked)) => {
                self.ack_to_read.record(at.saturating_duration_since(acked))
            }
            _ => {
                self.seen.insert(seq, Seen::Read);
            }
        }
    }
}

fn lock(m: &Mutex<Meeting>) -> MutexGuard<'_, Meeting> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `dlog bench tail`.
pub async fn run(client: &Client, args: TailBenchArgs, json: bool) -> anyhow::Result<()> {
    let size = check_size(client, args.size, HEADER as u64)?;
    check_seconds(args.seconds)?;
    check_rate(Some(args.rate))?;
    ensure_stream(client, &args.stream).await?;

    let run_id = fastrand::u64(..);
    let base = Instant::now();
    let meeting = Arc::new(Mutex::new(Meeting::default()));

    let start = end_offset(client, &args.stream, Duration::from_secs(30)).await?;
    let mut reader = client.reader(
        &args.stream,
        ReaderOptions {
            start: StartAt::Offset(start),
            follow: true,
            wait: Duration::from_secs(1),
            ..ReaderOptions::default()
        },
    );
    let m = meeting.clone();
    let reading = tokio::spawn(async move {
        while let Some(next) = reader.next().await {
            let now = Instant::now();
            let record = match next {
                Ok(r) => r.record,
                Err(e) => {
                    lock(&m).read_error = Some(e.to_string());
                    return;
                }
            };
            let p = &record.payload;
            if p.len() < HEADER || p[..8] != run_id.to_le_bytes() {
                continue; // another writer's record
            }
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&p[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let (seq, sent_ns) = (word(8), word(16));
            let mut g = lock(&m);
            g.read(seq, now);
            let sent = base + Duration::from_nanos(sent_ns);
            g.send_to_read.record(now.saturating_duration_since(sent));
        }
    });

    let writer = client.writer(&args.stream, WriterOptions::default());
    let tally = Tally::default();
    let (acks, mut rx) = mpsc::channel::<(u64, AppendFuture)>(1 << 16);
    let (m, t) = (meeting.clone(), tally.clone());
    let collector = tokio::spawn(async move {
        while let Some((seq, ack)) = rx.recv().await {
            match ack.await {
                Ok(_) => {
                    lock(&m).acked(seq, Instant::now());
                    t.ok(Duration::ZERO, 0);
                }
                Err(e) => t.error(e),
            }
        }
    });

    let bar = progress_bar((args.seconds * 10.0) as u64, "ds");
    let deadline = base + Duration::from_secs_f64(args.seconds);
    let mut pacer = Pacer::new(Some(args.rate));
    let mut seq = 0u64;
    let mut last_tick = Instant::now();
    while Instant::now() < deadline {
        pacer.wait().await;
        let mut payload = BytesMut::with_capacity(size);
        payload.put_u64_le(run_id);
        payload.put_u64_le(seq);
        payload.put_u64_le(u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX));
        payload.resize(size, 0);
        let ack = writer.append(Record::new(payload.freeze())).await;
        if acks.send((seq, ack)).await.is_err() {
            break;
        }
        seq += 1;
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            bar.set_position((base.elapsed().as_secs_f64() * 10.0) as u64);
            let g = lock(&meeting);
            bar.set_message(format!(
                "read {} p99 {:.2} ms",
                g.read,
                g.ack_to_read.ms(0.99)
            ));
            if tally.counts().2 > 0 {
                break;
            }
        }
    }
    let seconds = base.elapsed().as_secs_f64();
    drop(acks);
    collector.await?;
    let (acked, _, errors) = tally.counts();
    bar.set_message("waiting for the reader");
    let drain_until = Instant::now() + DRAIN;
    while lock(&meeting).read < acked && Instant::now() < drain_until && !reading.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reading.abort();
    bar.finish_and_clear();

    let g = lock(&meeting);
    let t = tally.snapshot();
    let report = TailReport {
        bench: "tail",
        stream: args.stream.to_string(),
        rate: args.rate,
        size: args.size,
        seconds,
        acked,
        read: g.read,
        missing: acked.saturating_sub(g.read),
        errors,
        first_error: t.first_error.clone().or_else(|| g.read_error.clone()),
        p50_ms: g.ack_to_read.ms(0.5),
        p99_ms: g.ack_to_read.ms(0.99),
        p999_ms: g.ack_to_read.ms(0.999),
        max_ms: g.ack_to_read.max_ms(),
        send_p50_ms: g.send_to_read.ms(0.5),
        send_p99_ms: g.send_to_read.ms(0.99),
    };
    drop(g);
    outln!(
        "tail: {} records of {} B at {:.0}/s to {} for {:.1} s; read {} ({} missing)",
        report.acked,
        report.size,
        report.rate,
        report.stream,
        report.seconds,
        report.read,
        report.missing
    );
    outln!(
        "  ack to read ms   p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}",
        report.p50_ms,
        report.p99_ms,
        report.p999_ms,
        report.max_ms
    );
    outln!(
        "  send to read ms  p50 {:.3}  p99 {:.3}",
        report.send_p50_ms,
        report.send_p99_ms
    );
    if let Some(e) = &report.first_error {
        outln!("  errors           {} (first: {e})", report.errors);
    }
    if json {
        print_json_line(&report)?;
    }
    if let Some(e) = report.first_error {
        anyhow::bail!("tail bench failed: {e}");
    }
    anyhow::ensure!(
        report.missing == 0,
        "the reader missed {} acknowledged records",
        report.missing
    );
    Ok(())
}
