//! The command line (contract D): `standalone`, `namesrv`, `broker`, `bench store`.
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
        Command::Standalone(a) => {
            crate::logging::init();
            let conf = standalone_config(&a)?;
            Err(CliError::Runtime(format!(
                "standalone not wired yet (config ok: {} at {})",
                conf.broker_name,
                conf.broker_addr()
            )))
        }
        Command::Namesrv(a) => {
            crate::logging::init();
            Err(CliError::Runtime(format!(
                "namesrv not wired yet (port {})",
                a.port
            )))
        }
        Command::Broker(a) => {
            crate::logging::init();
            let conf = broker_config(&a)?;
            Err(CliError::Runtime(format!(
                "broker not wired yet ({})",
                conf.broker_addr()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_flags_override_conf() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("broker.conf");
        std::fs::write(
            &conf,
            "brokerName=b1\nlistenPort=1234\nflushDiskType=SYNC_FLUSH\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
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
        let Command::Standalone(a) = cli.cmd else {
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
        let cli =
            Cli::try_parse_from(["ferrocket", "broker", "-n", "127.0.0.1:9876;127.0.0.1:9877"])
                .unwrap();
        let Command::Broker(a) = cli.cmd else {
            panic!("wrong subcommand")
        };
        let c = broker_config(&a).unwrap();
        assert_eq!(c.namesrv_addrs().len(), 2);
        assert!(Cli::try_parse_from(["ferrocket", "standalone", "--flush", "maybe"]).is_err());
    }
}
