//! Ferrocket's RocketMQ remoting layer: frame codec, JSON and ROCKETMQ binary headers, typed
//! request/response headers, a connection server with per-code processors, a client, and
//! zero-copy responses whose bodies are file regions sent with sendfile/splice/io_uring.
//! It does not depend on the store.

pub mod command;

pub use command::*;
