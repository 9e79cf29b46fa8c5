//! `ferrocket`: one binary with subcommands (standalone, namesrv, broker, bench).

mod bench;

use clap::{Parser, Subcommand};
use ferrocket_server::cli::{self, BrokerArgs, CliError, NamesrvArgs, StandaloneArgs};

#[derive(Debug, Parser)]
#[command(
    name = "ferrocket",
    version,
    about = "RocketMQ-compatible nameserver and broker"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Nameserver and broker in one process.
    Standalone(StandaloneArgs),
    /// Nameserver only.
    Namesrv(NamesrvArgs),
    /// Broker only, registering with the nameservers of `-n` / `namesrvAddr`.
    Broker(BrokerArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
}

/// Until the bench helper's `bench::BenchCmd` lands, only `bench store` is wired.
#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Append to a fresh store and compare with this machine's limits.
    Store(bench::store::StoreBenchArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().cmd {
        Command::Standalone(a) => cli::run_standalone(a),
        Command::Namesrv(a) => cli::run_namesrv(a),
        Command::Broker(a) => cli::run_broker(a),
        Command::Bench {
            cmd: BenchCmd::Store(a),
        } => bench::store::run(a).map_err(CliError::Runtime),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocket: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
