//! `dlog query`: SQL over a stream's offloaded segments, straight from the bucket (no cluster
//! needed), with DataFusion (`dlog_query`).
//!
//! `stream('NAMESPACE/NAME')` is the stream's offloaded records as a table with the columns
//! `offset`, `timestamp_ms`, `txid`, `key` and `payload`. Filters on `offset` and
//! `timestamp_ms` prune row groups and pages.

use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlog_objects::Bucket;
use dlog_query::{OutputFormat, QueryEngine, QueryError, QueryOptions};

use super::replay::BucketArgs;
use super::units::parse_bytes;

/// `dlog query`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  dlog query --bucket file:///var/lib/dlog/objects \\
    \"SELECT key, count(*) FROM stream('app/events') GROUP BY key ORDER BY 2 DESC LIMIT 10\"
  dlog query --bucket s3://my-bucket/dlog --csv \\
    \"SELECT offset, CAST(payload AS VARCHAR) FROM stream('app/events') WHERE offset BETWEEN 1000 AND 1999\"
  dlog query --bucket s3://my-bucket/dlog \\
    \"SELECT to_timestamp_millis(min(timestamp_ms)), count(*) FROM stream('app/events')\"")]
pub struct QueryArgs {
    /// The query. `stream('NAMESPACE/NAME')` is a stream's offloaded records, with columns
    /// offset, timestamp_ms, txid, key and payload.
    pub sql: String,
    /// The bucket.
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// How to print the rows (key and payload print as text when UTF-8, hex otherwise).
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// Print CSV (--format csv).
    #[arg(long, conflicts_with = "format")]
    pub csv: bool,
    /// The table prints at most this many rows (use LIMIT, --csv or --json for more).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_rows: usize,
    /// The most memory the query may use; beyond it the query fails with an error.
    #[arg(long, default_value = "2GiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub memory: u64,
}

/// How `dlog query` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned table.
    Table,
    /// One JSON object per row (also --json).
    Json,
    /// CSV with a header (also --csv).
    Csv,
}

/// Opens the engine for `dlog query` and `dlog bench query`.
pub(crate) fn engine(bucket: &BucketArgs, memory: u64) -> anyhow::Result<QueryEngine> {
    let b = Bucket::open_existing(&bucket.url, &bucket.s3())
        .with_context(|| format!("open {}", bucket.url))?;
    let options = QueryOptions {
        memory_limit: usize::try_from(memory).unwrap_or(usize::MAX),
        ..QueryOptions::default()
    };
    Ok(QueryEngine::new(b, &options)?)
}

/// Runs `dlog query`; `json` is the global --json.
pub async fn run(args: QueryArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.max_rows > 0, "--max-rows must be positive");
    let format = match (json, args.csv, args.format) {
        (true, true, _) => anyhow::bail!("--json and --csv exclude each other"),
        (true, ..) => OutputFormat::Json,
        (_, true, _) => OutputFormat::Csv,
        (_, _, QueryFormat::Table) => OutputFormat::Table,
        (_, _, QueryFormat::Json) => OutputFormat::Json,
        (_, _, QueryFormat::Csv) => OutputFormat::Csv,
    };
    let engine = engine(&args.bucket, args.memory)?;
    let rows = engine.run(&args.sql).await?;
    let mut out = io::BufWriter::new(io::stdout());
    let printed = dlog_query::print_batches(rows, format, &mut out, args.max_rows).await;
    let printed = match printed.and_then(|p| out.flush().map(|_| p).map_err(QueryError::Output)) {
        Ok(p) => p,
        Err(QueryError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if format == OutputFormat::Table {
        if printed.truncated {
            eprintln!(
                "(showing the first {} rows; use LIMIT, --max-rows, --csv or --json for more)",
                printed.rows
            );
        } else {
            eprintln!(
                "({} row{})",
                printed.rows,
                if printed.rows == 1 { "" } else { "s" }
            );
        }
    }
    Ok(())
}
