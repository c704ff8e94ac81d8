//! `dlog bench …`: whole-path benchmarks against a running cluster, through the SDK.
//!
//! - `append`: durable appends as fast as possible (or at `--rate`): records/s, MB/s, and the
//!   latency of each append from the call to its acknowledgement (p50/p99/p999).
//! - `tail`: a writer at a fixed rate and a following reader: the delay from an append's
//!   acknowledgement to the reader receiving it (p50/p99).
//! - `catchup`: write a volume, then read it all back from its start: MB/s both ways.
//!
//! Each prints its figures for people and, with `--json`, a final machine-readable JSON line.
//! Streams are created (with the service's default policy) when missing.

use clap::Subcommand;
use dlog_api::{ErrorCode, StreamName};

use crate::{Client, ClientError};

pub mod append;
pub mod catchup;
pub mod query;
pub mod report;
pub mod tail;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable appends: records/s, MB/s and append latency (call to acknowledgement).
    /// Without --rate the writer's buffer stays full, so latency includes queueing; pass a
    /// --rate (e.g. half the peak) to measure latency under load.
    Append(append::AppendBenchArgs),
    /// Tail latency: a writer at a fixed rate and a following reader; the delay from each
    /// append's acknowledgement to its delivery to the reader.
    Tail(tail::TailBenchArgs),
    /// Catch-up reads: write --bytes, then read them all back from the start.
    Catchup(catchup::CatchupBenchArgs),
    /// SQL over a bucket (`dlog query`), run several times: rows and seconds per run, and
    /// the median. Reads the bucket only; no server needed.
    Query(query::QueryBenchArgs),
}

/// Runs a benchmark.
pub async fn run(client: &Client, cmd: BenchCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Append(args) => append::run(client, args, json).await,
        BenchCommand::Tail(args) => tail::run(client, args, json).await,
        BenchCommand::Catchup(args) => catchup::run(client, args, json).await,
        BenchCommand::Query(args) => query::run(args, json).await,
    }
}

/// Creates `stream` with the service's default policy unless it exists.
pub async fn ensure_stream(client: &Client, stream: &StreamName) -> Result<(), ClientError> {
    let admin = client.admin();
    match admin.describe_stream(stream).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::NoSuchStream) => {
            match admin.create_stream(stream, None).await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(ErrorCode::StreamExists) => Ok(()),
                Err(e) => Err(e.context(format!("create stream {stream}"))),
            }
        }
        Err(e) => Err(e.context(format!("describe stream {stream}"))),
    }
}

/// Checks a run length in seconds.
fn check_seconds(seconds: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0,
        "--seconds must be in (0, 86400]"
    );
    Ok(())
}

/// Checks a record size against the node's limit.
fn check_size(client: &Client, size: u64, min: u64) -> anyhow::Result<usize> {
    let max = u64::from(client.server_info().max_record_bytes);
    anyhow::ensure!(
        (min..=max).contains(&size),
        "--size must be between {min} and the node's record limit of {max} bytes"
    );
    usize::try_from(size).map_err(|_| anyhow::anyhow!("--size {size} is too large"))
}
