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
    /// Stored verbatim (already compressed by the client when `sys_flag & 1`). A `Bytes`, so the
    /// broker can hand over a slice of the request frame it read: the store's copy into the log
    /// is then the only copy of the body (build one from a `Vec<u8>` with `.into()`).
    pub body: bytes::Bytes,
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

/// What a put appended: one entry per message. Derefs to `[Appended]`; a single put keeps its
/// entry inline, so `put` does not allocate for its result.
pub type AppendedList = smallvec::SmallVec<[Appended; 1]>;

#[derive(Debug, Clone)]
pub struct PutResult {
    pub status: PutStatus,
    /// One entry per message, in input order (one for `put`, N for `put_batch`).
    pub appended: AppendedList,
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

// ---------------------------------------------------------------------------------------------
// Implementation.
// ---------------------------------------------------------------------------------------------

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::checkpoint::{Checkpoint, CheckpointData};
use crate::commit_log::{CommitLog, Segment, WriteLatch};
use crate::consume_queue::{ConsumeQueues, CQ_UNIT_SIZE_BYTES};
use crate::dispatch::{Dispatcher, DEFAULT_DELAY_LEVELS_MS};
use crate::error::{Result, StoreError};
use crate::flush::{
    async_flush_tick, Durable, DurableCallback, GroupCommit, RoundDelivery, Ticker,
};
use crate::index_file::IndexService;
use crate::mmap::{disk_space, try_lock_exclusive};
use crate::record;
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self, DiskProbe, RetentionPolicy, RetentionRound};
use crate::tombstone::Tombstones;

/// Smallest CommitLog segment accepted (one page).
pub const COMMIT_LOG_FILE_SIZE_MIN: u64 = 4096;
/// Largest CommitLog segment: the blank marker's TOTALSIZE is an i32.
pub const COMMIT_LOG_FILE_SIZE_MAX: u64 = i32::MAX as u64;
/// Longest topic accepted (RocketMQ allows 255 for %RETRY%/%DLQ% topics).
pub const TOPIC_LEN_MAX: usize = 255;
/// A record may exceed `maxMessageSize` by this much (topic, properties, header).
pub const RECORD_OVERHEAD_MAX: usize = 64 * 1024;
/// ConsumeQueue units scanned per `get` at least (`maxFilterMessageSize` 16000 / 20).
pub const GET_SCAN_UNITS_MIN: usize = 800;

impl StoreConfig {
    /// RocketMQ's defaults under `root_dir`.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
            commit_log_dir: None,
            mapped_file_size_commit_log: 1 << 30,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_disk_type: FlushDiskType::Async,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages: 4,
            sync_flush_timeout_ms: 5000,
            max_message_size: 4 * 1024 * 1024,
            file_reserved_time_hours: 72,
            delete_when: "04".into(),
            disk_max_used_space_ratio: 75,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            message_index_enable: true,
            check_crc_on_recover: true,
        }
    }

    /// `storePathCommitLog`, defaulting to `<root>/commitlog`.
    pub fn commit_log_path(&self) -> PathBuf {
        self.commit_log_dir
            .clone()
            .unwrap_or_else(|| self.root_dir.join("commitlog"))
    }
}

/// Knobs beyond [`StoreConfig`] (RocketMQ keys with their defaults) and test seams.
#[derive(Clone)]
pub struct StoreOptions {
    /// `flushIntervalConsumeQueue`: how often ConsumeQueues, the index and the checkpoint are
    /// flushed (ms).
    pub flush_interval_consume_queue_ms: u64,
    /// `cleanResourceInterval` (ms).
    pub clean_resource_interval_ms: u64,
    /// `deleteFileBatchMax`.
    pub delete_file_batch_max: usize,
    /// `diskSpaceCleanForciblyRatio` (percent).
    pub disk_space_clean_forcibly_ratio: u32,
    /// `diskSpaceWarningLevelRatio` (percent): above it puts fail with `DiskFull`.
    pub disk_space_warning_level_ratio: u32,
    /// `messageDelayLevel` in ms per level (SCHEDULE_TOPIC_XXXX tagsCode = store time + delay).
    pub message_delay_level_ms: Vec<u64>,
    /// How disk space is measured (statvfs by default).
    pub disk_probe: Option<DiskProbe>,
    /// Start the background threads (flush, dispatch, retention). Tests that step by hand turn
    /// this off; then `put` under SYNC_FLUSH flushes inline.
    pub background: bool,
    /// Called first on the dispatcher thread (the broker sets its scheduling policy there; the
    /// store itself has no opinion).
    pub dispatch_thread_start: Option<fn()>,
    /// Called first on the SYNC_FLUSH group-commit thread (as `dispatch_thread_start`).
    pub group_commit_thread_start: Option<fn()>,
    /// Under SYNC_FLUSH, where a group-commit round's `put_notify` callbacks run (see
    /// [`RoundDelivery`]); `None`: on the commit thread.
    pub durable_delivery: Option<RoundDelivery>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            flush_interval_consume_queue_ms: 1000,
            clean_resource_interval_ms: 10_000,
            delete_file_batch_max: 10,
            disk_space_clean_forcibly_ratio: 85,
            disk_space_warning_level_ratio: 90,
            message_delay_level_ms: DEFAULT_DELAY_LEVELS_MS.to_vec(),
            disk_probe: None,
            background: true,
            dispatch_thread_start: None,
            group_commit_thread_start: None,
            durable_delivery: None,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field(
                "flush_interval_consume_queue_ms",
                &self.flush_interval_consume_queue_ms,
            )
            .field(
                "clean_resource_interval_ms",
                &self.clean_resource_interval_ms,
            )
            .field("background", &self.background)
            .field("durable_delivery", &self.durable_delivery.is_some())
            .finish()
    }
}

