//! `ferrocket`: one binary with subcommands (standalone, namesrv, broker, bench).

mod bench;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ferrocket",
    about = "RocketMQ-compatible broker and nameserver"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Benchmarks: produce, consume, limits, store.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Bench { cmd } => bench::run(cmd),
    };
    if let Err(e) = result {
        eprintln!("ferrocket: {e}");
        std::process::exit(1);
    }
}
