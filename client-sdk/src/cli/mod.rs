//! The `dlog` command-line tool, in the manner of Kafka's console tools.
//!
//! - `dlog stream create|list|describe|delete|truncate` ([`stream`]): manage streams.
//! - `dlog append STREAM [FILE…]` ([`append`]): each line of stdin (or of the files) becomes
//!   one record.
//! - `dlog read STREAM` and `dlog tail STREAM` ([`read`]): print payloads, one per line (or
//!   JSON); `read` stops once caught up, `tail` keeps following.
//! - `dlog replay` ([`replay`]) and `dlog query` ([`query`]): read or run SQL over a stream's
//!   offloaded segments straight from the bucket, without a cluster.
//! - `dlog bench append|tail|catchup|query` ([`bench`]): measure durable appends, tail
//!   latency, catch-up reads and queries, printing a final JSON line with `--json`.
//!
//! The binary (`src/bin/dlog.rs`) only parses the command line and calls [`run`]; tests call
//! it in-process. Errors come back as `anyhow` errors; the binary prints `error: …` and exits
//! with 1 (clap exits with 2 on a usage error).

use clap::{Parser, Subcommand};

/// `println!` for the CLI's output: a closed pipe (`dlog stream list | head -1`) ends the
/// command quietly with status 0 instead of panicking; another write error ends it with 1.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(e)
        }
    }};
}

/// Ends the process after a failed write to stdout (see [`outln`]).
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: write to stdout: {e}");
    std::process::exit(1)
}

use crate::Client;

pub mod append;
pub mod bench;
pub mod query;
pub mod read;
pub mod replay;
pub mod stream;
pub mod units;

/// The default server address: `dlogd standalone`'s log service.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7070";

/// dlog: append to, read from and manage the streams of a dlog cluster.
#[derive(Debug, Parser)]
#[command(name = "dlog", version, about, long_about = None)]
pub struct Cli {
    /// Address (host:port) of a dlog service node; any node of the cluster will do.
    #[arg(
        long,
        global = true,
        env = "DLOG_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "ADDR"
    )]
    pub server: String,
    /// Print results as JSON instead of human-readable text: benchmarks add a final JSON
    /// line; for read and tail it is --format json.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `dlog`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage streams: create, list, describe, delete, truncate.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Append records: each line of stdin, or of each FILE, is one record (without its
    /// newline). Prints a summary; exits non-zero if any record failed.
    Append(append::AppendArgs),
    /// Print a stream's records, one payload per line, until caught up with its end.
    Read(read::ReadArgs),
    /// Print a stream's records and keep following new ones (Ctrl-C to stop).
    Tail(read::TailArgs),
    /// Move a stream's sealed segments to the object tier now, and wait until they are
    /// committed (readers then read them from there). With --seal, first seal the open
    /// segment, so that everything appended so far goes.
    Offload(stream::OffloadArgs),
    /// Check a stream's objects in the bucket against its manifest: orphans (objects no
    /// manifest lists) and missing objects; --repair deletes the orphans.
    Scrub(stream::ScrubArgs),
    /// Print a stream's offloaded records straight from its bucket (no cluster needed), like
    /// `read`: --bucket s3://bucket/prefix or file:///path.
    Replay(replay::ReplayArgs),
    /// Run SQL over a stream's offloaded segments straight from its bucket (no cluster
    /// needed): FROM stream('NAMESPACE/NAME'), columns offset, timestamp_ms, txid, key,
    /// payload. Prints a table, --csv or --json.
    Query(query::QueryArgs),
    /// Benchmarks against a running cluster: durable appends, tail latency, catch-up reads;
    /// and SQL over a bucket (query).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Replay reads the bucket alone: no server to connect to.
    let cli = match cli.command {
        Command::Replay(mut args) => {
            if cli.json {
                args.format = read::Format::Json;
            }
            return replay::run(args).await;
        }
        Command::Query(args) => return query::run(args, cli.json).await,
        Command::Bench(bench::BenchCommand::Query(args)) => {
            return bench::query::run(args, cli.json).await;
        }
        _ => cli,
    };
    let client = Client::connect(&cli.server).await?;
    match cli.command {
        Command::Stream(cmd) => stream::run(&client, cmd, cli.json).await,
        Command::Append(args) => append::run(&client, args, cli.json).await,
        Command::Read(mut args) => {
            if cli.json {
                args.format = read::Format::Json;
            }
            read::run_read(&client, args).await
        }
        Command::Tail(mut args) => {
            if cli.json {
                args.format = read::Format::Json;
            }
            read::run_tail(&client, args).await
        }
        Command::Offload(args) => stream::offload(&client, args, cli.json).await,
        Command::Scrub(args) => stream::scrub(&client, args, cli.json).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Query(args) => query::run(args, cli.json).await,
        Command::Bench(cmd) => bench::run(&client, cmd, cli.json).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let cli = Cli::try_parse_from(["dlog", "--server", "h:1", "stream", "list"]).unwrap();
        assert_eq!(cli.server, "h:1");
        let cli = Cli::try_parse_from(["dlog", "stream", "describe", "ns/s", "--json"]).unwrap();
        assert!(cli.json);
        for ok in [
            &["dlog", "append", "ns/s"][..],
            &[
                "dlog", "append", "ns/s", "a.txt", "b.txt", "--key", "k", "--txid", "5",
            ],
            &[
                "dlog", "read", "ns/s", "--from", "10", "--format", "json", "--max", "3",
            ],
            &["dlog", "read", "ns/s", "--at", "2024-05-01T12:00:00Z"],
            &["dlog", "read", "ns/s", "--txid", "7"],
            &["dlog", "read", "ns/s", "--subscription", "billing"],
            &["dlog", "tail", "ns/s", "--from", "beginning"],
            &[
                "dlog",
                "stream",
                "create",
                "ns/s",
                "--ensemble",
                "3",
                "--write-quorum",
                "3",
                "--ack-quorum",
                "2",
                "--segment-bytes",
                "64MiB",
                "--segment-age",
                "1h",
                "--retention-age",
                "7days",
                "--retention-bytes",
                "1TiB",
                "--max-record-bytes",
                "1MiB",
                "--compression",
                "zstd",
            ],
            &["dlog", "stream", "truncate", "ns/s", "--offset", "100"],
            &[
                "dlog",
                "bench",
                "append",
                "--stream",
                "b/s",
                "--size",
                "100",
                "--seconds",
                "1",
            ],
            &[
                "dlog", "bench", "tail", "--stream", "b/s", "--rate", "100", "--json",
            ],
            &[
                "dlog", "bench", "catchup", "--stream", "b/s", "--bytes", "1GiB",
            ],
        ] {
            if let Err(e) = Cli::try_parse_from(ok) {
                panic!("{ok:?}: {e}");
            }
        }
    }

    #[test]
    fn refuses_bad_input_as_usage_errors() {
        for bad in [
            &["dlog", "append", "no-slash"][..],
            &["dlog", "read", "ns/s", "--from", "1", "--txid", "2"],
            &["dlog", "read", "ns/s", "--at", "yesterday"],
            &["dlog", "read", "ns/s", "--from", "minus one"],
            &[
                "dlog",
                "stream",
                "create",
                "ns/s",
                "--segment-bytes",
                "lots",
            ],
            &["dlog", "stream", "create", "ns/s", "--compression", "gzip"],
            &["dlog", "stream", "truncate", "ns/s"],
            &[
                "dlog", "bench", "catchup", "--stream", "b/s", "--bytes", "-1",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
