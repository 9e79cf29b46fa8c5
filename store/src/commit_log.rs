//! The CommitLog: an ordered list of preallocated, mapped segment files named by their 20-digit
//! base offset, one appender under one lock, lock-free readers below the published offset, a
//! background thread that creates and pre-faults the next segment, and range flushing.
//!
//! Invariants:
//! * segments are contiguous: `segments[i+1].base == segments[i].base + file_size`;
//! * only the last segment is written; every earlier one is full (it ends with a blank marker or
//!   exactly at its end) and published to its end;
//! * `max_offset` (Release after each append) is the global end of published bytes and always a
//!   record boundary; `flushed <= max_offset` and bytes below `flushed` are durable.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Result, StoreError};
use crate::message_store::{Appended, AppendedList, MessageInput, Slice};
use crate::mmap::{
    create_zero_filled_with, FillStep, MappedFile, MappedWriter, OS_PAGE_SIZE,
    TMPFS_ALLOC_CHUNK_BYTES,
};
use crate::record::{self, RecordParts, Scan, BLANK_LEN_BYTES};
use crate::retention::DiskProbe;

/// One CommitLog file: `base` is the physical offset of its first byte and its name.
#[derive(Debug)]
pub struct Segment {
    base: u64,
    mapped: Arc<MappedFile>,
    /// Bytes from the start known pre-faulted writable (a hint; faults are only slower).
    warmed: AtomicU64,
    /// Highest warm-up end already asked of the pre-allocation thread.
    warm_requested: AtomicU64,
    /// The segment after this one was asked for.
    next_requested: AtomicBool,
    /// `[0, reserved)` of the file is reserved (zero-filled or `fallocate`d): the appender stores
    /// through the mapping only below it (mmap.rs, M5). The whole file, except for a segment
    /// made in a hurry on tmpfs (reserved in steps ahead of the appender, see [`Self::reserve_to`])
    /// and a tmpfs segment opened by recovery with a hole left (up to that hole).
    reserved: AtomicU64,
    /// When a reservation last failed (ms since the Unix epoch; 0: never): for
    /// [`RESERVE_RETRY_MS`] after it, appends that need more are refused without trying again.
    reserve_failed_ms: AtomicI64,
}

/// How long after a failed reservation (a full tmpfs) the appends that need one are refused at
/// once. A failing tmpfs `fallocate` allocates what it can before it gives up and frees it
/// again, under the append lock: tried by every send, that is the full-disk pathology of a
/// segment zero-filled to ENOSPC per send (see [`Preallocator::check_room`]).
const RESERVE_RETRY_MS: i64 = 100;

/// The next segment is pre-allocated once the active one is `1 / this` full.
const NEXT_SEGMENT_AT_FRACTION: u64 = 4;

/// Pages are pre-faulted this far ahead of the write position. Pre-faulting a whole segment at
/// creation does not last: ext4 (data=ordered) writes the dirtied zero pages back at the next
/// journal commit and write-protects them again, so appends would fault anyway. A window just
/// ahead of the appender is consumed before that happens. 256 MiB is ~0.5 s of 16 KiB ingest.
/// Appends through the mapping (ASYNC_FLUSH) only: SYNC_FLUSH appends by `pwrite` need no window
/// (see `drain_write_end`).
pub const WARM_WINDOW_BYTES: u64 = 256 << 20;
/// A new window is requested when fewer than this many warmed bytes are left: every 64 MiB of
/// appends, each request faulting in 64 MiB (20-100 ms here, where a first touch of memory costs
/// 0.3-1.6 s per GiB) while 192 MiB are still ahead of the appender. With half the window as the
/// mark, 16 KiB ingest at 0.3-0.5 GB/s caught up with the pre-faulting and took the faults
/// itself, under the append lock.
const WARM_LOW_BYTES: u64 = WARM_WINDOW_BYTES / 4 * 3;

impl Segment {
    /// A segment whose file is reserved throughout, except on tmpfs, where a segment made in a
    /// hurry may have holes: there an existing file (recovery) counts as reserved throughout
    /// only if every page of it is allocated, else up to its first hole (recovery reserves the
    /// holes of the segments it reads, see `recovery::open_segment`).
    pub fn new(base: u64, mapped: Arc<MappedFile>) -> Self {
        let len = mapped.len();
        let reserved = if !mapped.on_tmpfs() || mapped.allocated_bytes().is_ok_and(|a| a >= len) {
            len
        } else {
            mapped.first_hole().unwrap_or(0)
        };
        Self::with_reserved(base, mapped, reserved)
    }

    fn with_reserved(base: u64, mapped: Arc<MappedFile>, reserved: u64) -> Self {
        Self {
            base,
            mapped,
            warmed: AtomicU64::new(0),
            warm_requested: AtomicU64::new(0),
            next_requested: AtomicBool::new(false),
            reserved: AtomicU64::new(reserved),
            reserve_failed_ms: AtomicI64::new(0),
        }
    }

    /// End of the reserved prefix of the file (see `reserved`).
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// Reserves the file up to `to` (clipped to its length) in [`TMPFS_ALLOC_CHUNK_BYTES`]
    /// steps, if it is not yet: afterwards stores below `to` cannot raise SIGBUS (M5). Safe to
    /// call from several threads at once (a range reserved twice is reserved). A full file
    /// system is `DiskFull`, with nothing stored.
    ///
    /// After a failure, calls within [`RESERVE_RETRY_MS`] fail at once (`DiskFull`).
    pub fn reserve_to(&self, to: u64) -> Result<()> {
        let to = to.min(self.mapped.len());
        let mut at = self.reserved();
        if at >= to {
            return Ok(());
        }
        let failed = self.reserve_failed_ms.load(Ordering::Acquire);
        if failed != 0 && (0..RESERVE_RETRY_MS).contains(&(now_ms() - failed)) {
            return Err(StoreError::DiskFull(format!(
                "{}: no room to reserve the segment past {at} (retried after {RESERVE_RETRY_MS} ms)",
                self.mapped.path().display()
            )));
        }
        while at < to {
            let n = (to - at).min(TMPFS_ALLOC_CHUNK_BYTES);
            if let Err(e) = self.mapped.reserve(at, n) {
                self.reserve_failed_ms
                    .store(now_ms().max(1), Ordering::Release);
                return Err(io_or_full(self.mapped.path(), e));
            }
            at += n;
            self.reserved.fetch_max(at, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Pre-faults `[warmed, to)` (called on the pre-allocation thread): writable page tables for
    /// appends through the mapping. Appends by `pwrite` (`write_through`, SYNC_FLUSH) need
    /// nothing: their writes end on page boundaries, so no page is read from the disk before it
    /// is written (see `drain_write_end`); the window only counts as warmed.
    ///
    /// Appends through the mapping store only into reserved pages (mmap.rs, M5): a segment made
    /// in a hurry on tmpfs is reserved here first, ahead of the appender, which then finds its
    /// pages reserved and populated; the window stops at what could be reserved.
    fn warm(&self, to: u64, write_through: bool) {
        let from = self.warmed.load(Ordering::Acquire);
        let mut to = to.min(self.mapped.len());
        if write_through {
            self.warmed.fetch_max(to, Ordering::AcqRel);
            return;
        }
        if let Err(e) = self.reserve_to(to) {
            tracing::debug!(base = self.base, error = %e, "reserving a segment ahead failed");
        }
        to = to.min(self.reserved());
        if to <= from {
            return;
        }
        if let Err(e) = self.mapped.prefault_write(from, to - from) {
            tracing::debug!(base = self.base, error = %e, "pre-faulting a segment failed");
        }
        self.warmed.fetch_max(to, Ordering::AcqRel);
    }
    pub fn base(&self) -> u64 {
        self.base
    }
    pub fn mapped(&self) -> &Arc<MappedFile> {
        &self.mapped
    }
    /// One past the last byte of the file.
    pub fn end(&self) -> u64 {
        self.base + self.mapped.len()
    }
    /// Global offset up to which this segment is published.
    pub fn published_end(&self) -> u64 {
        self.base + self.mapped.published()
    }
}

/// The 20-digit zero-padded file name of the segment starting at `base` (`UtilAll.offset2FileName`).
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}")
}

/// Parses a segment file name; `None` for anything else (temporary files, strangers).
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

const TMP_SUFFIX: &str = ".tmp";

/// Creates the segment file for `base`: zero-filled under a temporary name, renamed into place and
/// the directory synced (so a crash never leaves a short file under a segment name and the new
/// name survives a crash), then mapped and pre-faulted (see [`Segment::warm`]).
pub fn create_segment(
    dir: &Path,
    base: u64,
    file_size: u64,
    write_through: bool,
) -> Result<Arc<Segment>> {
    let (seg, _) = create_segment_with(dir, base, file_size, &mut |_| FillStep::Go)?;
    seg.warm(WARM_WINDOW_BYTES, write_through);
    Ok(seg)
}

/// [`create_segment`] without the pre-fault, asking `step` before every chunk of the zero-fill:
/// it stops early (an `Io` error, nothing left behind) on [`FillStep::Stop`]; on
/// [`FillStep::Hurry`] it reserves the rest instead of writing it (on tmpfs: one more chunk, the
/// rest left to [`Segment::reserve_to`]). Returns whether it hurried.
fn create_segment_with(
    dir: &Path,
    base: u64,
    file_size: u64,
    step: &mut dyn FnMut(u64) -> FillStep,
) -> Result<(Arc<Segment>, bool)> {
    let name = segment_file_name(base);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let _ = std::fs::remove_file(&tmp);
    if path.exists() {
        // Only bases at or past the end of the log are ever created, so such a file holds nothing.
        tracing::warn!(path = %path.display(), "replacing a stale segment file past the log end");
        std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
    }
    let filled = match create_zero_filled_with(&tmp, file_size, step) {
        Ok((_, filled)) => filled,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_or_full(&tmp, e));
        }
    };
    std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    sync_dir(dir)?;
    let mapped = MappedFile::open(&path, 0).map_err(|e| StoreError::io(&path, e))?;
    let seg = Arc::new(Segment::with_reserved(
        base,
        Arc::new(mapped),
        filled.reserved,
    ));
    if filled.hurried {
        tracing::info!(
            base,
            reserved = filled.reserved,
            "segment made in a hurry: the rest reserved as the appends need it, not zero-filled"
        );
    }
    Ok((seg, filled.hurried))
}

/// fsyncs a directory so entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Maps ENOSPC/EDQUOT to `DiskFull`, anything else to `Io`.
pub fn io_or_full(path: &Path, e: io::Error) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            StoreError::DiskFull(format!("{}: {e}", path.display()))
        }
        _ => StoreError::io(path, e),
    }
}

