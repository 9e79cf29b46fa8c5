//! The command line (contract D): the `standalone`, `namesrv` and `broker` arguments and how
//! they become a [`BrokerConfig`]. `main.rs` assembles the subcommands (plus `bench`).
//!
//! Precedence for the broker's settings: built-in defaults < broker.conf (`-c`) < flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{BrokerConfig, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "ferrocket",
    version,
    about = "RocketMQ-compatible nameserver and broker"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Nameserver and broker in one process.
    Standalone(StandaloneArgs),
    /// Nameserver only.
    Namesrv(NamesrvArgs),
    /// Broker only, registering with the nameservers of `-n` / `namesrvAddr`.
    Broker(BrokerArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `ferrocket bench ...` (store, produce, consume, limits), defined by the bench module.
pub use crate::bench::BenchCmd as BenchCommand;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    Async,
    Sync,
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Store directory (`storePathRootDir`; default ./ferrocket-data).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Nameserver port (0 = any free port).
    #[arg(long, default_value_t = 9876)]
    pub namesrv_port: u16,
    /// Broker port (`listenPort`; default 10911; 0 = any free port).
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// `flushDiskType`: async (ASYNC_FLUSH) or sync (SYNC_FLUSH).
    #[arg(long, value_enum)]
    pub flush: Option<FlushArg>,
    /// `brokerIP1`: the IPv4 address clients use (default 127.0.0.1).
    #[arg(long)]
    pub broker_ip: Option<String>,
    /// broker.conf (Java properties) applied before the flags above.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NamesrvArgs {
    /// Listen port.
    #[arg(long, default_value_t = 9876)]
    pub port: u16,
    /// Bind address.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// broker.conf (Java properties).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Nameserver addresses, `host:port;host:port` (overrides namesrvAddr).
    #[arg(short = 'n', long = "namesrv-addr")]
    pub namesrv_addr: Option<String>,
}

/// Errors of the command line's top level.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Runtime(String),
}

/// Builds the broker configuration for `standalone` (flags over broker.conf over defaults).
pub fn standalone_config(a: &StandaloneArgs) -> Result<BrokerConfig, ConfigError> {
    let mut c = match &a.config {
        Some(p) => BrokerConfig::load_file(p)?.0,
        None => BrokerConfig::default(),
    };
    if c.broker_ip1.is_empty() {
        c.broker_ip1 = "127.0.0.1".to_string();
    }
    if let Some(s) = &a.store {
        c.store_path_root_dir = s.to_string_lossy().into_owned();
    }
    if let Some(p) = a.broker_port {
        c.listen_port = p;
    }
    if let Some(f) = a.flush {
        c.set(
            "flushDiskType",
            match f {
                FlushArg::Async => "ASYNC_FLUSH",
                FlushArg::Sync => "SYNC_FLUSH",
            },
        )?;
    }
    if let Some(ip) = &a.broker_ip {
        c.set("brokerIP1", ip)?;
    }
    c.validate()?;
    Ok(c)
}

/// Builds the broker configuration for `broker`.
pub fn broker_config(a: &BrokerArgs) -> Result<BrokerConfig, ConfigError> {
    let mut c = match &a.config {
        Some(p) => BrokerConfig::load_file(p)?.0,
        None => BrokerConfig::default(),
    };
    if let Some(n) = &a.namesrv_addr {
        c.set("namesrvAddr", n)?;
    }
    if c.namesrv_addr.trim().is_empty() {
        if let Ok(env) = std::env::var("NAMESRV_ADDR") {
            c.set("namesrvAddr", &env)?;
        }
    }
    if c.broker_ip1.is_empty() {
        c.broker_ip1 = crate::config::local_ipv4().to_string();
    }
    c.validate()?;
    Ok(c)
}

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.cmd {
        Command::Bench { what } => crate::bench::run(what).map_err(CliError::Runtime),
        Command::Standalone(a) => run_standalone(a),
        Command::Namesrv(a) => run_namesrv(a),
        Command::Broker(a) => run_broker(a),
    }
}

/// Runs `standalone` to completion (until SIGINT/SIGTERM).
pub fn run_standalone(a: StandaloneArgs) -> Result<(), CliError> {
    crate::logging::init();
    let conf = standalone_config(&a)?;
    crate::runtime::run_standalone(conf, a.namesrv_port)
        .map_err(|e| CliError::Runtime(e.to_string()))
}

/// Runs `namesrv` to completion.
pub fn run_namesrv(a: NamesrvArgs) -> Result<(), CliError> {
    crate::logging::init();
    let ip: std::net::IpAddr = a
        .bind
        .parse()
        .map_err(|_| CliError::Runtime(format!("--bind {:?} is not an IP address", a.bind)))?;
    crate::runtime::run_namesrv(std::net::SocketAddr::new(ip, a.port))
        .map_err(|e| CliError::Runtime(e.to_string()))
}

/// Runs `broker` to completion.
pub fn run_broker(a: BrokerArgs) -> Result<(), CliError> {
    crate::logging::init();
    let conf = broker_config(&a)?;
    crate::runtime::run_broker(conf).map_err(|e| CliError::Runtime(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    enum Cmd {
        Standalone(StandaloneArgs),
        Broker(BrokerArgs),
    }

    #[test]
    fn standalone_flags_override_conf() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("broker.conf");
        std::fs::write(
            &conf,
            "brokerName=b1\nlistenPort=1234\nflushDiskType=SYNC_FLUSH\n",
        )
        .unwrap();
        let cmd = <Cmd as clap::Parser>::try_parse_from([
            "ferrocket",
            "standalone",
            "-c",
            conf.to_str().unwrap(),
            "--broker-port",
            "0",
            "--flush",
            "async",
            "--store",
            "/tmp/x",
        ])
        .unwrap();
        let Cmd::Standalone(a) = cmd else {
            panic!("wrong subcommand")
        };
        let c = standalone_config(&a).unwrap();
        assert_eq!(c.broker_name, "b1");
        assert_eq!(c.listen_port, 0);
        assert_eq!(c.flush_disk_type, ferrocket_store::FlushDiskType::Async);
        assert_eq!(c.store_path_root_dir, "/tmp/x");
        assert_eq!(c.broker_ip1, "127.0.0.1");
    }

    #[test]
    fn broker_subcommand_parses_namesrv_list() {
        let cmd = <Cmd as clap::Parser>::try_parse_from([
            "ferrocket",
            "broker",
            "-n",
            "127.0.0.1:9876;127.0.0.1:9877",
        ])
        .unwrap();
        let Cmd::Broker(a) = cmd else {
            panic!("wrong subcommand")
        };
        let c = broker_config(&a).unwrap();
        assert_eq!(c.namesrv_addrs().len(), 2);
        assert!(<Cmd as clap::Parser>::try_parse_from([
            "ferrocket",
            "standalone",
            "--flush",
            "maybe"
        ])
        .is_err());
    }
}
