//! `dlog read` and `dlog tail`: print a stream's records.
//!
//! Text format (the default) prints each payload as it is, followed by a newline, like
//! Kafka's console consumer; JSON prints one object per line with the offset, timestamp, key,
//! txid and payload (strings when they are UTF-8, else `key_hex` / `payload_hex`). `read`
//! stops once it has caught up with the end of the stream; `tail` keeps following until
//! Ctrl-C. Either stops after `--max` records. A closed stdout (`dlog read … | head`) ends the
//! command quietly.

use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlog_api::StreamName;
use futures::StreamExt;
use serde::Serialize;

use super::units::{format_time, parse_time};
use crate::{Client, ReadRecord, Reader, ReaderOptions, StartAt};

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// The payload and a newline.
    #[default]
    Text,
    /// One JSON object per line: offset, timestamp, key, txid, payload.
    Json,
}

/// Where `--from` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromArg {
    /// The first readable offset.
    Beginning,
    /// The end of the stream: only new records.
    End,
    /// An offset.
    Offset(u64),
}

fn parse_from(s: &str) -> Result<FromArg, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "beginning" | "start" | "earliest" => Ok(FromArg::Beginning),
        "end" | "latest" => Ok(FromArg::End),
        n => n
            .parse()
            .map(FromArg::Offset)
            .map_err(|_| format!("{s:?} is not an offset (a number, `beginning` or `end`)")),
    }
}

/// Where to start reading; at most one may be given.
#[derive(Debug, Clone, Args)]
#[group(id = "start", multiple = false)]
pub struct StartArgs {
    /// Start at this offset, or at `beginning` or `end`.
    #[arg(long, value_name = "OFFSET", value_parser = parse_from)]
    pub from: Option<FromArg>,
    /// Start at the first record stamped at or after this time: RFC 3339
    /// (2024-05-01T12:00:00Z) or milliseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<i64>,
    /// Start at the first record with this transaction id or a later one.
    #[arg(long, value_name = "ID")]
    pub txid: Option<u64>,
}

impl StartArgs {
    /// The start these options name, or `default` if none.
    pub fn start_at(&self, default: StartAt) -> StartAt {
        match (self.from, self.at, self.txid) {
            (Some(FromArg::Beginning), _, _) => StartAt::Beginning,
            (Some(FromArg::End), _, _) => StartAt::End,
            (Some(FromArg::Offset(o)), _, _) => StartAt::Offset(o),
            (None, Some(ms), _) => StartAt::Timestamp(ms),
            (None, None, Some(txid)) => StartAt::Txid(txid),
            (None, None, None) => default,
        }
    }
}

/// `dlog read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// Where to start (default: the beginning).
    #[command(flatten)]
    pub start: StartArgs,
    /// Read as this subscription: start at its committed position (or the beginning) and
    /// commit the position reached when done.
    #[arg(long, value_name = "NAME", group = "start")]
    pub subscription: Option<String>,
    /// How to print records.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
}

/// `dlog tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// Where to start (default: the end, i.e. only new records).
    #[command(flatten)]
    pub start: StartArgs,
    /// How to print records.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
}

/// Runs `dlog read`.
pub async fn run_read(client: &Client, args: ReadArgs) -> anyhow::Result<()> {
    let start = match &args.subscription {
        Some(sub) => client
            .admin()
            .fetch_subscription(&args.stream, sub)
            .await
            .with_context(|| format!("fetch subscription {sub} of {}", args.stream))?
            .map_or(StartAt::Beginning, StartAt::Offset),
        None => args.start.start_at(StartAt::Beginning),
    };
    let options = ReaderOptions {
        start,
        follow: false,
        ..ReaderOptions::default()
    };
    let mut reader = client.reader(&args.stream, options);
    let mut printer = Printer::new(io::BufWriter::new(io::stdout()), args.format);
    let result = print_records(&mut reader, &mut printer, args.max).await;
    // Commit what was printed, even after a failure part-way.
    if let (Some(sub), Some(position)) = (&args.subscription, reader.position()) {
        client
            .admin()
            .commit_subscription(&args.stream, sub, position, false)
            .await
            .with_context(|| format!("commit subscription {sub} at offset {position}"))?;
        eprintln!("subscription {sub} committed at offset {position}");
    }
    result
}

/// Runs `dlog tail`.
pub async fn run_tail(client: &Client, args: TailArgs) -> anyhow::Result<()> {
    let options = ReaderOptions {
        start: args.start.start_at(StartAt::End),
        follow: true,
        ..ReaderOptions::default()
    };
    let mut reader = client.reader(&args.stream, options);
    let mut printer = Printer::new(io::BufWriter::new(io::stdout()), args.format);
    print_records(&mut reader, &mut printer, args.max).await
}

