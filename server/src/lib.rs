//! Ferrocket's nameserver and broker: the `ferrocket` binary's library half. `main.rs` only
//! parses the command line; everything here can be started in-process by tests.
//!
//! * [`config`]: broker.conf keys and defaults.
//! * [`namesrv`]: route tables and the nameserver's request handling.
//! * [`broker`]: the broker's shared state and request handlers.
//! * [`reply`], [`json`]: response building, extFields access, lenient JSON.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod config;
pub mod json;
pub mod logging;
pub mod namesrv;
pub mod reply;
pub mod runtime;
pub mod sched;
