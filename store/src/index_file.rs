//! IndexFile: RocketMQ's on-disk hash index from message keys to CommitLog offsets.
//!
//! ```text
//! Format: { header (40 B) | hash slots (hashSlotNum × 4 B) | entries (indexNum × 20 B) }
//! header: { beginTimestamp i64 | endTimestamp i64 | beginPhyOffset i64 | endPhyOffset i64
//!         | hashSlotCount i32 | indexCount i32 }
//! slot:   i32 index of the newest entry of the bucket, 0 = empty
//! entry:  { keyHash i32 | phyOffset i64 | timeDiff i32 (seconds since beginTimestamp) | prevIndex i32 }
//! ```
//! All big-endian. Entry 0 is never used (`indexCount` starts at 1), so index 0 ends a chain.
//! Files live in `index/`, named by their creation time `yyyyMMddHHmmssSSS` in local time.
//!
//! Writers (one dispatcher thread) take a file's lock for writing; queries take it for reading.
//! Everything read from a file is treated as untrusted: a damaged header, slot or chain link ends
//! the walk instead of panicking or looping (chains must strictly decrease, so a walk is bounded by
//! the number of entries).

#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{Local, NaiveDateTime, TimeZone};
use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};

use crate::consume_queue::file_io_error;
use crate::error::{Result, StoreError};
use crate::hash::index_key_hash_of;
use crate::mmap::{create_allocated, MappedMut};

/// `maxHashSlotNum` default.
pub const HASH_SLOT_NUM_DEFAULT: u32 = 5_000_000;
/// `maxIndexNum` default.
pub const INDEX_NUM_DEFAULT: u32 = 20_000_000;
/// Header size (`IndexHeader.INDEX_HEADER_SIZE`).
pub const INDEX_HEADER_SIZE_BYTES: u64 = 40;
/// One hash slot.
pub const HASH_SLOT_SIZE_BYTES: u64 = 4;
/// One index entry.
pub const INDEX_ENTRY_SIZE_BYTES: u64 = 20;
/// Separator of keys in the KEYS property (`MessageConst.KEY_SEPARATOR`).
pub const KEY_SEPARATOR: char = ' ';
/// Length of an index file name, `yyyyMMddHHmmssSSS`.
const FILE_NAME_LEN: usize = 17;
const FILE_NAME_FORMAT: &str = "%Y%m%d%H%M%S%3f";
/// Index value meaning "no entry" in slots and chain links.
const INVALID_INDEX: i32 = 0;

// Header fields, each after the previous one.
const BEGIN_TIMESTAMP_AT: usize = 0;
const END_TIMESTAMP_AT: usize = BEGIN_TIMESTAMP_AT + 8;
const BEGIN_PHY_OFFSET_AT: usize = END_TIMESTAMP_AT + 8;
const END_PHY_OFFSET_AT: usize = BEGIN_PHY_OFFSET_AT + 8;
const HASH_SLOT_COUNT_AT: usize = END_PHY_OFFSET_AT + 8;
const INDEX_COUNT_AT: usize = HASH_SLOT_COUNT_AT + 4;
const _: () = assert!(INDEX_COUNT_AT as u64 + 4 == INDEX_HEADER_SIZE_BYTES);

// Entry fields.
const KEY_HASH_AT: usize = 0;
const PHY_OFFSET_AT: usize = KEY_HASH_AT + 4;
const TIME_DIFF_AT: usize = PHY_OFFSET_AT + 8;
const PREV_INDEX_AT: usize = TIME_DIFF_AT + 4;
const _: () = assert!(PREV_INDEX_AT as u64 + 4 == INDEX_ENTRY_SIZE_BYTES);

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn write_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    buf.get_mut(at..at.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// The 40-byte IndexFile header (`IndexHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexHeader {
    /// Store time of the first indexed message.
    pub begin_timestamp: i64,
    /// Store time of the last indexed message.
    pub end_timestamp: i64,
    pub begin_phy_offset: i64,
    /// CommitLog offset of the last indexed message (its start, not its end).
    pub end_phy_offset: i64,
    /// Number of non-empty slots.
    pub hash_slot_count: i32,
    /// Next free entry index; starts at 1.
    pub index_count: i32,
}

impl IndexHeader {
    #[allow(clippy::indexing_slicing)] // constant, in-bounds ranges of a fixed-size array
    pub fn encode(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[BEGIN_TIMESTAMP_AT..END_TIMESTAMP_AT]
            .copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[END_TIMESTAMP_AT..BEGIN_PHY_OFFSET_AT].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[BEGIN_PHY_OFFSET_AT..END_PHY_OFFSET_AT]
            .copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[END_PHY_OFFSET_AT..HASH_SLOT_COUNT_AT]
            .copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[HASH_SLOT_COUNT_AT..INDEX_COUNT_AT].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[INDEX_COUNT_AT..].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    /// Decodes the first 40 bytes; `None` if `b` is shorter. Values are not validated here.
    pub fn decode(b: &[u8]) -> Option<IndexHeader> {
        Some(IndexHeader {
            begin_timestamp: read_i64(b, BEGIN_TIMESTAMP_AT)?,
            end_timestamp: read_i64(b, END_TIMESTAMP_AT)?,
            begin_phy_offset: read_i64(b, BEGIN_PHY_OFFSET_AT)?,
            end_phy_offset: read_i64(b, END_PHY_OFFSET_AT)?,
            hash_slot_count: read_i32(b, HASH_SLOT_COUNT_AT)?,
            index_count: read_i32(b, INDEX_COUNT_AT)?,
        })
    }

    /// `IndexFile.isTimeMatched`: does `[begin, end]` overlap this file's time range?
    fn time_matched(&self, begin: i64, end: i64) -> bool {
        (begin < self.begin_timestamp && end > self.end_timestamp)
            || (begin >= self.begin_timestamp && begin <= self.end_timestamp)
            || (end >= self.begin_timestamp && end <= self.end_timestamp)
    }
}

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key_hash: i32,
    phy_offset: i64,
    time_diff_s: i32,
    prev_index: i32,
}

impl Entry {
    fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        let fields: [&[u8]; 4] = [
            &self.key_hash.to_be_bytes(),
            &self.phy_offset.to_be_bytes(),
            &self.time_diff_s.to_be_bytes(),
            &self.prev_index.to_be_bytes(),
        ];
        for (dst, src) in b.iter_mut().zip(fields.iter().flat_map(|f| f.iter())) {
            *dst = *src;
        }
        b
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        Some(Entry {
            key_hash: read_i32(b, KEY_HASH_AT)?,
            phy_offset: read_i64(b, PHY_OFFSET_AT)?,
            time_diff_s: read_i32(b, TIME_DIFF_AT)?,
            prev_index: read_i32(b, PREV_INDEX_AT)?,
        })
    }
}

