//! Ferrocket's RocketMQ remoting layer: frame codec, JSON and ROCKETMQ binary headers, typed
//! request/response headers, a connection server with per-code processors, a client, and
//! zero-copy responses whose bodies are file regions sent with sendfile/splice/io_uring.
//! It does not depend on the store.

pub mod client;
pub mod command;
pub mod connection;
pub mod error;
pub mod frame;
pub mod header;
mod ratelimit;
pub mod server;
pub mod transfer;
#[cfg(feature = "uring")]
pub mod uring;

/// The buffer types of `Body::Bytes` and `RemotingCommand::decode`.
pub use bytes;
pub use client::{Client, ClientConfig};
pub use command::*;
pub use connection::ConnectionHandle;
pub use error::{Result, WireError};
pub use frame::{SerializeType, FRAME_LEN_MAX};
pub use header::codes;
pub use header::{CommandHeader, ExtFields, RequestCode, ResponseCode};
pub use ratelimit::LogLimiter;
pub use server::{BoxFuture, Processed, Processor, Server, ServerConfig, ShutdownHandle};
pub use transfer::TransferBackend;
