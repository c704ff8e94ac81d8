//! `dlog append STREAM [FILE…]`: each line of stdin (or of each file, in order) becomes one
//! record, without its line ending (`\n` or `\r\n`); an empty line is an empty record.
//!
//! Appends are pipelined through one [`Writer`] (compressing batches as the stream's policy
//! says); a collector task awaits the acknowledgements
//! in order and tallies them. Reading stops at the first failure (later records would fail
//! too: the writer stops). The summary names the records, bytes and first/last offsets; any
//! failure makes the command fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use dlog_api::{Record, StreamName};
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::{AppendFuture, Client, ClientError, Writer, WriterOptions};

/// `dlog append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// Files to read lines from, in order (default: stdin).
    pub files: Vec<PathBuf>,
    /// A key for every record.
    #[arg(long)]
    pub key: Option<String>,
    /// A transaction id for every record (txids must not decrease along a stream).
    #[arg(long, value_name = "ID")]
    pub txid: Option<u64>,
}

/// What an append run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct AppendSummary {
    /// The stream appended to.
    pub stream: String,
    /// Records acknowledged.
    pub records: u64,
    /// Payload bytes acknowledged.
    pub bytes: u64,
    /// Offset of the first acknowledged record.
    pub first_offset: Option<u64>,
    /// Offset of the last acknowledged record.
    pub last_offset: Option<u64>,
    /// Records that failed.
    pub failed: u64,
    /// The first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `dlog append`.
pub async fn run(client: &Client, args: AppendArgs, json: bool) -> anyhow::Result<()> {
    // Fails early for a missing stream, and batches are compressed as its policy says.
    let info = client
        .admin()
        .describe_stream(&args.stream)
        .await
        .with_context(|| format!("describe stream {}", args.stream))?;
    let options = WriterOptions {
        compression: info.policy.compression,
        ..WriterOptions::default()
    };
    let writer = client.writer(&args.stream, options);
    let template = Record {
        key: args.key.map(Bytes::from),
        txid: args.txid,
        ..Record::default()
    };
    let mut appender = LineAppender::new(writer, template);
    if args.files.is_empty() {
        appender
            .append_lines(BufReader::with_capacity(1 << 20, tokio::io::stdin()))
            .await
            .context("read stdin")?;
    } else {
        for path in &args.files {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("open {}", path.display()))?;
            appender
                .append_lines(BufReader::with_capacity(1 << 20, file))
                .await
                .with_context(|| format!("read {}", path.display()))?;
            if appender.failed() {
                break;
            }
        }
    }
    let summary = appender.finish().await;
    if json {
        outln!("{}", serde_json::to_string(&summary)?);
    } else {
        match (summary.first_offset, summary.last_offset) {
            (Some(first), Some(last)) => outln!(
                "appended {} records ({} bytes) to {}, offsets {first}..={last}",
                summary.records,
                summary.bytes,
                summary.stream
            ),
            _ => outln!("appended no records to {}", summary.stream),
        }
    }
    if let Some(e) = summary.error {
        anyhow::bail!("{} records failed: {e}", summary.failed);
    }
    Ok(())
}

/// Turns lines into records on a writer and tallies their acknowledgements.
#[derive(Debug)]
pub struct LineAppender {
    writer: Writer,
    template: Record,
    acks: Option<mpsc::Sender<(AppendFuture, u64)>>,
    collector: tokio::task::JoinHandle<AppendSummary>,
    failed: Arc<AtomicBool>,
}

impl LineAppender {
    /// Appends to `writer`; every record copies `template`'s key and txid.
    pub fn new(writer: Writer, template: Record) -> Self {
        let (acks, rx) = mpsc::channel(1 << 16);
        let failed = Arc::new(AtomicBool::new(false));
        let summary = AppendSummary {
            stream: writer.stream().to_string(),
            ..AppendSummary::default()
        };
        let collector = tokio::spawn(collect(rx, summary, failed.clone()));
        Self {
            writer,
            template,
            acks: Some(acks),
            collector,
            failed,
        }
    }

    /// Whether an append has failed (later ones would fail too).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Appends each line of `input`; stops early after a failure.
    pub async fn append_lines(
        &mut self,
        mut input: impl AsyncBufRead + Unpin,
    ) -> std::io::Result<()> {
        let Some(acks) = self.acks.clone() else {
            return Ok(());
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).await? == 0 || self.failed() {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            let record = Record {
                payload: Bytes::copy_from_slice(&line),
                ..self.template.clone()
            };
            let ack = self.writer.append(record).await;
            if acks.send((ack, line.len() as u64)).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Waits for every acknowledgement and returns the tally.
    pub async fn finish(mut self) -> AppendSummary {
        drop(self.acks.take());
        match self.collector.await {
            Ok(summary) => summary,
            Err(e) => AppendSummary {
                stream: self.writer.stream().to_string(),
                error: Some(format!("collect acknowledgements: {e}")),
                ..AppendSummary::default()
            },
        }
    }
}

async fn collect(
    mut acks: mpsc::Receiver<(AppendFuture, u64)>,
    mut summary: AppendSummary,
    failed: Arc<AtomicBool>,
) -> AppendSummary {
    while let Some((ack, bytes)) = acks.recv().await {
        match ack.await {
            Ok(offset) => {
                summary.records += 1;
                summary.bytes += bytes;
                summary.first_offset.get_or_insert(offset.0);
                summary.last_offset = Some(
                    summary
                        .last_offset
                        .map_or(offset.0, |last| last.max(offset.0)),
                );
            }
            Err(e) => record_failure(&mut summary, &failed, &e),
        }
    }
    summary
}

fn record_failure(summary: &mut AppendSummary, failed: &AtomicBool, e: &ClientError) {
    summary.failed += 1;
    failed.store(true, Ordering::Relaxed);
    if summary.error.is_none() {
        summary.error = Some(e.to_string());
    }
}
