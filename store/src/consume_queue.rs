//! ConsumeQueue: per (topic, queueId) files of 20-byte units pointing into the CommitLog.
//!
//! A queue lives in `consumequeue/<topic>/<queueId>/`, as fixed-size files named by the 20-digit
//! byte offset of their first unit in the queue's logical space (unit `n` is at byte `n * 20`).
//! Files are append-only [`MappedFile`]s: the single dispatcher thread writes through the last
//! file's [`MappedWriter`] and publishes each unit; readers copy units out below the published
//! offset. Readers take the segment list's read lock only for the copy; the write lock is taken by
//! rolls, truncation and retention, so a reader never sees a mapping change under it.
//!
//! Invariants:
//! * Q1. Files are contiguous: `segments[i].base == segments[0].base + i * file_size`, every base a
//!   multiple of `file_size`.
//! * Q2. Every file but the last is fully published; the writer (if any) belongs to the last file.
//! * Q3. Bytes at or above the end of the queue are zero on disk (recovery and truncation zero
//!   them), so a later crash cannot resurrect units from before a truncation.
//! * Q4. Non-blank units are in increasing phy order; `max_phy_end` is the end of the last one.

#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{debug, error, info, warn};

use crate::error::{Result, StoreError};
use crate::message_store::Boundary;
use crate::mmap::{create_allocated, MappedFile, MappedWriter};

/// Size of one ConsumeQueue unit (`CQ_STORE_UNIT_SIZE`).
pub const CQ_UNIT_SIZE_BYTES: u64 = 20;
/// Units per file by default (`mappedFileSizeConsumeQueue / 20`).
pub const CQ_FILE_UNITS_DEFAULT: u64 = 300_000;
/// Default file size, `mappedFileSizeConsumeQueue` = 6 000 000 bytes.
pub const CQ_FILE_SIZE_BYTES_DEFAULT: u64 = CQ_FILE_UNITS_DEFAULT * CQ_UNIT_SIZE_BYTES;
const _: () = assert!(CQ_FILE_SIZE_BYTES_DEFAULT.is_multiple_of(CQ_UNIT_SIZE_BYTES));
/// Largest file size we accept (1 GiB, far above RocketMQ's 6 MB default).
pub const CQ_FILE_SIZE_BYTES_MAX: u64 = 1 << 30;
/// Recovery scans the last this-many files unit by unit (RocketMQ starts at the third-last file);
/// older files are trusted to be full.
const RECOVER_FILES_MAX: usize = 3;
/// Longest topic name that may name a directory.
pub const TOPIC_LEN_MAX: usize = 255;
/// Digits of a ConsumeQueue file name (`UtilAll.offset2FileName`).
const FILE_NAME_DIGITS: usize = 20;
/// `read_units` never preallocates more than this many units, whatever the caller asks for.
const READ_UNITS_PREALLOC_MAX: usize = 1024;

// Format: { phy_offset: i64 | size: i32 | tags_code: i64 }, big-endian, 20 bytes.
const PHY_OFFSET_AT: usize = 0;
const SIZE_AT: usize = PHY_OFFSET_AT + 8;
const TAGS_CODE_AT: usize = SIZE_AT + 4;
const UNIT_END: usize = TAGS_CODE_AT + 8;
const _: () = assert!(UNIT_END as u64 == CQ_UNIT_SIZE_BYTES);

/// One ConsumeQueue unit: where a message's record is in the CommitLog, and its tag hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CqUnit {
    /// CommitLog offset of the record (stored as a non-negative int64).
    pub phy_offset: u64,
    /// Record size in bytes (stored as a positive int32).
    pub size: u32,
    /// Java `String.hashCode` of the tag (see [`crate::hash::tags_code`]); for
    /// `SCHEDULE_TOPIC_XXXX` the delivery timestamp.
    pub tags_code: i64,
}

impl CqUnit {
    /// The blank unit RocketMQ writes before the first unit of a queue that starts at a non-zero
    /// offset (`fillPreBlank`): `(0, Integer.MAX_VALUE, 0)`.
    pub const BLANK: CqUnit = CqUnit {
        phy_offset: 0,
        size: i32::MAX as u32,
        tags_code: 0,
    };

    pub fn is_blank(&self) -> bool {
        *self == Self::BLANK
    }

    /// Whether the unit can be stored and read back: `phy_offset` fits an int64 and `size` is a
    /// positive int32 (recovery keeps units while `phy >= 0 && size > 0`).
    pub fn is_storable(&self) -> bool {
        i64::try_from(self.phy_offset).is_ok() && self.size > 0 && i32::try_from(self.size).is_ok()
    }

    /// End of the record in the CommitLog; `None` if it overflows (never for a storable unit).
    pub fn phy_end(&self) -> Option<u64> {
        self.phy_offset.checked_add(u64::from(self.size))
    }

    /// The 20 big-endian bytes of the unit. A non-storable unit's fields are truncated to the
    /// on-disk widths (and would not decode back); `append` refuses such units.
    #[allow(clippy::indexing_slicing)] // constant, in-bounds ranges of a fixed-size array
    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[PHY_OFFSET_AT..SIZE_AT].copy_from_slice(&(self.phy_offset as i64).to_be_bytes());
        b[SIZE_AT..TAGS_CODE_AT].copy_from_slice(&(self.size as i32).to_be_bytes());
        b[TAGS_CODE_AT..UNIT_END].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    /// Decodes the first 20 bytes of `b`. `None` if `b` is shorter than 20 bytes or the unit is not
    /// valid by RocketMQ's rule (`phy >= 0 && size > 0`): zero bytes (the end of a queue) and torn
    /// units decode to `None`. A blank unit decodes to [`CqUnit::BLANK`].
    #[inline]
    pub fn decode(b: &[u8]) -> Option<CqUnit> {
        // Fixed-size chunks: one length check up front, none per field.
        let (phy, rest) = b.split_first_chunk::<{ SIZE_AT - PHY_OFFSET_AT }>()?;
        let (size, rest) = rest.split_first_chunk::<{ TAGS_CODE_AT - SIZE_AT }>()?;
        let (tags, _) = rest.split_first_chunk::<{ UNIT_END - TAGS_CODE_AT }>()?;
        let (phy, size) = (i64::from_be_bytes(*phy), i32::from_be_bytes(*size));
        let tags_code = i64::from_be_bytes(*tags);
        if phy < 0 || size <= 0 {
            return None;
        }
        Some(CqUnit {
            phy_offset: phy as u64,
            size: size as u32,
            tags_code,
        })
    }
}

/// Checks a topic name before it names a directory: RocketMQ's charset `^[%|a-zA-Z0-9_-]+$`,
/// 1..=255 bytes. This excludes `.`, `..`, path separators and NUL, so no name escapes the
/// `consumequeue` directory.
pub fn validate_topic_name(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.len() > TOPIC_LEN_MAX {
        return Err(StoreError::MessageIllegal(format!(
            "topic name length {} not in 1..={TOPIC_LEN_MAX}",
            topic.len()
        )));
    }
    let ok = topic
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'%' | b'|' | b'_' | b'-'));
    if !ok {
        return Err(StoreError::MessageIllegal(format!(
            "topic {topic:?} has characters outside [%|a-zA-Z0-9_-]"
        )));
    }
    Ok(())
}

/// Rounds a configured file size up to a whole number of units, as RocketMQ's getter does.
fn normalize_file_size(file_size: u64) -> Result<u64> {
    let units = file_size.div_ceil(CQ_UNIT_SIZE_BYTES);
    let size = units * CQ_UNIT_SIZE_BYTES;
    if size == 0 || size > CQ_FILE_SIZE_BYTES_MAX {
        return Err(StoreError::Config(format!(
            "mappedFileSizeConsumeQueue {file_size} must be in 1..={CQ_FILE_SIZE_BYTES_MAX}"
        )));
    }
    Ok(size)
}

/// Byte position of a queue offset in the queue's logical space.
fn queue_offset_to_pos(queue_offset: u64) -> Option<u64> {
    queue_offset.checked_mul(CQ_UNIT_SIZE_BYTES)
}

fn file_name(base: u64) -> String {
    format!("{base:0width$}", width = FILE_NAME_DIGITS)
}

fn parse_file_name(name: &str) -> Option<u64> {
    if name.len() != FILE_NAME_DIGITS || !name.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Creates an allocated (zero-reading) file under a temporary name and renames it into place, so
/// a crash mid-creation leaves a `.tmp` file (removed on open), never a short queue file.
fn create_file(dir: &Path, base: u64, file_size: u64) -> Result<Arc<MappedFile>> {
    let path = dir.join(file_name(base));
    let tmp = dir.join(format!("{}.tmp", file_name(base)));
    let _ = fs::remove_file(&tmp);
    create_allocated(&tmp, file_size).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_io_error(&tmp, e)
    })?;
    fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    sync_dir(dir)?;
    let map = MappedFile::open(&path, 0).map_err(|e| StoreError::io(&path, e))?;
    Ok(Arc::new(map))
}