/// A borrowed byte range of a CommitLog segment file. The segment stays mapped and its file open
/// while any `Slice` of it lives, so the network layer can sendfile/splice from `file()`.
#[derive(Clone)]
pub struct Slice {
    seg: Arc<Segment>,
    pos: u64,
    len: u32,
}

impl Slice {
    /// `seg.mapped().read(pos, len)` must have succeeded (published bytes never unpublish).
    pub(crate) fn new(seg: Arc<Segment>, pos: u64, len: u32) -> Self {
        debug_assert!(seg.mapped().read(pos, u64::from(len)).is_some());
        Self { seg, pos, len }
    }
    /// The segment file (for sendfile/splice).
    pub fn file(&self) -> &File {
        self.seg.mapped().file()
    }
    /// Offset of the first byte within `file()`.
    pub fn file_offset(&self) -> u64 {
        self.pos
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// CommitLog offset of the first byte.
    pub fn phy_offset(&self) -> u64 {
        self.seg.base() + self.pos
    }
    /// The bytes, straight from the mapping.
    pub fn as_bytes(&self) -> &[u8] {
        // Published bytes stay published and mapped while `seg` lives, so this cannot fail.
        self.seg
            .mapped()
            .read(self.pos, u64::from(self.len))
            .unwrap_or_default()
    }
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    /// `self` followed by `next` as one slice, when `next` starts where `self` ends in the same
    /// segment (consecutive messages of a queue usually do): a pull reply then carries one
    /// region per run of records instead of one per record.
    pub fn join(&self, next: &Slice) -> Option<Slice> {
        if !Arc::ptr_eq(&self.seg, &next.seg) || self.pos + u64::from(self.len) != next.pos {
            return None;
        }
        let len = self.len.checked_add(next.len)?;
        Some(Slice::new(Arc::clone(&self.seg), self.pos, len))
    }
}

impl std::fmt::Debug for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slice")
            .field("phy_offset", &self.phy_offset())
            .field("len", &self.len)
            .finish()
    }
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("status", &self.status)
            .field("next_begin_offset", &self.next_begin_offset)
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .field("messages", &self.messages.len())
            .finish()
    }
}

impl TagFilter {
    /// Java's `codeSet.contains((int) tagsCode)`.
    pub fn matches(&self, tags_code: i64) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Codes(codes) => codes.contains(&i64::from(tags_code as i32)),
        }
    }
}

/// The storage engine: CommitLog + ConsumeQueues + IndexFile, flush, dispatch and retention.
pub struct MessageStore {
    config: StoreConfig,
    root: PathBuf,
    log: Arc<CommitLog>,
    cqs: Arc<ConsumeQueues>,
    index: Option<Arc<IndexService>>,
    checkpoint: Arc<Checkpoint>,
    dispatcher: Arc<Dispatcher>,
    tombstones: Arc<Tombstones>,
    group_commit: Option<Arc<GroupCommit>>,
    policy: RetentionPolicy,
    probe: DiskProbe,
    tickers: Mutex<Vec<Ticker>>,
    lock_file: Mutex<Option<File>>,
    shut: AtomicBool,
    report: RecoveryReport,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("root", &self.root)
            .field("log", &self.log)
            .finish()
    }
}

fn validate_config(c: &StoreConfig) -> Result<()> {
    let size = c.mapped_file_size_commit_log;
    if !(COMMIT_LOG_FILE_SIZE_MIN..=COMMIT_LOG_FILE_SIZE_MAX).contains(&size) {
        return Err(StoreError::Config(format!(
            "mappedFileSizeCommitLog {size} outside {COMMIT_LOG_FILE_SIZE_MIN}..={COMMIT_LOG_FILE_SIZE_MAX}"
        )));
    }
    if c.mapped_file_size_consume_queue < CQ_UNIT_SIZE_BYTES {
        return Err(StoreError::Config(
            "mappedFileSizeConsumeQueue below one unit".into(),
        ));
    }
    Ok(())
}

/// Bytes allowed in a topic or group name, as a table: the check runs on every put (and the
/// broker's on every send).
static NAME_BYTE_OK: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'%' | b'|' | b'_' | b'-');
        b += 1;
    }
    t
};

/// True when every byte is in RocketMQ's topic/group charset `[%|a-zA-Z0-9_-]` (Java
/// `isTopicOrGroupIllegal` negated; true for the empty string).
pub fn legal_name_charset(s: &str) -> bool {
    s.bytes().all(|b| NAME_BYTE_OK[usize::from(b)])
}

/// RocketMQ's topic charset `^[%|a-zA-Z0-9_-]+$`, at most [`TOPIC_LEN_MAX`] bytes.
pub fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= TOPIC_LEN_MAX && legal_name_charset(t)
}

impl MessageStore {
    /// Opens (or creates) the store with default [`StoreOptions`].
    pub fn open(config: StoreConfig) -> Result<Arc<Self>> {
        Self::open_with(config, StoreOptions::default())
    }