/// Prints records until the reader ends, `max` records, Ctrl-C or a closed output.
pub async fn print_records<W: Write>(
    reader: &mut Reader,
    printer: &mut Printer<W>,
    max: Option<u64>,
) -> anyhow::Result<()> {
    let mut printed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        if max.is_some_and(|m| printed >= m) {
            break Ok(());
        }
        let next = tokio::select! {
            next = reader.next() => next,
            _ = &mut ctrl_c => break Ok(()),
        };
        let record = match next {
            None => break Ok(()),
            Some(Err(e)) => {
                break Err(anyhow::Error::new(e).context(format!("read {}", reader.stream())));
            }
            Some(Ok(record)) => record,
        };
        printed += 1;
        let mut written = printer.print(&record);
        // Show what there is before waiting for more.
        if written.is_ok() && reader.caught_up() {
            written = printer.flush();
        }
        if let Err(e) = written {
            break output_error(e);
        }
    };
    match printer.flush() {
        Ok(()) => result,
        Err(e) => result.and(output_error(e)),
    }
}

/// A closed pipe ends the command quietly; other output errors fail it.
pub(super) fn output_error(e: io::Error) -> anyhow::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::new(e).context("write to stdout"))
    }
}

/// Writes records in a [`Format`].
#[derive(Debug)]
pub struct Printer<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> Printer<W> {
    /// Prints to `out` in `format`.
    pub fn new(out: W, format: Format) -> Self {
        Self { out, format }
    }

    /// Prints one record and its newline.
    pub fn print(&mut self, r: &ReadRecord) -> io::Result<()> {
        match self.format {
            Format::Text => {
                self.out.write_all(&r.record.payload)?;
                self.out.write_all(b"\n")
            }
            Format::Json => {
                serde_json::to_writer(&mut self.out, &json_record(r))?;
                self.out.write_all(b"\n")
            }
        }
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A record as printed by `--format json`.
#[derive(Debug, Serialize)]
pub struct JsonRecord<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Its timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The same, as RFC 3339.
    pub time: String,
    /// The key, if it is UTF-8 (null if none).
    pub key: Option<&'a str>,
    /// The key as hex, if it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    /// The transaction id, if any.
    pub txid: Option<u64>,
    /// The payload, if it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a str>,
    /// The payload as hex, if it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

/// A record in its JSON form.
pub fn json_record(r: &ReadRecord) -> JsonRecord<'_> {
    let (key, key_hex) = match &r.record.key {
        None => (None, None),
        Some(k) => text_or_hex(k),
    };
    let (payload, payload_hex) = text_or_hex(&r.record.payload);
    JsonRecord {
        offset: r.offset,
        timestamp_ms: r.record.timestamp_ms,
        time: format_time(r.record.timestamp_ms),
        key,
        key_hex,
        txid: r.record.txid,
        payload,
        payload_hex,
    }
}

/// The bytes as a string if they are UTF-8, else as hex.
fn text_or_hex(bytes: &[u8]) -> (Option<&str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s), None),
        Err(_) => (
            None,
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use dlog_api::Record;

    use super::*;

    #[test]
    fn from_values() {
        assert_eq!(parse_from("beginning"), Ok(FromArg::Beginning));
        assert_eq!(parse_from("END"), Ok(FromArg::End));
        assert_eq!(parse_from("42"), Ok(FromArg::Offset(42)));
        assert!(parse_from("-1").is_err());
    }

    #[test]
    fn formats() {
        let plain = ReadRecord {
            offset: 7,
            record: Record::new("hello"),
        };
        let binary = ReadRecord {
            offset: 8,
            record: Record {
                payload: Bytes::from_static(&[0xff, 0x00]),
                key: Some(Bytes::from_static(b"k")),
                timestamp_ms: 1_700_000_000_000,
                txid: Some(3),
            },
        };
        let mut text = Printer::new(Vec::new(), Format::Text);
        text.print(&plain).unwrap();
        text.print(&binary).unwrap();
        assert_eq!(text.into_inner(), b"hello\n\xff\x00\n");

        let mut json = Printer::new(Vec::new(), Format::Json);
        json.print(&plain).unwrap();
        json.print(&binary).unwrap();
        let out = String::from_utf8(json.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["offset"], 7);
        assert_eq!(lines[0]["payload"], "hello");
        assert_eq!(lines[0]["key"], serde_json::Value::Null);
        assert!(out.starts_with("{\"offset\":7,"), "{out}");
        assert_eq!(lines[1]["payload_hex"], "ff00");
        assert_eq!(lines[1]["key"], "k");
        assert_eq!(lines[1]["txid"], 3);
        assert_eq!(lines[1]["time"], "2023-11-14T22:13:20.000Z");
    }
}