/// Size of an index file: 40 + slots × 4 + entries × 20 bytes.
pub fn index_file_size(hash_slot_num: u32, index_num: u32) -> u64 {
    INDEX_HEADER_SIZE_BYTES
        + u64::from(hash_slot_num) * HASH_SLOT_SIZE_BYTES
        + u64::from(index_num) * INDEX_ENTRY_SIZE_BYTES
}

/// The key stored for `key` of a message in `topic` (`IndexService.buildKey`).
pub fn index_key(topic: &str, key: &str) -> String {
    format!("{topic}#{key}")
}

/// Seconds since the file's begin timestamp, as RocketMQ stores them: 0 while the file has no
/// begin time, clamped to `[0, i32::MAX]`; Java's division truncates toward zero like Rust's.
fn time_diff_seconds(begin_ts: i64, store_ts: i64) -> i32 {
    if begin_ts <= 0 {
        return 0;
    }
    let diff = store_ts.saturating_sub(begin_ts) / 1000;
    i32::try_from(diff.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// One index file, mapped read/write behind a lock.
struct IndexFile {
    name: String,
    path: PathBuf,
    hash_slot_num: u32,
    index_num: u32,
    map: RwLock<MappedMut>,
    /// Written since the last flush (so periodic flushes skip the many clean full files).
    dirty: AtomicBool,
}

impl IndexFile {
    fn slot_at(&self, key_hash: i32) -> usize {
        let slot = u64::from(key_hash.unsigned_abs()) % u64::from(self.hash_slot_num);
        (INDEX_HEADER_SIZE_BYTES + slot * HASH_SLOT_SIZE_BYTES) as usize
    }

    fn entry_at(&self, index: i32) -> Option<usize> {
        let index = u64::try_from(index).ok()?;
        let pos = INDEX_HEADER_SIZE_BYTES
            + u64::from(self.hash_slot_num) * HASH_SLOT_SIZE_BYTES
            + index.checked_mul(INDEX_ENTRY_SIZE_BYTES)?;
        usize::try_from(pos).ok()
    }

    fn header(&self) -> IndexHeader {
        IndexHeader::decode(self.map.read().as_slice()).unwrap_or_default()
    }

    /// The number of usable entry slots recorded in the header: indices `1..count` are written.
    /// A damaged count is clamped into `[1, index_num]`.
    fn written_count(&self, h: &IndexHeader) -> i32 {
        let max = i32::try_from(self.index_num).unwrap_or(i32::MAX);
        h.index_count.clamp(1, max)
    }

    fn is_full(&self) -> bool {
        let h = self.header();
        h.index_count < 1 || i64::from(h.index_count) >= i64::from(self.index_num)
    }

    /// `IndexFile.putKey`. Returns false if the file is full (or its header is damaged, in which
    /// case it is never written again and the caller rolls to a new file).
    fn put(&self, key_hash: i32, phy_offset: u64, store_ts: i64) -> bool {
        let mut map = self.map.write();
        let buf = map.as_mut_slice();
        let Some(mut h) = IndexHeader::decode(buf) else {
            return false;
        };
        self.dirty.store(true, Ordering::Release);
        if h.index_count < 1 || i64::from(h.index_count) >= i64::from(self.index_num) {
            return false;
        }
        let index = h.index_count;
        let slot_at = self.slot_at(key_hash);
        let old_head = read_i32(buf, slot_at)
            .filter(|&v| v > INVALID_INDEX && v < index)
            .unwrap_or(INVALID_INDEX);
        // The first entry sets the begin time, so its own difference is 0. (RocketMQ computes it
        // against the begin time copied from the previous file and then overwrites that begin
        // time, which can shift the first entry's time; we store the value readers expect.)
        let time_diff_s = if index <= 1 {
            0
        } else {
            time_diff_seconds(h.begin_timestamp, store_ts)
        };
        let entry = Entry {
            key_hash,
            phy_offset: i64::try_from(phy_offset).unwrap_or(i64::MAX),
            time_diff_s,
            prev_index: old_head,
        };
        let Some(entry_at) = self.entry_at(index) else {
            return false;
        };
        if write_bytes(buf, entry_at, &entry.encode()).is_none()
            || write_bytes(buf, slot_at, &index.to_be_bytes()).is_none()
        {
            return false;
        }
        if index <= 1 {
            h.begin_phy_offset = entry.phy_offset;
            h.begin_timestamp = store_ts;
        }
        if old_head == INVALID_INDEX {
            h.hash_slot_count = h.hash_slot_count.saturating_add(1);
        }
        h.index_count = index + 1;
        h.end_phy_offset = entry.phy_offset;
        h.end_timestamp = store_ts;
        write_bytes(buf, 0, &h.encode()).is_some()
    }

    /// `IndexFile.selectPhyOffset`, if the file's time range overlaps `[begin, end]`; returns the
    /// header it read (`None` if unreadable) so the caller can decide whether to go on.
    /// The walk follows the chain of `key_hash`'s slot, newest first, adding the
    /// phy offsets of entries with that hash and a time in `[begin, end]` until `out` holds `max`.
    /// Stops at an invalid link (≤ 0, or not older than the current entry: this covers RocketMQ's
    /// "> indexCount" and self-loop checks and makes every walk finite), at a negative time
    /// difference, or once entries are older than `begin`.
    fn select(
        &self,
        key_hash: i32,
        max: usize,
        begin: i64,
        end: i64,
        out: &mut Vec<u64>,
    ) -> Option<IndexHeader> {
        let map = self.map.read();
        let buf = map.as_slice();
        let h = IndexHeader::decode(buf)?;
        if h.time_matched(begin, end) {
            self.walk_chain(buf, &h, key_hash, max, begin, end, out);
        }
        Some(h)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_chain(
        &self,
        buf: &[u8],
        h: &IndexHeader,
        key_hash: i32,
        max: usize,
        begin: i64,
        end: i64,
        out: &mut Vec<u64>,
    ) {
        let count = self.written_count(h);
        let Some(mut index) = read_i32(buf, self.slot_at(key_hash)) else {
            return;
        };
        if index <= INVALID_INDEX || index >= count {
            return;
        }
        while out.len() < max {
            let Some(e) = self
                .entry_at(index)
                .and_then(|at| Entry::decode(buf.get(at..)?))
            else {
                return;
            };
            if e.time_diff_s < 0 {
                return;
            }
            let time = h
                .begin_timestamp
                .saturating_add(i64::from(e.time_diff_s) * 1000);
            if e.key_hash == key_hash && time >= begin && time <= end && e.phy_offset >= 0 {
                out.push(e.phy_offset as u64);
            }
            if e.prev_index <= INVALID_INDEX || e.prev_index >= index || time < begin {
                return;
            }
            index = e.prev_index;
        }
    }

    /// Removes the entries whose phy offset is `>= phy_end` (they are the newest ones): slot heads
    /// pointing at them fall back to their chain's previous entry, and their bytes are zeroed.
    /// Returns the number of entries left.
    /// Crash repair to a checkpoint: every message below `cut` was indexed and this file was
    /// msynced before the checkpoint was written, so entries `1..=K` (the leading entries, in
    /// phy order, below `cut`) are intact; anything after them may be torn. Keeps those K
    /// entries, rebuilds the hash slots (and chain links) from them alone, and fixes the header.
    /// Later entries stay as stale bytes that no slot or link reaches; the next puts overwrite
    /// them. Writes only bytes that change. Returns K.
    fn repair_below(&self, cut: u64) -> i32 {
        let mut map = self.map.write();
        let buf = map.as_mut_slice();
        let Some(mut h) = IndexHeader::decode(buf) else {
            return 0;
        };
        let max = i32::try_from(self.index_num).unwrap_or(i32::MAX);
        let mut slots = vec![INVALID_INDEX; self.hash_slot_num as usize];
        let mut last_phy = h.begin_phy_offset.max(0);
        let mut last_diff = 0i32;
        let mut kept = 0i32;
        let mut index = 1i32;
        while index < max {
            let Some(at) = self.entry_at(index) else {
                break;
            };
            let Some(e) = buf.get(at..).and_then(Entry::decode) else {
                break;
            };
            // Entries are appended in phy order; a step back (a lost, zeroed entry) or a message
            // at or past the cut ends the intact prefix.
            if e.phy_offset < last_phy || u64::try_from(e.phy_offset).map_or(true, |p| p >= cut) {
                break;
            }
            let slot = ((self.slot_at(e.key_hash) - INDEX_HEADER_SIZE_BYTES as usize)
                / HASH_SLOT_SIZE_BYTES as usize)
                .min(slots.len().saturating_sub(1));
            let Some(head) = slots.get_mut(slot) else {
                break;
            };
            if e.prev_index != *head {
                let _ = write_bytes(buf, at + PREV_INDEX_AT, &head.to_be_bytes());
            }
            *head = index;
            last_phy = e.phy_offset;
            last_diff = e.time_diff_s;
            kept = index;
            index += 1;
        }
        let mut used = 0i32;
        for (n, &v) in slots.iter().enumerate() {
            let at = INDEX_HEADER_SIZE_BYTES as usize + n * HASH_SLOT_SIZE_BYTES as usize;
            if read_i32(buf, at) != Some(v) {
                let _ = write_bytes(buf, at, &v.to_be_bytes());
            }
            used += i32::from(v != INVALID_INDEX);
        }
        h.index_count = kept + 1;
        h.hash_slot_count = used;
        if kept >= 1 {
            h.end_phy_offset = last_phy;
            // Only the second is kept per entry; this may round the end time down.
            h.end_timestamp = h
                .begin_timestamp
                .saturating_add(i64::from(last_diff.max(0)) * 1000);
        } else {
            h.end_phy_offset = h.begin_phy_offset;
            h.end_timestamp = h.begin_timestamp;
        }
        let _ = write_bytes(buf, 0, &h.encode());
        self.dirty.store(true, Ordering::Release);
        kept
    }

    fn truncate_from_phy(&self, phy_end: u64) -> i32 {
        let mut map = self.map.write();
        let buf = map.as_mut_slice();
        let Some(mut h) = IndexHeader::decode(buf) else {
            return 0;
        };
        self.dirty.store(true, Ordering::Release);
        let count = self.written_count(&h);
        let mut index = count - 1;
        while index >= 1 {
            let Some(at) = self.entry_at(index) else {
                break;
            };
            let Some(e) = buf.get(at..).and_then(Entry::decode) else {
                break;
            };
            if u64::try_from(e.phy_offset).is_ok_and(|p| p < phy_end) {
                break;
            }
            let slot_at = self.slot_at(e.key_hash);
            if read_i32(buf, slot_at) == Some(index) {
                let prev = if e.prev_index > INVALID_INDEX && e.prev_index < index {
                    e.prev_index
                } else {
                    INVALID_INDEX
                };
                let _ = write_bytes(buf, slot_at, &prev.to_be_bytes());
                if prev == INVALID_INDEX {
                    h.hash_slot_count = h.hash_slot_count.saturating_sub(1).max(0);
                }
            }
            let _ = write_bytes(buf, at, &[0u8; INDEX_ENTRY_SIZE_BYTES as usize]);
            index -= 1;
        }
        let left = index + 1;
        if left < count {
            h.index_count = left;
            if let Some(e) = self
                .entry_at(index)
                .and_then(|at| Entry::decode(buf.get(at..)?))
            {
                if index >= 1 {
                    h.end_phy_offset = e.phy_offset;
                    // Only the second is kept per entry; this may round the end time down.
                    h.end_timestamp = h
                        .begin_timestamp
                        .saturating_add(i64::from(e.time_diff_s.max(0)) * 1000);
                }
            }
            let _ = write_bytes(buf, 0, &h.encode());
        }
        left
    }

    fn flush(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.map.read().flush().map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            StoreError::io(&self.path, e)
        })
    }
}

/// Formats `ms` (Unix milliseconds) as an index file name in local time. chrono reads the zone
/// from `TZ` or `/etc/localtime` and falls back to UTC when neither exists.
fn file_name_for(ms: i64) -> String {
    match Local.timestamp_millis_opt(ms).earliest() {
        Some(t) => t.format(FILE_NAME_FORMAT).to_string(),
        None => format!("{:017}", ms.max(0)),
    }
}

/// The smallest name after `name` (1 ms later), used when the clock did not move or went back
/// (e.g. a DST change), so that names sort in creation order.
fn name_after(name: &str) -> String {
    if let Ok(t) = NaiveDateTime::parse_from_str(name, FILE_NAME_FORMAT) {
        if let Some(next) = t.checked_add_signed(chrono::Duration::milliseconds(1)) {
            let s = next.format(FILE_NAME_FORMAT).to_string();
            if s.len() == FILE_NAME_LEN {
                return s;
            }
        }
    }
    let n: u64 = name.parse().unwrap_or(0);
    format!("{:017}", n.saturating_add(1))
}

fn is_index_file_name(name: &str) -> bool {
    name.len() == FILE_NAME_LEN && name.bytes().all(|c| c.is_ascii_digit())
}

fn corrupt(file: &Path, at: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        file: file.to_path_buf(),
        at,
        reason: reason.into(),
    }
}