    /// Takes the lock file, recovers, and starts the background threads.
    pub fn open_with(mut config: StoreConfig, options: StoreOptions) -> Result<Arc<Self>> {
        validate_config(&config)?;
        // RocketMQ rounds the ConsumeQueue file size up to whole units.
        let cq_size = config
            .mapped_file_size_consume_queue
            .div_ceil(CQ_UNIT_SIZE_BYTES)
            * CQ_UNIT_SIZE_BYTES;
        config.mapped_file_size_consume_queue = cq_size;
        let root = config.root_dir.clone();
        for d in [root.clone(), root.join("config"), config.commit_log_path()] {
            std::fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
        }
        let lock_file = take_lock(&root)?;
        let abort_path = root.join("abort");
        let clean = !abort_path.exists();
        let checkpoint = Arc::new(Checkpoint::open(&root.join("checkpoint"))?);
        let ckpt = checkpoint.get();
        let cqs = Arc::new(ConsumeQueues::open(&root.join("consumequeue"), cq_size)?);
        let tombstones = Arc::new(Tombstones::open(&root)?);
        let confirm = u64::try_from(ckpt.confirm_phy_offset).unwrap_or(0);
        let (rec, report) = recovery::recover(
            &config.commit_log_path(),
            config.mapped_file_size_commit_log,
            confirm,
            clean,
            config.check_crc_on_recover,
        )?;
        // After a crash with a usable checkpoint, every message below this was indexed and the
        // index flushed before the checkpoint was written: the index is repaired to it in place
        // rather than rebuilt from the start of its newest file.
        let repair_below =
            (report.scanned && confirm > 0).then(|| report.redispatch_from.min(confirm));
        let index = if config.message_index_enable {
            Some(Arc::new(IndexService::open_repairing(
                &root.join("index"),
                config.max_hash_slot_num,
                config.max_index_num,
                ckpt.index_msg_timestamp,
                clean,
                repair_below,
            )?))
        } else {
            None
        };
        tracing::info!(?report, clean, "CommitLog recovered");
        let valid_end = report.valid_end;
        cqs.truncate_from_phy(valid_end)?;
        if let Some(ix) = &index {
            ix.truncate_from_phy(valid_end)?;
        }
        let latch = Arc::new(WriteLatch::default());
        let log = Arc::new(CommitLog::new(
            &config.commit_log_path(),
            config.mapped_file_size_commit_log,
            rec,
            latch,
        ));
        // SYNC_FLUSH appends go through pwrite: syncing pages dirtied through the mapping costs
        // ~3x more per group commit here (see `MappedWriter::write_through`).
        log.set_write_through(config.flush_disk_type == FlushDiskType::Sync);
        if let Some(probe) = &options.disk_probe {
            log.set_disk_probe(Arc::clone(probe));
        }
        // Units whose records retention already deleted: move each queue's min offset past them.
        cqs.delete_files_below_phy(log.min_offset())?;
        // A deleted topic's queues that a crash left behind go; tombstones whose records
        // retention removed are dropped.
        cqs.remove_deleted(&tombstones.snapshot())?;
        tombstones.prune(log.min_offset())?;
        let dispatch_from = dispatch_start(&report, &log, &cqs, index.as_deref());
        let dispatcher = Arc::new(Dispatcher::new(
            Arc::clone(&log),
            Arc::clone(&cqs),
            index.clone(),
            options.message_delay_level_ms.clone(),
            Arc::clone(&tombstones),
            dispatch_from,
        ));
        // Under SYNC_FLUSH the dispatcher learns of new records from the sync that covered them
        // (appends do not wake it in that mode, see `append_many`).
        let weak = Arc::downgrade(&dispatcher);
        log.set_publish_hook(Box::new(move || {
            if let Some(d) = weak.upgrade() {
                d.wake();
            }
        }));
        dispatcher.catch_up(valid_end)?;
        log.set_queue_offsets(
            cqs.all()
                .iter()
                .map(|cq| (cq.topic().to_string(), cq.queue_id(), cq.max_offset()))
                .collect(),
        );
        std::fs::write(&abort_path, std::process::id().to_string())
            .map_err(|e| StoreError::io(&abort_path, e))?;
        crate::commit_log::sync_dir(&root)?;
        let probe = options
            .disk_probe
            .clone()
            .unwrap_or_else(|| Arc::new(|p: &Path| disk_space(p)));
        let policy = RetentionPolicy {
            file_reserved_time_ms: config.file_reserved_time_hours.saturating_mul(3_600_000),
            delete_when_hours: retention::parse_delete_when(&config.delete_when),
            disk_max_used_space_ratio: f64::from(config.disk_max_used_space_ratio),
            disk_space_clean_forcibly_ratio: f64::from(options.disk_space_clean_forcibly_ratio),
            disk_space_warning_level_ratio: f64::from(options.disk_space_warning_level_ratio),
            delete_file_batch_max: options.delete_file_batch_max,
        };
        let group_commit = (config.flush_disk_type == FlushDiskType::Sync && options.background)
            .then(|| GroupCommit::new(Arc::clone(&log), options.durable_delivery.clone()));
        let store = Arc::new(Self {
            config,
            root,
            log,
            cqs,
            index,
            checkpoint,
            dispatcher,
            tombstones,
            group_commit,
            policy,
            probe,
            tickers: Mutex::new(Vec::new()),
            lock_file: Mutex::new(Some(lock_file)),
            shut: AtomicBool::new(false),
            report,
        });
        store.write_checkpoint()?;
        // Measure the disk once before accepting writes.
        store.check_disk();
        if options.background {
            store.start_threads(&options)?;
        }
        Ok(store)
    }