/// How long an ASYNC_FLUSH roll waits for the segment being pre-allocated before it has it
/// finished in a hurry (see [`Preallocator::take`]).
const HURRY_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// A roll that waits this long for its segment is logged.
const SLOW_ROLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Under SYNC_FLUSH, how far the zero-fill of the next segment may run ahead of the log's own
/// progress (see [`FillPace`]). The fill is complete once the log is this far (scaled to the room
/// it had when the fill began) from the end of its segment: ~48 MiB, half a second of 1 KiB SYNC
/// ingest here, with the disk able to fill at ~10x that rate should the ingest speed up.
const FILL_LEAD_BYTES: u64 = 64 << 20;

/// How long a paced fill waits before it looks at the log again.
const FILL_PACE_TICK: std::time::Duration = std::time::Duration::from_millis(2);

/// What the pre-allocation thread reads of the log: shared by the [`CommitLog`] and its
/// [`Preallocator`].
#[derive(Debug)]
struct LogProgress {
    /// The end of the published bytes (`CommitLog::max_offset`).
    end: AtomicU64,
    /// Successful syncs so far (`CommitLog::sync_count`).
    syncs: AtomicU64,
}

impl LogProgress {
    fn new(end: u64) -> Arc<Self> {
        Arc::new(Self {
            end: AtomicU64::new(end),
            syncs: AtomicU64::new(0),
        })
    }
}

/// Paces the zero-fill of the next segment under SYNC_FLUSH, where the disk it writes to is the
/// one every acknowledgement waits for. Flat out (1 MiB direct writes back to back, ~1.3 GB/s
/// here), a fill cut a write+fdatasync loop of 20 KB groups from 7.4-7.6k to 3.1k commits/s for as
/// long as it ran; writes paced at 200 MB/s to 6.5k; at 50-100 MB/s no change could be measured
/// (`ferrocket bench limits --only sync` beside a paced O_DIRECT writer, 2026-11-22). Lowering the
/// fill's I/O priority (idle class, mq-deadline) did not help: 1.8-2.3k. So while the log is being
/// synced, the fill writes in step with it: a chunk only while the fill is at most
/// [`FILL_LEAD_BYTES`] ahead of the log's share of the room left when the fill began
/// (`filled <= used * file_size / room + lead`). The fill then goes at ~1.3x the ingest rate and is
/// done before the log reaches its segment's end, however fast the log goes (the rule looks at
/// positions, not rates, and the disk fills far faster than SYNC ingest). When no sync ran since
/// the last look (ASYNC_FLUSH never paces; an idle or lightly loaded SYNC log), it writes on at
/// full speed: nobody waits on the disk then.
struct FillPace {
    /// [`FILL_LEAD_BYTES`] (tests: less).
    lead: u64,
    /// The log's end when the fill began.
    end_at_start: u64,
    /// Bytes the log had left before `base` (the segment being made) when the fill began.
    room: u64,
    /// The sync count at the last look.
    syncs: u64,
}

impl FillPace {
    fn new(progress: &LogProgress, base: u64, lead: u64) -> Self {
        let end = progress.end.load(Ordering::Acquire);
        Self {
            lead,
            end_at_start: end,
            room: base.saturating_sub(end),
            syncs: progress.syncs.load(Ordering::Relaxed),
        }
    }

    /// Whether syncs ran since the last look.
    fn syncing(&mut self, progress: &LogProgress) -> bool {
        let now = progress.syncs.load(Ordering::Relaxed);
        let ran = now != self.syncs;
        self.syncs = now;
        ran
    }

    /// Whether a fill that has written `filled` of `file_size` bytes may write its next chunk.
    fn may_write(&self, progress: &LogProgress, filled: u64, file_size: u64) -> bool {
        if self.room == 0 {
            return true;
        }
        let used = progress
            .end
            .load(Ordering::Acquire)
            .saturating_sub(self.end_at_start)
            .min(self.room);
        let due = u128::from(used) * u128::from(file_size) / u128::from(self.room);
        u128::from(filled) <= due + u128::from(self.lead)
    }
}

/// Creates the next segment on a background thread so no append waits for zero-filling or page
/// faults (RocketMQ's AllocateMappedFileService).
struct Preallocator {
    dir: PathBuf,
    file_size: u64,
    /// Appends go through `pwrite` (see [`CommitLog::set_write_through`]).
    write_through: AtomicBool,
    /// Set at shutdown: an in-progress zero-fill gives up.
    stop: AtomicBool,
    /// `state.warm` holds a request: checked without the lock between the chunks of a zero-fill.
    warm_pending: AtomicBool,
    /// An append waits for the segment being made: finish it now ([`FillStep::Hurry`]).
    hurry: AtomicBool,
    /// Measures the disk before a segment is made (statvfs unless set: tests set their own).
    probe: std::sync::OnceLock<DiskProbe>,
    /// The log's end and sync count, for pacing fills ([`FillPace`]).
    progress: Arc<LogProgress>,
    /// [`FILL_LEAD_BYTES`] (tests: less).
    fill_lead: u64,
    /// [`FILL_PACE_TICK`] (tests: longer, so a test thread descheduled for a while does not
    /// look like syncs that stopped).
    fill_tick: std::time::Duration,
    state: Mutex<PreState>,
    cv: Condvar,
}

#[derive(Default)]
struct PreState {
    /// A segment to pre-fault further, and up to where.
    warm: Option<(Arc<Segment>, u64)>,
    wanted: Option<u64>,
    busy: Option<u64>,
    ready: Option<Arc<Segment>>,
    shutdown: bool,
}

/// The ready segment, if its first window is not pre-faulted yet (one just made, or kept from
/// before a restart).
fn cold_ready(st: &PreState) -> Option<Arc<Segment>> {
    st.ready
        .as_ref()
        .filter(|s| s.warmed.load(Ordering::Acquire) < WARM_WINDOW_BYTES.min(s.mapped.len()))
        .cloned()
}

impl Preallocator {
    /// `ready`: a next segment kept from before a restart.
    fn new(
        dir: &Path,
        file_size: u64,
        ready: Option<Arc<Segment>>,
        progress: Arc<LogProgress>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            file_size,
            write_through: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            warm_pending: AtomicBool::new(false),
            hurry: AtomicBool::new(false),
            probe: std::sync::OnceLock::new(),
            progress,
            fill_lead: FILL_LEAD_BYTES,
            fill_tick: FILL_PACE_TICK,
            state: Mutex::new(PreState {
                ready,
                ..PreState::default()
            }),
            cv: Condvar::new(),
        }
    }

    fn run(&self) {
        loop {
            let base = {
                let mut st = self.state.lock();
                while st.wanted.is_none()
                    && st.warm.is_none()
                    && cold_ready(&st).is_none()
                    && !st.shutdown
                {
                    self.cv.wait(&mut st);
                }
                if st.shutdown {
                    return;
                }
                // Warming the active segment is more urgent than making the next one.
                if st.warm.is_some() {
                    drop(st);
                    self.serve_warm();
                    continue;
                }
                // The ready segment (just made, or kept from before a restart) is not
                // pre-faulted yet.
                if let Some(seg) = cold_ready(&st) {
                    drop(st);
                    seg.warm(
                        WARM_WINDOW_BYTES,
                        self.write_through.load(Ordering::Relaxed),
                    );
                    continue;
                }
                let base = st.wanted.take();
                st.busy = base;
                self.hurry.store(false, Ordering::Release);
                base
            };
            let Some(base) = base else { continue };
            // Between the chunks of the fill, pre-fault the active segment as appends ask for it:
            // otherwise they outrun the pre-faulted window during the fill and fault themselves.
            // Not pre-faulted here: it is handed over first (a waiting roll takes it at once and
            // its appends ask for their window) or else warmed as a cold ready segment.
            let mut pace = FillPace::new(&self.progress, base, self.fill_lead);
            let made = self.check_room().and_then(|()| {
                create_segment_with(&self.dir, base, self.file_size, &mut |filled| {
                    self.between_fill_chunks(filled, &mut pace)
                })
            });
            let mut st = self.state.lock();
            st.busy = None;
            match made {
                Ok((seg, _)) => st.ready = Some(seg),
                // A fill cut short by shutdown is expected, not a failure worth a warning.
                Err(e) if self.stop.load(Ordering::Acquire) => {
                    tracing::debug!(base, error = %e, "pre-allocation stopped by shutdown")
                }
                Err(e) => {
                    tracing::warn!(base, error = %e, "pre-allocating the next segment failed")
                }
            }
            self.cv.notify_all();
        }
    }

    /// Called between the chunks of a segment's zero-fill, `filled` bytes into it: serves a
    /// pending warm request of the active segment, and says how to go on (stop at shutdown,
    /// hurry when an append waits). Under SYNC_FLUSH, while the log is being synced, it waits
    /// until the log's progress lets the next chunk go ([`FillPace`]).
    fn between_fill_chunks(&self, filled: u64, pace: &mut FillPace) -> FillStep {
        let paced = self.write_through.load(Ordering::Relaxed) && pace.syncing(&self.progress);
        loop {
            if self.stop.load(Ordering::Acquire) {
                return FillStep::Stop;
            }
            if self.hurry.load(Ordering::Acquire) {
                return FillStep::Hurry;
            }
            if self.warm_pending.load(Ordering::Acquire) {
                self.serve_warm();
            }
            if !paced || pace.may_write(&self.progress, filled, self.file_size) {
                return FillStep::Go;
            }
            {
                // Woken early by a warm request or the shutdown.
                let mut st = self.state.lock();
                if !st.shutdown && !self.warm_pending.load(Ordering::Acquire) {
                    self.cv.wait_for(&mut st, self.fill_tick);
                }
            }
            if !pace.syncing(&self.progress) {
                return FillStep::Go;
            }
        }
    }

    /// Pre-faults what the last warm request asked for, if any.
    fn serve_warm(&self) {
        let warm = {
            let mut st = self.state.lock();
            self.warm_pending.store(false, Ordering::Release);
            st.warm.take()
        };
        if let Some((seg, to)) = warm {
            seg.warm(to, self.write_through.load(Ordering::Relaxed));
        }
    }

    /// Asks for `seg` to be pre-faulted up to `to` (non-blocking).
    fn request_warm(&self, seg: &Arc<Segment>, to: u64) {
        let mut st = self.state.lock();
        if !st.shutdown {
            st.warm = Some((Arc::clone(seg), to));
            self.warm_pending.store(true, Ordering::Release);
            self.cv.notify_all();
        }
    }

    fn request(&self, base: u64) {
        let mut st = self.state.lock();
        let have = st.ready.as_ref().map(|s| s.base) == Some(base) || st.busy == Some(base);
        if !have && !st.shutdown {
            st.wanted = Some(base);
            self.cv.notify_all();
        }
    }

    /// The segment for `base`: the pre-allocated one if ready (waiting if it is being made), else
    /// created here. Then asks for the one after it.
    ///
    /// Under ASYNC_FLUSH a roll that would wait longer than [`HURRY_AFTER`] (the pre-allocation
    /// cannot keep up with the ingest: on this VM fresh memory costs 1-4 s per GiB to fault in)
    /// has the segment finished at once, the rest reserved rather than zero-filled and no
    /// window pre-faulted: the appends then take page faults for a while instead of all standing
    /// still for up to a second (16 KiB ingest: 0.3-0.95 s per roll, 2026-11-22). Under
    /// SYNC_FLUSH the roll waits: reserved (unwritten) blocks would make every sync of that
    /// segment slower, and there the ingest is slow enough for the pre-allocation to keep up.
    fn take(&self, base: u64) -> Result<Arc<Segment>> {
        let started = std::time::Instant::now();
        let may_hurry = !self.write_through.load(Ordering::Relaxed);
        let seg = {
            let mut st = self.state.lock();
            loop {
                if st.ready.as_ref().map(|s| s.base) == Some(base) {
                    break st.ready.take();
                }
                if st.busy == Some(base) {
                    if may_hurry && started.elapsed() >= HURRY_AFTER {
                        self.hurry.store(true, Ordering::Release);
                    }
                    self.cv.wait_for(&mut st, HURRY_AFTER);
                    continue;
                }
                if st.wanted == Some(base) {
                    st.wanted = None;
                }
                break None;
            }
        };
        let made_here = seg.is_none();
        if made_here {
            self.check_room()?;
        }
        let seg = match seg {
            Some(s) => s,
            None if may_hurry => {
                create_segment_with(&self.dir, base, self.file_size, &mut |_| FillStep::Hurry)?.0
            }
            None => create_segment(&self.dir, base, self.file_size, true)?,
        };
        let waited = started.elapsed();
        if waited >= SLOW_ROLL {
            // Appends (under the append lock) stood still this long: the pre-allocation could
            // not keep up with the ingest (RocketMQ logs its slow file creations likewise).
            tracing::warn!(
                base,
                waited_ms = waited.as_millis() as u64,
                made_here,
                "appends waited for the next CommitLog segment"
            );
        }
        Ok(seg)
    }

    /// Refuses to start a segment the disk has no room for (`DiskFull`), before anything is
    /// written. Without this, a roll on a nearly full disk zero-filled until ENOSPC under the
    /// append lock, and every following send that needed the segment did it again: with 0.9 GiB
    /// free, each attempt wrote 0.9 GiB of zeros, and the sends waiting behind it timed out at
    /// the client (benchmark report of 2026-11-22, a disk shared with other work). Counts the
    /// space an unprivileged user may write (`f_bavail`): the blocks reserved for root stay for
    /// the system. A probe that fails lets the attempt go on (its write reports what is wrong).
    fn check_room(&self) -> Result<()> {
        let probe = self
            .probe
            .get_or_init(|| Arc::new(|p: &Path| crate::mmap::disk_space(p)));
        match probe(&self.dir) {
            Ok(space) if space.available_bytes < self.file_size => {
                Err(StoreError::DiskFull(format!(
                    "{}: {} bytes available, a CommitLog segment needs {}",
                    self.dir.display(),
                    space.available_bytes,
                    self.file_size
                )))
            }
            _ => Ok(()),
        }
    }

    /// Waits until no segment is being made or wanted (benches start timing after this).
    fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.state.lock();
        while st.busy.is_some() || st.wanted.is_some() {
            if st.shutdown || self.cv.wait_until(&mut st, deadline).timed_out() {
                return st.busy.is_none() && st.wanted.is_none();
            }
        }
        true
    }

    fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let mut st = self.state.lock();
        st.shutdown = true;
        self.cv.notify_all();
    }
}

