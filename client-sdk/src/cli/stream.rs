//! `dlog stream …`: create, list, describe, delete and truncate streams.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use dlog_api::stream::{SegmentState, StreamInfo, StreamPolicy};
use dlog_api::{Compression, StreamName};

use super::units::{format_bytes, format_ms, format_time, parse_bytes, parse_duration};
use crate::Client;

/// The `stream` subcommands.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream. Without any policy option the service's default policy applies; with
    /// some, the others take the built-in defaults (3/3/2 replication, 256 MiB or 1 h
    /// segments, no retention, 1 MiB records, no compression).
    Create(CreateArgs),
    /// List stream names, of one namespace or all.
    List {
        /// Only streams of this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Show a stream's policy, offsets, owner and segments.
    Describe {
        /// The stream, NAMESPACE/NAME.
        stream: StreamName,
    },
    /// Delete a stream with its segments and subscriptions.
    Delete {
        /// The stream, NAMESPACE/NAME.
        stream: StreamName,
    },
    /// Move a stream's start forward to an offset, deleting the whole segments below it.
    Truncate {
        /// The stream, NAMESPACE/NAME.
        stream: StreamName,
        /// The new first readable offset.
        #[arg(long)]
        offset: u64,
    },
}

/// Compression of stored batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// Zstandard.
    Zstd,
    /// LZ4.
    Lz4,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Lz4 => Compression::Lz4,
        }
    }
}

/// `dlog stream create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The stream, NAMESPACE/NAME (each part of letters, digits, '.', '_', '-').
    pub stream: StreamName,
    /// Bookies per segment (E).
    #[arg(long, value_name = "N")]
    pub ensemble: Option<u8>,
    /// Copies of each entry (Qw, at most E).
    #[arg(long, value_name = "N")]
    pub write_quorum: Option<u8>,
    /// Copies that must be durable before an append is acknowledged (Qa, at most Qw).
    #[arg(long, value_name = "N")]
    pub ack_quorum: Option<u8>,
    /// Roll to a new segment once one holds this many bytes (e.g. 256MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub segment_bytes: Option<u64>,
    /// … or once it is this old (e.g. 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub segment_age: Option<Duration>,
    /// Delete whole segments older than this (e.g. 7days; default: keep forever).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retention_age: Option<Duration>,
    /// Delete the oldest segments while the stream holds more than this (e.g. 100GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub retention_bytes: Option<u64>,
    /// Largest record payload (e.g. 1MiB; at most 4MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_record_bytes: Option<u64>,
    /// Compression of stored batches.
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// Offload sealed segments to the object tier once sealed this long (e.g. 1h; default:
    /// only on demand, `dlog offload`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub offload_after: Option<Duration>,
}

impl CreateArgs {
    /// The policy the options describe; `None` when no option was given.
    pub fn policy(&self) -> anyhow::Result<Option<StreamPolicy>> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let given = self.ensemble.is_some()
            || self.write_quorum.is_some()
            || self.ack_quorum.is_some()
            || self.segment_bytes.is_some()
            || self.segment_age.is_some()
            || self.retention_age.is_some()
            || self.retention_bytes.is_some()
            || self.max_record_bytes.is_some()
            || self.compression.is_some()
            || self.offload_after.is_some();
        if !given {
            return Ok(None);
        }
        let mut p = StreamPolicy::default();
        if let Some(v) = self.ensemble {
            p.ensemble = v;
        }
        if let Some(v) = self.write_quorum {
            p.write_quorum = v;
        }
        if let Some(v) = self.ack_quorum {
            p.ack_quorum = v;
        }
        if let Some(v) = self.segment_bytes {
            p.segment_bytes = v;
        }
        if let Some(v) = self.segment_age {
            p.segment_age_ms = ms(v);
        }
        if let Some(v) = self.retention_age {
            p.retention_age_ms = Some(ms(v));
        }
        if let Some(v) = self.retention_bytes {
            p.retention_bytes = Some(v);
        }
        if let Some(v) = self.offload_after {
            p.offload_after_ms = Some(ms(v));
        }
        if let Some(v) = self.max_record_bytes {
            p.max_record_bytes = u32::try_from(v)
                .map_err(|_| anyhow::anyhow!("--max-record-bytes {v} is too large"))?;
        }
        if let Some(c) = self.compression {
            p.compression = c.into();
        }
        // Refuse here with the same words the service would use.
        p.validate()?;
        Ok(Some(p))
    }
}