    fn start_threads(self: &Arc<Self>, options: &StoreOptions) -> Result<()> {
        let io_err = |e| StoreError::io(&self.root, e);
        self.log.start()?;
        self.dispatcher.start(options.dispatch_thread_start)?;
        let mut tickers = self.tickers.lock();
        match &self.group_commit {
            Some(gc) => gc.start(options.group_commit_thread_start)?,
            None => {
                let log = Arc::clone(&self.log);
                let least = self.config.flush_commit_log_least_pages;
                let mut last = Instant::now();
                tickers.push(
                    Ticker::spawn(
                        "ferrocket-flush",
                        Duration::from_millis(self.config.flush_interval_commit_log_ms.max(1)),
                        move || async_flush_tick(&log, least, &mut last),
                    )
                    .map_err(io_err)?,
                );
            }
        }
        let me = Arc::downgrade(self);
        tickers.push(
            Ticker::spawn(
                "ferrocket-cq-flush",
                Duration::from_millis(options.flush_interval_consume_queue_ms.max(1)),
                move || {
                    if let Some(s) = me.upgrade() {
                        if let Err(e) = s.write_checkpoint() {
                            tracing::warn!(error = %e, "ConsumeQueue flush / checkpoint failed");
                        }
                    }
                },
            )
            .map_err(io_err)?,
        );
        let me = Arc::downgrade(self);
        tickers.push(
            Ticker::spawn(
                "ferrocket-retention",
                Duration::from_millis(options.clean_resource_interval_ms.max(1)),
                move || {
                    if let Some(s) = me.upgrade() {
                        s.run_retention_round(retention::hour_local_now());
                    }
                },
            )
            .map_err(io_err)?,
        );
        Ok(())
    }

    /// Flushes the ConsumeQueues and the index, then records in the checkpoint the offset below
    /// which the CommitLog and its ConsumeQueue units are durable.
    fn write_checkpoint(&self) -> Result<()> {
        let dispatched = self.dispatcher.dispatched();
        let logics_ts = self.dispatcher.last_store_ts();
        self.cqs.flush_all()?;
        if let Some(ix) = &self.index {
            ix.flush()?;
        }
        let flushed = self.log.flushed();
        let old = self.checkpoint.get();
        let confirm = flushed.min(dispatched);
        let data = CheckpointData {
            physic_msg_timestamp: nonzero_or(self.log.flushed_store_ts(), old.physic_msg_timestamp),
            logics_msg_timestamp: nonzero_or(logics_ts, old.logics_msg_timestamp),
            index_msg_timestamp: self
                .index
                .as_ref()
                .map(|ix| ix.last_full_file_end_ts())
                .unwrap_or(old.index_msg_timestamp),
            master_flushed_offset: old.master_flushed_offset,
            confirm_phy_offset: confirm as i64,
        };
        if data != old {
            self.checkpoint.write(data)?;
        }
        Ok(())
    }

    fn check_disk(&self) -> RetentionRound {
        let mut p = self.policy.clone();
        // Measure only: no hour matches and no ratio triggers deletion.
        p.delete_when_hours.clear();
        p.disk_max_used_space_ratio = f64::INFINITY;
        retention::run_round(
            &p,
            &self.log,
            &self.cqs,
            self.index.as_deref(),
            &self.probe,
            0,
        )
    }

    /// One retention round now, as if the local hour were `hour` (the retention thread calls
    /// this every `cleanResourceInterval`; tests call it directly).
    pub fn run_retention_round(&self, hour: u32) -> RetentionRound {
        let round = retention::run_round(
            &self.policy,
            &self.log,
            &self.cqs,
            self.index.as_deref(),
            &self.probe,
            hour,
        );
        if let Err(e) = self.tombstones.prune(self.log.min_offset()) {
            tracing::warn!(error = %e, "dropping deleted topics' tombstones failed");
        }
        round
    }

    /// DELETE_TOPIC (RocketMQ's `deleteTopics`): removes the topic's ConsumeQueues and restarts
    /// its queue offsets at 0, so a topic created again under the name starts empty. Its records
    /// stay in the CommitLog until retention; a tombstone (see [`crate::tombstone`]), durable
    /// before anything else changes, keeps the dispatcher from ever bringing them back. Appends
    /// are held off for the duration (a file write and two directory syncs). Returns how many
    /// queues were removed (0 for a topic the store never saw, which is not an error).
    pub fn delete_topic(&self, topic: &str) -> Result<usize> {
        self.log.latch.check()?;
        self.log.delete_topic_with(topic, |cut| {
            if cut > self.log.min_offset() {
                self.tombstones.add(topic, cut, self.log.min_offset())?;
            }
            let _no_dispatch = self.dispatcher.exclusive();
            let n = self.cqs.remove_topic(topic)?;
            tracing::info!(topic, cut, queues = n, "topic deleted from the store");
            Ok(n)
        })
    }

    pub fn set_arrival_listener(&self, l: ArrivalListener) {
        self.dispatcher.set_listener(l);
    }