/// Serialized writer state (the dispatcher, recovery and retention).
struct WriterState {
    /// Name of the newest file, so the next one sorts after it.
    last_name: String,
}

/// All index files under one `index` directory.
pub struct IndexService {
    dir: PathBuf,
    hash_slot_num: u32,
    index_num: u32,
    file_size: u64,
    /// Oldest first.
    files: RwLock<Vec<Arc<IndexFile>>>,
    writer: Mutex<WriterState>,
    /// End timestamp of the newest full file known flushed (checkpoint `indexMsgTimestamp`).
    last_full_end_ts: Arc<AtomicI64>,
    /// Set when crash repair kept the newest file: every message below this offset is indexed
    /// and none at or above it is, so re-dispatch starts exactly here.
    repaired_below: Option<u64>,
}

impl std::fmt::Debug for IndexService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexService")
            .field("dir", &self.dir)
            .field("hash_slot_num", &self.hash_slot_num)
            .field("index_num", &self.index_num)
            .field("files", &self.files.read().len())
            .finish()
    }
}

impl IndexService {
    /// Opens `dir` (the `index` directory itself, created if missing) and loads its files. Files
    /// whose size does not match `hash_slot_num`/`index_num` are left alone and ignored. After an
    /// abnormal shutdown (`clean_shutdown == false`) files whose end timestamp is newer than the
    /// checkpoint's `indexMsgTimestamp` are deleted; re-dispatch rebuilds them.
    pub fn open(
        dir: &Path,
        hash_slot_num: u32,
        index_num: u32,
        checkpoint_index_ts: i64,
        clean_shutdown: bool,
    ) -> Result<Self> {
        Self::open_repairing(
            dir,
            hash_slot_num,
            index_num,
            checkpoint_index_ts,
            clean_shutdown,
            None,
        )
    }