/// An I/O error creating or growing a file: `DiskFull` when the disk is out of space (so the
/// broker answers SERVICE_NOT_AVAILABLE), `Io` otherwise.
pub(crate) fn file_io_error(path: &Path, e: io::Error) -> StoreError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        StoreError::DiskFull(format!("{}: {e}", path.display()))
    } else {
        StoreError::io(path, e)
    }
}

/// Appends zero bytes to `path` up to `len` and syncs, so every block of the file exists before
/// it is mapped (a store into a hole of a mapping raises SIGBUS when the disk is full).
fn extend_with_zeros(path: &Path, from: u64, len: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let zeros = vec![0u8; 1 << 16];
    let mut left = len.saturating_sub(from);
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(zeros.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    file.sync_all()
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

fn corrupt(file: &Path, at: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        file: file.to_path_buf(),
        at,
        reason: reason.into(),
    }
}

/// One file of a queue: its first byte position in the queue's logical space and its mapping.
struct Segment {
    base: u64,
    map: Arc<MappedFile>,
}

/// The writer side, touched only by the dispatcher (and by recovery/retention).
struct WriterState {
    /// Writer of the last segment (Q2); `None` when there is no segment.
    writer: Option<MappedWriter>,
}

/// One (topic, queueId): files `dir/<topic>/<queueId>/<20-digit byte offset>`, each `file_size`
/// bytes, append-only via [`MappedFile`]/[`MappedWriter`].
pub struct ConsumeQueue {
    topic: String,
    queue_id: u32,
    dir: PathBuf,
    file_size: u64,
    segments: RwLock<Vec<Segment>>,
    writer: Mutex<WriterState>,
    /// Logical position (bytes) up to which data is known flushed.
    flushed_pos: Mutex<u64>,
    /// First consumable queue offset (units); blanks and units retention moved past lie below.
    min_offset: AtomicU64,
    /// `phy_offset + size` of the last non-blank unit, 0 if none (Q4).
    max_phy_end: AtomicU64,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .field("min_offset", &self.min_offset())
            .field("max_offset", &self.max_offset())
            .field("max_phy_end", &self.max_phy_end())
            .finish()
    }
}

/// End of the queue's data (bytes, logical space): last segment's base plus what it published.
fn end_pos(segs: &[Segment]) -> u64 {
    segs.last().map_or(0, |s| s.base + s.map.published())
}

/// The segment holding logical byte `pos` and the position inside it (Q1 makes this O(1)).
fn locate(segs: &[Segment], file_size: u64, pos: u64) -> Option<(&Segment, u64)> {
    let first = segs.first()?;
    let rel = pos.checked_sub(first.base)?;
    let idx = usize::try_from(rel / file_size).ok()?;
    let seg = segs.get(idx)?;
    Some((seg, pos - seg.base))
}

fn unit_at(segs: &[Segment], file_size: u64, queue_offset: u64) -> Option<CqUnit> {
    let pos = queue_offset_to_pos(queue_offset)?;
    let (seg, in_file) = locate(segs, file_size, pos)?;
    CqUnit::decode(seg.map.read(in_file, CQ_UNIT_SIZE_BYTES)?)
}