    /// Appends one message. Under SYNC_FLUSH blocks until it is durable (or `FlushDiskTimeout`).
    pub fn put(&self, msg: &MessageInput) -> Result<PutResult> {
        if self.shut.load(Ordering::Acquire) {
            return Err(StoreError::WriteDisabled("store is shut down".into()));
        }
        let len = self.validate(msg)?;
        let msgs = std::slice::from_ref(msg);
        let (appended, end) = self.log.append(msgs, &[len])?;
        self.wake_dispatcher_after_append();
        let status = self.await_durable(msgs, end)?;
        Ok(PutResult { status, appended })
    }

    /// Appends messages of one topic and queue as consecutive records under one lock, with one
    /// durability wait.
    pub fn put_batch(&self, msgs: &[MessageInput]) -> Result<PutResult> {
        one_queue(msgs)?;
        self.put_many(msgs)
    }

    fn put_many(&self, msgs: &[MessageInput]) -> Result<PutResult> {
        let (appended, end) = self.append_many(msgs)?;
        let status = self.await_durable(msgs, end)?;
        Ok(PutResult { status, appended })
    }

    /// Validates (outside the append lock), appends (which computes the BODYCRCs) and wakes the
    /// dispatcher. Returns the appended records and the end offset to wait for.
    fn append_many(&self, msgs: &[MessageInput]) -> Result<(AppendedList, u64)> {
        if self.shut.load(Ordering::Acquire) {
            return Err(StoreError::WriteDisabled("store is shut down".into()));
        }
        let mut lens = Vec::with_capacity(msgs.len());
        for m in msgs {
            lens.push(self.validate(m)?);
        }
        let appended = self.log.append(msgs, &lens)?;
        self.wake_dispatcher_after_append();
        Ok(appended)
    }

    /// Tells the dispatcher about records just appended, except under SYNC_FLUSH: there they
    /// are staged, written by the group commit (or by an append or a roll along the way) and
    /// woken for by the sync that covers them (`CommitLog::flush`). Waking the dispatcher per
    /// append made it run, find nothing published (or a part of a round) and park again: ~2.4
    /// dispatcher context switches per group-commit round, 1.7 when only appends that
    /// published woke it.
    fn wake_dispatcher_after_append(&self) {
        if !self.log.write_through() {
            self.dispatcher.wake();
        }
    }

    /// Appends one message, or a batch of one topic and queue, without waiting for durability:
    /// returns the appended records at once and calls `on_durable` when they are durable
    /// (`Ok`), or when the store failed or stopped first (`Err`). Under ASYNC_FLUSH, or for a
    /// message with `WAIT=false`, `on_durable` runs before this returns. The caller applies
    /// `syncFlushTimeout` (FLUSH_DISK_TIMEOUT) itself; see [`GroupCommit::notify`].
    pub fn put_notify(
        &self,
        msgs: &[MessageInput],
        on_durable: DurableCallback,
    ) -> Result<AppendedList> {
        one_queue(msgs)?;
        let (appended, end) = self.append_many(msgs)?;
        match (&self.group_commit, self.config.flush_disk_type) {
            (Some(gc), FlushDiskType::Sync) if wants_wait(msgs) => gc.notify(end, on_durable),
            (Some(gc), FlushDiskType::Sync) => {
                gc.request(end);
                on_durable(Ok(()));
            }
            (None, FlushDiskType::Sync) => on_durable(self.log.flush(0).map(|_| ())),
            (_, FlushDiskType::Async) => on_durable(Ok(())),
        }
        Ok(appended)
    }

    fn await_durable(&self, msgs: &[MessageInput], end: u64) -> Result<PutStatus> {
        if self.config.flush_disk_type != FlushDiskType::Sync {
            return Ok(PutStatus::Ok);
        }
        let wait = wants_wait(msgs);
        let Some(gc) = &self.group_commit else {
            // No background threads: flush inline.
            self.log.flush(0)?;
            return Ok(PutStatus::Ok);
        };
        if !wait {
            gc.request(end);
            return Ok(PutStatus::Ok);
        }
        let timeout = Duration::from_millis(self.config.sync_flush_timeout_ms);
        Ok(match gc.wait(end, timeout)? {
            Durable::Yes => PutStatus::Ok,
            Durable::TimedOut => PutStatus::FlushDiskTimeout,
        })
    }

    /// Checks a message against the limits; returns its encoded record length.
    fn validate(&self, m: &MessageInput) -> Result<usize> {
        let illegal = |s: String| Err(StoreError::MessageIllegal(s));
        if !valid_topic(&m.topic) {
            return illegal(format!("topic {:?} is not a valid topic name", m.topic));
        }
        if m.body.len() > self.config.max_message_size as usize {
            return illegal(format!(
                "body of {} bytes exceeds maxMessageSize {}",
                m.body.len(),
                self.config.max_message_size
            ));
        }
        if m.properties.len() > record::PROPERTIES_LEN_MAX {
            return illegal(format!(
                "properties of {} bytes exceed 32767",
                m.properties.len()
            ));
        }
        // An OR over every byte (no early exit, so it vectorises) rather than `contains`: the
        // string is short and almost never holds a NUL, and this runs on every put.
        if m.properties
            .as_bytes()
            .iter()
            .fold(false, |nul, &b| nul | (b == 0))
        {
            return illegal("properties contain a NUL byte".into());
        }
        if m.queue_id > i32::MAX as u32 {
            return illegal(format!("queue id {} out of range", m.queue_id));
        }
        let len = record::record_len(
            m.body.len(),
            m.topic.len(),
            m.properties.len(),
            m.born_host.is_ipv6(),
            m.store_host.is_ipv6(),
        );
        match len {
            Some(l) if l <= self.config.max_message_size as usize + RECORD_OVERHEAD_MAX => Ok(l),
            _ => illegal("record too large".into()),
        }
    }