/// Runs a `stream` subcommand.
pub async fn run(client: &Client, cmd: StreamCommand, json: bool) -> anyhow::Result<()> {
    let admin = client.admin();
    match cmd {
        StreamCommand::Create(args) => {
            let policy = args.policy()?;
            let info = admin
                .create_stream(&args.stream, policy)
                .await
                .with_context(|| format!("create stream {}", args.stream))?;
            if json {
                print_json(&info)?;
            } else {
                outln!("created stream {}", info.stream);
                print_info(&info);
            }
        }
        StreamCommand::List { namespace } => {
            let streams = admin
                .list_streams(namespace.as_deref())
                .await
                .context("list streams")?;
            if json {
                print_json(&streams)?;
            } else {
                for s in streams {
                    outln!("{s}");
                }
            }
        }
        StreamCommand::Describe { stream } => {
            let info = admin
                .describe_stream(&stream)
                .await
                .with_context(|| format!("describe stream {stream}"))?;
            if json {
                print_json(&info)?;
            } else {
                print_info(&info);
            }
        }
        StreamCommand::Delete { stream } => {
            admin
                .delete_stream(&stream)
                .await
                .with_context(|| format!("delete stream {stream}"))?;
            if json {
                print_json(&serde_json::json!({ "deleted": stream }))?;
            } else {
                outln!("deleted stream {stream}");
            }
        }
        StreamCommand::Truncate { stream, offset } => {
            let start = admin
                .truncate(&stream, offset)
                .await
                .with_context(|| format!("truncate stream {stream}"))?;
            if json {
                print_json(&serde_json::json!({ "stream": stream, "start_offset": start }))?;
            } else {
                outln!("truncated stream {stream}: it now starts at offset {start}");
            }
        }
    }
    Ok(())
}

/// `dlog offload`.
#[derive(Debug, clap::Args)]
pub struct OffloadArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// Seal the open segment first, so that everything appended so far is offloaded.
    #[arg(long)]
    pub seal: bool,
}

/// Runs `dlog offload`.
pub async fn offload(client: &Client, args: OffloadArgs, json: bool) -> anyhow::Result<()> {
    let (segments, reclaimed) = client
        .admin()
        .offload(&args.stream, args.seal)
        .await
        .with_context(|| format!("offload stream {}", args.stream))?;
    if json {
        return print_json(&serde_json::json!({
            "stream": args.stream,
            "segments": segments,
            "reclaimed": reclaimed,
        }));
    }
    if segments.is_empty() {
        outln!("{}: nothing new to offload", args.stream);
    }
    for s in &segments {
        outln!(
            "segment(s) {:?} [{}, {}) -> {} ({} bytes)",
            s.segments,
            s.first_offset,
            s.end_offset,
            s.key,
            s.bytes
        );
    }
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let count: usize = segments.iter().map(|s| s.segments.len().max(1)).sum();
    outln!(
        "offloaded {count} segment(s) into {} object(s), {bytes} bytes; bookie copies deleted \
         for {} segment(s)",
        segments.len(),
        reclaimed.len()
    );
    Ok(())
}

/// `dlog scrub`.
#[derive(Debug, clap::Args)]
pub struct ScrubArgs {
    /// The stream, NAMESPACE/NAME.
    pub stream: StreamName,
    /// Delete the orphans found (those older than --min-age that no pending offload may
    /// still use).
    #[arg(long)]
    pub repair: bool,
    /// With --repair, leave orphans younger than this (default: the node's, 15 minutes).
    #[arg(long, value_parser = crate::cli::units::parse_duration, value_name = "DURATION")]
    pub min_age: Option<std::time::Duration>,
}