/// First offset in `[lo, hi)` for which `pred` is false, assuming `pred` is true then false.
fn partition_point(mut lo: u64, mut hi: u64, mut pred: impl FnMut(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Phy end of the last non-blank unit in `[lo, hi)`, 0 if none.
fn last_phy_end(segs: &[Segment], file_size: u64, lo: u64, hi: u64) -> u64 {
    let mut q = hi;
    while q > lo {
        q -= 1;
        if let Some(u) = unit_at(segs, file_size, q) {
            if !u.is_blank() {
                return u.phy_end().unwrap_or(0);
            }
        }
    }
    0
}

/// A file found on disk when opening a queue.
struct FoundFile {
    base: u64,
    path: PathBuf,
    len: u64,
}

impl ConsumeQueue {
    /// Opens (creating the directory if needed) the queue `dir/<topic>/<queue_id>/` and recovers
    /// it: the last three files are scanned and units are kept while `phy >= 0 && size > 0`; a
    /// unit only partly present (a short last file) is dropped; everything after the first invalid
    /// unit is zeroed and later files are deleted. `file_size` is rounded up to a multiple of 20.
    pub fn open(dir: &Path, topic: &str, queue_id: u32, file_size: u64) -> Result<Self> {
        validate_topic_name(topic)?;
        let file_size = normalize_file_size(file_size)?;
        let qdir = dir.join(topic).join(queue_id.to_string());
        fs::create_dir_all(&qdir).map_err(|e| StoreError::io(&qdir, e))?;
        let found = list_files(&qdir, file_size)?;
        let (segs, writer) = recover_files(found, file_size)?;
        let cq = ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            dir: qdir,
            file_size,
            segments: RwLock::new(segs),
            writer: Mutex::new(WriterState { writer }),
            flushed_pos: Mutex::new(0),
            min_offset: AtomicU64::new(0),
            max_phy_end: AtomicU64::new(0),
        };
        cq.init_offsets();
        debug!(
            topic,
            queue_id,
            min = cq.min_offset(),
            max = cq.max_offset(),
            "consume queue opened"
        );
        Ok(cq)
    }

    /// Sets min offset (past the leading blanks of the first file) and max phy end after load.
    fn init_offsets(&self) {
        let segs = self.segments.read();
        *self.flushed_pos.lock() = end_pos(&segs);
        let Some(first) = segs.first() else {
            return;
        };
        let lo = first.base / CQ_UNIT_SIZE_BYTES;
        let hi = end_pos(&segs) / CQ_UNIT_SIZE_BYTES;
        // Pre-fill blanks only ever occupy the start of the first file.
        let first_end = ((first.base + first.map.published()) / CQ_UNIT_SIZE_BYTES).min(hi);
        let min = partition_point(lo, first_end, |q| {
            unit_at(&segs, self.file_size, q).is_some_and(|u| u.is_blank())
        });
        self.min_offset.store(min, Ordering::Release);
        let phy_end = last_phy_end(&segs, self.file_size, min, hi);
        self.max_phy_end.store(phy_end, Ordering::Release);
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// The queue's directory, `<consumequeue>/<topic>/<queueId>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File size in bytes (a multiple of 20).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// First consumable queue offset.
    pub fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// One past the last queue offset (exclusive).
    pub fn max_offset(&self) -> u64 {
        end_pos(&self.segments.read()) / CQ_UNIT_SIZE_BYTES
    }

    /// `phy_offset + size` of the last (non-blank) unit, 0 if the queue holds none.
    pub fn max_phy_end(&self) -> u64 {
        self.max_phy_end.load(Ordering::Acquire)
    }

    /// The unit at `queue_offset`, if it lies in `[min_offset, max_offset)`.
    pub fn get(&self, queue_offset: u64) -> Option<CqUnit> {
        if queue_offset < self.min_offset() {
            return None;
        }
        unit_at(&self.segments.read(), self.file_size, queue_offset)
    }

    /// Up to `max_units` consecutive units from `from`, stopping at the end of the queue.
    /// Empty if `from` is outside `[min_offset, max_offset)`.
    pub fn read_units(&self, from: u64, max_units: usize) -> Vec<CqUnit> {
        let mut out = Vec::with_capacity(max_units.min(READ_UNITS_PREALLOC_MAX));
        self.visit_units(from, max_units, |u| {
            out.push(*u);
            true
        });
        out
    }

    /// The units [`read_units`](Self::read_units) would return, handed to `visit` one by one
    /// without collecting them; `visit` returns false to stop early (that unit counts as
    /// visited). Returns how many units were visited. A pull scans up to 800 units for the tag
    /// filter but usually stops after its 32 messages, so decoding lazily saves the other ~770.
    pub fn visit_units(
        &self,
        from: u64,
        max_units: usize,
        mut visit: impl FnMut(&CqUnit) -> bool,
    ) -> usize {
        let mut seen = 0usize;
        if from < self.min_offset() || max_units == 0 {
            return seen;
        }
        let Some(mut pos) = queue_offset_to_pos(from) else {
            return seen;
        };
        let segs = self.segments.read();
        while seen < max_units {
            let Some((seg, in_file)) = locate(&segs, self.file_size, pos) else {
                break;
            };
            let avail = seg.map.published().saturating_sub(in_file) / CQ_UNIT_SIZE_BYTES;
            let want = (max_units - seen) as u64;
            let n = avail.min(want);
            if n == 0 {
                break;
            }
            let Some(bytes) = seg.map.read(in_file, n * CQ_UNIT_SIZE_BYTES) else {
                break;
            };
            for chunk in bytes.chunks_exact(CQ_UNIT_SIZE_BYTES as usize) {
                // Only disk damage after recovery can put an invalid unit below the end.
                let Some(unit) = CqUnit::decode(chunk) else {
                    return seen;
                };
                seen += 1;
                if !visit(&unit) {
                    return seen;
                }
            }
            pos += n * CQ_UNIT_SIZE_BYTES;
        }
        seen
    }

    /// Appends `unit` at `queue_offset`. Called by one dispatcher thread. Idempotent: a unit whose
    /// `phy_offset + size` is at or below [`max_phy_end`](Self::max_phy_end), or whose offset is
    /// already written, is ignored. A queue whose first unit has a non-zero offset starts with
    /// blank units up to it (below `min_offset`); a later jump forward of at most one file's worth
    /// of units is filled with blank units too, and a longer one is logged and the unit appended at
    /// the end of the queue (RocketMQ's behaviour), so dispatch never stalls on a bad offset.
    pub fn append(&self, queue_offset: u64, unit: CqUnit) -> Result<()> {
        let mut st = self.writer.lock();
        self.append_locked(&mut st, queue_offset, unit)
    }

    /// [`append`](Self::append) of each `(queue_offset, unit)` in order, under one lock: the
    /// dispatcher hands over the units of consecutive records of one queue together. Stops at the
    /// first error; the units before it are written.
    pub fn append_all(&self, units: &[(u64, CqUnit)]) -> Result<()> {
        let mut st = self.writer.lock();
        for &(queue_offset, unit) in units {
            self.append_locked(&mut st, queue_offset, unit)?;
        }
        Ok(())
    }

    fn append_locked(&self, st: &mut WriterState, queue_offset: u64, unit: CqUnit) -> Result<()> {
        if !unit.is_storable() {
            return Err(corrupt(
                &self.dir,
                queue_offset,
                format!(
                    "unit {unit:?} cannot be stored (phy > i64::MAX or size not in 1..=i32::MAX)"
                ),
            ));
        }
        let phy_end = unit.phy_end().unwrap_or(u64::MAX);
        if phy_end <= self.max_phy_end() {
            return Ok(());
        }
        let Some(pos) = queue_offset_to_pos(queue_offset)
            .filter(|p| i64::try_from(p.saturating_add(self.file_size)).is_ok())
        else {
            // Only a damaged record can carry such an offset; refusing it would stall dispatch.
            error!(topic = %self.topic, queue_id = self.queue_id, queue_offset,
                "queue offset out of range; unit not stored");
            return Ok(());
        };
        {
            // The common case in one look at the files: the next unit of a queue that has units,
            // inside its last file.
            let segs = self.segments.read();
            if let Some(last) = segs.last() {
                let published = last.map.published();
                let in_file = pos.wrapping_sub(last.base);
                if pos == last.base + published
                    && (published > 0 || segs.len() > 1)
                    && in_file + CQ_UNIT_SIZE_BYTES <= self.file_size
                {
                    drop(segs);
                    let writer = st
                        .writer
                        .as_mut()
                        .ok_or_else(|| corrupt(&self.dir, pos, "no writer for the last file"))?;
                    writer.write(in_file, &unit.encode());
                    writer.publish(in_file + CQ_UNIT_SIZE_BYTES);
                    self.max_phy_end.store(phy_end, Ordering::Release);
                    return Ok(());
                }
            }
        }
        let end = end_pos(&self.segments.read());
        let mut at = pos;
        if pos < end {
            // Also for an emptied queue (its one file starts at `end`): offsets never go back.
            debug!(topic = %self.topic, queue_id = self.queue_id, queue_offset, "unit already built");
            return Ok(());
        } else if self.is_empty_locked() {
            self.start_at(st, pos)?;
        } else if pos > end {
            let gap_units = (pos - end) / CQ_UNIT_SIZE_BYTES;
            if gap_units > self.file_size / CQ_UNIT_SIZE_BYTES {
                // Blank-filling an arbitrary jump could fill the disk, and refusing the unit would
                // stall dispatch for good: append at the end, as RocketMQ does for any mismatch.
                error!(topic = %self.topic, queue_id = self.queue_id, expected = end / CQ_UNIT_SIZE_BYTES,
                    got = queue_offset, "queue offset jumps too far; appending at the queue's end");
                at = end;
            } else {
                warn!(topic = %self.topic, queue_id = self.queue_id, from = end / CQ_UNIT_SIZE_BYTES,
                    to = queue_offset, "queue offset jumps; filling blank units");
                self.write_blanks(st, end, pos)?;
            }
        }
        self.write_at(st, at, &unit.encode())?;
        self.max_phy_end.store(phy_end, Ordering::Release);
        Ok(())
    }

    /// True if no byte was ever written (no file, or one empty file).
    fn is_empty_locked(&self) -> bool {
        let segs = self.segments.read();
        match segs.as_slice() {
            [] => true,
            [only] => only.map.published() == 0,
            _ => false,
        }
    }

    /// First unit of an empty queue at logical byte `pos`: the first file starts at the file
    /// boundary below `pos`, and blank units fill it up to `pos` (`fillPreBlank`).
    fn start_at(&self, st: &mut WriterState, pos: u64) -> Result<()> {
        let base = pos - pos % self.file_size;
        {
            let mut segs = self.segments.write();
            if segs.first().is_some_and(|s| s.base != base) {
                // One empty file at the wrong place: replace it.
                st.writer = None;
                let old: Vec<Segment> = segs.drain(..).collect();
                remove_segments(old);
            }
            if segs.is_empty() {
                let map = create_file(&self.dir, base, self.file_size)?;
                st.writer = map.writer();
                segs.push(Segment { base, map });
            }
        }
        *self.flushed_pos.lock() = base;
        self.min_offset
            .store(pos / CQ_UNIT_SIZE_BYTES, Ordering::Release);
        if pos > base {
            info!(topic = %self.topic, queue_id = self.queue_id, first = pos / CQ_UNIT_SIZE_BYTES,
                "queue starts at a non-zero offset; pre-filling blank units");
            self.write_blanks(st, base, pos)?;
        }
        Ok(())
    }

    fn write_blanks(&self, st: &mut WriterState, from: u64, to: u64) -> Result<()> {
        let blank = CqUnit::BLANK.encode();
        let units = usize::try_from((to - from) / CQ_UNIT_SIZE_BYTES)
            .map_err(|_| corrupt(&self.dir, to, "blank fill too large"))?;
        let bytes: Vec<u8> = blank
            .iter()
            .copied()
            .cycle()
            .take(units * blank.len())
            .collect();
        self.write_at(st, from, &bytes)
    }

    /// Writes `data` at the end of the queue (`pos` must be the end), rolling files as needed, and
    /// publishes it.
    fn write_at(&self, st: &mut WriterState, mut pos: u64, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (base, end) = {
                let segs = self.segments.read();
                let end = end_pos(&segs);
                (segs.last().map(|s| s.base), end)
            };
            assert_eq!(pos, end, "consume queue writes must be sequential");
            let base = match base {
                Some(b) if pos < b + self.file_size => b,
                _ => self.roll(st, pos)?,
            };
            let in_file = pos - base;
            let room = usize::try_from(self.file_size - in_file).unwrap_or(usize::MAX);
            let (chunk, rest) = data.split_at(room.min(data.len()));
            let writer = st
                .writer
                .as_mut()
                .ok_or_else(|| corrupt(&self.dir, pos, "no writer for the last file"))?;
            writer.write(in_file, chunk);
            writer.publish(in_file + chunk.len() as u64);
            pos += chunk.len() as u64;
            data = rest;
        }
        Ok(())
    }

    /// Adds the next file, starting at `pos` (a file boundary), and makes its writer current.
    fn roll(&self, st: &mut WriterState, pos: u64) -> Result<u64> {
        assert_eq!(pos % self.file_size, 0, "roll off a file boundary");
        let map = create_file(&self.dir, pos, self.file_size)?;
        st.writer = map.writer();
        self.segments.write().push(Segment { base: pos, map });
        Ok(pos)
    }

    /// Drops every unit with `phy_offset >= phy_end` (CommitLog recovery cut the log there).
    /// Bytes past the new end are zeroed and flushed; files wholly past it are deleted.
    pub fn truncate_from_phy(&self, phy_end: u64) -> Result<()> {
        let mut st = self.writer.lock();
        let mut segs = self.segments.write();
        let min = self.min_offset();
        let max = end_pos(&segs) / CQ_UNIT_SIZE_BYTES;
        let mut cut = max;
        while cut > min {
            match unit_at(&segs, self.file_size, cut - 1) {
                Some(u) if !u.is_blank() && u.phy_offset < phy_end => break,
                _ => cut -= 1,
            }
        }
        if cut == max {
            return Ok(());
        }
        info!(topic = %self.topic, queue_id = self.queue_id, from = cut, to = max, phy_end,
            "truncating consume queue");
        let cut_pos = cut * CQ_UNIT_SIZE_BYTES;
        st.writer = None;
        // Keep the files that start below the cut; the last of them holds it. The first file is
        // kept even when the cut is at its start, so that `max_offset` never goes below the cut.
        let keep = segs.iter().take_while(|s| s.base < cut_pos).count().max(1);
        let mut tail: Vec<Segment> = segs.drain(keep..).collect();
        // The last kept file may hold the cut; rewrite its tail through a fresh mapping.
        if let Some(last) = segs.pop() {
            let in_file = cut_pos - last.base;
            let published = last.map.published();
            let path = last.map.path().to_path_buf();
            assert_eq!(
                Arc::strong_count(&last.map),
                1,
                "a consume queue mapping escaped"
            );
            drop(last);
            let map =
                Arc::new(MappedFile::open(&path, in_file).map_err(|e| StoreError::io(&path, e))?);
            let mut writer = map
                .writer()
                .ok_or_else(|| corrupt(&path, in_file, "fresh mapping has a writer"))?;
            zero_range(&mut writer, in_file, published)?;
            st.writer = Some(writer);
            segs.push(Segment {
                base: cut_pos - in_file,
                map,
            });
        }
        tail.reverse();
        remove_segments(tail);
        self.min_offset.store(min.min(cut), Ordering::Release);
        // Units below `min_offset` still count for idempotency: scan from the first file.
        let first = segs.first().map_or(0, |s| s.base / CQ_UNIT_SIZE_BYTES);
        self.max_phy_end.store(
            last_phy_end(&segs, self.file_size, first, cut),
            Ordering::Release,
        );
        let new_end = end_pos(&segs);
        // `flush` takes `flushed_pos` before the segment lock: release ours first.
        drop(segs);
        let mut flushed = self.flushed_pos.lock();
        *flushed = (*flushed).min(new_end);
        Ok(())
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP: binary search over `[min_offset, max_offset)` by store time.
    /// `Lower`: the first offset whose store time is `>= ts_ms` (max offset if all are earlier).
    /// `Upper`: the last offset whose store time is `<= ts_ms` (min offset if all are later).
    /// Units whose store time is unknown (`store_time_of` gives `None`, e.g. the record was
    /// deleted) count as earlier than any time, as RocketMQ skips units below the log's minimum.
    pub fn search_offset_by_time(
        &self,
        ts_ms: i64,
        boundary: Boundary,
        store_time_of: &dyn Fn(&CqUnit) -> Option<i64>,
    ) -> u64 {
        let lo = self.min_offset();
        let hi = self.max_offset();
        if lo >= hi {
            return lo.min(hi);
        }
        let time_at = |q: u64| {
            self.get(q)
                .filter(|u| !u.is_blank())
                .and_then(|u| store_time_of(&u))
        };
        match boundary {
            Boundary::Lower => partition_point(lo, hi, |q| time_at(q).is_none_or(|t| t < ts_ms)),
            Boundary::Upper => {
                let first_after =
                    partition_point(lo, hi, |q| time_at(q).is_none_or(|t| t <= ts_ms));
                if first_after > lo {
                    first_after - 1
                } else {
                    lo
                }
            }
        }
    }

    /// Retention: deletes leading files whose last unit points below `min_phy` (never the last
    /// file), then moves `min_offset` to the first unit whose record is at or above `min_phy`.
    /// Returns the number of files deleted. Calling it right after `open` with the CommitLog's
    /// minimum offset sets `min_offset` as RocketMQ's `correctMinOffset` does.
    pub fn delete_files_below_phy(&self, min_phy: u64) -> Result<usize> {
        let _st = self.writer.lock();
        let mut segs = self.segments.write();
        let mut removed = Vec::new();
        while segs.len() > 1 {
            let Some(first) = segs.first() else { break };
            let last_unit = first
                .map
                .read(self.file_size - CQ_UNIT_SIZE_BYTES, CQ_UNIT_SIZE_BYTES)
                .and_then(CqUnit::decode);
            match last_unit {
                Some(u) if u.phy_offset < min_phy => removed.push(segs.remove(0)),
                _ => break,
            }
        }
        let n = removed.len();
        if let Some(first) = segs.first() {
            let lo = self.min_offset().max(first.base / CQ_UNIT_SIZE_BYTES);
            let hi = end_pos(&segs) / CQ_UNIT_SIZE_BYTES;
            let min = partition_point(lo, hi, |q| {
                unit_at(&segs, self.file_size, q)
                    .is_none_or(|u| u.is_blank() || u.phy_offset < min_phy)
            });
            self.min_offset.store(min, Ordering::Release);
        }
        drop(segs);
        if n > 0 {
            info!(topic = %self.topic, queue_id = self.queue_id, files = n, min_phy,
                "deleted expired consume queue files");
        }
        remove_segments(removed);
        Ok(n)
    }

    /// Flushes (msync) every unit appended since the last flush. An error means the kernel may
    /// have dropped data: the caller must stop trusting the store.
    pub fn flush(&self) -> Result<()> {
        let mut flushed = self.flushed_pos.lock();
        let segs = self.segments.read();
        let end = end_pos(&segs);
        let from = (*flushed).max(segs.first().map_or(0, |s| s.base));
        if from >= end {
            return Ok(());
        }
        for seg in segs.iter() {
            let seg_end = seg.base + seg.map.published();
            if seg_end <= from || seg.base >= end {
                continue;
            }
            let start = from.max(seg.base) - seg.base;
            let len = seg_end.min(end) - seg.base - start;
            seg.map
                .flush_range(start, len)
                .map_err(|e| StoreError::io(seg.map.path(), e))?;
        }
        *flushed = end;
        Ok(())
    }
}

/// Zeroes the non-zero bytes of `[from, to)` through the writer (both unpublished) and flushes
/// them, so stale units past the end of the queue cannot come back after a crash (Q3).
fn zero_range(writer: &mut MappedWriter, from: u64, to: u64) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let dirty_end = match writer.view(from, to - from) {
        Some(bytes) => bytes
            .iter()
            .rposition(|&b| b != 0)
            .map(|i| from + i as u64 + 1),
        None => Some(to),
    };
    if let Some(dirty_end) = dirty_end {
        let len = usize::try_from(dirty_end - from).unwrap_or(0);
        writer.write(from, &vec![0u8; len]);
        let map = writer.mapped();
        map.flush_range(from, dirty_end - from)
            .map_err(|e| StoreError::io(map.path(), e))?;
    }
    Ok(())
}

/// Unmaps and deletes files (the mapping goes first; M2).
/// `remove_dir_all`, where a directory already gone is fine.
fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(dir, e)),
        _ => Ok(()),
    }
}