    /// Up to `max_count` records (and about `max_bytes`) of (topic, queue) from `offset`, with
    /// RocketMQ's statuses and next offset. The first matching record is always returned whole.
    pub fn get(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_count: u32,
        max_bytes: u64,
        filter: &TagFilter,
    ) -> GetResult {
        let mut res = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
        };
        let Some(cq) = self.cqs.get(topic, queue_id) else {
            return res;
        };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        res.min_offset = min;
        res.max_offset = max;
        if max == 0 {
            res.status = GetStatus::NoMessageInQueue;
        } else if offset < min {
            res.status = GetStatus::OffsetTooSmall;
            res.next_begin_offset = min;
        } else if offset == max {
            res.status = GetStatus::OffsetOverflowOne;
            res.next_begin_offset = offset;
        } else if offset > max {
            res.status = GetStatus::OffsetOverflowBadly;
            res.next_begin_offset = if min == 0 { min } else { max };
        } else {
            self.collect(&cq, offset, max_count, max_bytes, filter, &mut res);
        }
        res
    }

    fn collect(
        &self,
        cq: &crate::consume_queue::ConsumeQueue,
        offset: u64,
        max_count: u32,
        max_bytes: u64,
        filter: &TagFilter,
        res: &mut GetResult,
    ) {
        let scan_max = GET_SCAN_UNITS_MIN.max(max_count as usize);
        let mut bytes = 0u64;
        let mut skip_below = 0u64;
        let mut consumed = 0u64;
        res.status = GetStatus::NoMatchedMessage;
        // Units are decoded lazily: the scan stops at the first unit that no longer fits, the
        // same unit Java's loop breaks on, so a full pull touches ~max_count units, not 800.
        let visited = cq.visit_units(offset, scan_max, |unit| {
            let count = res.messages.len() as u64;
            let full = count > 0
                && (count >= u64::from(max_count) || bytes + u64::from(unit.size) > max_bytes);
            if full {
                return false;
            }
            consumed += 1;
            if unit.is_blank() || unit.phy_offset < skip_below || !filter.matches(unit.tags_code) {
                return true;
            }
            match self.log.slice(unit.phy_offset, unit.size) {
                Some(s) => {
                    bytes += u64::from(unit.size);
                    res.messages.push(s);
                    res.status = GetStatus::Found;
                    skip_below = 0;
                }
                None => {
                    if res.messages.is_empty() {
                        res.status = GetStatus::MessageWasRemoving;
                    }
                    // The segment is gone: skip units pointing into it.
                    let fs = self.log.file_size();
                    skip_below = (unit.phy_offset / fs + 1) * fs;
                }
            }
            true
        });
        if visited == 0 {
            res.status = GetStatus::OffsetFoundNull;
            let per_file = self.config.mapped_file_size_consume_queue / CQ_UNIT_SIZE_BYTES;
            res.next_begin_offset = (offset / per_file + 1) * per_file;
            return;
        }
        res.next_begin_offset = offset + consumed;
    }

    /// Exclusive max queue offset of (topic, queue); 0 if unknown.
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.cqs
            .get(topic, queue_id)
            .map_or(0, |cq| cq.max_offset())
    }

    /// Exclusive max queue offset of (topic, queue) counting every appended message, also those
    /// the dispatcher has not put in the ConsumeQueue yet ([`MessageStore::max_offset`] counts
    /// only dispatched ones). A consumer offset committed right after a send is acknowledged
    /// may point there.
    pub fn max_offset_assigned(&self, topic: &str, queue_id: u32) -> u64 {
        self.max_offset(topic, queue_id)
            .max(self.log.next_queue_offset(topic, queue_id))
    }

    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.cqs
            .get(topic, queue_id)
            .map_or(0, |cq| cq.min_offset())
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP.
    pub fn offset_by_time(&self, topic: &str, queue_id: u32, ts_ms: i64, b: Boundary) -> u64 {
        let Some(cq) = self.cqs.get(topic, queue_id) else {
            return 0;
        };
        let log = &self.log;
        cq.search_offset_by_time(ts_ms, b, &|u| log.store_timestamp_at(u.phy_offset))
    }

    /// Store time of the oldest message still in (topic, queue).
    pub fn earliest_store_time(&self, topic: &str, queue_id: u32) -> Option<i64> {
        let cq = self.cqs.get(topic, queue_id)?;
        let unit = cq.get(cq.min_offset())?;
        self.log.store_timestamp_at(unit.phy_offset)
    }

    /// Store time of the message at `offset` in (topic, queue).
    pub fn store_time_at(&self, topic: &str, queue_id: u32, offset: u64) -> Option<i64> {
        let unit = self.cqs.get(topic, queue_id)?.get(offset)?;
        self.log.store_timestamp_at(unit.phy_offset)
    }

    /// The whole record at CommitLog offset `phy_offset`; `None` if no record starts there.
    pub fn read_at(&self, phy_offset: u64) -> Result<Option<Slice>> {
        Ok(self.log.read_record(phy_offset))
    }

    /// QUERY_MESSAGE: records whose KEYS or UNIQ_KEY hold `key`, newest first. Hash collisions
    /// are possible; callers filter by key again.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: u32,
        begin_ms: i64,
        end_ms: i64,
    ) -> QueryResult {
        let Some(ix) = &self.index else {
            return QueryResult {
                index_last_update_timestamp: 0,
                index_last_update_phy_offset: 0,
                messages: Vec::new(),
            };
        };
        let (ts, phy) = ix.last_update();
        let messages = ix
            .query(topic, key, max as usize, begin_ms, end_ms)
            .into_iter()
            .filter_map(|p| self.log.read_record(p))
            .collect();
        QueryResult {
            index_last_update_timestamp: ts,
            index_last_update_phy_offset: phy,
            messages,
        }
    }

    pub fn commit_log_min_offset(&self) -> u64 {
        self.log.min_offset()
    }

    /// End of the CommitLog (exclusive).
    pub fn commit_log_max_offset(&self) -> u64 {
        self.log.max_offset()
    }

    /// Bytes below this CommitLog offset are on disk.
    pub fn flushed_offset(&self) -> u64 {
        self.log.flushed()
    }

    /// Blocks until the next CommitLog segment is pre-allocated (benches start timing after
    /// this, so they measure appends, not the one-off zero-fill racing them).
    pub fn wait_preallocated(&self, timeout: Duration) -> bool {
        self.log.wait_preallocated(timeout)
    }

    /// How many CommitLog flushes (group commits under SYNC_FLUSH) completed since open.
    pub fn flush_count(&self) -> u64 {
        self.log.sync_count()
    }

    /// Records below this CommitLog offset are in the ConsumeQueues.
    pub fn dispatched_offset(&self) -> u64 {
        self.dispatcher.dispatched()
    }

    /// Blocks until the dispatcher has handled everything below `phy_end` (or `timeout` passes).
    pub fn wait_dispatched(&self, phy_end: u64, timeout: Duration) -> bool {
        if !self.has_threads() {
            let _ = self.dispatcher.catch_up(phy_end);
        }
        self.dispatcher.wait_dispatched(phy_end, timeout)
    }

    fn has_threads(&self) -> bool {
        self.group_commit.is_some() || !self.tickers.lock().is_empty()
    }

    /// Dispatches synchronously up to the CommitLog end (stepping by hand without threads).
    pub fn dispatch_now(&self) -> Result<()> {
        self.dispatcher.catch_up(self.log.max_offset())
    }

    /// Flushes the CommitLog now (stepping by hand without threads).
    pub fn flush_now(&self) -> Result<u64> {
        self.log.flush(0)
    }

    /// Flushes the ConsumeQueues and the index and writes the checkpoint now (the
    /// `ferrocket-cq-flush` thread does this every `flushIntervalConsumeQueue`).
    pub fn checkpoint_now(&self) -> Result<()> {
        self.write_checkpoint()
    }

    /// What (topic, queue id) pairs the ConsumeQueues hold.
    pub fn topics_and_queues(&self) -> Vec<(String, u32)> {
        self.cqs
            .all()
            .iter()
            .map(|cq| (cq.topic().to_string(), cq.queue_id()))
            .collect()
    }

    /// How recovery went when this store was opened.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// `Some(reason)` once writes are refused for good (failed flush or shutdown).
    pub fn write_disabled(&self) -> Option<String> {
        self.log.latch.check().err().map(|e| e.to_string())
    }

    /// Test seam: the next CommitLog flush fails as if msync reported EIO.
    #[doc(hidden)]
    pub fn fail_next_flush(&self) {
        self.log.fail_next_flush.store(true, Ordering::Release);
    }

    fn stop_threads(&self) {
        for mut t in self.tickers.lock().drain(..) {
            t.stop();
        }
        if let Some(gc) = &self.group_commit {
            gc.stop();
        }
        self.dispatcher.stop();
        self.log.stop();
    }

    /// Flushes everything, writes the checkpoint, removes the abort file and releases the lock.
    /// Idempotent; puts fail with `WriteDisabled` afterwards.
    pub fn shutdown(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let flushed = self.log.flush(0);
        self.stop_threads();
        let dispatched = self.dispatcher.catch_up(self.log.max_offset());
        let ckpt = self.write_checkpoint();
        let clean = flushed.is_ok()
            && dispatched.is_ok()
            && ckpt.is_ok()
            && self.dispatcher.dispatched() >= self.log.max_offset();
        if clean {
            let abort = self.root.join("abort");
            if let Err(e) = std::fs::remove_file(&abort) {
                tracing::warn!(error = %e, "removing the abort file failed");
            }
            let _ = crate::commit_log::sync_dir(&self.root);
        } else {
            tracing::error!(
                ?flushed,
                ?dispatched,
                ?ckpt,
                "unclean shutdown: next open recovers by scanning"
            );
        }
        self.lock_file.lock().take();
    }

    /// Test seam for crash tests: stops every thread without flushing, checkpointing or removing
    /// the abort file, and releases the lock, as if the process died here. The files hold what
    /// the page cache holds; `crash::crash_image` then decides what "reached the disk".
    #[doc(hidden)]
    pub fn halt(&self) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop_threads();
        self.lock_file.lock().take();
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn nonzero_or(v: i64, old: i64) -> i64 {
    if v != 0 {
        v
    } else {
        old
    }
}

