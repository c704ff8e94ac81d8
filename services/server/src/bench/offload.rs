//! `dlogd bench offload`: the object tier's throughput and latency, in one process.
//!
//! Starts three bookies and an embedded metadata store in a folder under `target/bench`, writes
//! `--mib` MiB of `--size`-byte records into a stream (256 MiB segments), seals it, then
//! measures:
//! - **offload**: every sealed segment read from the bookies, written as Parquet, uploaded,
//!   read back and verified, committed — MB/s of record bytes, wall-clock and per CPU-second
//!   of this process (which also runs the bookies);
//! - **catch-up from the object tier**: after the bookie copies are deleted, a reader from
//!   offset 0 to the end — MB/s;
//! - **cold first record**: for each object, a reader with an empty cache fetching the first
//!   record (footer GET + one row group).
//!
//! The bucket is a folder under `target/bench` unless `--bucket` names one (e.g. an S3 server:
//! `--bucket s3://b/p --endpoint http://127.0.0.1:8333`, credentials from the environment).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::stream::{StreamName, StreamPolicy};
use dlog_api::{Compression, Record};
use dlog_ledger::local::start_bookies;
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{AppendBatch, Log, StreamReader, StreamWriter, SystemClock, WriterOptions};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};
use dlog_objects::{Bucket, Manifests, ObjectReader, S3Options, UploadOptions};
use dlog_offloader::{OffloadOptions, Offloader};
use serde::Serialize;

/// Flags of `dlogd bench offload`.
#[derive(Debug, clap::Args)]
pub struct OffloadBenchArgs {
    /// MiB of record payload to write, offload and read back.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub mib: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub size: u32,
    /// The bucket to offload to (default: a folder under target/bench).
    #[arg(long, value_name = "URL")]
    pub bucket: Option<String>,
    /// S3-compatible endpoint (also AWS_ENDPOINT_URL).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Objects of at least this many MiB are uploaded in parts, 16 MiB each, 4 at once
    /// (0: every object; compare with a value above the segment size for single PUTs).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=5120))]
    pub multipart_mib: u64,
    /// Objects built, uploaded and verified at once (1: one after another).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub parallel: u64,
    /// Ledger entries read ahead from the bookies while an object is built (1: one at a time).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub read_ahead: u64,
    /// Print a final JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct OffloadReport {
    pub bench: &'static str,
    pub bucket: String,
    pub record_bytes: u64,
    pub records: u64,
    pub segments: usize,
    pub object_bytes: u64,
    pub multipart_threshold: u64,
    pub parallel: u64,
    pub read_ahead: u64,
    pub offload_seconds: f64,
    pub offload_mb_per_s: f64,
    /// Record MB offloaded per CPU-second of this process (bookies included).
    pub offload_mb_per_cpu_s: f64,
    pub catchup_seconds: f64,
    pub catchup_mb_per_s: f64,
    pub cold_first_record_p50_ms: f64,
    pub cold_first_record_max_ms: f64,
}

/// CPU seconds this process has used (user + system), from /proc/self/stat (in USER_HZ
/// ticks, 100 per second in Linux's ABI); 0 where there is no /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