    /// [`open`](Self::open) that, after an abnormal shutdown and given `repair_below` (an offset
    /// below which every message was indexed and flushed before the checkpoint), repairs the
    /// files newer than the checkpoint in place to the messages below it instead of deleting
    /// them, so re-dispatch need not rebuild a whole 20M-entry file. A file left with no entry is
    /// deleted as before.
    pub fn open_repairing(
        dir: &Path,
        hash_slot_num: u32,
        index_num: u32,
        checkpoint_index_ts: i64,
        clean_shutdown: bool,
        repair_below: Option<u64>,
    ) -> Result<Self> {
        if hash_slot_num == 0 || index_num < 2 || i32::try_from(index_num).is_err() {
            return Err(StoreError::Config(format!(
                "index sizes: maxHashSlotNum {hash_slot_num} must be >= 1 and maxIndexNum \
                 {index_num} in 2..=2^31-1"
            )));
        }
        let file_size = index_file_size(hash_slot_num, index_num);
        if usize::try_from(file_size).is_err() || file_size > isize::MAX as u64 {
            return Err(StoreError::Config(format!(
                "index file size {file_size} too large"
            )));
        }
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        if std::env::var_os("TZ").is_none() && !Path::new("/etc/localtime").exists() {
            info!("no local time zone (TZ unset, no /etc/localtime): index file names use UTC");
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if is_index_file_name(&name) && entry.path().is_file() {
                names.push(name);
            } else {
                warn!(path = %entry.path().display(), "ignoring unexpected file in index directory");
            }
        }
        names.sort();
        let mut files = Vec::new();
        let mut last_name = String::new();
        let mut repaired = None;
        for name in names {
            let path = dir.join(&name);
            let len = fs::metadata(&path)
                .map_err(|e| StoreError::io(&path, e))?
                .len();
            if len != file_size {
                warn!(path = %path.display(), len, expected = file_size,
                    "index file size does not match maxHashSlotNum/maxIndexNum; ignoring it");
                continue;
            }
            let map = MappedMut::open(&path).map_err(|e| StoreError::io(&path, e))?;
            let file = IndexFile {
                name: name.clone(),
                path: path.clone(),
                hash_slot_num,
                index_num,
                map: RwLock::new(map),
                dirty: AtomicBool::new(false),
            };
            let newer = !clean_shutdown && file.header().end_timestamp > checkpoint_index_ts;
            if let (true, Some(cut)) = (newer, repair_below) {
                let kept = file.repair_below(cut);
                if kept >= 1 {
                    info!(path = %path.display(), kept, cut, "index file repaired to the checkpoint");
                    file.flush()?;
                    repaired = Some(cut);
                    last_name = name;
                    files.push(Arc::new(file));
                    continue;
                }
            }
            if newer {
                info!(path = %path.display(), "deleting index file newer than the checkpoint");
                drop(file);
                fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            last_name = name;
            files.push(Arc::new(file));
        }
        let last_full_end_ts = files
            .iter()
            .rev()
            .find(|f| f.is_full())
            .map_or(0, |f| f.header().end_timestamp);
        debug!(dir = %dir.display(), files = files.len(), "index opened");
        Ok(IndexService {
            dir: dir.to_path_buf(),
            hash_slot_num,
            index_num,
            file_size,
            files: RwLock::new(files),
            writer: Mutex::new(WriterState { last_name }),
            last_full_end_ts: Arc::new(AtomicI64::new(last_full_end_ts)),
            repaired_below: repaired,
        })
    }

    /// Indexes one message: `topic#uniq_key` and `topic#k` for every non-empty space-separated
    /// `k` of `keys` (the KEYS property). Messages below the newest file's end phy offset were
    /// indexed before and are skipped (re-dispatch). Callers skip ROLLBACK transaction messages.
    pub fn build_index(
        &self,
        topic: &str,
        uniq_key: Option<&str>,
        keys: Option<&str>,
        phy_offset: u64,
        store_ts: i64,
    ) -> Result<()> {
        let mut st = self.writer.lock();
        let mut file = self.last_or_create(&mut st)?;
        let end_phy = file.header().end_phy_offset;
        if i64::try_from(phy_offset).map_or(true, |p| p < end_phy) {
            return Ok(());
        }
        let all_keys = uniq_key
            .into_iter()
            .chain(keys.into_iter().flat_map(|k| k.split(KEY_SEPARATOR)))
            .filter(|k| !k.is_empty());
        for key in all_keys {
            let hash = index_key_hash_of(topic, key);
            if !file.put(hash, phy_offset, store_ts) {
                file = self.roll(&mut st, &file)?;
                if !file.put(hash, phy_offset, store_ts) {
                    return Err(corrupt(&file.path, 0, "fresh index file refused an entry"));
                }
            }
        }
        Ok(())
    }

    fn last_or_create(&self, st: &mut WriterState) -> Result<Arc<IndexFile>> {
        if let Some(f) = self.files.read().last() {
            return Ok(Arc::clone(f));
        }
        self.create_file(st, 0, 0)
    }

    /// Creates the next file, continuing from `full`'s end, and flushes `full` in the background;
    /// once flushed, its end timestamp becomes [`last_full_file_end_ts`](Self::last_full_file_end_ts).
    fn roll(&self, st: &mut WriterState, full: &Arc<IndexFile>) -> Result<Arc<IndexFile>> {
        let h = full.header();
        let next = self.create_file(st, h.end_phy_offset, h.end_timestamp)?;
        let full = Arc::clone(full);
        let last_full = Arc::clone(&self.last_full_end_ts);
        let flush = move || match full.flush() {
            Ok(()) => {
                last_full.fetch_max(full.header().end_timestamp, Ordering::AcqRel);
            }
            Err(e) => warn!(error = %e, "index file flush failed; checkpoint not advanced"),
        };
        if let Err(e) = std::thread::Builder::new()
            .name("index-flush".into())
            .spawn(flush.clone())
        {
            warn!(error = %e, "cannot spawn index flush thread; flushing inline");
            flush();
        }
        Ok(next)
    }

    /// A new empty file (header copied from the previous file's end, indexCount 1), appended to
    /// the list. Created under a temporary name and renamed, so a crash leaves no short file.
    fn create_file(
        &self,
        st: &mut WriterState,
        end_phy: i64,
        end_ts: i64,
    ) -> Result<Arc<IndexFile>> {
        let mut name = file_name_for(chrono::Utc::now().timestamp_millis());
        if name <= st.last_name {
            name = name_after(&st.last_name);
        }
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        // Allocated, not sparse: a store into a hole of the mapping would raise SIGBUS once the
        // disk is full; reserving the blocks turns that into ENOSPC here (DiskFull). Not
        // zero-filled either: writing 420 MB of zeros stalled dispatch for seconds at each roll.
        create_allocated(&tmp, self.file_size).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            file_io_error(&tmp, e)
        })?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        let mut map = MappedMut::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let header = IndexHeader {
            begin_timestamp: end_ts.max(0),
            end_timestamp: end_ts.max(0),
            begin_phy_offset: end_phy.max(0),
            end_phy_offset: end_phy.max(0),
            hash_slot_count: 0,
            index_count: 1,
        };
        write_bytes(map.as_mut_slice(), 0, &header.encode())
            .ok_or_else(|| corrupt(&path, 0, "index file shorter than its header"))?;
        let file = Arc::new(IndexFile {
            name: name.clone(),
            path,
            hash_slot_num: self.hash_slot_num,
            index_num: self.index_num,
            map: RwLock::new(map),
            dirty: AtomicBool::new(true),
        });
        st.last_name = name;
        self.files.write().push(Arc::clone(&file));
        debug!(name = %file.name, "index file created");
        Ok(file)
    }

    /// Phy offsets of messages of `topic` with key `key` stored in `[begin_ms, end_ms]`, newest
    /// first, at most `max`. Hash collisions are possible: callers check the key of each record.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        let hash = index_key_hash_of(topic, key);
        let files = self.files.read();
        for f in files.iter().rev() {
            let Some(h) = f.select(hash, max, begin_ms, end_ms, &mut out) else {
                continue;
            };
            if h.begin_timestamp < begin_ms || out.len() >= max {
                break;
            }
        }
        out
    }

    /// (end timestamp, end phy offset) of the newest file; (0, 0) without files.
    pub fn last_update(&self) -> (i64, u64) {
        self.files.read().last().map_or((0, 0), |f| {
            let h = f.header();
            (
                h.end_timestamp,
                u64::try_from(h.end_phy_offset).unwrap_or(0),
            )
        })
    }

    /// CommitLog offset of the last indexed message (RocketMQ's `endPhyOffset`: the record's
    /// start; the index does not know record sizes). 0 without files.
    pub fn max_phy_end(&self) -> u64 {
        self.last_update().1
    }

    /// Where re-dispatch must start for the index after recovery: the repair cut when crash
    /// repair kept the newest file, else [`max_phy_end`](Self::max_phy_end).
    pub fn resume_from(&self) -> u64 {
        self.repaired_below.unwrap_or_else(|| self.max_phy_end())
    }

    /// Recovery: removes every entry whose phy offset is `>= phy_end`. Files wholly past it are
    /// deleted; the file holding the cut loses its newest entries in place.
    pub fn truncate_from_phy(&self, phy_end: u64) -> Result<()> {
        let _st = self.writer.lock();
        let mut files = self.files.write();
        let mut removed = Vec::new();
        // Newest first. A file whose end is below the cut keeps everything. A file with entries
        // past the cut loses them in place and stays if any entry is left. An empty file (or one
        // emptied) goes: its copied begin/end would make build_index skip re-dispatched messages.
        while let Some(last) = files.last() {
            let h = last.header();
            if u64::try_from(h.end_phy_offset).is_ok_and(|end| end < phy_end) {
                break;
            }
            if h.index_count > 1 && last.truncate_from_phy(phy_end) > 1 {
                break;
            }
            if let Some(f) = files.pop() {
                removed.push(f);
            }
        }
        let full_end = files
            .iter()
            .rev()
            .find(|f| f.is_full())
            .map_or(0, |f| f.header().end_timestamp);
        self.last_full_end_ts.fetch_min(full_end, Ordering::AcqRel);
        drop(files);
        for f in removed {
            info!(path = %f.path.display(), phy_end, "deleting index file past the recovered end");
            remove_file(f)?;
        }
        Ok(())
    }

    /// Retention: deletes the oldest files whose end phy offset is below `min_phy` (never the
    /// newest file). Returns how many were deleted.
    pub fn delete_files_below_phy(&self, min_phy: u64) -> Result<usize> {
        let _st = self.writer.lock();
        let mut files = self.files.write();
        let mut removed = Vec::new();
        while files.len() > 1 {
            let Some(first) = files.first() else { break };
            let end = first.header().end_phy_offset;
            if u64::try_from(end).map_or(true, |e| e < min_phy) {
                removed.push(files.remove(0));
            } else {
                break;
            }
        }
        drop(files);
        let n = removed.len();
        for f in removed {
            remove_file(f)?;
        }
        Ok(n)
    }

    /// End timestamp of the newest full index file known to be flushed: the value for the
    /// checkpoint's `indexMsgTimestamp`.
    pub fn last_full_file_end_ts(&self) -> i64 {
        self.last_full_end_ts.load(Ordering::Acquire)
    }

    /// Flushes every file (msync); then every full file counts as flushed.
    pub fn flush(&self) -> Result<()> {
        let files: Vec<Arc<IndexFile>> = self.files.read().clone();
        for f in &files {
            f.flush()?;
        }
        if let Some(f) = files.iter().rev().find(|f| f.is_full()) {
            self.last_full_end_ts
                .fetch_max(f.header().end_timestamp, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Names of the files, oldest first (for tests and `inspect`).
    pub fn file_names(&self) -> Vec<String> {
        self.files.read().iter().map(|f| f.name.clone()).collect()
    }
}

/// Unmaps (when the last reference goes; M2) and deletes a file.
fn remove_file(f: Arc<IndexFile>) -> Result<()> {
    let path = f.path.clone();
    drop(f);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hash::index_key_hash;
    use crate::hash::java_string_hash;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    const T0: i64 = 1_700_000_000_000;

    fn open(dir: &Path, slots: u32, num: u32) -> IndexService {
        IndexService::open(dir, slots, num, 0, true).unwrap()
    }

    #[test]
    fn header_golden_bytes() {
        // Built by hand from the reference's table (§5.4), all big-endian:
        // beginTimestamp 1700000000000 = 0x18BCFE56800, endTimestamp 1700000001000 = 0x18BCFE56BE8,
        // beginPhyOffset 0, endPhyOffset 4096 = 0x1000, hashSlotCount 1, indexCount 2.
        let h = IndexHeader {
            begin_timestamp: T0,
            end_timestamp: T0 + 1000,
            begin_phy_offset: 0,
            end_phy_offset: 4096,
            hash_slot_count: 1,
            index_count: 2,
        };
        let golden: [u8; 40] = [
            0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // beginTimestamp
            0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x6B, 0xE8, // endTimestamp
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // beginPhyOffset
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // endPhyOffset
            0x00, 0x00, 0x00, 0x01, // hashSlotCount
            0x00, 0x00, 0x00, 0x02, // indexCount
        ];
        assert_eq!(h.encode(), golden);
        assert_eq!(IndexHeader::decode(&golden), Some(h));
        assert_eq!(IndexHeader::decode(&golden[..39]), None);
        assert_eq!(
            index_file_size(HASH_SLOT_NUM_DEFAULT, INDEX_NUM_DEFAULT),
            420_000_040
        );
    }

    /// The bytes of a tiny file after two puts of one key, checked field by field against the
    /// layout: slot = abs(hash) % slots holds the newest index; entries chain to the previous one.
    #[test]
    fn file_golden_bytes_after_two_puts() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 4, 4);
        // "TopicTest#order-1".hashCode() = -1829193424; abs = 1829193424 = 0x6D0746D0; slot 0.
        assert_eq!(java_string_hash("TopicTest#order-1"), -1_829_193_424);
        svc.build_index("TopicTest", None, Some("order-1"), 4096, T0)
            .unwrap();
        svc.build_index("TopicTest", None, Some("order-1"), 8192, T0 + 2500)
            .unwrap();
        svc.flush().unwrap();
        let name = &svc.file_names()[0];
        let bytes = fs::read(dir.path().join(name)).unwrap();
        assert_eq!(bytes.len(), 40 + 4 * 4 + 4 * 20);
        let header = IndexHeader {
            begin_timestamp: T0,
            end_timestamp: T0 + 2500,
            begin_phy_offset: 4096,
            end_phy_offset: 8192,
            hash_slot_count: 1,
            index_count: 3,
        };
        assert_eq!(&bytes[..40], &header.encode());
        // Slots: slot 0 -> entry 2; others empty.
        assert_eq!(
            &bytes[40..56],
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // Entry 0 unused.
        assert_eq!(&bytes[56..76], &[0u8; 20]);
        // Entry 1: keyHash 0x6D0746D0 | phy 4096 | timeDiff 0 | prev 0.
        let e1: [u8; 20] = [
            0x6D, 0x07, 0x46, 0xD0, 0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(&bytes[76..96], &e1);
        // Entry 2: same hash | phy 8192 | timeDiff 2 s (2500 ms truncated) | prev 1.
        let e2: [u8; 20] = [
            0x6D, 0x07, 0x46, 0xD0, 0, 0, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 2, 0, 0, 0, 1,
        ];
        assert_eq!(&bytes[96..116], &e2);
        assert_eq!(
            svc.query("TopicTest", "order-1", 10, 0, i64::MAX),
            vec![8192, 4096]
        );
        assert_eq!(svc.last_update(), (T0 + 2500, 8192));
    }

    #[test]
    fn file_names_are_17_digits_and_increase() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 2, 2); // one entry per file: every key rolls
        for i in 0..20u64 {
            svc.build_index("T", Some(&format!("u{i}")), None, i * 10, T0 + i as i64)
                .unwrap();
        }
        let names = svc.file_names();
        assert_eq!(names.len(), 20);
        assert!(names.iter().all(|n| is_index_file_name(n)));
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert_eq!(name_after("20261121235959999"), "20261122000000000");
        // Not a valid time (month 99): the next number still sorts after it.
        assert_eq!(name_after("20269999000000000"), "20269999000000001");
    }

    /// A model of the index: key -> every (phy, ts) put under it, oldest first.
    #[derive(Default)]
    struct Model {
        by_key: HashMap<String, Vec<(u64, i64)>>,
    }

    impl Model {
        fn put(&mut self, key: &str, phy: u64, ts: i64) {
            self.by_key
                .entry(key.to_string())
                .or_default()
                .push((phy, ts));
        }

        fn query(&self, key: &str, max: usize, begin: i64, end: i64) -> Vec<u64> {
            self.by_key.get(key).map_or_else(Vec::new, |puts| {
                puts.iter()
                    .rev()
                    .filter(|(_, ts)| *ts >= begin && *ts <= end)
                    .map(|(phy, _)| *phy)
                    .take(max)
                    .collect()
            })
        }
    }

    fn keys_collide(keys: &[String]) -> bool {
        let mut seen = HashMap::new();
        keys.iter().any(|k| {
            seen.insert(index_key_hash(&index_key("T", k)), k.clone())
                .is_some_and(|o| o != *k)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Put/query against the model, with tiny slot counts (many bucket collisions) and tiny
        /// files (many rolls). Times are whole seconds so stored times are exact.
        #[test]
        fn query_matches_model(
            slots in 1u32..5,
            num in 2u32..9,
            msgs in proptest::collection::vec((0usize..6, 0usize..6, 0i64..3), 1..60),
            max in 1usize..10,
            window in (0i64..120, 0i64..120),
        ) {
            let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
            prop_assume!(!keys_collide(&keys));
            let dir = tempfile::tempdir().unwrap();
            let svc = open(dir.path(), slots, num);
            let mut model = Model::default();
            let mut ts = T0;
            for (i, (a, b, step)) in msgs.iter().enumerate() {
                ts += step * 1000;
                let phy = i as u64 * 100;
                let (ka, kb) = (&keys[*a], &keys[*b]);
                svc.build_index("T", Some(ka), Some(&format!(" {kb}  ")), phy, ts).unwrap();
                model.put(ka, phy, ts);
                model.put(kb, phy, ts);
            }
            let (lo, hi) = (T0 + window.0.min(window.1) * 1000, T0 + window.0.max(window.1) * 1000);
            for k in &keys {
                let mut want = model.query(k, usize::MAX, lo, hi);
                want.dedup(); // the same message under uniq key and KEYS counts twice in the index
                let got = svc.query("T", k, max * 2, lo, hi);
                let mut got_dedup = got.clone();
                got_dedup.dedup();
                let n = got_dedup.len();
                prop_assert_eq!(&got_dedup[..], &want[..n.min(want.len())], "key {}", k);
                if got.len() < max * 2 {
                    prop_assert_eq!(n, want.len(), "key {} missing results", k);
                }
                prop_assert!(got.len() <= max * 2);
            }
            drop(svc);
            let svc = open(dir.path(), slots, num);
            for k in &keys {
                let mut want = model.query(k, usize::MAX, i64::MIN, i64::MAX);
                want.dedup();
                let mut got = svc.query("T", k, usize::MAX, i64::MIN, i64::MAX);
                got.dedup();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn reindex_below_end_phy_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 8, 16);
        svc.build_index("T", Some("u1"), Some("a"), 100, T0)
            .unwrap();
        svc.build_index("T", Some("u2"), Some("a"), 200, T0)
            .unwrap();
        svc.build_index("T", Some("u1"), Some("a"), 100, T0)
            .unwrap();
        assert_eq!(svc.query("T", "a", 10, 0, i64::MAX), vec![200, 100]);
        assert_eq!(svc.query("T", "u1", 10, 0, i64::MAX), vec![100]);
        assert!(svc.query("Other", "a", 10, 0, i64::MAX).is_empty());
        assert!(svc.query("T", "a", 0, 0, i64::MAX).is_empty());
    }

    #[test]
    fn abnormal_restart_deletes_files_newer_than_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 4, 3); // two entries per file
        for i in 0..6i64 {
            svc.build_index(
                "T",
                Some(&format!("u{i}")),
                None,
                i as u64 * 10,
                T0 + i * 1000,
            )
            .unwrap();
        }
        svc.flush().unwrap();
        assert_eq!(svc.file_names().len(), 3);
        // Files end at T0+1000, T0+3000, T0+5000; all three are full.
        assert_eq!(svc.last_full_file_end_ts(), T0 + 5000);
        drop(svc);
        let svc = IndexService::open(dir.path(), 4, 3, T0 + 3000, false).unwrap();
        assert_eq!(svc.file_names().len(), 2);
        assert_eq!(svc.last_update(), (T0 + 3000, 30));
        assert!(svc.query("T", "u5", 10, 0, i64::MAX).is_empty());
        // Re-dispatch rebuilds.
        svc.build_index("T", Some("u5"), None, 50, T0 + 5000)
            .unwrap();
        assert_eq!(svc.query("T", "u5", 10, 0, i64::MAX), vec![50]);
        drop(svc);
        // A clean restart keeps everything.
        let svc = IndexService::open(dir.path(), 4, 3, 0, true).unwrap();
        assert_eq!(svc.query("T", "u5", 10, 0, i64::MAX), vec![50]);
    }

    #[test]
    fn crash_repair_keeps_entries_below_the_cut_and_rebuilds_slots() {
        let dir = tempfile::tempdir().unwrap();
        let (slots, num) = (8u32, 100u32);
        let svc = open(dir.path(), slots, num);
        let put = |svc: &IndexService, i: u64| {
            svc.build_index(
                "T",
                Some(&format!("u{i}")),
                Some("all"),
                i * 10,
                T0 + i as i64 * 1000,
            )
            .unwrap();
        };
        for i in 0..20u64 {
            put(&svc, i);
        }
        svc.flush().unwrap();
        drop(svc);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(names.len(), 1);
        let path = &names[0];
        let mut b = std::fs::read(path).unwrap();
        let entry = |index: usize| 40 + slots as usize * 4 + index * 20;
        // Crash damage past the cut: message 15's entries never reached the disk, and a slot
        // and the header point at entries that are gone.
        for x in &mut b[entry(31)..entry(33)] {
            *x = 0;
        }
        b[40..44].copy_from_slice(&31i32.to_be_bytes());
        b[36..40].copy_from_slice(&77i32.to_be_bytes());
        std::fs::write(path, &b).unwrap();
        // Every message below 125 (0..=12) was indexed before the checkpoint.
        let svc =
            IndexService::open_repairing(dir.path(), slots, num, 0, false, Some(125)).unwrap();
        assert_eq!(svc.resume_from(), 125);
        assert_eq!(svc.max_phy_end(), 120);
        let all: Vec<u64> = (0..=12).rev().map(|i| i * 10).collect();
        assert_eq!(svc.query("T", "all", 100, 0, i64::MAX), all);
        for i in 0..=12u64 {
            assert_eq!(
                svc.query("T", &format!("u{i}"), 10, 0, i64::MAX),
                vec![i * 10]
            );
        }
        assert!(svc.query("T", "u13", 10, 0, i64::MAX).is_empty());
        assert!(svc.query("T", "u16", 10, 0, i64::MAX).is_empty());
        // Re-dispatch from the cut indexes every later message exactly once.
        for i in 13..20u64 {
            put(&svc, i);
        }
        let all: Vec<u64> = (0..20).rev().map(|i| i * 10).collect();
        assert_eq!(svc.query("T", "all", 100, 0, i64::MAX), all);
        assert_eq!(svc.query("T", "u15", 10, 0, i64::MAX), vec![150]);
        svc.flush().unwrap();
        drop(svc);
        // A cut below every entry leaves nothing: the file goes, as without repair.
        let svc = IndexService::open_repairing(dir.path(), slots, num, 0, false, Some(0)).unwrap();
        assert!(svc.file_names().is_empty());
        assert_eq!(svc.resume_from(), 0);
    }

    #[test]
    fn truncate_from_phy_removes_entries_in_place_and_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 2, 5); // four entries per file, two slots
        for i in 0..10u64 {
            svc.build_index(
                "T",
                Some(&format!("u{i}")),
                Some("all"),
                i * 10,
                T0 + i as i64 * 1000,
            )
            .unwrap();
        }
        // 20 entries: files of 4 entries -> 5 files.
        assert_eq!(svc.file_names().len(), 5);
        svc.truncate_from_phy(45).unwrap(); // keep messages 0..=4
        assert_eq!(
            svc.query("T", "all", 100, 0, i64::MAX),
            vec![40, 30, 20, 10, 0]
        );
        assert!(svc.query("T", "u5", 100, 0, i64::MAX).is_empty());
        assert_eq!(svc.last_update().1, 40);
        // Re-dispatch continues after the cut.
        for i in 5..7u64 {
            svc.build_index(
                "T",
                Some(&format!("u{i}")),
                Some("all"),
                i * 10,
                T0 + i as i64 * 1000,
            )
            .unwrap();
        }
        assert_eq!(
            svc.query("T", "all", 100, 0, i64::MAX),
            vec![60, 50, 40, 30, 20, 10, 0]
        );
        assert_eq!(svc.query("T", "u5", 100, 0, i64::MAX), vec![50]);
        svc.flush().unwrap();
        drop(svc);
        let svc = open(dir.path(), 2, 5);
        assert_eq!(svc.query("T", "all", 3, 0, i64::MAX), vec![60, 50, 40]);
        svc.truncate_from_phy(0).unwrap();
        assert!(svc.file_names().is_empty());
        assert_eq!(svc.last_update(), (0, 0));
    }

    #[test]
    fn delete_files_below_phy_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 4, 3);
        for i in 0..6u64 {
            svc.build_index("T", Some(&format!("u{i}")), None, i * 10, T0)
                .unwrap();
        }
        assert_eq!(svc.delete_files_below_phy(15).unwrap(), 1); // file ends at 10
        assert_eq!(svc.file_names().len(), 2);
        assert!(svc.query("T", "u0", 10, 0, i64::MAX).is_empty());
        assert_eq!(svc.delete_files_below_phy(u64::MAX).unwrap(), 1);
        assert_eq!(svc.query("T", "u5", 10, 0, i64::MAX), vec![50]);
    }

    #[test]
    fn time_range_filters_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open(dir.path(), 4, 64);
        for i in 0..10i64 {
            svc.build_index("T", None, Some("k"), i as u64 * 10, T0 + i * 60_000)
                .unwrap();
        }
        assert_eq!(
            svc.query("T", "k", 100, T0 + 120_000, T0 + 300_000),
            vec![50, 40, 30, 20]
        );
        assert_eq!(svc.query("T", "k", 2, 0, i64::MAX), vec![90, 80]);
        assert!(svc
            .query("T", "k", 10, T0 + 10_000_000, i64::MAX)
            .is_empty());
    }

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) {
        fs::write(dir.join(name), bytes).unwrap();
    }

    /// Hand-made damage: a chain cycle, a self-loop, slot values past the count, a negative count
    /// and time differences; every query must end, and writes must go to a fresh file.
    #[test]
    fn damaged_chains_end_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (slots, num) = (1u32, 8u32);
        let hash = index_key_hash("T#k");
        let mut bytes = vec![0u8; index_file_size(slots, num) as usize];
        let header = IndexHeader {
            begin_timestamp: T0,
            end_timestamp: T0,
            begin_phy_offset: 0,
            end_phy_offset: 30,
            hash_slot_count: 1,
            index_count: 5,
        };
        bytes[..40].copy_from_slice(&header.encode());
        bytes[40..44].copy_from_slice(&3i32.to_be_bytes()); // slot -> 3
        let entry = |prev: i32, phy: i64| {
            Entry {
                key_hash: hash,
                phy_offset: phy,
                time_diff_s: 0,
                prev_index: prev,
            }
            .encode()
        };
        let at = |i: usize| 44 + i * 20;
        bytes[at(3)..at(3) + 20].copy_from_slice(&entry(2, 30)); // 3 -> 2
        bytes[at(2)..at(2) + 20].copy_from_slice(&entry(3, 20)); // 2 -> 3: a cycle
        write_file(dir.path(), "20260101000000000", &bytes);
        let svc = IndexService::open(dir.path(), slots, num, 0, true).unwrap();
        assert_eq!(svc.query("T", "k", 100, 0, i64::MAX), vec![30, 20]);
        drop(svc);
        // Self-loop.
        bytes[at(3)..at(3) + 20].copy_from_slice(&entry(3, 30));
        write_file(dir.path(), "20260101000000000", &bytes);
        let svc = IndexService::open(dir.path(), slots, num, 0, true).unwrap();
        assert_eq!(svc.query("T", "k", 100, 0, i64::MAX), vec![30]);
        drop(svc);
        // Slot pointing past the count, and a negative count.
        bytes[40..44].copy_from_slice(&i32::MAX.to_be_bytes());
        write_file(dir.path(), "20260101000000000", &bytes);
        let svc = IndexService::open(dir.path(), slots, num, 0, true).unwrap();
        assert!(svc.query("T", "k", 100, 0, i64::MAX).is_empty());
        drop(svc);
        bytes[36..40].copy_from_slice(&(-7i32).to_be_bytes());
        write_file(dir.path(), "20260101000000000", &bytes);
        let svc = IndexService::open(dir.path(), slots, num, 0, true).unwrap();
        assert!(svc.query("T", "k", 100, 0, i64::MAX).is_empty());
        svc.build_index("T", None, Some("k"), 100, T0).unwrap();
        assert_eq!(svc.file_names().len(), 2, "a damaged file is never written");
        assert_eq!(svc.query("T", "k", 100, 0, i64::MAX), vec![100]);
        // A file of the wrong size is ignored, not deleted.
        write_file(dir.path(), "20260101000000001", b"short");
        drop(svc);
        let svc = IndexService::open(dir.path(), slots, num, 0, true).unwrap();
        assert_eq!(svc.file_names().len(), 2);
        assert!(dir.path().join("20260101000000001").exists());
    }

    /// Random bytes as index files (seeded): open (clean and abnormal), query, build, truncate,
    /// delete: never a panic, never a hang.
    #[test]
    fn random_index_files_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1DE7_F11E);
        let (slots, num) = (3u32, 6u32);
        let size = index_file_size(slots, num) as usize;
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            for f in 0..rng.random_range(1..4) {
                let mut bytes = vec![0u8; size];
                // Mostly small values so chains look plausible, sometimes anything.
                for b in bytes.iter_mut() {
                    *b = if rng.random_bool(0.7) {
                        0
                    } else if rng.random_bool(0.5) {
                        rng.random_range(0..8)
                    } else {
                        rng.random()
                    };
                }
                write_file(dir.path(), &format!("2026010100000000{f}"), &bytes);
            }
            let clean = round % 2 == 0;
            let svc = IndexService::open(dir.path(), slots, num, rng.random(), clean).unwrap();
            for k in ["k", "a", "b", ""] {
                let _ = svc.query("T", k, 1000, i64::MIN, i64::MAX);
                let _ = svc.query("T", k, 3, rng.random(), rng.random());
            }
            let _ = svc.last_update();
            let _ = svc.build_index(
                "T",
                Some("u"),
                Some("a b"),
                rng.random_range(0..1 << 40),
                T0,
            );
            let _ = svc.truncate_from_phy(rng.random_range(0..1 << 40));
            let _ = svc.delete_files_below_phy(rng.random_range(0..1 << 40));
            let _ = svc.query("T", "a", 1000, i64::MIN, i64::MAX);
            svc.flush().unwrap();
        }
    }

    #[test]
    fn bad_sizes_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            IndexService::open(dir.path(), 0, 10, 0, true),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            IndexService::open(dir.path(), 10, 1, 0, true),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            IndexService::open(dir.path(), 10, u32::MAX, 0, true),
            Err(StoreError::Config(_))
        ));
    }
}