fn remove_segments(segs: Vec<Segment>) {
    for seg in segs {
        let path = seg.map.path().to_path_buf();
        drop(seg);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!(path = %path.display(), error = %e, "cannot delete consume queue file");
            }
        }
    }
}

/// Lists a queue directory: queue files sorted by base, checked for Q1. Stray `.tmp` files from
/// an interrupted creation are removed; other names are ignored with a warning.
fn list_files(qdir: &Path, file_size: u64) -> Result<Vec<FoundFile>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(qdir).map_err(|e| StoreError::io(qdir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(qdir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(&path);
            continue;
        }
        let Some(base) = parse_file_name(&name) else {
            warn!(path = %path.display(), "ignoring unexpected file in consume queue directory");
            continue;
        };
        let meta = entry.metadata().map_err(|e| StoreError::io(&path, e))?;
        if !meta.is_file() {
            warn!(path = %path.display(), "ignoring non-file in consume queue directory");
            continue;
        }
        found.push(FoundFile {
            base,
            path,
            len: meta.len(),
        });
    }
    found.sort_by_key(|f| f.base);
    let first_base = found.first().map_or(0, |f| f.base);
    for (i, f) in found.iter().enumerate() {
        let expected = (i as u64)
            .checked_mul(file_size)
            .and_then(|x| x.checked_add(first_base));
        if f.base % file_size != 0 || expected != Some(f.base) {
            return Err(corrupt(
                &f.path,
                f.base,
                format!("consume queue files are not contiguous multiples of {file_size}"),
            ));
        }
        if f.len > file_size || (f.len != file_size && i + 1 != found.len()) {
            return Err(corrupt(
                &f.path,
                f.len,
                format!(
                    "file length {} does not match mappedFileSizeConsumeQueue {file_size}",
                    f.len
                ),
            ));
        }
    }
    Ok(found)
}

