//! `MessageStore`: the facade the broker talks to. CONTRACT between `store` and `server`:
//! the store helper implements these; signatures may grow but should not break without telling
//! the server side.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `flushDiskType` in broker.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH` (RocketMQ default): acknowledge after the append; flush in the background.
    Async,
    /// `SYNC_FLUSH`: acknowledge only after a group-commit fdatasync covers the record.
    Sync,
}

/// The store's configuration, named after RocketMQ's `MessageStoreConfig` keys.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`.
    pub root_dir: PathBuf,
    /// `storePathCommitLog` (default `<root>/commitlog`).
    pub commit_log_dir: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` (default 1 GiB).
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` (default 300_000 × 20).
    pub mapped_file_size_consume_queue: u64,
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog` (ms, default 500).
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages` (default 4).
    pub flush_commit_log_least_pages: u32,
    /// `syncFlushTimeout` (ms, default 5000).
    pub sync_flush_timeout_ms: u64,
    /// `maxMessageSize` (default 4 MiB).
    pub max_message_size: u32,
    /// `fileReservedTime` (hours, default 72).
    pub file_reserved_time_hours: u64,
    /// `deleteWhen` (default "04"; several hours separated by ';').
    pub delete_when: String,
    /// `diskMaxUsedSpaceRatio` (percent, default 75).
    pub disk_max_used_space_ratio: u32,
    /// `maxHashSlotNum` (default 5_000_000).
    pub max_hash_slot_num: u32,
    /// `maxIndexNum` (default 20_000_000).
    pub max_index_num: u32,
    /// `messageIndexEnable` (default true).
    pub message_index_enable: bool,
    /// `checkCRCOnRecover` (default true).
    pub check_crc_on_recover: bool,
}

/// One message to append. The store fills BODYCRC, queue offset, physical offset and store
/// timestamp; everything else is written as given.
#[derive(Debug, Clone)]
pub struct MessageInput {
    pub topic: String,
    pub queue_id: u32,
    pub flag: i32,
    /// Stored verbatim (already compressed by the client when `sys_flag & 1`).
    pub body: Vec<u8>,
    /// Encoded property string `k\x01v\x02...` (TAGS, KEYS, UNIQ_KEY, ...).
    pub properties: String,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

/// Outcome of a put that stored the message(s). Not-stored outcomes are `Err(StoreError)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored (and, under SYNC_FLUSH, durable).
    Ok,
    /// Stored, but the group commit did not cover it within `syncFlushTimeout`
    /// (client gets FLUSH_DISK_TIMEOUT, code 10).
    FlushDiskTimeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Physical (CommitLog) offset of the record.
    pub phy_offset: u64,
    /// Queue offset assigned in (topic, queue_id).
    pub queue_offset: u64,
    /// Record size in bytes.
    pub size: u32,
    pub store_timestamp: i64,
}

#[derive(Debug, Clone)]
pub struct PutResult {
    pub status: PutStatus,
    /// One entry per message, in input order (one for `put`, N for `put_batch`).
    pub appended: Vec<Appended>,
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

/// A borrowed byte range of a CommitLog segment file. The segment stays mapped and its file open
/// while any `Slice` of it lives, so the network layer can sendfile/splice from `file()`.
#[derive(Clone)]
pub struct Slice {
    // filled in by the store implementation (Arc<Segment> + position + length)
    _private: Arc<()>,
}

/// Tag filter evaluated against ConsumeQueue tag hash codes (Java `String.hashCode` of the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    /// Accept units whose tag hash is in the set.
    Codes(Vec<i64>),
}

#[derive(Clone)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// Records in queue order; each is one whole stored record.
    pub messages: Vec<Slice>,
}

/// RocketMQ's `BoundaryType` for SEARCH_OFFSET_BY_TIMESTAMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    Lower,
    Upper,
}

pub struct QueryResult {
    pub index_last_update_timestamp: i64,
    pub index_last_update_phy_offset: u64,
    pub messages: Vec<Slice>,
}

/// Called by the dispatcher after it appended ConsumeQueue units: (topic, queue_id, new max
/// queue offset (exclusive)). Used by the broker's long polling.
pub type ArrivalListener = Arc<dyn Fn(&str, u32, u64) + Send + Sync>;

// CONTRACT (methods the store implements on `MessageStore`; all synchronous, thread-safe,
// `MessageStore: Send + Sync`, shared as `Arc<MessageStore>`):
//
//   MessageStore::open(config: StoreConfig) -> Result<Arc<MessageStore>, StoreError>
//       takes the lock file (second opener gets Err(StoreError::Locked)), recovers, starts the
//       flush, dispatch, pre-allocation and retention threads.
//   fn set_arrival_listener(&self, l: ArrivalListener)
//   fn put(&self, msg: MessageInput) -> Result<PutResult, StoreError>
//       blocks under SYNC_FLUSH until durable (or FlushDiskTimeout after syncFlushTimeout).
//   fn put_batch(&self, msgs: Vec<MessageInput>) -> Result<PutResult, StoreError>
//       same topic/queue for all; consecutive queue offsets; one lock, one sync wait.
//   fn get(&self, topic: &str, queue_id: u32, offset: u64, max_count: u32, max_bytes: u64,
//          filter: &TagFilter) -> GetResult
//   fn max_offset(&self, topic: &str, queue_id: u32) -> u64      // exclusive; 0 if unknown
//   fn min_offset(&self, topic: &str, queue_id: u32) -> u64
//   fn offset_by_time(&self, topic: &str, queue_id: u32, ts_ms: i64, b: Boundary) -> u64
//   fn earliest_store_time(&self, topic: &str, queue_id: u32) -> Option<i64>
//   fn store_time_at(&self, topic: &str, queue_id: u32, offset: u64) -> Option<i64>
//   fn read_at(&self, phy_offset: u64) -> Result<Option<Slice>, StoreError>   // one whole record
//   fn query_by_key(&self, topic: &str, key: &str, max: u32, begin_ms: i64, end_ms: i64)
//          -> QueryResult
//   fn commit_log_min_offset(&self) -> u64; fn commit_log_max_offset(&self) -> u64
//   fn topics_and_queues(&self) -> Vec<(String, u32)>   // what the ConsumeQueues hold
//   fn shutdown(&self)  // flush everything, write checkpoint, remove abort; idempotent
//
//   Slice: fn file(&self) -> &std::fs::File; fn file_offset(&self) -> u64 (offset in that file);
//          fn len(&self) -> usize; fn as_bytes(&self) -> &[u8]; fn phy_offset(&self) -> u64
//
//   StoreError (thiserror): MessageIllegal(String) (body/properties/topic too long),
//   DiskFull, WriteDisabled(String) (after a failed fsync), Locked(PathBuf), Io{..}, Corrupt{..}
//   The server maps MessageIllegal -> 13 MESSAGE_ILLEGAL, DiskFull/WriteDisabled -> 14
//   SERVICE_NOT_AVAILABLE, others -> 1 SYSTEM_ERROR.
//
//   Helpers exported for the broker: `java_string_hash(&str) -> i32` (tag hash),
//   `encode_properties`/`decode_properties`, `decode_record(&[u8]) -> Result<RecordView, _>`
//   (to read topic/body/properties/reconsume_times of one stored record, e.g. for
//   CONSUMER_SEND_MSG_BACK and the schedule service), and `PROPERTY_*` key constants.