/// State guarded by the append lock.
struct Appender {
    /// The segment being written and its single writer (`None` when the log ends exactly at a
    /// segment boundary and the next segment has not been taken yet).
    active: Option<(Arc<Segment>, MappedWriter)>,
    /// Next queue offset of each (topic, queue id). foldhash (seeded per map, so not open to
    /// chosen-collision floods) instead of SipHash: the lookup runs on every put under the lock.
    queue_offsets: QueueOffsets,
    /// SYNC_FLUSH (the log writes through the file descriptor): records appended but not yet
    /// written, the bytes right after the active segment's published end. The group commit
    /// writes them with one `pwrite` before its sync ([`CommitLog::flush`]), not every append
    /// with its own: a `pwrite` of 1 KiB cost ~1.4 us here plus the syscall, ~14 % of the
    /// broker's worker time at 1 KiB (perf, 2026-11-22). Readers and the dispatcher see records
    /// once written (published), so a record is visible one group commit after its append, as
    /// its acknowledgement is.
    staging: Vec<u8>,
    /// The store time of every append (see [`StoreClock`]).
    clock: StoreClock,
}

/// Staged bytes from which an append writes them itself rather than leave them to the group
/// commit: while a round's sync waits for the disk, the next round's records then reach the page
/// cache in a few calls of ~8 KiB, beside it, instead of all in the commit thread's serial path
/// before the next sync. A/B, SYNC 1 KiB x 64 in flight at the broker, load 2.5-4 (2026-11-22):
/// with 4 MiB (the commit thread writes nearly everything) 54-57k msgs/s and 2.4-2.7k commits/s;
/// with 8 KiB 64-78k and 3.2-4.7k; per-append writes (before staging) 39-48k and 2.7-3.8k. 4 and
/// 16 KiB were within the noise of 8.
const STAGED_MAX_BYTES: usize = 8 << 10;

/// Where a SYNC_FLUSH drain's `pwrite` ends when the staged records end at `end` in a segment of
/// `file_len` bytes: at the end of `end`'s page (the rest of the page written with zeros, which
/// it holds already: a segment is zero-filled, and recovery zeroes everything past the valid end),
/// never past the file. A `pwrite` that covers part of a page missing from the page cache reads
/// that page from the disk first, on the append path; ending every write on a page boundary
/// leaves the next drain's first page cached (written by this one) and all its others whole.
/// Segments are zero-filled with direct I/O, so without this their pages had to be read ahead
/// of the appender: 64 MiB at a time, those reads held the group commit's syncs back for 25-70
/// ms about every 0.7 s (`perf trace -e msync`, SYNC 1 KiB 2 x 32 at the broker); with it, the
/// ack p99.9 fell from 9.5-17.5 ms to 4.3-4.8 ms and the largest ack from 96-133 ms to 8-58 ms,
/// msgs/s unchanged (3 interleaved pairs, 2026-11-22).
fn drain_write_end(end: u64, file_len: u64) -> u64 {
    end.next_multiple_of(OS_PAGE_SIZE).min(file_len).max(end)
}

/// The segments of `all` (sorted by base, contiguous) that `[from, to)` touches, usually one: not
/// a clone of the whole list per group commit, which is one reference count per segment (~1,000
/// for 1 TB of log).
fn touching(all: &[Arc<Segment>], from: u64, to: u64) -> Vec<Arc<Segment>> {
    let first = all.partition_point(|s| s.end() <= from);
    all.iter()
        .skip(first)
        .take_while(|s| s.base < to)
        .cloned()
        .collect()
}

/// What recovery hands to [`CommitLog::new`].
pub struct RecoveredLog {
    pub segments: Vec<Arc<Segment>>,
    pub active: Option<(Arc<Segment>, MappedWriter)>,
    /// End of the valid records (a record boundary).
    pub valid_end: u64,
    /// The pre-allocated segment right after the active one, kept from before a clean shutdown
    /// (it holds nothing): the next roll takes it instead of making a new one.
    pub next: Option<Arc<Segment>>,
}

/// Shared failure latch: once set, no write is accepted again.
#[derive(Default)]
pub struct WriteLatch {
    disabled: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl WriteLatch {
    pub fn disable(&self, reason: String) {
        let mut r = self.reason.lock();
        if r.is_none() {
            tracing::error!(%reason, "store stops accepting writes");
            *r = Some(reason);
        }
        self.disabled.store(true, Ordering::Release);
    }
    pub fn check(&self) -> Result<()> {
        if self.disabled.load(Ordering::Acquire) {
            let r = self.reason.lock().clone().unwrap_or_default();
            return Err(StoreError::WriteDisabled(r));
        }
        Ok(())
    }
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }
}

pub struct CommitLog {
    dir: PathBuf,
    file_size: u64,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Taken by every append and by the group commit's write of staged records: a lock that
    /// never yields the CPU while waiting (see `crate::sync`).
    append: crate::sync::Mutex<Appender>,
    /// `max_offset` and the sync count, shared with the pre-allocation thread (which paces its
    /// zero-fills by them).
    progress: Arc<LogProgress>,
    /// Store time of the last appended record (0 if none since open), for `flushed_store_ts`.
    last_store_ts: AtomicI64,
    flushed: AtomicU64,
    flushed_store_ts: AtomicI64,
    flush_lock: crate::sync::Mutex<()>,
    prealloc: Arc<Preallocator>,
    prealloc_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) latch: Arc<WriteLatch>,
    pub(crate) disk_full: AtomicBool,
    /// Test seam: the next flush fails as if msync returned EIO.
    pub(crate) fail_next_flush: AtomicBool,
    /// Called (SYNC_FLUSH, write-through) after every sync that covered new records, whoever
    /// wrote them: wakes the dispatcher, which appends in this mode leave alone.
    publish_hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("dir", &self.dir)
            .field("max_offset", &self.max_offset())
            .field("flushed", &self.flushed())
            .finish()
    }
}

impl CommitLog {
    /// Builds the log from what recovery found; everything below `valid_end` is durable.
    pub fn new(dir: &Path, file_size: u64, rec: RecoveredLog, latch: Arc<WriteLatch>) -> Self {
        let progress = LogProgress::new(rec.valid_end);
        let prealloc = Arc::new(Preallocator::new(
            dir,
            file_size,
            rec.next,
            Arc::clone(&progress),
        ));
        Self {
            dir: dir.to_path_buf(),
            file_size,
            segments: RwLock::new(rec.segments),
            append: crate::sync::Mutex::new(Appender {
                active: rec.active,
                queue_offsets: QueueOffsets::default(),
                clock: StoreClock::new(),
                staging: Vec::new(),
            }),
            progress,
            last_store_ts: AtomicI64::new(0),
            flushed: AtomicU64::new(rec.valid_end),
            flushed_store_ts: AtomicI64::new(0),
            flush_lock: crate::sync::Mutex::new(()),
            prealloc,
            prealloc_thread: Mutex::new(None),
            latch,
            disk_full: AtomicBool::new(false),
            fail_next_flush: AtomicBool::new(false),
            publish_hook: std::sync::OnceLock::new(),
        }
    }

    /// Sets the function called after each sync of new written-through records (once; later
    /// calls are ignored).
    pub fn set_publish_hook(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.publish_hook.set(f);
    }

