//! Ferrocket's storage engine: a CommitLog of preallocated mmap'd segments holding records in
//! RocketMQ's stored-message layout, ConsumeQueues (20-byte units per topic/queue) and IndexFiles
//! (hash index over keys) derived from it by a dispatcher, group-commit flushing, a checkpoint and
//! crash recovery. The crate is synchronous and knows nothing about the network.
//!
//! The public surface the broker uses is [`MessageStore`] (see `message_store.rs`).

pub mod checkpoint;
pub mod commit_log;
pub mod consume_queue;
pub mod crash;
pub mod dispatch;
pub mod error;
pub mod flush;
pub mod hash;
pub mod index_file;
pub mod message_store;
pub mod mmap;
pub mod record;
pub mod recovery;
pub mod retention;
pub mod sync;
pub mod tombstone;

pub use error::{Result, StoreError};
pub use flush::{DurableCallback, DurableRound, RoundDelivery};
pub use hash::java_string_hash;
pub use message_store::*;
pub use record::{
    body_crc, decode_properties, decode_record, decode_records, encode_properties, property_value,
    RecordError, RecordView, PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS, PROPERTY_CLUSTER,
    PROPERTY_DELAY_TIME_LEVEL, PROPERTY_KEYS, PROPERTY_MAX_OFFSET, PROPERTY_MAX_RECONSUME_TIMES,
    PROPERTY_MIN_OFFSET, PROPERTY_ORIGIN_MESSAGE_ID, PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID, PROPERTY_REAL_TOPIC, PROPERTY_RECONSUME_TIME, PROPERTY_RETRY_TOPIC,
    PROPERTY_TAGS, PROPERTY_TRANSACTION_CHECK_TIMES, PROPERTY_TRANSACTION_ID,
    PROPERTY_TRANSACTION_PREPARED, PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET,
    PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, PROPERTY_WAIT_STORE_MSG_OK,
};
pub use recovery::RecoveryReport;
