//! `dlog bench query`: run one SQL query over a bucket several times and report its times —
//! the figure behind "count 1,000,000 records by key in under 2 s". Each run is a fresh
//! engine (no cache carries over): the time of `dlog query` minus process start.

use std::time::Instant;

use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use super::report::print_json_line;
use crate::cli::query::engine;
use crate::cli::replay::BucketArgs;
use crate::cli::units::parse_bytes;

/// `dlog bench query`.
#[derive(Debug, Args)]
pub struct QueryBenchArgs {
    /// The query, as for `dlog query`.
    pub sql: String,
    /// The bucket.
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// How many times to run it.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// The most memory the query may use.
    #[arg(long, default_value = "2GiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub memory: u64,
}

/// The figures of a benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// `"query"`.
    pub bench: &'static str,
    /// The query.
    pub sql: String,
    /// How many times it ran.
    pub runs: u32,
    /// Rows the query returned (the same in every run).
    pub rows: u64,
    /// Seconds of each run, planning included.
    pub seconds: Vec<f64>,
    /// The median of `seconds`.
    pub median_s: f64,
    /// The fastest run.
    pub min_s: f64,
    /// The slowest run.
    pub max_s: f64,
}

/// Runs `dlog bench query`.
pub async fn run(args: QueryBenchArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1000).contains(&args.runs),
        "--runs must be between 1 and 1000"
    );
    let mut seconds = Vec::with_capacity(args.runs as usize);
    let mut rows = None;
    for run in 1..=args.runs {
        let started = Instant::now();
        let engine = engine(&args.bucket, args.memory)?;
        let mut stream = engine.run(&args.sql).await?;
        let mut n = 0u64;
        while let Some(batch) = stream.next().await {
            n += batch.map_err(dlog_query::QueryError::from)?.num_rows() as u64;
        }
        let s = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            rows.is_none_or(|r| r == n),
            "run {run} returned {n} rows, an earlier run {}",
            rows.unwrap_or(0)
        );
        rows = Some(n);
        outln!("run {run}: {n} rows in {s:.3} s");
        seconds.push(s);
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let report = QueryReport {
        bench: "query",
        sql: args.sql,
        runs: args.runs,
        rows: rows.unwrap_or(0),
        median_s: sorted[sorted.len() / 2],
        min_s: sorted[0],
        max_s: sorted[sorted.len() - 1],
        seconds,
    };
    outln!(
        "query: {} rows, median {:.3} s (min {:.3}, max {:.3}) over {} runs",
        report.rows,
        report.median_s,
        report.min_s,
        report.max_s,
        report.runs
    );
    if json {
        print_json_line(&report)?;
    }
    Ok(())
}
