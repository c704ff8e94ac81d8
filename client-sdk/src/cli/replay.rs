//! `dlog replay`: print a stream's offloaded records straight from its bucket — no cluster
//! needed. The same formats as `dlog read`.

use std::io;

use anyhow::Context;
use clap::Args;
use dlog_api::StreamName;

use super::read::{Format, FromArg, Printer, StartArgs};
use crate::{BucketReader, S3Options};

/// `dlog replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// The bucket.
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Where to start (default: the first offloaded record).
    #[command(flatten)]
    pub start: StartArgs,
    /// How to print records.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
}

/// Where a cluster's bucket is: for the commands that read it directly (`replay`, `query`).
#[derive(Debug, Clone, Args)]
pub struct BucketArgs {
    /// The bucket the cluster offloads to: `s3://bucket/prefix` or `file:///path`
    /// (`dlogd standalone`: `file://DATA_DIR/objects`).
    #[arg(long = "bucket", env = "DLOG_BUCKET", value_name = "URL")]
    pub url: String,
    /// S3-compatible endpoint (default: AWS; also AWS_ENDPOINT_URL). Credentials and region
    /// come from the usual AWS environment.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint: Option<String>,
}

impl BucketArgs {
    /// The S3 settings these arguments give.
    pub fn s3(&self) -> S3Options {
        S3Options {
            endpoint: self.endpoint.clone(),
            ..S3Options::default()
        }
    }
}

/// Runs `dlog replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let mut r = BucketReader::open(&args.bucket.url, &args.bucket.s3(), &args.stream)
        .await
        .with_context(|| format!("open {} in {}", args.stream, args.bucket.url))?;
    match (args.start.from, args.start.at, args.start.txid) {
        (Some(FromArg::Beginning), ..) | (None, None, None) => {}
        (Some(FromArg::End), ..) => r.seek(r.end_offset())?,
        (Some(FromArg::Offset(o)), ..) => r.seek(o)?,
        (None, Some(ts), _) => {
            r.seek_timestamp(ts).await?;
        }
        (None, None, Some(txid)) => {
            r.seek_txid(txid).await?;
        }
    }
    let mut printer = Printer::new(io::BufWriter::new(io::stdout()), args.format);
    let mut printed = 0u64;
    let result = 'outer: loop {
        let batch = match r.next_batch(4 << 20).await {
            Ok(b) => b,
            Err(e) => break Err(anyhow::Error::new(e).context(format!("replay {}", args.stream))),
        };
        if batch.is_empty() {
            break Ok(());
        }
        for rec in &batch {
            if args.max.is_some_and(|m| printed >= m) {
                break 'outer Ok(());
            }
            if let Err(e) = printer.print(rec) {
                break 'outer super::read::output_error(e);
            }
            printed += 1;
        }
    };
    match printer.flush() {
        Ok(()) => result,
        Err(e) => result.and(super::read::output_error(e)),
    }
}