/// Runs `dlog scrub`: prints what it found; exits non-zero when objects are missing.
pub async fn scrub(client: &Client, args: ScrubArgs, json: bool) -> anyhow::Result<()> {
    let r = client
        .admin()
        .scrub(&args.stream, args.repair, args.min_age)
        .await
        .with_context(|| format!("scrub stream {}", args.stream))?;
    if json {
        print_json(&serde_json::json!({
            "stream": args.stream,
            "orphans": r.orphans,
            "deleted": r.deleted,
            "missing": r.missing,
        }))?;
    } else {
        for k in &r.orphans {
            let done = if r.deleted.contains(k) {
                " (deleted)"
            } else {
                ""
            };
            outln!("orphan   {k}{done}");
        }
        for k in &r.missing {
            outln!("missing  {k}");
        }
        outln!(
            "{}: {} orphan(s), {} deleted, {} missing",
            args.stream,
            r.orphans.len(),
            r.deleted.len(),
            r.missing.len()
        );
    }
    anyhow::ensure!(
        r.missing.is_empty(),
        "{} object(s) of {} that its manifest lists are missing from the bucket: those records \
         are lost unless their bookie copies still exist",
        r.missing.len(),
        args.stream
    );
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints a stream description for people.
fn print_info(info: &StreamInfo) {
    let p = &info.policy;
    outln!("stream       {}", info.stream);
    outln!(
        "offsets      start {}, end {} ({} records)",
        info.start_offset,
        info.end_offset,
        info.end_offset.saturating_sub(info.start_offset)
    );
    outln!("owner        {}", info.owner.as_deref().unwrap_or("none"));
    outln!("epoch        {}", info.epoch);
    outln!("created      {}", format_time(info.created_ms));
    outln!(
        "replication  ensemble {}, write quorum {}, ack quorum {}",
        p.ensemble,
        p.write_quorum,
        p.ack_quorum
    );
    outln!(
        "segments     roll at {} or {}",
        format_bytes(p.segment_bytes),
        format_ms(p.segment_age_ms)
    );
    if let Some(ms) = p.offload_after_ms {
        outln!("offload      {} after the seal", format_ms(ms));
    }
    let mut retention = Vec::new();
    if let Some(ms) = p.retention_age_ms {
        retention.push(format!("older than {}", format_ms(ms)));
    }
    if let Some(b) = p.retention_bytes {
        retention.push(format!("beyond {}", format_bytes(b)));
    }
    if p.retain_for_subscriptions {
        retention.push("never unread by a subscription".to_string());
    }
    outln!(
        "retention    {}",
        if retention.is_empty() {
            "keep forever".to_string()
        } else {
            retention.join(", ")
        }
    );
    outln!(
        "records      up to {}, compression {}",
        format_bytes(u64::from(p.max_record_bytes)),
        match p.compression {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    );
    if info.segments.is_empty() {
        return;
    }
    outln!();
    outln!(
        "{:>5}  {:<7} {:<9} {:>10} {:>6}  {:>21}  {:>10}  created",
        "seq",
        "state",
        "tier",
        "ledger",
        "epoch",
        "offsets",
        "bytes"
    );
    for s in &info.segments {
        let state = match s.state {
            SegmentState::Open => "open",
            SegmentState::Sealed => "sealed",
        };
        outln!(
            "{:>5}  {:<7} {:<9} {:>10} {:>6}  {:>21}  {:>10}  {}",
            s.seq,
            state,
            s.tier,
            s.ledger,
            s.epoch,
            format!("{}..{}", s.first_offset, s.end_offset),
            format_bytes(s.bytes),
            format_time(s.created_ms)
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn create(args: &[&str]) -> CreateArgs {
        let mut argv = vec!["dlog", "stream", "create", "ns/s"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Stream(StreamCommand::Create(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn policy_options() {
        assert_eq!(create(&[]).policy().unwrap(), None);
        let p = create(&[
            "--ack-quorum",
            "1",
            "--segment-age",
            "10m",
            "--retention-bytes",
            "1GiB",
            "--compression",
            "lz4",
        ])
        .policy()
        .unwrap()
        .unwrap();
        assert_eq!(p.ack_quorum, 1);
        assert_eq!(p.write_quorum, 3);
        assert_eq!(p.segment_age_ms, 600_000);
        assert_eq!(p.retention_bytes, Some(1 << 30));
        assert_eq!(p.compression, Compression::Lz4);
        let err = create(&["--ack-quorum", "4"]).policy().unwrap_err();
        assert!(err.to_string().contains("ack_quorum"), "{err}");
        assert!(create(&["--max-record-bytes", "8GiB"]).policy().is_err());
    }
}