    /// Writes the staged records (SYNC_FLUSH) at the active segment's published end and
    /// publishes them. Returns whether there were any. A failed write latches the store: the
    /// records had queue offsets and may have been reported appended.
    fn drain_locked(&self, a: &mut Appender) -> Result<bool> {
        if a.staging.is_empty() {
            return Ok(false);
        }
        let Some((seg, writer)) = a.active.as_mut() else {
            unreachable!("staged records without an active segment");
        };
        let at = writer.mapped().published();
        let end = at + a.staging.len() as u64;
        // Zeros to the end of the last page (see `drain_write_end`); they stay unpublished.
        let write_end = drain_write_end(end, writer.mapped().len());
        a.staging.resize((write_end - at) as usize, 0);
        let written = writer.write_through(at, &a.staging);
        a.staging.clear();
        if let Err(e) = written {
            let err = io_or_full(writer.mapped().path(), e);
            self.latch
                .disable(format!("writing the CommitLog failed: {err}"));
            return Err(err);
        }
        writer.publish(end);
        self.progress.end.store(seg.base + end, Ordering::Release);
        Ok(true)
    }

    /// Chooses how appends reach the page cache: through the file descriptor with `pwrite`
    /// (`true`, used under SYNC_FLUSH) or by copying into the mapping (`false`, the default,
    /// fastest for ASYNC_FLUSH). Readers always use the mapping; both see the same page cache.
    /// Why SYNC_FLUSH writes through: see [`MappedWriter::write_through`]. Call before `start`.
    pub fn set_write_through(&self, on: bool) {
        self.prealloc.write_through.store(on, Ordering::Relaxed);
    }

    /// Measures the disk with `probe` before each new segment instead of statvfs (tests). Call
    /// before `start`; later calls are ignored.
    pub fn set_disk_probe(&self, probe: DiskProbe) {
        let _ = self.prealloc.probe.set(probe);
    }

    pub(crate) fn write_through(&self) -> bool {
        self.prealloc.write_through.load(Ordering::Relaxed)
    }

    /// Starts the pre-allocation thread and asks for the segment after the active one.
    pub fn start(&self) -> Result<()> {
        let p = Arc::clone(&self.prealloc);
        let h = std::thread::Builder::new()
            .name("ferrocket-prealloc".into())
            .spawn(move || p.run())
            .map_err(|e| StoreError::io(&self.dir, e))?;
        *self.prealloc_thread.lock() = Some(h);
        // With no active segment the first append needs one at the log end: make it now. The
        // segment after an active one is asked for by `append` once it is a quarter full.
        if self.append.lock().active.is_none() {
            self.prealloc.request(self.max_offset());
        }
        Ok(())
    }

    /// Blocks until the background pre-allocation has nothing in progress.
    pub fn wait_preallocated(&self, timeout: std::time::Duration) -> bool {
        self.prealloc.wait_idle(timeout)
    }

    pub fn stop(&self) {
        self.prealloc.shutdown();
        if let Some(h) = self.prealloc_thread.lock().take() {
            let _ = h.join();
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn file_size(&self) -> u64 {
        self.file_size
    }
    /// End of published records (exclusive).
    pub fn max_offset(&self) -> u64 {
        self.progress.end.load(Ordering::Acquire)
    }
    /// Bytes below this offset are on disk.
    pub fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }
    /// How many flushes (msync rounds) have completed since open.
    pub fn sync_count(&self) -> u64 {
        self.progress.syncs.load(Ordering::Relaxed)
    }
    /// Store timestamp of the last record known flushed (0 if none since open).
    pub fn flushed_store_ts(&self) -> i64 {
        self.flushed_store_ts.load(Ordering::Acquire)
    }
    /// Base of the first segment (0 for an empty log).
    pub fn min_offset(&self) -> u64 {
        self.segments
            .read()
            .first()
            .map(|s| s.base)
            .unwrap_or_else(|| self.max_offset())
    }
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().clone()
    }

    /// Seeds the queue offset table (after recovery rebuilt the ConsumeQueues).
    pub fn set_queue_offsets(&self, table: Vec<(String, u32, u64)>) {
        let mut a = self.append.lock();
        for (topic, qid, next) in table {
            *a.queue_offsets.slot(&topic, qid) = next;
        }
    }

    /// DELETE_TOPIC's part under the append lock: `f` gets the log's end (every record of
    /// `topic` so far lies below it) and runs with appends held off; if it succeeds, the topic's
    /// queue offsets restart at 0, before any new record of the topic can be appended.
    pub fn delete_topic_with<T>(&self, topic: &str, f: impl FnOnce(u64) -> Result<T>) -> Result<T> {
        let mut a = self.append.lock();
        // Staged records (SYNC_FLUSH) count: they are the topic's too.
        let end = match a.active.as_ref() {
            Some((seg, w)) => seg.base + w.mapped().published() + a.staging.len() as u64,
            None => self.max_offset(),
        };
        let r = f(end)?;
        a.queue_offsets.reset_topic(topic);
        Ok(r)
    }