/// Maps the files; scans the last `RECOVER_FILES_MAX` of them for the end of valid units, zeroes
/// what follows it and deletes files past it. Returns the segments and the last file's writer.
fn recover_files(
    found: Vec<FoundFile>,
    file_size: u64,
) -> Result<(Vec<Segment>, Option<MappedWriter>)> {
    let scan_from = found.len().saturating_sub(RECOVER_FILES_MAX);
    let mut segs = Vec::with_capacity(found.len());
    let mut writer = None;
    let mut ended = false;
    for (i, f) in found.into_iter().enumerate() {
        if ended {
            info!(path = %f.path.display(), "deleting consume queue file past the recovered end");
            fs::remove_file(&f.path).map_err(|e| StoreError::io(&f.path, e))?;
            continue;
        }
        if i < scan_from {
            let map =
                MappedFile::open(&f.path, file_size).map_err(|e| StoreError::io(&f.path, e))?;
            segs.push(Segment {
                base: f.base,
                map: Arc::new(map),
            });
            continue;
        }
        // Only whole units present in the file count: a short (torn) file loses its partial unit.
        let whole = f.len / CQ_UNIT_SIZE_BYTES * CQ_UNIT_SIZE_BYTES;
        if f.len < file_size {
            warn!(path = %f.path.display(), len = f.len, "short consume queue file; extending");
            extend_with_zeros(&f.path, f.len, file_size).map_err(|e| file_io_error(&f.path, e))?;
        }
        let map = Arc::new(MappedFile::open(&f.path, 0).map_err(|e| StoreError::io(&f.path, e))?);
        let mut w = map
            .writer()
            .ok_or_else(|| corrupt(&f.path, 0, "fresh mapping has a writer"))?;
        let valid = w.view(0, whole).map_or(0, |bytes| {
            bytes
                .chunks_exact(CQ_UNIT_SIZE_BYTES as usize)
                .take_while(|c| CqUnit::decode(c).is_some())
                .count() as u64
                * CQ_UNIT_SIZE_BYTES
        });
        if valid < file_size {
            ended = true;
            if valid < whole {
                info!(path = %f.path.display(), at = valid, "consume queue ends inside the file");
            }
            zero_range(&mut w, valid, file_size)?;
        }
        w.publish(valid);
        writer = Some(w);
        segs.push(Segment { base: f.base, map });
    }
    Ok((segs, writer))
}

/// All queues under one `consumequeue` directory, by topic and queue id.
pub struct ConsumeQueues {
    dir: PathBuf,
    file_size: u64,
    queues: RwLock<HashMap<String, HashMap<u32, Arc<ConsumeQueue>>>>,
}

impl std::fmt::Debug for ConsumeQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueues")
            .field("dir", &self.dir)
            .field("file_size", &self.file_size)
            .finish()
    }
}

