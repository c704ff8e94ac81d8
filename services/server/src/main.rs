//! `dlogd`: the dlog service binary. Parses flags, starts logging, runs the chosen role.

use clap::{Parser, Subcommand};
use dlog_server::{bench, bookie_role, ledger_cmd, logging, restore_cmd, server_role};

/// dlog service daemon: everything in one process (standalone), log service nodes, storage
/// nodes (bookies), autorecovery, ledger tools and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "dlogd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: embedded metadata, bookies, the log service on
    /// 127.0.0.1:7070 and the control plane on 127.0.0.1:7080. Data stays in --data-dir.
    Standalone(server_role::StandaloneArgs),
    /// Run a log service node (client protocol, stream ownership, control plane) until
    /// SIGTERM.
    Server(server_role::ServerArgs),
    /// Run a bookie (storage node) until SIGTERM.
    Bookie(bookie_role::BookieArgs),
    /// Benchmarks over the real protocol; print figures, and a JSON line with --json.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Ledger tools: append (printing each acknowledgement), recover, describe.
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// Re-replicate the ledgers of lost bookies, in rounds, until SIGTERM.
    Autorecovery(ledger_cmd::AutorecoveryArgs),
    /// Rebuild streams' metadata from a bucket's manifests into a metadata store that lacks
    /// them, so that a lost cluster's offloaded history is readable again.
    Restore(restore_cmd::RestoreArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(match &cli.command {
        Command::Bench(_) | Command::Ledger(_) | Command::Restore(_) => "warn",
        Command::Bookie(_)
        | Command::Autorecovery(_)
        | Command::Server(_)
        | Command::Standalone(_) => "info",
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Standalone(args) => server_role::run_standalone(args).await,
            Command::Server(args) => server_role::run_server(args).await,
            Command::Bookie(args) => bookie_role::run(args).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Ledger(cmd) => ledger_cmd::run(cmd).await,
            Command::Autorecovery(args) => ledger_cmd::autorecovery(args).await,
            Command::Restore(args) => restore_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