    /// Next queue offset of (topic, queue) as the appender sees it.
    pub fn next_queue_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.append.lock().queue_offsets.get(topic, queue_id)
    }

    /// Appends `msgs` (with their encoded lengths, computed outside the lock) as consecutive
    /// records in one segment. Returns one [`Appended`] per message and the end offset. A single
    /// message allocates nothing here (the list keeps one entry inline).
    ///
    /// BODYCRC is computed here, under the lock, fused with the body copy
    /// ([`RecordParts::encode_tail_crc`]): each piece of the body is CRCed and then copied, so
    /// the copy reads a piece the CRC just brought into L1, and the CRC of the next piece runs
    /// while the stores of this one drain into the fresh segment page. Measured on the 1 KiB
    /// put: ~10% faster than CRC then copy, and CRC after the copy is slower than both. The
    /// head (queue offset, store time, BODYCRC) is written last.
    pub fn append(&self, msgs: &[MessageInput], lens: &[usize]) -> Result<(AppendedList, u64)> {
        assert!(msgs.len() == lens.len());
        let total: u64 = lens.iter().map(|&l| l as u64).sum();
        if total + BLANK_LEN_BYTES > self.file_size {
            return Err(StoreError::MessageIllegal(format!(
                "{total} bytes do not fit in a {} byte CommitLog segment",
                self.file_size
            )));
        }
        let mut guard = self.append.lock();
        self.latch.check()?;
        if self.disk_full.load(Ordering::Acquire) {
            return Err(StoreError::DiskFull(format!(
                "{}: disk usage above the warning level",
                self.dir.display()
            )));
        }
        let a = &mut *guard;
        self.make_room(a, total)?;
        let Some((seg, writer)) = a.active.as_mut() else {
            unreachable!("make_room leaves an active segment");
        };
        // One store time for the whole batch, read under the lock so that store times follow
        // the log's order (Java's `beginLockTimestamp`), before the records are copied.
        let store_ts = a.clock.now_ms();
        let write_through = self.write_through();
        // Staged bytes follow the published end (SYNC_FLUSH); this batch follows them.
        let staged = a.staging.len();
        let start = writer.mapped().published() + staged as u64;
        // Stores through the mapping land on reserved pages only (mmap.rs, M5), the blank marker
        // a later roll may write after these records included. Only a segment made in a hurry
        // on tmpfs (or opened by recovery there) can be short of it, when the appends outrun the
        // reservation running ahead of them (`Segment::warm`): then they reserve up to the next
        // step boundary here, and a full file system refuses this append before anything is
        // stored.
        let need = start + total + BLANK_LEN_BYTES;
        if !write_through && need > seg.reserved() {
            seg.reserve_to(need.next_multiple_of(TMPFS_ALLOC_CHUNK_BYTES))?;
        }
        let mut pos = start;
        if write_through {
            a.staging.resize(staged + total as usize, 0);
        }
        let mut out = AppendedList::with_capacity(msgs.len());
        for (msg, &len) in msgs.iter().zip(lens) {
            let phy = seg.base + pos;
            let mut parts = RecordParts {
                queue_id: msg.queue_id as i32,
                flag: msg.flag,
                queue_offset: 0,
                phy_offset: phy as i64,
                sys_flag: msg.sys_flag,
                born_timestamp: msg.born_timestamp,
                born_host: msg.born_host,
                store_timestamp: 0,
                store_host: msg.store_host,
                reconsume_times: msg.reconsume_times,
                prepared_transaction_offset: msg.prepared_transaction_offset,
                body_crc: 0,
                body: &msg.body,
                topic: &msg.topic,
                properties: &msg.properties,
            };
            let slot = if write_through {
                let at = staged + (pos - start) as usize;
                &mut a.staging[at..at + len]
            } else {
                writer.slot_mut(pos, len as u64)
            };
            let (head_len, crc) =
                parts.encode_tail_crc(slot, record::body_crc_chunk(msg.body.len()));
            parts.body_crc = crc;
            let queue_offset = assign_queue_offset(&mut a.queue_offsets, msg);
            parts.queue_offset = queue_offset as i64;
            parts.store_timestamp = store_ts;
            parts.encode_head(slot, head_len);
            out.push(Appended {
                phy_offset: phy,
                queue_offset,
                size: len as u32,
                store_timestamp: store_ts,
            });
            pos += len as u64;
        }
        if !write_through {
            writer.publish(pos);
        }
        if !write_through
            && pos + WARM_LOW_BYTES > seg.warm_requested.load(Ordering::Relaxed)
            && pos + WARM_LOW_BYTES > seg.warmed.load(Ordering::Relaxed)
        {
            let to = pos + WARM_WINDOW_BYTES;
            seg.warm_requested.store(to, Ordering::Relaxed);
            self.prealloc.request_warm(seg, to);
        }
        // The next segment is made once this one is a quarter full, not at open or roll: making
        // a 1 GiB file competes with the appends for the disk and, on 2 cores, for a CPU.
        // A load first: a swap on every put past the quarter mark would be a locked instruction,
        // which waits for the record's stores to drain.
        if pos >= self.file_size / NEXT_SEGMENT_AT_FRACTION
            && !seg.next_requested.load(Ordering::Relaxed)
            && !seg.next_requested.swap(true, Ordering::Relaxed)
        {
            self.prealloc.request(seg.end());
        }
        let end = seg.base + pos;
        if write_through {
            // Staged: the group commit writes and publishes them (`flush`), unless they reach
            // `STAGED_MAX_BYTES` first.
            // A failed write there leaves queue offsets handed out for records that are not in
            // the log; rather than unwind them, the store stops accepting writes (as after a
            // failed sync: an I/O error writing the page cache means the disk or the kernel
            // failed).
            if a.staging.len() >= STAGED_MAX_BYTES {
                self.drain_locked(a)?;
            }
        } else {
            self.progress.end.store(end, Ordering::Release);
        }
        // After `max_offset` (or, staged, before `flush` reads `max_offset` after writing the
        // staged records): whoever reads this (Acquire) and then `max_offset` sees the end of
        // the record carrying this time or later (`flush`).
        self.last_store_ts.store(store_ts, Ordering::Release);
        Ok((out, end))
    }

    /// Ensures the active segment has room for `total` bytes plus a blank marker, rolling to the
    /// next segment (blank marker first) if not. The next segment is obtained before the blank is
    /// written, so a failure (disk full) leaves the log unchanged.
    fn make_room(&self, a: &mut Appender, total: u64) -> Result<()> {
        let staged = a.staging.len() as u64;
        let next_base = match a.active.as_ref() {
            None => {
                let max = self.max_offset();
                assert_eq!(
                    max % self.file_size,
                    0,
                    "log without active segment ends mid-segment"
                );
                max
            }
            Some((seg, w)) => {
                if w.mapped().published() + staged + total + BLANK_LEN_BYTES <= self.file_size {
                    return Ok(());
                }
                // The blank marker is a store through the mapping too (M5). Reserved by the
                // last append already, except in a segment recovery opened on tmpfs.
                if !self.write_through() {
                    seg.reserve_to(w.mapped().published() + BLANK_LEN_BYTES)?;
                }
                seg.end()
            }
        };
        let next = self.prealloc.take(next_base)?;
        let mut writer = next
            .mapped
            .writer()
            .ok_or_else(|| StoreError::Config("new segment already has a writer".into()))?;
        // Records staged in this segment are written before its blank marker.
        self.drain_locked(a)?;
        if let Some((_, w)) = a.active.as_mut() {
            let at = w.mapped().published();
            let left = self.file_size - at;
            let blank = record::blank_marker(left as u32);
            if self.write_through() {
                if let Err(e) = w.write_through(at, &blank) {
                    let err = io_or_full(w.mapped().path(), e);
                    self.latch
                        .disable(format!("writing the CommitLog failed: {err}"));
                    return Err(err);
                }
            } else {
                w.write(at, &blank);
            }
            w.publish(self.file_size);
        }
        self.segments.write().push(Arc::clone(&next));
        // The new segment starts empty; publish nothing yet.
        writer.publish(0);
        a.active = Some((next, writer));
        Ok(())
    }

    /// The segment holding `phy`, if any.
    pub fn segment_for(&self, phy: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read();
        let i = segs.partition_point(|s| s.base <= phy);
        let seg = segs.get(i.checked_sub(1)?)?;
        (phy < seg.end()).then(|| Arc::clone(seg))
    }

    /// The published bytes `[phy, phy + len)` as a zero-copy slice, if all of them are readable
    /// and in one segment.
    pub fn slice(&self, phy: u64, len: u32) -> Option<Slice> {
        let seg = self.segment_for(phy)?;
        let pos = phy - seg.base;
        seg.mapped.read(pos, u64::from(len))?;
        Some(Slice::new(seg, pos, len))
    }

    /// The whole record starting at `phy`, validated (magic, sizes, PHYSICALOFFSET; not the CRC).
    /// `None` if `phy` is not the start of a published record.
    pub fn read_record(&self, phy: u64) -> Option<Slice> {
        let seg = self.segment_for(phy)?;
        let pos = phy - seg.base;
        let published = seg.mapped.published();
        let rest = seg.mapped.read(pos, published.checked_sub(pos)?)?;
        match record::scan(rest, phy, false) {
            Ok(Scan::Record(len)) => Some(Slice::new(seg, pos, len)),
            _ => None,
        }
    }

    /// Store timestamp of the record at `phy`, if it is one.
    pub fn store_timestamp_at(&self, phy: u64) -> Option<i64> {
        let s = self.read_record(phy)?;
        record::decode_record(s.as_bytes())
            .ok()
            .map(|r| r.store_timestamp)
    }

    /// Flushes `[flushed, max_offset)` if it spans at least `least_pages` dirty pages (0 = any).
    /// Returns the flushed offset afterwards. A failure latches the store read-only: a failed
    /// msync may have dropped dirty pages, so retrying could report data durable that is not.
    pub fn flush(&self, least_pages: u32) -> Result<u64> {
        let (end, published) = self.flush_unannounced(least_pages)?;
        if published {
            self.announce();
        }
        Ok(end)
    }

    /// [`flush`](Self::flush) that leaves the publish hook to the caller: returns the flushed
    /// offset and whether the sync covered new written-through records, after which the caller
    /// must call [`announce`](Self::announce). The group commit hands its round of
    /// acknowledgements over first: the hook wakes the dispatcher (a futex wake, an IPI on this
    /// VM), which no acknowledgement needs to wait for.
    pub(crate) fn flush_unannounced(&self, least_pages: u32) -> Result<(u64, bool)> {
        let _g = self.flush_lock.lock();
        self.latch.check()?;
        // The time is read first, so it belongs to a record below `target` (see `append`).
        // Only the staged records' write takes the append lock (once per round): the sync
        // itself runs without it, so appends go on while it waits for the disk.
        let ts = self.last_store_ts.load(Ordering::Acquire);
        if self.write_through() {
            // The staged records (all appended so far, the one carrying `ts` among them) are
            // written first, so the sync covers them.
            self.drain_locked(&mut self.append.lock())?;
        }
        let target = self.max_offset();
        let from = self.flushed();
        if target <= from {
            return Ok((from, false));
        }
        if least_pages > 0 && target / OS_PAGE_SIZE - from / OS_PAGE_SIZE < u64::from(least_pages) {
            return Ok((from, false));
        }
        if let Err(e) = self.sync_range(from, target) {
            self.latch
                .disable(format!("flushing the CommitLog failed: {e}"));
            return Err(e);
        }
        self.flushed.store(target, Ordering::Release);
        self.progress.syncs.fetch_add(1, Ordering::Relaxed);
        if ts != 0 {
            self.flushed_store_ts.store(ts, Ordering::Release);
        }
        // Written-through records are dispatched once a sync covered them, whoever wrote them
        // (this drain, an append's, a roll's): appends do not wake the dispatcher in this mode
        // (`MessageStore::append_many`), so every sync that covered new bytes does, once. After
        // the sync, not on the way to it: the wake-up is a syscall.
        Ok((target, self.write_through()))
    }

    /// Calls the publish hook (see [`flush_unannounced`](Self::flush_unannounced)).
    pub(crate) fn announce(&self) {
        if let Some(hook) = self.publish_hook.get() {
            hook();
        }
    }

    fn sync_range(&self, from: u64, to: u64) -> Result<()> {
        if self.fail_next_flush.swap(false, Ordering::AcqRel) {
            return Err(StoreError::io(
                &self.dir,
                io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        // The sync runs without the lock.
        let segs = touching(&self.segments.read(), from, to);
        for seg in &segs {
            let start = from.max(seg.base) - seg.base;
            let end = to.min(seg.end()) - seg.base;
            seg.mapped
                .flush_range(start, end - start)
                .map_err(|e| StoreError::io(seg.mapped.path(), e))?;
        }
        Ok(())
    }

    /// Removes up to `max_files` leading segments for which `expired` says yes, never the active
    /// (last) one. Readers holding slices keep their mapping (M2). Returns the removed bases.
    pub fn delete_leading(
        &self,
        max_files: usize,
        mut expired: impl FnMut(&Segment) -> bool,
    ) -> Vec<u64> {
        let victims: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let keep_from = segs.len().saturating_sub(1);
            let n = segs
                .iter()
                .take(keep_from.min(max_files))
                .take_while(|s| expired(s))
                .count();
            segs.drain(..n).collect()
        };
        let mut removed = Vec::new();
        for seg in victims {
            match std::fs::remove_file(seg.mapped.path()) {
                Ok(()) => removed.push(seg.base),
                Err(e) => {
                    tracing::warn!(path = %seg.mapped.path().display(), error = %e, "deleting a segment failed")
                }
            }
        }
        if !removed.is_empty() {
            let _ = sync_dir(&self.dir);
        }
        removed
    }
}

type FastState = foldhash::fast::RandomState;

/// Queue ids below this are counted in a vector indexed by the id (RocketMQ's are small: 0..16
/// by default); larger ones (up to `i32::MAX`) in a map.
const DENSE_QUEUE_IDS: u32 = 1024;

/// Next queue offset of every (topic, queue id), read and bumped on every put under the append
/// lock. A topic is found by comparing with the previous put's topic (consecutive puts mostly
/// share one, and a short string compare is far cheaper than hashing and probing), else through
/// a foldhash map (seeded per map, so not open to chosen-collision floods); its queues are a
/// vector indexed by queue id. Two nested SipHash or foldhash maps cost ~12% of a 1 KiB put.
#[derive(Default)]
struct QueueOffsets {
    index: HashMap<String, usize, FastState>,
    topics: Vec<TopicOffsets>,
    /// Index in `topics` of the last topic looked up.
    last: Option<usize>,
}

struct TopicOffsets {
    name: String,
    dense: Vec<u64>,
    sparse: HashMap<u32, u64, FastState>,
}

impl QueueOffsets {
    fn topic_mut(&mut self, topic: &str) -> &mut TopicOffsets {
        let cached = self
            .last
            .filter(|&i| self.topics.get(i).is_some_and(|t| t.name == topic));
        let i = match cached {
            Some(i) => i,
            None => {
                let i = match self.index.get(topic) {
                    Some(&i) => i,
                    None => {
                        let i = self.topics.len();
                        self.topics.push(TopicOffsets {
                            name: topic.to_owned(),
                            dense: Vec::new(),
                            sparse: HashMap::default(),
                        });
                        self.index.insert(topic.to_owned(), i);
                        i
                    }
                };
                self.last = Some(i);
                i
            }
        };
        match self.topics.get_mut(i) {
            Some(t) => t,
            None => unreachable!("queue offset index points past its topics"),
        }
    }

    /// The counter of (topic, queue id), created at 0.
    fn slot(&mut self, topic: &str, queue_id: u32) -> &mut u64 {
        let t = self.topic_mut(topic);
        if queue_id < DENSE_QUEUE_IDS {
            let q = queue_id as usize;
            if q >= t.dense.len() {
                t.dense.resize(q + 1, 0);
            }
            match t.dense.get_mut(q) {
                Some(n) => n,
                None => unreachable!("dense queue table was just grown"),
            }
        } else {
            t.sparse.entry(queue_id).or_insert(0)
        }
    }

    /// Every queue of `topic` back to 0 (the entry stays: its index is cached).
    fn reset_topic(&mut self, topic: &str) {
        if let Some(t) = self.index.get(topic).and_then(|&i| self.topics.get_mut(i)) {
            t.dense.iter_mut().for_each(|n| *n = 0);
            t.sparse.clear();
        }
    }

    fn get(&self, topic: &str, queue_id: u32) -> u64 {
        let Some(t) = self.index.get(topic).and_then(|&i| self.topics.get(i)) else {
            return 0;
        };
        if queue_id < DENSE_QUEUE_IDS {
            t.dense.get(queue_id as usize).copied().unwrap_or(0)
        } else {
            t.sparse.get(&queue_id).copied().unwrap_or(0)
        }
    }
}

fn assign_queue_offset(table: &mut QueueOffsets, msg: &MessageInput) -> u64 {
    let tx = msg.sys_flag & record::SYSFLAG_TRANSACTION_MASK;
    if tx == record::SYSFLAG_TRANSACTION_PREPARED || tx == record::SYSFLAG_TRANSACTION_ROLLBACK {
        // Half and rollback records get no ConsumeQueue unit (RocketMQ stores queue offset 0).
        return 0;
    }
    let next = table.slot(&msg.topic, msg.queue_id);
    let q = *next;
    *next += 1;
    q
}

/// Wall-clock milliseconds for store timestamps, read on every append under the append lock.
///
/// `SystemTime::now` (vDSO `clock_gettime`) cost a 1 KiB put ~30 ns of its ~190 on this VM
/// (same-process A/B with the read replaced by a constant, 2026-11-22): the vDSO orders its TSC
/// read with `lfence`, which waits for every older instruction. So the wall clock is read once
/// per [`STORE_CLOCK_RESYNC_NS`] (an anchor) and in between the time is the anchor plus the
/// time-stamp counter's progress since it, scaled by quanta's calibration (plain `rdtsc`, no
/// fence; where the CPU has no invariant TSC, quanta reads the monotonic clock instead, which is
/// still exact, just not cheaper). The interpolation is off by at most the calibration's rate
/// error over one resync period (well under a microsecond per millisecond), and a step of the
/// wall clock (NTP) shows within one period, as it would within the same millisecond before.
struct StoreClock {
    counter: quanta::Clock,
    /// `counter.raw()` at the anchor.
    anchor_raw: u64,
    /// Wall-clock nanoseconds since the Unix epoch at the anchor.
    anchor_wall_ns: u64,
    /// The last value returned (interpolation never shows it going back by a millisecond).
    last_ms: i64,
    wall_ns: fn() -> u64,
}

/// How long the interpolated store time runs between two reads of the wall clock. One store
/// timestamp's resolution: interpolation error and a late-seen clock step both stay below it.
const STORE_CLOCK_RESYNC_NS: u64 = 1_000_000;

impl StoreClock {
    fn new() -> Self {
        Self::with(quanta::Clock::new(), wall_ns)
    }

    fn with(counter: quanta::Clock, wall_ns: fn() -> u64) -> Self {
        let anchor_raw = counter.raw();
        let anchor_wall_ns = wall_ns();
        Self {
            counter,
            anchor_raw,
            anchor_wall_ns,
            last_ms: (anchor_wall_ns / 1_000_000) as i64,
            wall_ns,
        }
    }

    /// Milliseconds since the Unix epoch, as [`now_ms`].
    fn now_ms(&mut self) -> i64 {
        let raw = self.counter.raw();
        let since = self.counter.delta_as_nanos(self.anchor_raw, raw);
        let ms = if since < STORE_CLOCK_RESYNC_NS {
            (self.anchor_wall_ns.saturating_add(since) / 1_000_000) as i64
        } else {
            self.anchor_raw = raw;
            self.anchor_wall_ns = (self.wall_ns)();
            (self.anchor_wall_ns / 1_000_000) as i64
        };
        // Re-anchoring after an interpolation that ran a hair fast could step back by one
        // millisecond; keep the last value then. A real step back of the wall clock (more than
        // that) passes through, as it does through `now_ms`.
        let ms = if ms < self.last_ms && self.last_ms - ms <= 1 {
            self.last_ms
        } else {
            ms
        };
        self.last_ms = ms;
        ms
    }
}

/// Wall-clock nanoseconds since the Unix epoch (0 before it).
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (wall_ns() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The wall clock `StoreClock` sees in `store_clock_*` tests (ns since the epoch).
    static TEST_WALL_NS: AtomicU64 = AtomicU64::new(0);

    fn test_wall_ns() -> u64 {
        TEST_WALL_NS.load(Ordering::SeqCst)
    }

    /// Interpolates from the anchor, re-reads the wall clock once a resync period has passed
    /// (so a step of the wall clock shows within one period), never shows a one-millisecond
    /// step back from interpolation, and lets a real step back through.
    #[test]
    fn store_clock_interpolates_and_resyncs() {
        let (counter, mock) = quanta::Clock::mock();
        TEST_WALL_NS.store(1_700_000_000_000_400_000, Ordering::SeqCst);
        let mut c = StoreClock::with(counter, test_wall_ns);
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        // 0.5 ms of counter: interpolated, the wall clock is not read (it says something else).
        TEST_WALL_NS.store(9_000_000_000_000_000_000, Ordering::SeqCst);
        mock.increment(500_000u64);
        assert_eq!(c.now_ms(), 1_700_000_000_000);
        mock.increment(200_000u64);
        assert_eq!(c.now_ms(), 1_700_000_000_001);
        // Past the resync period: the wall clock is read (a step forward shows at once).
        mock.increment(STORE_CLOCK_RESYNC_NS);
        assert_eq!(c.now_ms(), 9_000_000_000_000);
        // The counter ran a hair fast: the new anchor is one millisecond behind what was shown.
        mock.increment(STORE_CLOCK_RESYNC_NS - 1);
        assert_eq!(c.now_ms(), 9_000_000_000_000);
        mock.increment(1u64);
        TEST_WALL_NS.store(8_999_999_999_999_000_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 9_000_000_000_000, "no 1 ms step back");
        // A real step back of the wall clock passes through.
        mock.increment(STORE_CLOCK_RESYNC_NS);
        TEST_WALL_NS.store(8_000_000_000_000_000_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 8_000_000_000_000);
        mock.increment(1_000_000u64 - 1);
        assert_eq!(c.now_ms(), 8_000_000_000_000);
    }

    /// With the real counter and wall clock, the store time stays within a millisecond of
    /// `now_ms` (read just before and after) over 50 ms of reads.
    #[test]
    fn store_clock_follows_the_wall_clock() {
        let mut c = StoreClock::new();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut n = 0u64;
        while std::time::Instant::now() < until {
            let before = now_ms();
            let t = c.now_ms();
            let after = now_ms();
            assert!(
                t >= before - 1 && t <= after + 1,
                "store clock {t} outside [{before}, {after}] +-1 ms"
            );
            n += 1;
            if n.is_multiple_of(64) {
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        }
    }

    /// The pacing rule: a fill may be `lead` bytes ahead of the log's share of the room it had
    /// when the fill began, scaled to the segment; once the log has used that room, anything goes.
    #[test]
    fn a_paced_fill_keeps_in_step_with_the_log() {
        const MIB: u64 = 1 << 20;
        // The log is at 256 MiB of a 1 GiB segment: 768 MiB of room before the next one.
        let progress = LogProgress::new(256 * MIB);
        let pace = FillPace::new(&progress, 1024 * MIB, 64 * MIB);
        let may = |filled: u64| pace.may_write(&progress, filled, 1024 * MIB);
        assert!(may(0) && may(64 * MIB), "the lead goes at once");
        assert!(!may(64 * MIB + 1));
        // The log used half its room: half the segment plus the lead.
        progress.end.store(256 * MIB + 384 * MIB, Ordering::Release);
        assert!(may(512 * MIB + 64 * MIB) && !may(512 * MIB + 64 * MIB + 1));
        // The log reached the end (or the fill began with no room left): the fill finishes.
        progress.end.store(1024 * MIB, Ordering::Release);
        assert!(may(1024 * MIB));
        progress.end.store(2048 * MIB, Ordering::Release);
        assert!(may(1024 * MIB));
        let late = FillPace::new(&progress, 1024 * MIB, 64 * MIB);
        assert!(late.may_write(&progress, 1000 * MIB, 1024 * MIB));
    }

    /// Under SYNC_FLUSH a fill ahead of the log waits while syncs run, and goes on when the log
    /// moves or the syncs stop; under ASYNC_FLUSH, or with no syncs running, it never waits.
    #[test]
    fn a_sync_fill_waits_for_the_log_only_while_it_is_synced() {
        use std::time::Duration;
        const SIZE: u64 = 64 << 20;
        let dir = tempfile::tempdir().unwrap();
        let progress = LogProgress::new(0);
        let mut pre = Preallocator::new(dir.path(), SIZE, None, Arc::clone(&progress));
        pre.fill_lead = 1 << 20;
        pre.fill_tick = Duration::from_millis(100);
        pre.write_through.store(true, Ordering::Relaxed);
        let pre = Arc::new(pre);
        // Filled 8 MiB of the next segment (base SIZE) with the log at 0: 7 MiB too far ahead.
        let step = |pace: FillPace| {
            let pre = Arc::clone(&pre);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut pace = pace;
                tx.send(pre.between_fill_chunks(8 << 20, &mut pace))
                    .unwrap();
            });
            rx
        };
        // No sync since the fill began: full speed.
        let idle = step(FillPace::new(&progress, SIZE, pre.fill_lead));
        assert_eq!(idle.recv_timeout(Duration::from_secs(5)), Ok(FillStep::Go));
        // Syncs running (one per 0.2 ms, as group commits are) and the log standing still.
        let syncs_run = |progress: &Arc<LogProgress>| {
            let (progress, on) = (Arc::clone(progress), Arc::new(AtomicBool::new(true)));
            let flag = Arc::clone(&on);
            let h = std::thread::spawn(move || {
                while flag.load(Ordering::Acquire) {
                    progress.syncs.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            move || {
                on.store(false, Ordering::Release);
                h.join().unwrap();
            }
        };
        let stop_syncs = syncs_run(&progress);
        let started = |progress: &LogProgress| {
            let mut pace = FillPace::new(progress, SIZE, 1 << 20);
            pace.syncs = u64::MAX; // a sync ran since the last look
            pace
        };
        let waits = step(started(&progress));
        assert!(
            waits.recv_timeout(Duration::from_millis(350)).is_err(),
            "waits"
        );
        // The log reaches the fill's share (7 MiB of 64 is 1/8 of the segment): it goes on.
        progress.end.store(7 << 20, Ordering::Release);
        assert_eq!(waits.recv_timeout(Duration::from_secs(5)), Ok(FillStep::Go));
        // ASYNC_FLUSH never paces.
        progress.end.store(0, Ordering::Release);
        pre.write_through.store(false, Ordering::Relaxed);
        let asyn = step(started(&progress));
        assert_eq!(asyn.recv_timeout(Duration::from_secs(5)), Ok(FillStep::Go));
        pre.write_through.store(true, Ordering::Relaxed);
        // Ahead again; the syncs stop: it goes on at full speed.
        let waits = step(started(&progress));
        assert!(
            waits.recv_timeout(Duration::from_millis(350)).is_err(),
            "waits"
        );
        stop_syncs();
        assert_eq!(waits.recv_timeout(Duration::from_secs(5)), Ok(FillStep::Go));
        // Shutdown ends a wait at once.
        let stop_syncs = syncs_run(&progress);
        let waits = step(started(&progress));
        assert!(
            waits.recv_timeout(Duration::from_millis(350)).is_err(),
            "waits"
        );
        pre.shutdown();
        assert_eq!(
            waits.recv_timeout(Duration::from_secs(5)),
            Ok(FillStep::Stop)
        );
        stop_syncs();
    }

    /// A warm request made while a segment is being zero-filled is served between two chunks of
    /// the fill, not after it; shutdown stops the fill there.
    #[test]
    fn warm_requests_are_served_between_fill_chunks() {
        // 17 MiB: at least two chunks on tmpfs (16 MiB fallocates) as on a disk (64 KiB writes).
        const SIZE: u64 = 17 << 20;
        let dir = tempfile::tempdir().unwrap();
        let pre = Preallocator::new(dir.path(), SIZE, None, LogProgress::new(0));
        let mut pace = FillPace::new(&pre.progress, SIZE, FILL_LEAD_BYTES);
        let active = create_segment(dir.path(), 0, SIZE, false).unwrap();
        // A fresh segment is warmed up to its first window (here: the whole file).
        assert_eq!(active.warmed.load(Ordering::Acquire), SIZE);
        active.warmed.store(0, Ordering::Release);
        let mut calls = 0;
        let (made, hurried) = create_segment_with(dir.path(), SIZE, SIZE, &mut |filled| {
            calls += 1;
            if calls == 2 {
                pre.request_warm(&active, 64 << 10);
                assert!(pre.warm_pending.load(Ordering::Acquire));
            }
            let go_on = pre.between_fill_chunks(filled, &mut pace);
            if calls == 2 {
                assert_eq!(
                    active.warmed.load(Ordering::Acquire),
                    64 << 10,
                    "served mid-fill"
                );
                assert!(!pre.warm_pending.load(Ordering::Acquire));
            }
            go_on
        })
        .unwrap();
        assert!(calls >= 2, "the fill calls back between chunks");
        assert!(!hurried);
        assert_eq!(made.mapped().len(), SIZE);
        // At shutdown the next fill stops at its first chunk and leaves nothing behind.
        pre.stop.store(true, Ordering::Release);
        let stopped = create_segment_with(dir.path(), 2 * SIZE, SIZE, &mut |filled| {
            pre.between_fill_chunks(filled, &mut pace)
        });
        assert!(stopped.is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// An ASYNC_FLUSH roll that finds its segment still being zero-filled has it finished at
    /// once: the fill stops writing, the rest is reserved (on tmpfs: one more chunk, here the
    /// whole 8 MiB; the rest of a larger file stays a hole, see the next tests), and the file is
    /// whole and reads as zeros, on tmpfs and on a disk file system alike. Under SYNC_FLUSH the
    /// roll waits for the whole fill.
    #[test]
    fn a_waiting_async_roll_hurries_the_fill() {
        const SIZE: u64 = 8 << 20;
        for parent in [std::env::temp_dir(), PathBuf::from("/dev/shm")] {
            if !parent.is_dir() {
                continue;
            }
            for sync in [false, true] {
                let dir = tempfile::tempdir_in(&parent).unwrap();
                let progress = LogProgress::new(0);
                let pre = Arc::new(Preallocator::new(dir.path(), SIZE, None, progress));
                pre.write_through.store(sync, Ordering::Relaxed);
                pre.state.lock().busy = Some(0);
                let chunks = Arc::new(AtomicU64::new(0));
                // The pre-allocation thread's part, with a fill slowed to 20 ms per chunk
                // (a 1 GiB fill on a loaded disk).
                let filler = {
                    let (pre, chunks) = (Arc::clone(&pre), Arc::clone(&chunks));
                    std::thread::spawn(move || {
                        let mut pace = FillPace::new(&pre.progress, 0, FILL_LEAD_BYTES);
                        let made = create_segment_with(&pre.dir, 0, SIZE, &mut |filled| {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            chunks.fetch_add(1, Ordering::Relaxed);
                            pre.between_fill_chunks(filled, &mut pace)
                        });
                        let mut st = pre.state.lock();
                        st.busy = None;
                        st.ready = Some(made.unwrap().0);
                        pre.cv.notify_all();
                    })
                };
                let seg = pre.take(0).unwrap();
                filler.join().unwrap();
                assert_eq!(seg.base, 0);
                assert_eq!(seg.mapped().len(), SIZE);
                let all = std::fs::read(seg.mapped().path()).unwrap();
                assert_eq!(all.len() as u64, SIZE);
                assert!(all.iter().all(|&b| b == 0), "{parent:?}");
                let n = chunks.load(Ordering::Relaxed);
                // 8 MiB: 8 direct-I/O chunks, or 128 page-cache ones, or 1 tmpfs chunk.
                if sync {
                    assert!(!pre.hurry.load(Ordering::Acquire), "{parent:?}");
                } else if parent != Path::new("/dev/shm") {
                    assert!(pre.hurry.load(Ordering::Acquire), "{parent:?}");
                    assert!(n < 8, "{parent:?}: {n} chunks, not hurried");
                }
            }
        }
    }

    /// A new directory in `/dev/shm` if that is a tmpfs this test can use (else it says the
    /// test is skipped).
    fn shm_dir() -> Option<tempfile::TempDir> {
        let usable = || {
            let dir = tempfile::tempdir_in("/dev/shm").ok()?;
            let probe = dir.path().join("probe");
            let tmpfs = MappedFile::create(&probe, 4096).ok()?.on_tmpfs();
            let _ = std::fs::remove_file(&probe);
            tmpfs.then_some(dir)
        };
        let dir = usable();
        if dir.is_none() {
            eprintln!("skipped: /dev/shm is not a usable tmpfs");
        }
        dir
    }

    /// Bytes the file system allocated for `path`.
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// On tmpfs, a segment made in a hurry is handed over with one chunk reserved and the rest a
    /// hole (one `fallocate` of the rest stalled the roll 110-290 ms); appends that outrun the
    /// reservation reserve the next step themselves before storing (mmap.rs, M5), so the file
    /// is always allocated past every record and blank marker. Reopened, the segment has its
    /// holes reserved by recovery before it is read (a read fault allocates a tmpfs page too).
    /// No pre-allocation thread runs here, so only the appender reserves.
    #[test]
    fn a_hurried_tmpfs_segment_is_reserved_as_the_appends_need_it() {
        // Three tmpfs chunks: 16 + 16 + 8 MiB.
        const SEG: u64 = 40 << 20;
        let Some(dir) = shm_dir() else { return };
        let (made, hurried) =
            create_segment_with(dir.path(), 0, SEG, &mut |_| FillStep::Hurry).unwrap();
        assert!(hurried);
        assert_eq!(made.mapped().len(), SEG, "full length, the rest a hole");
        assert_eq!(made.reserved(), TMPFS_ALLOC_CHUNK_BYTES);
        assert_eq!(allocated(made.mapped().path()), TMPFS_ALLOC_CHUNK_BYTES);
        drop(made);
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::create_dir(dir.path()).unwrap();

        let (rec, _) = crate::recovery::recover(dir.path(), SEG, 0, true, false).unwrap();
        let log = CommitLog::new(dir.path(), SEG, rec, Arc::new(WriteLatch::default()));
        let (m, len) = test_msg(vec![5u8; 1000]);
        // The first roll finds no segment made: it makes one in a hurry, here.
        let mut appended = Vec::new();
        let mut last_reserved = 0;
        let mut grew = 0;
        let target = TMPFS_ALLOC_CHUNK_BYTES + (TMPFS_ALLOC_CHUNK_BYTES / 2);
        while log.max_offset() < target {
            let (a, end) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
            let seg = log.segment_for(0).unwrap();
            assert!(
                seg.reserved() >= end + BLANK_LEN_BYTES,
                "stored past the reserved end"
            );
            if seg.reserved() != last_reserved {
                grew += 1;
                last_reserved = seg.reserved();
            }
            appended.push(a[0].phy_offset);
        }
        let seg = log.segment_for(0).unwrap();
        let path = seg.mapped().path().to_path_buf();
        assert_eq!(grew, 2, "made with one chunk, then one step by an append");
        assert_eq!(seg.reserved(), 2 * TMPFS_ALLOC_CHUNK_BYTES);
        assert!(allocated(&path) >= log.max_offset());
        assert!(allocated(&path) < SEG, "the rest is still a hole");
        for &phy in appended.iter().step_by(997) {
            let r = log.read_record(phy).unwrap();
            assert_eq!(
                record::decode_record(r.as_bytes()).unwrap().body,
                &[5u8; 1000][..]
            );
        }
        let end = log.max_offset();
        log.flush(0).unwrap();
        log.stop();
        drop((seg, log));

        // Reopened: recovery reserves the hole before it reads the segment.
        assert!(allocated(&path) < SEG);
        let (rec, _) = crate::recovery::recover(dir.path(), SEG, end, true, false).unwrap();
        assert_eq!(rec.valid_end, end);
        assert_eq!(allocated(&path), SEG);
        let log = CommitLog::new(dir.path(), SEG, rec, Arc::new(WriteLatch::default()));
        assert_eq!(log.segment_for(0).unwrap().reserved(), SEG);
        let (a, e) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
        assert_eq!(a[0].phy_offset, end);
        assert!(log.segment_for(0).unwrap().reserved() >= e + BLANK_LEN_BYTES);
        // Fill the segment: the roll writes its blank marker on reserved bytes, then the next
        // segment (made in a hurry again) takes the record.
        let mut at = e;
        while at < SEG {
            let (a, e) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
            at = a[0].phy_offset;
            if at < SEG {
                assert!(log.segment_for(0).unwrap().reserved() >= e + BLANK_LEN_BYTES);
            }
        }
        assert_eq!(at, SEG);
        let first = log.segment_for(0).unwrap();
        assert_eq!(first.mapped().published(), SEG);
        assert_eq!(allocated(first.mapped().path()), SEG);
        let next = log.segment_for(SEG).unwrap();
        assert!(next.reserved() >= len as u64 + BLANK_LEN_BYTES);
        assert!(next.reserved() < SEG);
        log.flush(0).unwrap();
        log.stop();
    }

    /// After a failed reservation (a full tmpfs), the appends that need one are refused at once
    /// for RESERVE_RETRY_MS, without trying (each try allocates and frees up to the failure,
    /// under the append lock); nothing is stored for them, and the next try after that succeeds
    /// when there is room.
    #[test]
    fn a_failed_reservation_refuses_appends_at_once_for_a_while() {
        const SEG: u64 = 40 << 20;
        let Some(dir) = shm_dir() else { return };
        let (rec, _) = crate::recovery::recover(dir.path(), SEG, 0, true, false).unwrap();
        let log = CommitLog::new(dir.path(), SEG, rec, Arc::new(WriteLatch::default()));
        let (m, len) = test_msg(vec![3u8; 1000]);
        log.append(std::slice::from_ref(&m), &[len]).unwrap();
        let seg = log.segment_for(0).unwrap();
        let reserved = seg.reserved();
        assert_eq!(reserved, TMPFS_ALLOC_CHUNK_BYTES, "made in a hurry");
        // Up to the reserved end: these appends need no reservation.
        while log.max_offset() + len as u64 + BLANK_LEN_BYTES <= reserved {
            log.append(std::slice::from_ref(&m), &[len]).unwrap();
        }
        let end = log.max_offset();
        // As if the last try had met a full tmpfs just now.
        seg.reserve_failed_ms.store(now_ms(), Ordering::Release);
        let started = std::time::Instant::now();
        for _ in 0..50 {
            let r = log.append(std::slice::from_ref(&m), &[len]);
            assert!(matches!(r, Err(StoreError::DiskFull(_))), "{r:?}");
            assert_eq!(seg.reserved(), reserved, "refused without reserving");
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(RESERVE_RETRY_MS as u64));
        assert_eq!(log.max_offset(), end);
        std::thread::sleep(std::time::Duration::from_millis(
            RESERVE_RETRY_MS as u64 + 10,
        ));
        let (a, _) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
        assert_eq!(
            a[0].phy_offset, end,
            "nothing stored for the refused appends"
        );
        assert_eq!(seg.reserved(), 2 * TMPFS_ALLOC_CHUNK_BYTES);
        log.stop();
    }

    fn test_msg(body: Vec<u8>) -> (MessageInput, usize) {
        let m = MessageInput {
            topic: "T".into(),
            queue_id: 0,
            flag: 0,
            body: body.into(),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "10.0.0.2:1".parse().unwrap(),
            store_host: "10.0.0.1:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let len = record::record_len(m.body.len(), 1, 0, false, false).unwrap();
        (m, len)
    }

    /// Under SYNC_FLUSH (write-through) appends are staged: not in the file nor visible until
    /// the flush writes them with one pwrite, publishes them and calls the hook; a roll writes
    /// the staged records before the blank marker; the bytes on disk are the records.
    #[test]
    fn write_through_appends_are_staged_until_the_flush() {
        const SEG: u64 = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = crate::recovery::recover(dir.path(), SEG, 0, true, false).unwrap();
        let log = CommitLog::new(dir.path(), SEG, rec, Arc::new(WriteLatch::default()));
        log.set_write_through(true);
        let hooked = Arc::new(AtomicU64::new(0));
        let h = Arc::clone(&hooked);
        log.set_publish_hook(Box::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        }));
        let (m, len) = test_msg(vec![7u8; 1000]);
        let (first, _) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
        let (second, end) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
        assert_eq!(second[0].phy_offset, len as u64);
        assert_eq!(second[0].queue_offset, 1);
        assert_eq!(log.max_offset(), 0, "staged, not published");
        assert!(log.read_record(first[0].phy_offset).is_none());
        let file = dir.path().join(segment_file_name(0));
        assert!(std::fs::read(&file).unwrap()[..2 * len]
            .iter()
            .all(|&b| b == 0));
        assert_eq!(log.flush(0).unwrap(), end);
        assert_eq!((log.max_offset(), log.flushed()), (end, end));
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
        assert_eq!(log.flush(0).unwrap(), end, "nothing staged: no write");
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
        let on_disk = std::fs::read(&file).unwrap();
        for a in [&first[0], &second[0]] {
            let r = log.read_record(a.phy_offset).unwrap();
            let at = a.phy_offset as usize;
            assert_eq!(&on_disk[at..at + len], r.as_bytes());
            let d = record::decode_record(r.as_bytes()).unwrap();
            assert_eq!(
                (d.body, d.queue_offset),
                (&[7u8; 1000][..], a.queue_offset as i64)
            );
        }
        // An append that brings the staged bytes to STAGED_MAX_BYTES writes them itself.
        let per_drain = STAGED_MAX_BYTES.div_ceil(len);
        for i in 1..=per_drain {
            let (_, end) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
            if i < per_drain {
                assert_eq!(log.max_offset(), 2 * len as u64, "still staged");
            } else {
                assert_eq!(log.max_offset(), end, "written by the append");
            }
        }
        // Fill the segment with staged records until one lands in the next: the roll writes the
        // staged ones first, then the blank marker.
        let mut last = second[0].phy_offset;
        loop {
            let (a, _) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
            if a[0].phy_offset >= SEG {
                assert_eq!(a[0].phy_offset, SEG);
                break;
            }
            last = a[0].phy_offset;
        }
        let seg0_end = last + len as u64;
        assert_eq!(
            log.max_offset(),
            seg0_end,
            "the roll published segment 0's records"
        );
        let seg0 = log.segment_for(0).unwrap();
        assert_eq!(seg0.mapped().published(), SEG);
        let blank = seg0.mapped().read(seg0_end, BLANK_LEN_BYTES).unwrap();
        assert_eq!(blank, &record::blank_marker((SEG - seg0_end) as u32)[..]);
        assert!(
            log.read_record(SEG).is_none(),
            "the next segment's record is staged"
        );
        let end = log.flush(0).unwrap();
        assert_eq!(end, SEG + len as u64);
        assert!(log.read_record(SEG).is_some());
    }

    /// The group commit hands a round's acknowledgements over before it runs the publish hook
    /// (the dispatcher's wake-up), which no acknowledgement waits for.
    #[test]
    fn a_round_is_acknowledged_before_the_dispatcher_is_woken() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = crate::recovery::recover(dir.path(), 1 << 20, 0, true, false).unwrap();
        let log = Arc::new(CommitLog::new(
            dir.path(),
            1 << 20,
            rec,
            Arc::new(WriteLatch::default()),
        ));
        log.set_write_through(true);
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&order);
        log.set_publish_hook(Box::new(move || o.lock().push("hook")));
        let gc = crate::flush::GroupCommit::new(Arc::clone(&log), None);
        gc.start(None).unwrap();
        let (m, len) = test_msg(vec![7u8; 100]);
        for round in 1..=3 {
            let (_, end) = log.append(std::slice::from_ref(&m), &[len]).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let o = Arc::clone(&order);
            gc.notify(
                end,
                Box::new(move |r| {
                    o.lock().push("ack");
                    let _ = tx.send(r.is_ok());
                }),
            );
            assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)), Ok(true));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while order.lock().len() < 2 * round && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        gc.stop();
        assert_eq!(*order.lock(), ["ack", "hook"].repeat(3));
    }

    /// A sync of `[from, to)` takes exactly the segments the range touches.
    #[test]
    fn a_sync_takes_the_segments_its_range_touches() {
        const SEG: u64 = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<_> = (0..3)
            .map(|i| create_segment(dir.path(), i * SEG, SEG, true).unwrap())
            .collect();
        let bases =
            |from, to| -> Vec<u64> { touching(&all, from, to).iter().map(|s| s.base).collect() };
        assert_eq!(bases(0, 10), [0]);
        assert_eq!(bases(SEG - 1, SEG + 1), [0, SEG]);
        assert_eq!(bases(SEG, 2 * SEG), [SEG]);
        assert_eq!(bases(10, 3 * SEG), [0, SEG, 2 * SEG]);
        assert_eq!(bases(2 * SEG + 5, 2 * SEG + 6), [2 * SEG]);
        assert!(bases(3 * SEG, 4 * SEG).is_empty());
        assert!(touching(&[], 0, 10).is_empty());
    }

    /// A SYNC_FLUSH drain's write ends at the end of its last page, never past the file.
    #[test]
    fn drain_writes_end_on_page_boundaries() {
        assert_eq!(drain_write_end(1, 1 << 20), OS_PAGE_SIZE);
        assert_eq!(drain_write_end(OS_PAGE_SIZE, 1 << 20), OS_PAGE_SIZE);
        assert_eq!(drain_write_end(OS_PAGE_SIZE + 1, 1 << 20), 2 * OS_PAGE_SIZE);
        assert_eq!(
            drain_write_end(9000, 10_000),
            10_000,
            "a segment size off the page size"
        );
        assert_eq!(drain_write_end(10_000, 10_000), 10_000);
    }

    /// Bytes this thread has made the block layer read (`/proc/thread-self/io`), if available.
    fn thread_read_bytes() -> Option<u64> {
        let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("read_bytes: "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Under SYNC_FLUSH, appends and the group commit's writes never read a page from the disk
    /// (a `pwrite` of part of an uncached page would, on the append path): the segment is
    /// zero-filled with direct I/O, so nothing of it is cached, and every drain ends on a page
    /// boundary. The padding is not published: the next records follow the last ones directly.
    #[test]
    fn sync_appends_never_read_the_segment_from_the_disk() {
        const SEG: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        let tmpfs = MappedFile::create(&probe, 4096).unwrap().on_tmpfs();
        std::fs::remove_file(&probe).unwrap();
        let Some(before) = thread_read_bytes().filter(|_| !tmpfs) else {
            eprintln!("skipped: the temporary directory is on tmpfs, or no /proc/thread-self/io");
            return;
        };
        let (rec, _) = crate::recovery::recover(dir.path(), SEG, 0, true, false).unwrap();
        let log = CommitLog::new(dir.path(), SEG, rec, Arc::new(WriteLatch::default()));
        log.set_write_through(true);
        let (m, len) = test_msg(vec![7u8; 1000]);
        let mut appended = Vec::new();
        // Drains by the flush (part of a page) and by the appends themselves (past 8 KiB).
        for round in 0..20 {
            for _ in 0..1 + round % 12 {
                appended.extend(log.append(std::slice::from_ref(&m), &[len]).unwrap().0);
            }
            let end = log.flush(0).unwrap();
            assert_eq!(
                end,
                (appended.len() * len) as u64,
                "the padding is not published"
            );
        }
        assert_eq!(
            thread_read_bytes(),
            Some(before),
            "a drain read from the disk"
        );
        for (i, a) in appended.iter().enumerate() {
            assert_eq!(a.phy_offset, (i * len) as u64);
            let r = log.read_record(a.phy_offset).unwrap();
            let d = record::decode_record(r.as_bytes()).unwrap();
            assert_eq!((d.body, d.queue_offset), (&[7u8; 1000][..], i as i64));
        }
        let end = log.max_offset() as usize;
        let on_disk = std::fs::read(dir.path().join(segment_file_name(0))).unwrap();
        assert!(on_disk[end..].iter().all(|&b| b == 0), "zeros past the end");
    }

    proptest! {
        /// The queue offset table against a plain map, over interleaved topics and queue ids on
        /// both sides of the dense/sparse split, with seeding and reads mixed in.
        #[test]
        fn queue_offsets_match_a_map(
            ops in proptest::collection::vec(
                (0u8..4, prop_oneof![0u32..8, 1020u32..1030, Just(i32::MAX as u32)], 0u8..3, 0u64..1000),
                0..300,
            )
        ) {
            let topics = ["A", "B", "TopicC", "%RETRY%g"];
            let mut t = QueueOffsets::default();
            let mut model: std::collections::HashMap<(String, u32), u64> = Default::default();
            for (ti, qid, op, v) in ops {
                let topic = topics[ti as usize];
                let key = (topic.to_string(), qid);
                match op {
                    0 => {
                        let slot = t.slot(topic, qid);
                        let got = *slot;
                        *slot += 1;
                        let m = model.entry(key).or_insert(0);
                        prop_assert_eq!(got, *m);
                        *m += 1;
                    }
                    1 => {
                        *t.slot(topic, qid) = v;
                        model.insert(key, v);
                    }
                    _ => {
                        prop_assert_eq!(t.get(topic, qid), model.get(&key).copied().unwrap_or(0));
                    }
                }
            }
        }
    }
}