impl ConsumeQueues {
    /// Opens `dir` (the `consumequeue` directory itself, created if missing) and loads and
    /// recovers every queue in it. Directories whose names are not valid topics or queue ids are
    /// ignored with a warning.
    pub fn open(dir: &Path, file_size: u64) -> Result<Self> {
        let file_size = normalize_file_size(file_size)?;
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut queues: HashMap<String, HashMap<u32, Arc<ConsumeQueue>>> = HashMap::new();
        for topic_entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let topic_entry = topic_entry.map_err(|e| StoreError::io(dir, e))?;
            let topic = topic_entry.file_name().to_string_lossy().into_owned();
            let tpath = topic_entry.path();
            if !tpath.is_dir() || validate_topic_name(&topic).is_err() {
                warn!(path = %tpath.display(), "ignoring entry in consumequeue directory");
                continue;
            }
            for q_entry in fs::read_dir(&tpath).map_err(|e| StoreError::io(&tpath, e))? {
                let q_entry = q_entry.map_err(|e| StoreError::io(&tpath, e))?;
                let name = q_entry.file_name().to_string_lossy().into_owned();
                let queue_id = name.parse::<u32>().ok().filter(|q| q.to_string() == name);
                let Some(queue_id) = queue_id.filter(|_| q_entry.path().is_dir()) else {
                    warn!(path = %q_entry.path().display(), "ignoring entry in topic directory");
                    continue;
                };
                let cq = ConsumeQueue::open(dir, &topic, queue_id, file_size)?;
                queues
                    .entry(topic.clone())
                    .or_default()
                    .insert(queue_id, Arc::new(cq));
            }
        }
        Ok(ConsumeQueues {
            dir: dir.to_path_buf(),
            file_size,
            queues: RwLock::new(queues),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    /// The queue, created (directory and all) if new. The topic name is validated first.
    pub fn get_or_create(&self, topic: &str, queue_id: u32) -> Result<Arc<ConsumeQueue>> {
        if let Some(cq) = self.get(topic, queue_id) {
            return Ok(cq);
        }
        validate_topic_name(topic)?;
        let mut queues = self.queues.write();
        let per_topic = queues.entry(topic.to_string()).or_default();
        if let Some(cq) = per_topic.get(&queue_id) {
            return Ok(Arc::clone(cq));
        }
        let cq = Arc::new(ConsumeQueue::open(
            &self.dir,
            topic,
            queue_id,
            self.file_size,
        )?);
        per_topic.insert(queue_id, Arc::clone(&cq));
        Ok(cq)
    }

    /// Removes every queue of `topic` and its directory (DELETE_TOPIC). A queue handed out
    /// before stays readable through its mappings (the files are unlinked) but is no longer found
    /// here; the dispatcher holds its step lock around this, so it never writes to one removed.
    /// Returns how many queues were removed.
    pub fn remove_topic(&self, topic: &str) -> Result<usize> {
        validate_topic_name(topic)?;
        let removed = self.queues.write().remove(topic);
        let n = removed.map_or(0, |m| m.len());
        remove_dir(&self.dir.join(topic))?;
        crate::commit_log::sync_dir(&self.dir)?;
        Ok(n)
    }

    /// Removes the queues that hold the deleted incarnation of a tombstoned topic: those whose
    /// units all lie below the cut (a crash between the tombstone and the removal left them; a
    /// queue never mixes both incarnations, since the new one starts only after the removal).
    /// Returns how many queues were removed.
    pub fn remove_deleted(&self, tombstones: &crate::tombstone::TombstoneMap) -> Result<usize> {
        let mut n = 0;
        for (topic, &cut) in tombstones {
            let doomed: Vec<u32> = match self.queues.read().get(topic.as_str()) {
                Some(per) => per
                    .iter()
                    .filter(|(_, q)| q.max_phy_end() <= cut)
                    .map(|(&id, _)| id)
                    .collect(),
                None => continue,
            };
            for id in doomed {
                let mut queues = self.queues.write();
                if let Some(per) = queues.get_mut(topic.as_str()) {
                    per.remove(&id);
                    if per.is_empty() {
                        queues.remove(topic.as_str());
                    }
                }
                drop(queues);
                warn!(topic = %topic, queue_id = id, cut, "removing a deleted topic's leftover ConsumeQueue");
                remove_dir(&self.dir.join(topic).join(id.to_string()))?;
                n += 1;
            }
            if !self.queues.read().contains_key(topic.as_str()) {
                remove_dir(&self.dir.join(topic))?;
            }
        }
        if n > 0 {
            crate::commit_log::sync_dir(&self.dir)?;
        }
        Ok(n)
    }

    /// Every queue, in no particular order.
    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Max of every queue's `max_phy_end` (RocketMQ's `dispatchFromPhyOffset` after recovery).
    pub fn max_phy_end(&self) -> u64 {
        self.all()
            .iter()
            .map(|q| q.max_phy_end())
            .max()
            .unwrap_or(0)
    }

    /// Drops, in every queue, the units with `phy_offset >= phy_end`.
    pub fn truncate_from_phy(&self, phy_end: u64) -> Result<()> {
        for q in self.all() {
            q.truncate_from_phy(phy_end)?;
        }
        Ok(())
    }

    /// Retention over every queue; returns the number of files deleted.
    pub fn delete_files_below_phy(&self, min_phy: u64) -> Result<usize> {
        let mut n = 0;
        for q in self.all() {
            n += q.delete_files_below_phy(min_phy)?;
        }
        Ok(n)
    }

    /// Flushes every queue; tries them all and returns the first error.
    pub fn flush_all(&self) -> Result<()> {
        let mut first_err = None;
        for q in self.all() {
            if let Err(e) = q.flush() {
                warn!(topic = %q.topic(), queue_id = q.queue_id(), error = %e, "consume queue flush failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 5 units per file, so tests cross file boundaries often.
    const SMALL: u64 = 5 * CQ_UNIT_SIZE_BYTES;

    fn unit(i: u64) -> CqUnit {
        CqUnit {
            phy_offset: i * 100,
            size: 100,
            tags_code: i as i64 - 3,
        }
    }

    fn fill(cq: &ConsumeQueue, n: u64) {
        for i in 0..n {
            cq.append(i, unit(i)).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn cq_unit_golden_bytes() {
        // Built by hand from the reference's table (§5.3): int64 commitlog offset, int32 size,
        // int64 tagsCode, all big-endian. phy = 4096 = 0x1000, size = 250 = 0xFA,
        // tagsCode = "TagA".hashCode() = 2598919 = 0x27A807.
        let u = CqUnit {
            phy_offset: 4096,
            size: 250,
            tags_code: 2_598_919,
        };
        let golden: [u8; 20] = [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // phy offset
            0x00, 0x00, 0x00, 0xFA, // size
            0x00, 0x00, 0x00, 0x00, 0x00, 0x27, 0xA8, 0x07, // tags code
        ];
        assert_eq!(u.encode(), golden);
        assert_eq!(CqUnit::decode(&golden), Some(u));
        // A negative tags code (a hash below zero) is sign-extended to 64 bits.
        let neg = CqUnit { tags_code: -1, ..u };
        assert_eq!(&neg.encode()[12..], &[0xFF; 8]);
        // fillPreBlank's unit: (0, Integer.MAX_VALUE, 0).
        let blank: [u8; 20] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(CqUnit::BLANK.encode(), blank);
        assert!(CqUnit::decode(&blank).unwrap().is_blank());
    }

    #[test]
    fn cq_unit_decode_rejects_invalid() {
        assert_eq!(CqUnit::decode(&[0u8; 19]), None);
        assert_eq!(CqUnit::decode(&[0u8; 20]), None, "zeros end a queue");
        let mut neg_phy = unit(1).encode();
        neg_phy[0] = 0x80;
        assert_eq!(CqUnit::decode(&neg_phy), None);
        let mut neg_size = unit(1).encode();
        neg_size[8] = 0x80;
        assert_eq!(CqUnit::decode(&neg_size), None);
        // Extra trailing bytes are ignored.
        let mut long = unit(2).encode().to_vec();
        long.extend_from_slice(&[9; 7]);
        assert_eq!(CqUnit::decode(&long), Some(unit(2)));
        assert!(!CqUnit { size: 0, ..unit(1) }.is_storable());
        assert!(!CqUnit {
            phy_offset: 1 << 63,
            ..unit(1)
        }
        .is_storable());
        assert!(!CqUnit {
            size: 1 << 31,
            ..unit(1)
        }
        .is_storable());
    }

    proptest! {
        /// `append_all` of a run (the dispatcher's batches, with repeats, jumps and far jumps)
        /// leaves the same files as `append` of each unit: same units, offsets and phy end.
        #[test]
        fn append_all_matches_appending_one_by_one(
            steps in proptest::collection::vec((0u64..4, prop::bool::weighted(0.05), 1usize..9), 1..12),
        ) {
            let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let a = ConsumeQueue::open(a_dir.path(), "T", 0, SMALL).unwrap();
            let b = ConsumeQueue::open(b_dir.path(), "T", 0, SMALL).unwrap();
            let (mut next, mut phy) = (0u64, 0u64);
            for (gap, far, run) in steps {
                let mut units = Vec::new();
                for k in 0..run {
                    // Mostly consecutive; sometimes a short or a far jump, or a repeat.
                    let off = match (k, far) {
                        (0, true) => next + 50,
                        (0, false) if gap == 3 => next.saturating_sub(1),
                        (0, false) => next + gap.saturating_sub(1),
                        _ => next,
                    };
                    phy += 100;
                    units.push((off, CqUnit { phy_offset: phy, size: 100, tags_code: off as i64 }));
                    next = off + 1;
                }
                for &(off, u) in &units {
                    a.append(off, u).unwrap();
                }
                b.append_all(&units).unwrap();
            }
            prop_assert_eq!((a.min_offset(), a.max_offset(), a.max_phy_end()),
                (b.min_offset(), b.max_offset(), b.max_phy_end()));
            prop_assert_eq!(a.read_units(0, 10_000), b.read_units(0, 10_000));
            prop_assert_eq!(names(a.dir()), names(b.dir()));
        }

        #[test]
        fn cq_unit_round_trips(phy in 0..=i64::MAX as u64, size in 1..=i32::MAX as u32, tags in any::<i64>()) {
            let u = CqUnit { phy_offset: phy, size, tags_code: tags };
            prop_assert!(u.is_storable());
            prop_assert_eq!(CqUnit::decode(&u.encode()), Some(u));
        }

        #[test]
        fn cq_unit_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(u) = CqUnit::decode(&bytes) {
                prop_assert!(u.is_storable());
                prop_assert_eq!(&u.encode()[..], &bytes[..20]);
            }
        }
    }

    #[test]
    fn append_get_read_units_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "TopicTest", 3, SMALL).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (0, 0, 0)
        );
        fill(&cq, 12);
        assert_eq!((cq.min_offset(), cq.max_offset()), (0, 12));
        assert_eq!(cq.max_phy_end(), 1200);
        for i in 0..12 {
            assert_eq!(cq.get(i), Some(unit(i)));
        }
        assert_eq!(cq.get(12), None);
        assert_eq!(cq.read_units(3, 6), (3..9).map(unit).collect::<Vec<_>>());
        assert_eq!(cq.read_units(10, 100), vec![unit(10), unit(11)]);
        assert!(cq.read_units(12, 10).is_empty());
        assert!(cq.read_units(0, 0).is_empty());
        // The lazy visitor sees the same units across files and stops where told.
        let mut seen = Vec::new();
        let n = cq.visit_units(2, 100, |u| {
            seen.push(*u);
            seen.len() < 7
        });
        assert_eq!((n, seen), (7, (2..9).map(unit).collect::<Vec<_>>()));
        assert_eq!(cq.visit_units(12, 10, |_| true), 0);
        assert_eq!(cq.visit_units(5, 100, |_| true), 7);
        assert_eq!(
            names(&dir.path().join("TopicTest").join("3")),
            vec![
                "00000000000000000000",
                "00000000000000000100",
                "00000000000000000200"
            ]
        );
        cq.flush().unwrap();
        drop(cq);
        let cq = ConsumeQueue::open(dir.path(), "TopicTest", 3, SMALL).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (0, 12, 1200)
        );
        assert_eq!(cq.read_units(0, 100), (0..12).map(unit).collect::<Vec<_>>());
        cq.append(12, unit(12)).unwrap();
        assert_eq!(cq.get(12), Some(unit(12)));
    }

    #[test]
    fn file_size_rounds_up_to_whole_units() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, 41).unwrap();
        assert_eq!(cq.file_size(), 60);
        assert!(ConsumeQueue::open(dir.path(), "T", 1, 0).is_err());
    }