pub async fn run(args: OffloadBenchArgs) -> anyhow::Result<OffloadReport> {
    let base = std::env::current_dir()?.join("target").join("bench");
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    let dir = tempfile::tempdir_in(&base)?;
    let store: Arc<dyn MetadataStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("meta"), EmbeddedOptions::default()).await?);
    let bookies = start_bookies(store.clone(), &dir.path().join("bookies"), 3, |_| {}).await?;
    let s3 = S3Options {
        endpoint: args.endpoint.clone(),
        ..S3Options::default()
    };
    let bucket = match &args.bucket {
        Some(u) => Bucket::open(u, &s3)?,
        None => Bucket::local(&dir.path().join("objects"))?,
    };
    let log = Log::new(
        store.clone(),
        LedgerClient::new(store, LedgerOptions::default()),
        Arc::new(SystemClock),
    )
    .with_objects(ObjectReader::new(bucket.clone(), 64 << 20));
    let stream: StreamName = format!("bench/offload-{}", std::process::id()).parse()?;
    let policy = StreamPolicy::default();
    log.create_stream(&stream, policy.clone()).await?;

    // Write.
    let total = args.mib << 20;
    let per_batch = ((1u64 << 20) / u64::from(args.size)).max(1);
    let records = total.div_ceil(u64::from(args.size));
    let bar = indicatif::ProgressBar::new(records).with_message("writing");
    // Incompressible payloads (slices of a random block), as real data mostly is once
    // compressed by its producer: zeros would flatter zstd and the object store.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..(2 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let w = StreamWriter::open(&log, &stream, WriterOptions::default()).await?;
    let mut pending = std::collections::VecDeque::new();
    let mut written = 0u64;
    while written < records {
        let n = per_batch.min(records - written);
        let batch: Vec<Record> = (written..written + n)
            .map(|i| {
                let at = (i as usize * 7919) % (1 << 20);
                let mut p = noise[at..at + args.size as usize].to_vec();
                let n = p.len().min(8);
                p[..n].copy_from_slice(&i.to_le_bytes()[..n]);
                Record {
                    payload: p.into(),
                    key: None,
                    timestamp_ms: i as i64,
                    txid: None,
                }
            })
            .collect();
        let set = encode_record_set(&batch, Compression::None, &RecordSetLimits::default())?;
        pending.push_back(
            w.append(AppendBatch::from_record_set(0, 0, set, &policy)?)
                .await,
        );
        if pending.len() >= 64
            && let Some(a) = pending.pop_front()
        {
            a.await.context("writer stopped")??;
        }
        written += n;
        bar.set_position(written);
    }
    for a in pending {
        a.await.context("writer stopped")??;
    }
    w.roll().await?;
    w.close().await?;
    bar.finish_and_clear();

    // Offload.
    let off = Offloader::new(
        log.clone(),
        bucket.clone(),
        OffloadOptions {
            grace: Duration::ZERO,
            upload: UploadOptions {
                multipart_threshold: (args.multipart_mib << 20) as usize,
                ..UploadOptions::default()
            },
            parallel: args.parallel as usize,
            read_ahead: args.read_ahead as usize,
            ..OffloadOptions::default()
        },
    );
    eprintln!("offloading {} MiB …", args.mib);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let done = off.offload_stream(&stream, |_| true).await?;
    let offload = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    off.reclaim(&stream).await?;
    let record_bytes = records * u64::from(args.size);

    // Catch-up from the objects.
    eprintln!("reading back from the object tier …");
    let mut r = StreamReader::new(log.clone(), stream.clone());
    let t0 = Instant::now();
    let mut at = 0;
    while at < records {
        let b = r.read(at, 4 << 20, Duration::ZERO).await?;
        anyhow::ensure!(b.count > 0, "nothing read at offset {at}");
        at = b.first_offset + b.count;
    }
    let catchup = t0.elapsed();

    // Cold first records.
    let m = Manifests::new(bucket.clone())
        .latest(&stream)
        .await?
        .context("no manifest after the offload")?;
    let mut cold = Vec::new();
    for o in m.objects.iter().take(20) {
        let fresh = ObjectReader::new(bucket.clone(), 64 << 20);
        let t = Instant::now();
        fresh.read(o, o.first_offset, 1).await?;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    cold.sort_by(f64::total_cmp);
    for b in bookies {
        b.stop().await;
    }
    let mb = record_bytes as f64 / 1e6;
    Ok(OffloadReport {
        bench: "offload",
        bucket: bucket.url().to_string(),
        record_bytes,
        records,
        segments: done.len(),
        object_bytes: done.iter().map(|d| d.size).sum(),
        multipart_threshold: args.multipart_mib << 20,
        parallel: args.parallel,
        read_ahead: args.read_ahead,
        offload_seconds: offload.as_secs_f64(),
        offload_mb_per_s: mb / offload.as_secs_f64().max(1e-9),
        offload_mb_per_cpu_s: mb / cpu.max(1e-9),
        catchup_seconds: catchup.as_secs_f64(),
        catchup_mb_per_s: mb / catchup.as_secs_f64().max(1e-9),
        cold_first_record_p50_ms: cold.get(cold.len() / 2).copied().unwrap_or(0.0),
        cold_first_record_max_ms: cold.last().copied().unwrap_or(0.0),
    })
}

impl OffloadReport {
    pub fn print(&self, json: bool) {
        println!(
            "offload: {} records, {:.0} MB in {} segment(s) -> {} ({:.0} MB of objects)",
            self.records,
            self.record_bytes as f64 / 1e6,
            self.segments,
            self.bucket,
            self.object_bytes as f64 / 1e6
        );
        println!(
            "  offload    {:.1} s  {:.0} MB/s  {:.0} MB per CPU-second  ({} at once, {} entries ahead, parts from {} MiB)",
            self.offload_seconds,
            self.offload_mb_per_s,
            self.offload_mb_per_cpu_s,
            self.parallel,
            self.read_ahead,
            self.multipart_threshold >> 20
        );
        println!(
            "  catch-up   {:.1} s  {:.0} MB/s from the object tier",
            self.catchup_seconds, self.catchup_mb_per_s
        );
        println!(
            "  cold first record  p50 {:.1} ms  max {:.1} ms",
            self.cold_first_record_p50_ms, self.cold_first_record_max_ms
        );
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report always serializes")
            );
        }
    }
}