/// Where dispatching resumes after recovery. After a clean shutdown the ConsumeQueues are
/// complete up to their max physical end. After a crash, everything from the last record boundary
/// at or below the checkpoint's `confirmPhyOffset` is handed to them again (the checkpoint is
/// written only after the ConsumeQueues and the index were flushed up to it; ConsumeQueue appends
/// are idempotent), or from the scan start without a usable checkpoint, and from the index's end
/// if it is behind.
fn dispatch_start(
    report: &RecoveryReport,
    log: &CommitLog,
    cqs: &ConsumeQueues,
    index: Option<&IndexService>,
) -> u64 {
    let min = log.min_offset();
    let from = if report.scanned {
        let ix = index.map_or(u64::MAX, |ix| ix.resume_from());
        report.redispatch_from.min(ix).min(cqs.max_phy_end())
    } else {
        cqs.max_phy_end()
    };
    from.clamp(min, report.valid_end.max(min))
}

fn take_lock(root: &Path) -> Result<File> {
    let path = root.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    if !try_lock_exclusive(&file).map_err(|e| StoreError::io(&path, e))? {
        return Err(StoreError::Locked(root.to_path_buf()));
    }
    let _ = std::fs::write(&path, b"lock");
    Ok(file)
}

/// A batch is non-empty and of one topic and queue (its records get consecutive queue offsets).
fn one_queue(msgs: &[MessageInput]) -> Result<()> {
    let Some(first) = msgs.first() else {
        return Err(StoreError::MessageIllegal("empty batch".into()));
    };
    if msgs
        .iter()
        .any(|m| m.topic != first.topic || m.queue_id != first.queue_id)
    {
        return Err(StoreError::MessageIllegal(
            "a batch must have one topic and queue".into(),
        ));
    }
    Ok(())
}

