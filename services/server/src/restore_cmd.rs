//! `dlogd restore`: rebuild streams' metadata from a bucket (see `dlog_offloader::restore`).

use std::sync::Arc;

use anyhow::Context;
use dlog_ledger::{LedgerClient, LedgerOptions};
use dlog_log::{Log, SystemClock};
use dlog_metadata::{Location, MetadataStore};
use dlog_objects::{Bucket, S3Options};
use dlog_offloader::Restored;

/// Flags of `dlogd restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The bucket the lost cluster offloaded to: `s3://bucket/prefix` or `file:///path`
    /// (S3 settings from the AWS environment).
    #[arg(long, value_name = "URL")]
    pub bucket: String,
    /// The metadata store to restore into: `etcd://host:2379[,…][/root]`, or a standalone's
    /// `DATA_DIR/metadata` folder. Streams it has already are left alone.
    #[arg(long, env = "DLOG_METADATA")]
    pub metadata: String,
    /// S3-compatible endpoint (default: AWS; also AWS_ENDPOINT_URL).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint: Option<String>,
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let location: Location = args.metadata.parse().context("--metadata")?;
    let store: Arc<dyn MetadataStore> = dlog_metadata::open(&location)
        .await
        .with_context(|| format!("open metadata store {}", args.metadata))?;
    let s3 = S3Options {
        endpoint: args.endpoint.clone(),
        ..S3Options::default()
    };
    let bucket = Bucket::open_existing(&args.bucket, &s3).context("--bucket")?;
    let log = Log::new(
        store.clone(),
        LedgerClient::new(store, LedgerOptions::default()),
        Arc::new(SystemClock),
    );
    let restored = dlog_offloader::restore(&log, &bucket)
        .await
        .with_context(|| format!("restore from {}", args.bucket))?;
    let mut created = 0;
    for (stream, r) in &restored {
        match r {
            Restored::Created {
                segments,
                start,
                end,
            } => {
                created += 1;
                println!("{stream}: restored {segments} segment(s), offsets {start}..{end}");
            }
            Restored::Exists => println!("{stream}: exists already, left alone"),
        }
    }
    println!(
        "restored {created} of {} stream(s) found in {}",
        restored.len(),
        args.bucket
    );
    Ok(())
}