    #[test]
    fn append_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 7);
        // Re-dispatch of everything: ignored by phy end.
        fill(&cq, 7);
        // Same offset, new phy (should not happen, but must not overwrite).
        cq.append(
            3,
            CqUnit {
                phy_offset: 10_000,
                ..unit(3)
            },
        )
        .unwrap();
        assert_eq!(cq.max_offset(), 7);
        assert_eq!(cq.read_units(0, 10), (0..7).map(unit).collect::<Vec<_>>());
        assert!(cq.append(7, CqUnit { size: 0, ..unit(7) }).is_err());
    }

    #[test]
    fn first_offset_non_zero_prefills_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        cq.append(7, unit(7)).unwrap();
        cq.append(8, unit(8)).unwrap();
        assert_eq!((cq.min_offset(), cq.max_offset()), (7, 9));
        assert_eq!(cq.get(6), None, "blanks lie below min offset");
        assert_eq!(cq.get(7), Some(unit(7)));
        assert!(cq.read_units(5, 10).is_empty());
        assert_eq!(names(cq.dir()), vec!["00000000000000000100"]);
        let bytes = fs::read(cq.dir().join("00000000000000000100")).unwrap();
        assert_eq!(CqUnit::decode(&bytes[0..20]), Some(CqUnit::BLANK));
        assert_eq!(CqUnit::decode(&bytes[20..40]), Some(CqUnit::BLANK));
        assert_eq!(CqUnit::decode(&bytes[40..60]), Some(unit(7)));
        drop(cq);
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (7, 9, 900)
        );
    }

    #[test]
    fn jump_forward_fills_blanks_and_huge_jump_appends_at_end() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 2);
        cq.append(4, unit(4)).unwrap();
        assert_eq!(cq.max_offset(), 5);
        assert_eq!(cq.get(2), Some(CqUnit::BLANK));
        assert_eq!(cq.get(4), Some(unit(4)));
        cq.append(100, unit(100)).unwrap();
        assert_eq!(cq.max_offset(), 6, "a far jump appends at the end");
        cq.append(u64::MAX / 2, unit(101)).unwrap();
        assert_eq!(
            cq.max_offset(),
            6,
            "an offset past i64 byte positions is not stored"
        );
        assert_eq!(cq.get(5), Some(unit(100)));
    }

    /// Recovery of a last file cut short at every byte position of its last units: exactly the
    /// whole units before the cut survive, and appends continue right after them.
    #[test]
    fn recovery_of_file_truncated_at_every_byte() {
        let units = 12u64; // last file holds units 10, 11 (file size 5 units)
        for cut in (10 * 20)..=(12 * 20) {
            let dir = tempfile::tempdir().unwrap();
            let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
            fill(&cq, units);
            cq.flush().unwrap();
            let last = cq.dir().join("00000000000000000200");
            drop(cq);
            let f = OpenOptions::new().write(true).open(&last).unwrap();
            f.set_len(cut - 200).unwrap();
            drop(f);
            let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
            let kept = cut / 20;
            assert_eq!(cq.max_offset(), kept, "cut at {cut}");
            assert_eq!(
                cq.read_units(0, 100),
                (0..kept).map(unit).collect::<Vec<_>>()
            );
            assert_eq!(cq.max_phy_end(), kept * 100);
            assert_eq!(fs::metadata(&last).unwrap().len(), SMALL);
            // Re-dispatch rebuilds the rest.
            fill(&cq, units + 1);
            assert_eq!(
                cq.read_units(0, 100),
                (0..=units).map(unit).collect::<Vec<_>>()
            );
        }
    }

    /// Recovery when the bytes from position `p` on never reached the disk (zeroed), for every
    /// `p` across the last units: the units wholly before `p` survive unchanged. The unit cut by
    /// `p` survives only if its phy offset and size are intact (only its tags code was torn, which
    /// no rule can detect); then its phy and size are the original ones.
    #[test]
    fn recovery_of_tail_zeroed_from_every_byte() {
        for p in (7 * 20)..=(10 * 20) {
            let dir = tempfile::tempdir().unwrap();
            let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
            fill(&cq, 10);
            let path = cq.dir().join("00000000000000000100");
            drop(cq);
            let mut bytes = fs::read(&path).unwrap();
            let in_file = (p - 100) as usize;
            bytes[in_file..].fill(0);
            fs::write(&path, &bytes).unwrap();
            let torn_start = in_file / 20 * 20;
            let torn_survives = bytes
                .get(torn_start..torn_start + 20)
                .is_some_and(|b| CqUnit::decode(b).is_some());
            let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
            let whole = p / 20;
            let got = cq.read_units(0, 100);
            assert_eq!(got.len() as u64, whole + u64::from(torn_survives), "p={p}");
            for (i, u) in got.iter().enumerate() {
                if (i as u64) < whole {
                    assert_eq!(*u, unit(i as u64), "p={p}");
                } else {
                    assert!(
                        p % 20 >= 12,
                        "p={p}: a unit torn before its tags code survived"
                    );
                    assert_eq!((u.phy_offset, u.size), (unit(i as u64).phy_offset, 100));
                }
            }
        }
    }

    /// A torn write where a later page reached the disk but an earlier one did not: the queue ends
    /// at the first invalid unit, and the stale units after it are zeroed so that they cannot
    /// reappear after the next append and crash (Q3).
    #[test]
    fn recovery_zeroes_stale_units_after_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
        fill(&cq, 10);
        let path = cq.dir().join("00000000000000000100");
        drop(cq);
        let mut bytes = fs::read(&path).unwrap();
        bytes[40..60].fill(0); // unit 7 lost, units 8 and 9 present
        fs::write(&path, &bytes).unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
        assert_eq!(cq.max_offset(), 7);
        assert_eq!(cq.max_phy_end(), 700);
        let bytes = fs::read(&path).unwrap();
        assert!(bytes[40..].iter().all(|&b| b == 0));
        cq.append(7, unit(7)).unwrap();
        drop(cq);
        let cq = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
        assert_eq!(cq.max_offset(), 8, "stale unit 8 must not come back");
    }

    #[test]
    fn truncate_from_phy_drops_units_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 13);
        cq.flush().unwrap();
        cq.truncate_from_phy(450).unwrap(); // keeps phy 0..=400, units 0..5
        assert_eq!((cq.max_offset(), cq.max_phy_end()), (5, 500));
        assert_eq!(names(cq.dir()), vec!["00000000000000000000"]);
        assert_eq!(cq.get(5), None);
        // No-op when nothing lies past the cut.
        cq.truncate_from_phy(10_000).unwrap();
        assert_eq!(cq.max_offset(), 5);
        cq.truncate_from_phy(250).unwrap(); // keeps units 0..3
        assert_eq!((cq.max_offset(), cq.max_phy_end()), (3, 300));
        drop(cq);
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        assert_eq!(cq.max_offset(), 3, "truncated units must not come back");
        fill(&cq, 8);
        assert_eq!(cq.read_units(0, 100), (0..8).map(unit).collect::<Vec<_>>());
        cq.truncate_from_phy(0).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (0, 0, 0)
        );
        assert_eq!(names(cq.dir()), vec!["00000000000000000000"]);
        cq.append(6, unit(6)).unwrap();
        assert_eq!((cq.min_offset(), cq.max_offset()), (6, 7));
        assert_eq!(names(cq.dir()), vec!["00000000000000000100"]);
        // Cutting everything of a queue that starts at 6 keeps its max offset at 6.
        cq.truncate_from_phy(0).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (6, 6, 0)
        );
        cq.append(6, unit(6)).unwrap();
        assert_eq!(cq.read_units(6, 10), vec![unit(6)]);
    }

    /// Regression (found by `queue_matches_model`): after retention and a truncation emptied the
    /// queue, re-dispatching old offsets restarted the queue at offset 0.
    #[test]
    fn emptied_queue_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 21);
        assert_eq!(cq.delete_files_below_phy(2000).unwrap(), 4);
        cq.truncate_from_phy(2000).unwrap();
        assert_eq!(
            (cq.min_offset(), cq.max_offset(), cq.max_phy_end()),
            (20, 20, 0)
        );
        fill(&cq, 21);
        assert_eq!((cq.min_offset(), cq.max_offset()), (20, 21));
        assert_eq!(cq.read_units(20, 10), vec![unit(20)]);
    }

    #[test]
    fn truncate_at_file_boundary_keeps_full_file_and_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 8);
        cq.truncate_from_phy(500).unwrap();
        assert_eq!(cq.max_offset(), 5);
        assert_eq!(names(cq.dir()), vec!["00000000000000000000"]);
        fill(&cq, 7);
        assert_eq!(cq.read_units(0, 100), (0..7).map(unit).collect::<Vec<_>>());
    }

    /// Linear model of SEARCH_OFFSET_BY_TIMESTAMP over store times `times[q]` (q = queue offset).
    fn search_model(times: &[i64], ts: i64, b: Boundary) -> u64 {
        match b {
            Boundary::Lower => times.iter().position(|&t| t >= ts).unwrap_or(times.len()) as u64,
            Boundary::Upper => times.iter().rposition(|&t| t <= ts).unwrap_or(0) as u64,
        }
    }

    #[test]
    fn search_by_time_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        // Store times: t1 t1 t1 t3 t3 (the reference's own example), as phy/100 -> time.
        let times = [10i64, 10, 10, 30, 30];
        fill(&cq, 5);
        let st = |u: &CqUnit| times.get((u.phy_offset / 100) as usize).copied();
        assert_eq!(cq.search_offset_by_time(20, Boundary::Lower, &st), 3);
        assert_eq!(cq.search_offset_by_time(20, Boundary::Upper, &st), 2);
        assert_eq!(cq.search_offset_by_time(10, Boundary::Lower, &st), 0);
        assert_eq!(cq.search_offset_by_time(10, Boundary::Upper, &st), 2);
        assert_eq!(cq.search_offset_by_time(30, Boundary::Lower, &st), 3);
        assert_eq!(cq.search_offset_by_time(30, Boundary::Upper, &st), 4);
        assert_eq!(
            cq.search_offset_by_time(99, Boundary::Lower, &st),
            5,
            "later than all"
        );
        assert_eq!(cq.search_offset_by_time(99, Boundary::Upper, &st), 4);
        assert_eq!(
            cq.search_offset_by_time(1, Boundary::Lower, &st),
            0,
            "earlier than all"
        );
        assert_eq!(cq.search_offset_by_time(1, Boundary::Upper, &st), 0);
        let empty = ConsumeQueue::open(dir.path(), "T", 1, SMALL).unwrap();
        assert_eq!(empty.search_offset_by_time(1, Boundary::Lower, &st), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn search_by_time_matches_linear_model(
            steps in proptest::collection::vec(0i64..3, 1..40),
            ts in 0i64..100,
        ) {
            let times: Vec<i64> = steps.iter().scan(0, |t, s| { *t += s; Some(*t) }).collect();
            let dir = tempfile::tempdir().unwrap();
            let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
            fill(&cq, times.len() as u64);
            let st = |u: &CqUnit| times.get((u.phy_offset / 100) as usize).copied();
            for b in [Boundary::Lower, Boundary::Upper] {
                prop_assert_eq!(cq.search_offset_by_time(ts, b, &st), search_model(&times, ts, b));
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u64),
        /// Cut at `phy = 100 * (min + n) + 50`-ish: `n` units past the min offset survive.
        Truncate(u64),
        /// Retention with the CommitLog's min phy at the unit `n` past the min offset.
        DeleteBelow(u64),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..12).prop_map(Op::Append),
            1 => (0u64..15).prop_map(Op::Truncate),
            1 => (0u64..15).prop_map(Op::DeleteBelow),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Appends, truncation, retention and reopening against a model (units `0..len`, unit `i`
        /// at phy `100 i`, consumable from `min`).
        #[test]
        fn queue_matches_model(ops in proptest::collection::vec(op(), 1..25)) {
            let dir = tempfile::tempdir().unwrap();
            let mut cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
            let (mut len, mut min) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Append(n) => {
                        fill(&cq, len + n);
                        len += n;
                    }
                    Op::Truncate(n) => {
                        // The log's valid end never lies below the queue's min unit.
                        let keep = (min + n).min(len);
                        cq.truncate_from_phy((keep * 100).saturating_sub(50 * (n % 2))).unwrap();
                        len = keep;
                    }
                    Op::DeleteBelow(n) => {
                        let phy = (min + n) * 100;
                        cq.delete_files_below_phy(phy).unwrap();
                        min = (min + n).min(len).max(min);
                    }
                    Op::Reopen => {
                        cq.flush().unwrap();
                        drop(cq);
                        cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
                        cq.delete_files_below_phy(min * 100).unwrap();
                    }
                }
                if len == 0 {
                    min = 0;
                }
                prop_assert_eq!(cq.max_offset(), len);
                prop_assert_eq!(cq.min_offset(), min);
                // With no consumable unit left, the units below `min` may be gone with their
                // files (then nothing is left to be idempotent against, and 0 is right too).
                let phy_end = cq.max_phy_end();
                prop_assert!(phy_end == len * 100 || (len == min && phy_end == 0), "phy end {}", phy_end);
                prop_assert_eq!(cq.read_units(min, 1000), (min..len).map(unit).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn delete_files_below_phy_moves_min_and_keeps_last_file() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 12);
        assert_eq!(cq.delete_files_below_phy(0).unwrap(), 0);
        assert_eq!(cq.min_offset(), 0);
        // Commitlog now starts at 650: file 0 (phy 0..=400) goes; min moves to unit 7 (phy 700).
        assert_eq!(cq.delete_files_below_phy(650).unwrap(), 1);
        assert_eq!(cq.min_offset(), 7);
        assert_eq!(cq.get(6), None);
        assert_eq!(cq.get(7), Some(unit(7)));
        assert_eq!(cq.read_units(7, 100), (7..12).map(unit).collect::<Vec<_>>());
        assert_eq!(
            cq.delete_files_below_phy(1_000_000).unwrap(),
            1,
            "last file stays"
        );
        assert_eq!(names(cq.dir()), vec!["00000000000000000200"]);
        assert_eq!((cq.min_offset(), cq.max_offset()), (12, 12));
        fill(&cq, 14);
        assert_eq!(cq.read_units(12, 100), vec![unit(12), unit(13)]);
        drop(cq);
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        assert_eq!((cq.min_offset(), cq.max_offset()), (10, 14));
    }

    #[test]
    fn open_rejects_gaps_and_cleans_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        fill(&cq, 12);
        let qdir = cq.dir().to_path_buf();
        drop(cq);
        fs::write(qdir.join("00000000000000000300.tmp"), b"x").unwrap();
        fs::write(qdir.join("README"), b"x").unwrap();
        let cq = ConsumeQueue::open(dir.path(), "T", 0, SMALL).unwrap();
        assert_eq!(cq.max_offset(), 12);
        assert!(!qdir.join("00000000000000000300.tmp").exists());
        drop(cq);
        fs::remove_file(qdir.join("00000000000000000100")).unwrap();
        assert!(matches!(
            ConsumeQueue::open(dir.path(), "T", 0, SMALL),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// Readers running while the dispatcher appends, rolls and flushes only ever see whole,
    /// correct units below `max_offset`.
    #[test]
    fn concurrent_readers_see_whole_units() {
        let dir = tempfile::tempdir().unwrap();
        let cq = Arc::new(ConsumeQueue::open(dir.path(), "T", 0, 64 * CQ_UNIT_SIZE_BYTES).unwrap());
        let n = 2_000u64;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let cq = Arc::clone(&cq);
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while seen < n {
                        let max = cq.max_offset();
                        for (i, u) in cq.read_units(seen.saturating_sub(3), 16).iter().enumerate() {
                            assert_eq!(*u, unit(seen.saturating_sub(3) + i as u64));
                        }
                        if max > 0 {
                            assert_eq!(cq.get(max - 1), Some(unit(max - 1)));
                        }
                        seen = max;
                    }
                })
            })
            .collect();
        for i in 0..n {
            cq.append(i, unit(i)).unwrap();
            if i % 97 == 0 {
                cq.flush().unwrap();
            }
        }
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn enospc_is_disk_full() {
        let p = Path::new("/x");
        let full = file_io_error(p, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(full, StoreError::DiskFull(_)), "{full}");
        let other = file_io_error(p, io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(other, StoreError::Io { .. }), "{other}");
    }

    #[test]
    fn topic_names_are_validated() {
        for ok in [
            "TopicTest",
            "%RETRY%group-1",
            "a|b",
            "x_y",
            &"a".repeat(255),
        ] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "a b",
            "a\0b",
            "tópico",
            &"a".repeat(256),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let cqs = ConsumeQueues::open(&dir.path().join("consumequeue"), SMALL).unwrap();
        assert!(matches!(
            cqs.get_or_create("..", 0),
            Err(StoreError::MessageIllegal(_))
        ));
        assert!(cqs.get_or_create("../../x", 0).is_err());
        assert_eq!(
            names(&dir.path().join("consumequeue")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn consume_queues_registry_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("consumequeue");
        {
            let cqs = ConsumeQueues::open(&root, SMALL).unwrap();
            assert!(cqs.get("A", 0).is_none());
            let a0 = cqs.get_or_create("A", 0).unwrap();
            let a1 = cqs.get_or_create("A", 1).unwrap();
            let b0 = cqs.get_or_create("%RETRY%g", 0).unwrap();
            assert!(Arc::ptr_eq(&a0, &cqs.get_or_create("A", 0).unwrap()));
            fill(&a0, 3);
            a1.append(0, unit(5)).unwrap();
            b0.append(0, unit(9)).unwrap();
            assert_eq!(cqs.max_phy_end(), 1000);
            assert_eq!(cqs.all().len(), 3);
            cqs.flush_all().unwrap();
        }
        fs::create_dir_all(root.join("bad name")).unwrap();
        fs::create_dir_all(root.join("A").join("x")).unwrap();
        let cqs = ConsumeQueues::open(&root, SMALL).unwrap();
        let mut all: Vec<(String, u32, u64)> = cqs
            .all()
            .iter()
            .map(|q| (q.topic().to_string(), q.queue_id(), q.max_offset()))
            .collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                ("%RETRY%g".into(), 0, 1),
                ("A".into(), 0, 3),
                ("A".into(), 1, 1)
            ]
        );
        assert_eq!(cqs.max_phy_end(), 1000);
        cqs.truncate_from_phy(150).unwrap();
        assert_eq!(cqs.get("A", 0).unwrap().max_offset(), 2);
        assert_eq!(cqs.get("A", 1).unwrap().max_offset(), 0);
        assert_eq!(cqs.max_phy_end(), 200);
    }
}
