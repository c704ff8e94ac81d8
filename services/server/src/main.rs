//! `dlogd`: the dlog service binary. Parses flags, starts logging, runs the chosen role.

use clap::{Parser, Subcommand};
use dlog_server::{bench, bookie_role, logging};

/// dlog service daemon: storage nodes (bookies) and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "dlogd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a bookie (storage node) until SIGTERM.
    Bookie(bookie_role::BookieArgs),
    /// Benchmarks over the real protocol; print figures, and a JSON line with --json.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(match &cli.command {
        Command::Bench(_) => "warn",
        Command::Bookie(_) => "info",
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
            Command::Bookie(args) => bookie_role::run(args).await,
            Command::Bench(cmd) => bench::run(cmd).await,
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
