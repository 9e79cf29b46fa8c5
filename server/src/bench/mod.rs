//! `ferrocket bench ...`: the load tool (produce, consume), this machine's limits, and the store
//! benchmark. Every command prints one JSON object as its last line.

pub mod consume;
pub mod cpu;
pub mod limits;
pub mod net_client;
pub mod null_broker;
pub mod plot;
pub mod produce;
pub mod recover;
pub mod report;
pub mod rpc;
pub mod sched;
pub mod store;
pub mod wire;

#[cfg(test)]
mod mock;

use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Append to a fresh store and compare with this machine's limits.
    Store(store::StoreBenchArgs),
    /// Reopen a large store (clean and after a crash) against a sequential read of its files.
    Recover(recover::RecoverBenchArgs),
    /// Send messages to a topic (closed loop, or open loop with --rate) and report ack latency.
    Produce(produce::ProduceArgs),
    /// Pull a topic with long polling and report throughput and end-to-end latency.
    Consume(consume::ConsumeArgs),
    /// Measure this machine's limits (loopback TCP, memcpy into mmap, fdatasync, sendfile).
    Limits(limits::LimitsArgs),
    /// A broker that stores nothing and acks at once: the load generator's own ceiling.
    NullBroker(null_broker::NullBrokerArgs),
}

/// Runs one bench command.
pub fn run(cmd: BenchCmd) -> Result<(), String> {
    // Warnings (failed sends, bad pull bodies) go to stderr; stdout stays the JSON summary.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    match cmd {
        BenchCmd::Store(a) => store::run(a),
        BenchCmd::Recover(a) => recover::run(a),
        BenchCmd::Produce(a) => produce::run(a, Arc::new(net_client::NetConnector)),
        BenchCmd::Consume(a) => consume::run(a, Arc::new(net_client::NetConnector)),
        BenchCmd::Limits(a) => limits::run(a),
        BenchCmd::NullBroker(a) => null_broker::run(a),
    }
}

/// A benchmark's store directory must be absent or empty: it creates a fresh store there (and
/// may delete it afterwards).
pub fn require_empty_dir(dir: &std::path::Path) -> Result<(), String> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} is not empty", dir.display()));
    }
    Ok(())
}
