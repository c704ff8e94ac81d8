//! `dlogd bench …`: whole-path benchmarks over the real protocol.
//!
//! Every bench takes the same load flags ([`LoadArgs`]) and prints the same [`Report`]: a human
//! summary, and with `--json` one final JSON line holding at least `mb_per_s`, `records_per_s`,
//! `p50_ms`, `p99_ms` and `p999_ms`. MB are 10^6 bytes of record payload. Latency is measured
//! per request; under `--rate` it counts from when the request was due, not when it was sent, so
//! a stall is charged to every request it delayed (no coordinated omission).

mod bookie;
mod ledger;
mod local;
mod offload;
mod report;

pub use bookie::BookieBenchArgs;
pub use ledger::LedgerBenchArgs;
pub use report::{LoadArgs, Recorder, Report};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Adds to one bookie. Without --addr, starts a bookie in a temporary folder first.
    Bookie(BookieBenchArgs),
    /// Appends to one replicated ledger (E/Qw/Qa) through the replication client. Without
    /// --bookies, starts --local-bookies (default 3) in temporary folders first.
    Ledger(LedgerBenchArgs),
    /// The object tier: offload (bookies -> Parquet -> bucket, verified), catch-up reads from
    /// the objects, and the first record of a cold object; starts its own bookies.
    Offload(offload::OffloadBenchArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Bookie(args) => {
            let json = args.load.json;
            let report = bookie::run(args).await?;
            report.print(json);
            Ok(())
        }
        BenchCommand::Offload(args) => {
            let json = args.json;
            offload::run(args).await?.print(json);
            Ok(())
        }
        BenchCommand::Ledger(args) => {
            let json = args.load.json;
            let report = ledger::run(args).await?;
            report.print(json);
            Ok(())
        }
    }
}