/// Whether the producer waits for the store (`WAIT` property, `true` unless set to "false").
fn wants_wait(msgs: &[MessageInput]) -> bool {
    msgs.first().is_none_or(|m| {
        record::property_value(&m.properties, record::PROPERTY_WAIT_STORE_MSG_OK) != Some("false")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn test_msg(i: u8) -> MessageInput {
        MessageInput {
            topic: "TornTail".into(),
            queue_id: 1,
            flag: 0,
            body: vec![i; 300].into(),
            properties: record::encode_properties(&[("TAGS", "t")]),
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.2:40000".parse().expect("literal"),
            store_host: "10.0.0.1:10911".parse().expect("literal"),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// The appender writes a record's tail (body, topic, properties) before its head, which
    /// holds TOTALSIZE and BODYCRC. A crash between the two (or a writeback of the tail's page
    /// only) leaves record bytes behind a zero TOTALSIZE: recovery must end the log at the last
    /// whole record, zero the stray bytes, and append over them.
    #[test]
    fn a_tail_written_without_its_head_is_cut_and_zeroed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = StoreConfig::new(dir.path());
        c.mapped_file_size_commit_log = 64 * 1024;
        c.mapped_file_size_consume_queue = 20 * 100;
        c.message_index_enable = false;
        let end = {
            let store = MessageStore::open(c.clone()).expect("open");
            for i in 0..5 {
                store.put(&test_msg(i)).expect("put");
            }
            store.flush_now().expect("flush");
            let end = store.commit_log_max_offset();
            store.halt();
            end
        };
        // The sixth record as the appender lays it out, with its head not written yet.
        let m = test_msg(9);
        let parts = record::RecordParts {
            queue_id: 1,
            flag: 0,
            queue_offset: 5,
            phy_offset: end as i64,
            sys_flag: 0,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            store_timestamp: 1_700_000_000_001,
            store_host: m.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: record::body_crc(&m.body),
            body: &m.body,
            topic: &m.topic,
            properties: &m.properties,
        };
        let mut torn = parts.to_vec().expect("encodes");
        let head_len = parts.head_len();
        torn[..head_len].fill(0);
        let seg = c
            .commit_log_path()
            .join(crate::commit_log::segment_file_name(0));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("segment");
        f.write_all_at(&torn, end).expect("write torn tail");
        f.sync_all().expect("sync");
        drop(f);

        let store = MessageStore::open(c).expect("reopen");
        assert_eq!(store.commit_log_max_offset(), end);
        assert!(store.recovery_report().zeroed_pages >= 1);
        assert_eq!(store.max_offset("TornTail", 1), 5);
        let r = store.put(&test_msg(7)).expect("put after recovery");
        assert_eq!(r.appended[0].phy_offset, end);
        assert_eq!(r.appended[0].queue_offset, 5);
        let got = store
            .read_at(end)
            .expect("read")
            .expect("a record at the old end");
        let rec = record::decode_record(got.as_bytes()).expect("decodes");
        assert_eq!(rec.body, &[7u8; 300][..]);
        assert_eq!(rec.body_crc, record::body_crc(&[7u8; 300]));
        store.shutdown();
    }

    #[test]
    fn topic_byte_table_matches_the_charset() {
        for b in 0u8..=255 {
            let want = b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-');
            let topic = String::from_utf8_lossy(&[b]).into_owned();
            assert_eq!(valid_topic(&topic), want && topic.len() == 1, "byte {b}");
        }
        assert!(!valid_topic(""));
        assert!(valid_topic(&"a".repeat(TOPIC_LEN_MAX)));
        assert!(!valid_topic(&"a".repeat(TOPIC_LEN_MAX + 1)));
        assert!(valid_topic("%RETRY%group-1|x_y"));
        assert!(!valid_topic("a b"));
    }
}
