//! Ferrocket's storage engine: a CommitLog of preallocated mmap'd segments holding records in
//! RocketMQ's stored-message layout, ConsumeQueues (20-byte units per topic/queue) and IndexFiles
//! (hash index over keys) derived from it by a dispatcher, group-commit flushing, a checkpoint and
//! crash recovery. The crate is synchronous and knows nothing about the network.
//!
//! The public surface the broker uses is [`MessageStore`] (see `message_store.rs`).

pub mod consume_queue;
pub mod error;
pub mod hash;
pub mod index_file;
pub mod message_store;
pub mod mmap;

pub use error::{Result, StoreError};
pub use message_store::*;
