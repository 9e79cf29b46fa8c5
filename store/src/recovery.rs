//! CommitLog recovery: find the segment files, decide where the valid records end, zero the torn
//! tail through the writer and drop segments past it.
//!
//! * After a clean shutdown the checkpoint's `confirmPhyOffset` is trusted (checked only for
//!   nothing having been written past it).
//! * After a crash (or when the clean check fails) records are scanned from the start of the
//!   segment holding `confirmPhyOffset` (the first segment without one): size bounds, magic, size
//!   formula, PHYSICALOFFSET, BODYCRC. The first failure is the end of the log. Everything after it
//!   in its segment is zeroed (so stale bytes can never be read as records later) and the later
//!   segments are deleted. Nothing that was synced is lost: synced bytes form a prefix of valid
//!   records, and the scan only stops at an invalid one.

use std::path::Path;
use std::sync::{mpsc, Arc};

use crate::commit_log::{
    parse_segment_file_name, segment_file_name, sync_dir, RecoveredLog, Segment,
};
use crate::error::{Result, StoreError};
use crate::mmap::{extend_with_zeros, MappedFile, MappedWriter, OS_PAGE_SIZE};
use crate::record::{self, PendingCrc, RecordError, Scan};

/// What recovery did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records were scanned (crash, or the clean-shutdown check failed).
    pub scanned: bool,
    /// Offset where the scan started (a segment base), or the trusted end when not scanned.
    pub scan_start: u64,
    /// End of the valid records.
    pub valid_end: u64,
    /// Bytes scanned.
    pub scanned_bytes: u64,
    /// Where re-dispatching into the ConsumeQueues and the index may start: the last record
    /// boundary at or below the checkpoint's `confirmPhyOffset` that the scan passed (everything
    /// below it was dispatched and flushed when the checkpoint was written), else `scan_start`.
    /// Equal to `valid_end` when nothing was scanned.
    pub redispatch_from: u64,
    /// Non-zero bytes past the valid end that were zeroed.
    pub zeroed_pages: u64,
    /// Segment files deleted past the valid end.
    pub deleted_segments: usize,
}

/// The segment files of `dir` (creating it), sorted by base, checked for size and contiguity, and
/// whether the last one was repaired. Leftover temporary files from an interrupted pre-allocation
/// are removed. A last segment shorter than `file_size` (cut by a crash or by hand) is extended
/// with zeros so the scan treats the missing bytes as a torn tail; any other size mismatch is
/// corruption.
pub fn list_segments(dir: &Path, file_size: u64) -> Result<(Vec<u64>, bool)> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let Some(base) = parse_segment_file_name(name) else {
            tracing::warn!(
                file = name,
                "ignoring a stranger in the CommitLog directory"
            );
            continue;
        };
        let len = entry
            .metadata()
            .map_err(|e| StoreError::io(entry.path(), e))?
            .len();
        bases.push((base, len));
    }
    bases.sort_unstable();
    let mut repaired = false;
    for (i, &(base, len)) in bases.iter().enumerate() {
        if len == file_size {
            continue;
        }
        let path = dir.join(segment_file_name(base));
        // Only the last segment holding records may be repaired (later ones, e.g. the
        // pre-allocated next segment, must hold nothing).
        let later_empty = bases
            .iter()
            .skip(i + 1)
            .all(|&(b, _)| starts_empty(&dir.join(segment_file_name(b))));
        if !later_empty || len > file_size {
            return Err(StoreError::Corrupt {
                file: path,
                at: base,
                reason: format!("segment is {len} bytes, mappedFileSizeCommitLog is {file_size}"),
            });
        }
        tracing::warn!(path = %path.display(), len, "last CommitLog segment is short; extending it with zeros");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        extend_with_zeros(&mut f, file_size).map_err(|e| StoreError::io(&path, e))?;
        repaired = true;
    }
    let bases: Vec<u64> = bases.into_iter().map(|(b, _)| b).collect();
    for pair in bases.windows(2) {
        if let [a, b] = pair {
            if a.checked_add(file_size) != Some(*b) {
                return Err(StoreError::Corrupt {
                    file: dir.join(segment_file_name(*b)),
                    at: *b,
                    reason: format!("gap after segment {a}"),
                });
            }
        }
    }
    if let Some(first) = bases.first() {
        if first % file_size != 0 {
            return Err(StoreError::Corrupt {
                file: dir.join(segment_file_name(*first)),
                at: *first,
                reason: "segment base is not a multiple of the segment size".into(),
            });
        }
    }
    Ok((bases, repaired))
}

/// Recovers the CommitLog in `dir`. `confirm` is the checkpoint's `confirmPhyOffset`, `clean`
/// whether the last shutdown was clean (no abort file).
pub fn recover(
    dir: &Path,
    file_size: u64,
    confirm: u64,
    clean: bool,
    check_crc: bool,
) -> Result<(RecoveredLog, RecoveryReport)> {
    let (bases, repaired) = list_segments(dir, file_size)?;
    // A repaired (short) segment lost bytes: never trust the checkpoint then.
    let clean = clean && !repaired;
    let (Some(&first), Some(&last)) = (bases.first(), bases.last()) else {
        let log = RecoveredLog {
            segments: Vec::new(),
            active: None,
            valid_end: 0,
            next: None,
        };
        let report = RecoveryReport {
            scanned: false,
            scan_start: 0,
            valid_end: 0,
            scanned_bytes: 0,
            redispatch_from: 0,
            zeroed_pages: 0,
            deleted_segments: 0,
        };
        return Ok((log, report));
    };
    let end = last + file_size;
    let confirm_known = confirm > first && confirm <= end;
    if clean && confirm_known {
        if let Some(done) = trust_checkpoint(dir, file_size, &bases, confirm)? {
            return Ok(done);
        }
        tracing::warn!(
            confirm,
            "bytes past the checkpoint after a clean shutdown; scanning"
        );
    }
    // Scan start: the segment holding `confirm`; without a usable one, the first segment after a
    // crash, or the third-last (RocketMQ 4.x normal recovery) after a clean shutdown.
    let start_idx = if confirm_known {
        bases
            .partition_point(|&b| b + file_size <= confirm)
            .min(bases.len() - 1)
    } else if clean {
        bases.len().saturating_sub(3)
    } else {
        0
    };
    let confirm = confirm_known.then_some(confirm);
    scan_from(dir, file_size, &bases, start_idx, confirm, check_crc)
}

/// Whether a file's first 8 bytes are zero (or it is shorter than that): no record starts it.
fn starts_empty(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 8];
    match std::fs::File::open(path) {
        Ok(f) => match f.read_exact_at(&mut head, 0) {
            Ok(()) => head == [0u8; 8],
            Err(_) => true,
        },
        Err(_) => false,
    }
}

/// Maps a segment that recovery reads past its records (the active one, scanned ones, a kept
/// next one), nothing published yet. On tmpfs its holes are reserved first (`fallocate`): a
/// segment made in a hurry is reserved in steps as the appends need it, so after a restart it
/// may have a hole, and a read fault on a tmpfs hole allocates the page, which on a full tmpfs
/// is SIGBUS (mmap.rs, M5). A full one is `DiskFull` here, before anything is read. The
/// allocated size tells whether there is a hole (an `fstat`); a hole-free 1 GiB file costs
/// nothing more (its `fallocate` would walk every page, ~0.25 s here).
fn open_segment(path: &Path) -> Result<MappedFile> {
    let mapped = MappedFile::open(path, 0).map_err(|e| StoreError::io(path, e))?;
    let io = |e| StoreError::io(path, e);
    if mapped.on_tmpfs() && mapped.allocated_bytes().map_err(io)? < mapped.len() {
        let hole = mapped.first_hole().map_err(io)?;
        tracing::info!(path = %path.display(), hole, "reserving the rest of a segment made in a hurry");
        mapped
            .reserve(hole, mapped.len() - hole)
            .map_err(|e| crate::commit_log::io_or_full(path, e))?;
    }
    Ok(mapped)
}

fn open_full(dir: &Path, base: u64, file_size: u64) -> Result<Arc<Segment>> {
    let path = dir.join(segment_file_name(base));
    let mapped = MappedFile::open(&path, file_size).map_err(|e| StoreError::io(&path, e))?;
    Ok(Arc::new(Segment::new(base, Arc::new(mapped))))
}

/// Clean shutdown: the segment holding `confirm` is the active one, published to `confirm`. Returns
/// `None` if anything is written past `confirm` (then the caller scans).
fn trust_checkpoint(
    dir: &Path,
    file_size: u64,
    bases: &[u64],
    confirm: u64,
) -> Result<Option<(RecoveredLog, RecoveryReport)>> {
    // `confirm` at a segment end means the next segment (if any) starts empty.
    let idx = bases.partition_point(|&b| b + file_size <= confirm);
    let mut segments = Vec::with_capacity(idx + 1);
    for &b in bases.iter().take(idx) {
        segments.push(open_full(dir, b, file_size)?);
    }
    let mut active = None;
    if let Some(&b) = bases.get(idx) {
        let path = dir.join(segment_file_name(b));
        let mapped = Arc::new(open_segment(&path)?);
        let mut w = mapped
            .writer()
            .ok_or_else(|| StoreError::Config("segment writer taken twice".into()))?;
        let pos = confirm - b;
        let tail = w.view(pos, (file_size - pos).min(16)).unwrap_or_default();
        if tail.iter().any(|&x| x != 0) {
            return Ok(None);
        }
        w.publish(pos);
        let seg = Arc::new(Segment::new(b, Arc::clone(&mapped)));
        segments.push(Arc::clone(&seg));
        active = Some((seg, w));
    }
    let next = keep_next(dir, file_size, bases, idx)?;
    let deleted = delete_after(dir, bases, if next.is_some() { idx + 1 } else { idx })?;
    let report = RecoveryReport {
        scanned: false,
        scan_start: confirm,
        valid_end: confirm,
        scanned_bytes: 0,
        redispatch_from: confirm,
        zeroed_pages: 0,
        deleted_segments: deleted,
    };
    let log = RecoveredLog {
        segments,
        active,
        valid_end: confirm,
        next,
    };
    Ok(Some((log, report)))
}

/// After a clean shutdown, the segment right after the active one (`bases[idx]`) is the
/// pre-allocated next segment: keep it rather than delete it and zero-fill another (1 GiB of
/// writes at every restart). It holds nothing: segment files are made whole (zero-filled under a
/// temporary name, then renamed), bytes reach a segment only after the log rolls into it, so
/// the log's end (here trusted: `confirm`, checked against the bytes after it) would lie in it,
/// and recovery after a crash deletes every segment past the valid end. Its first page is
/// checked to be zero all the same (a record written there would start at offset 0).
fn keep_next(
    dir: &Path,
    file_size: u64,
    bases: &[u64],
    idx: usize,
) -> Result<Option<Arc<Segment>>> {
    let (Some(&active), Some(&next)) = (bases.get(idx), bases.get(idx + 1)) else {
        return Ok(None);
    };
    let path = dir.join(segment_file_name(next));
    if next != active + file_size || !first_page_empty(&path) {
        return Ok(None);
    }
    let mapped = open_segment(&path)?;
    if mapped.len() != file_size {
        return Ok(None);
    }
    tracing::info!(path = %path.display(), "keeping the pre-allocated next segment");
    Ok(Some(Arc::new(Segment::new(next, Arc::new(mapped)))))
}

/// Whether a file's first 4 KiB are zero (false if it cannot be read or is shorter).
fn first_page_empty(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut page = [0u8; 4096];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut page, 0))
        .is_ok_and(|()| page.iter().all(|&b| b == 0))
}

/// Deletes the segment files after index `idx`.
fn delete_after(dir: &Path, bases: &[u64], idx: usize) -> Result<usize> {
    let mut n = 0;
    for &b in bases.iter().skip(idx + 1) {
        let p = dir.join(segment_file_name(b));
        std::fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
        n += 1;
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

fn scan_from(
    dir: &Path,
    file_size: u64,
    bases: &[u64],
    start_idx: usize,
    confirm: Option<u64>,
    check_crc: bool,
) -> Result<(RecoveredLog, RecoveryReport)> {
    let mut segments = Vec::with_capacity(bases.len());
    for &b in bases.iter().take(start_idx) {
        segments.push(open_full(dir, b, file_size)?);
    }
    let scan_start = bases.get(start_idx).copied().unwrap_or(0);
    let mut scanned_bytes = 0;
    let mut redispatch_from = scan_start;
    for (idx, &base) in bases.iter().enumerate().skip(start_idx) {
        let path = dir.join(segment_file_name(base));
        let mapped = Arc::new(open_segment(&path)?);
        let mut w = mapped
            .writer()
            .ok_or_else(|| StoreError::Config("segment writer taken twice".into()))?;
        // The confirm offset as a position in this segment, if it lies in it.
        let stop = confirm
            .filter(|&c| c >= base && c < base + file_size)
            .map(|c| c - base);
        let seg_scan = scan_segment(&w, base, file_size, stop, check_crc);
        let (pos, full) = (seg_scan.end, seg_scan.full);
        if let Some(b) = seg_scan.boundary_at_or_below_stop {
            redispatch_from = base + b;
        }
        scanned_bytes += pos;
        let seg = Arc::new(Segment::new(base, Arc::clone(&mapped)));
        segments.push(Arc::clone(&seg));
        if full {
            w.publish(file_size);
            if idx + 1 < bases.len() {
                continue;
            }
            // The log ends exactly at the end of its last segment.
            let valid_end = base + file_size;
            let log = RecoveredLog {
                segments,
                active: None,
                valid_end,
                next: None,
            };
            let report = RecoveryReport {
                scanned: true,
                scan_start,
                valid_end,
                scanned_bytes,
                redispatch_from: redispatch_from.min(valid_end),
                zeroed_pages: 0,
                deleted_segments: 0,
            };
            return Ok((log, report));
        }
        let zeroed_pages =
            zero_tail(&mut w, pos, file_size).map_err(|e| StoreError::io(&path, e))?;
        w.publish(pos);
        let deleted_segments = delete_after(dir, bases, idx)?;
        let valid_end = base + pos;
        if zeroed_pages > 0 || deleted_segments > 0 {
            tracing::warn!(
                valid_end,
                zeroed_pages,
                deleted_segments,
                "recovery cut a torn CommitLog tail"
            );
        }
        // After a crash a segment past the valid end may hold records whose blank marker before
        // them was lost: it goes, even if it is the pre-allocated next one.
        let log = RecoveredLog {
            segments,
            active: Some((seg, w)),
            valid_end,
            next: None,
        };
        let report = RecoveryReport {
            scanned: true,
            scan_start,
            valid_end,
            scanned_bytes,
            redispatch_from: redispatch_from.min(valid_end),
            zeroed_pages,
            deleted_segments,
        };
        return Ok((log, report));
    }
    unreachable!("start_idx < bases.len(), so the loop returns")
}

/// What [`scan_segment`] found in one segment.
struct SegmentScan {
    /// End of the valid records (a position in the segment).
    end: u64,
    /// The segment ended with a blank marker (it is full).
    full: bool,
    /// The last record boundary at or below the `stop` position, if one was given and reached.
    boundary_at_or_below_stop: Option<u64>,
}

/// Records handed to the BODYCRC checker thread at a time.
const CRC_BATCH_RECORDS: usize = 2048;
/// Batches queued for the checker before the walker waits (bounds memory and how far ahead of
/// the checker the walker may run).
const CRC_BATCHES_IN_FLIGHT: usize = 4;

/// Walks the records of one segment: the end of the valid records, whether the segment ended with
/// a blank marker (then it is full), and the last record boundary at or below `stop`.
///
/// With `check_crc` the work is split over two threads: this one walks the records (size bounds,
/// magic, size formula, PHYSICALOFFSET, text fields) and maps the pages ahead; a scoped checker
/// thread computes the BODYCRCs of the records it was handed, in order, and reports the first
/// mismatch. The valid end is the earlier of where the walk stopped and that mismatch, exactly
/// what one thread checking each record in turn would find.
fn scan_segment(
    w: &MappedWriter,
    base: u64,
    file_size: u64,
    stop: Option<u64>,
    check_crc: bool,
) -> SegmentScan {
    let all = w.view(0, file_size).unwrap_or_default();
    let mapped = w.mapped();
    if !check_crc {
        return walk(all, mapped, base, stop, &mut |_, _| true);
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Vec<(u64, PendingCrc)>>(CRC_BATCHES_IN_FLIGHT);
        let checker = std::thread::Builder::new()
            .name("ferrocket-recover-crc".into())
            .spawn_scoped(s, move || first_crc_failure(all, rx));
        let Ok(checker) = checker else {
            // No thread: check each body inline.
            return walk(all, mapped, base, stop, &mut |pos, p| {
                let rec = all.get(pos as usize..).unwrap_or_default();
                match p.check(rec) {
                    Ok(()) => true,
                    Err(e) => {
                        warn_invalid(base + pos, &e);
                        false
                    }
                }
            });
        };
        let mut batch = Vec::with_capacity(CRC_BATCH_RECORDS);
        let mut scan = {
            let mut sink = |pos: u64, p: PendingCrc| {
                batch.push((pos, p));
                if batch.len() < CRC_BATCH_RECORDS {
                    return true;
                }
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CRC_BATCH_RECORDS));
                // A send fails only once the checker found a mismatch and stopped: its end wins.
                tx.send(full).is_ok()
            };
            walk(all, mapped, base, stop, &mut sink)
        };
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let failed = match checker.join() {
            Ok(f) => f,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if let Some((at, e)) = failed {
            if at < scan.end {
                warn_invalid(base + at, &e);
                scan.end = at;
                scan.full = false;
                // `at` is itself a boundary, so the last one at or below `stop` is capped by it.
                scan.boundary_at_or_below_stop = scan.boundary_at_or_below_stop.map(|b| b.min(at));
            }
        }
        scan
    })
}

/// The checker thread: BODYCRC of each handed record, in order; the first mismatch (position in
/// the segment and error) ends it.
fn first_crc_failure(
    all: &[u8],
    rx: mpsc::Receiver<Vec<(u64, PendingCrc)>>,
) -> Option<(u64, RecordError)> {
    for batch in rx {
        for (pos, p) in batch {
            let rec = all.get(pos as usize..).unwrap_or_default();
            if let Err(e) = p.check(rec) {
                return Some((pos, e));
            }
        }
    }
    None
}

fn warn_invalid(at: u64, e: &RecordError) {
    tracing::warn!(at, error = %e, "CommitLog scan stops at an invalid record");
}

/// The record walk of [`scan_segment`] with every check but BODYCRC; each record's BODYCRC check
/// goes to `sink`, which returns `false` to end the walk at that record.
fn walk(
    all: &[u8],
    mapped: &MappedFile,
    base: u64,
    stop: Option<u64>,
    sink: &mut dyn FnMut(u64, PendingCrc) -> bool,
) -> SegmentScan {
    let mut ahead = ReadAhead::new(mapped, 0);
    let mut pos = 0u64;
    let mut boundary = None;
    loop {
        ahead.reach(pos);
        // Boundaries only grow, so the last one at or below `stop` wins.
        if stop.is_some_and(|s| pos <= s) {
            boundary = Some(pos);
        }
        let rest = all.get(pos as usize..).unwrap_or_default();
        let full = match record::scan_deferring_crc(rest, base + pos) {
            Ok((Scan::Record(n), pending)) => {
                if pending.is_none_or(|p| sink(pos, p)) {
                    pos += u64::from(n);
                    continue;
                }
                false
            }
            Ok((Scan::EndOfSegment, _)) => true,
            Ok((Scan::End, _)) => false,
            Err(e) => {
                if rest.iter().take(8).any(|&b| b != 0) {
                    warn_invalid(base + pos, &e);
                }
                false
            }
        };
        return SegmentScan {
            end: pos,
            full,
            boundary_at_or_below_stop: boundary,
        };
    }
}

/// Bytes [`ReadAhead`] maps at a time; readahead runs one window further.
const READ_WINDOW_BYTES: u64 = 8 << 20;

/// Read hints for a front-to-back pass over a mapped segment. Without them every 64 KiB costs a
/// page fault, and on a cold cache each fault waits for its own read. Here the window after the
/// one being read is already being read asynchronously (MADV_WILLNEED), and the window being read
/// is mapped in one call (MADV_POPULATE_READ), so the disk works while the CPU checks records.
struct ReadAhead<'a> {
    mapped: &'a MappedFile,
    /// Bytes below this are mapped (or their hint failed: then faults do the work).
    populated: u64,
}

impl<'a> ReadAhead<'a> {
    fn new(mapped: &'a MappedFile, from: u64) -> Self {
        let from = from - from % OS_PAGE_SIZE;
        let _ = mapped.advise_read(from, READ_WINDOW_BYTES, false);
        Self {
            mapped,
            populated: from,
        }
    }

    /// The reader is at `pos`: make sure its window is mapped and the next one is on its way.
    fn reach(&mut self, pos: u64) {
        if pos < self.populated {
            return;
        }
        let len = self.mapped.len();
        let start = pos - pos % OS_PAGE_SIZE;
        if start >= len {
            return;
        }
        let _ = self
            .mapped
            .advise_read(start + READ_WINDOW_BYTES, READ_WINDOW_BYTES, false);
        let _ = self.mapped.advise_read(start, READ_WINDOW_BYTES, true);
        self.populated = (start + READ_WINDOW_BYTES).min(len);
    }
}

/// Whether every byte of `b` is zero. An OR over the whole slice (no early exit inside) so the
/// compiler turns it into wide vector loads; callers pass at most a page.
fn all_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |acc, &x| acc | x) == 0
}

/// Zeroes every non-zero page (and the partial first page) from `pos` to the end of the file, and
/// syncs them, so bytes past the valid end can never be mistaken for records after a later crash.
fn zero_tail(w: &mut MappedWriter, pos: u64, file_size: u64) -> std::io::Result<u64> {
    let mut at = pos;
    let mut pages = 0;
    let zeros = [0u8; OS_PAGE_SIZE as usize];
    let mapped = Arc::clone(w.mapped());
    let mut ahead = ReadAhead::new(&mapped, pos);
    while at < file_size {
        ahead.reach(at);
        let page_end = ((at / OS_PAGE_SIZE) + 1) * OS_PAGE_SIZE;
        let end = page_end.min(file_size);
        let dirty = w.view(at, end - at).is_some_and(|b| !all_zero(b));
        if dirty {
            let len = (end - at) as usize;
            w.write(at, zeros.get(..len).unwrap_or_default());
            pages += 1;
        }
        at = end;
    }
    if pages > 0 {
        w.mapped().flush_range(pos, file_size - pos)?;
    }
    Ok(pages)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::record::{blank_marker, body_crc, RecordParts};

    const SEG: u64 = 16 * 1024;

    fn record(phy: u64, body_len: usize) -> Vec<u8> {
        let body = vec![7u8; body_len];
        RecordParts {
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            phy_offset: phy as i64,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 2,
            store_host: "127.0.0.1:2".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: body_crc(&body),
            body: &body,
            topic: "T",
            properties: "",
        }
        .to_vec()
        .unwrap()
    }

    /// Writes segments at 0 and SEG: the first full (records then a blank marker), the second
    /// holding `second` records. Returns the record boundaries (CommitLog offsets).
    fn write_log(dir: &Path, second: usize) -> Vec<u64> {
        let mut bounds = vec![0];
        let mut seg0 = vec![0u8; SEG as usize];
        let mut pos = 0u64;
        loop {
            let r = record(pos, 900);
            if pos + r.len() as u64 + record::BLANK_LEN_BYTES > SEG {
                break;
            }
            seg0[pos as usize..pos as usize + r.len()].copy_from_slice(&r);
            pos += r.len() as u64;
            bounds.push(pos);
        }
        seg0[pos as usize..pos as usize + 8].copy_from_slice(&blank_marker((SEG - pos) as u32));
        let mut seg1 = vec![0u8; SEG as usize];
        let mut pos = 0u64;
        for _ in 0..second {
            let r = record(SEG + pos, 500);
            seg1[pos as usize..pos as usize + r.len()].copy_from_slice(&r);
            pos += r.len() as u64;
            bounds.push(SEG + pos);
        }
        std::fs::write(dir.join(segment_file_name(0)), &seg0).unwrap();
        std::fs::write(dir.join(segment_file_name(SEG)), &seg1).unwrap();
        bounds
    }

    #[test]
    fn redispatch_starts_at_the_last_boundary_at_or_below_confirm() {
        let tmp = tempfile::tempdir().unwrap();
        let bounds = write_log(tmp.path(), 5);
        let end = *bounds.last().unwrap();
        for confirm in [1, 100, 4000, SEG - 1, SEG, SEG + 1, SEG + 600, end - 1, end] {
            let (_, rep) = recover(tmp.path(), SEG, confirm, false, true).unwrap();
            assert!(rep.scanned);
            assert_eq!(rep.valid_end, end);
            let want = *bounds.iter().filter(|&&b| b <= confirm).max().unwrap();
            // The scan starts at the segment holding confirm; boundaries before it are not seen.
            let want = want.max(rep.scan_start);
            assert_eq!(rep.redispatch_from, want, "confirm {confirm}: {rep:?}");
            assert!(rep.redispatch_from <= confirm.max(rep.scan_start));
        }
        // Without a usable checkpoint everything from the scan start is re-dispatched.
        let (_, rep) = recover(tmp.path(), SEG, 0, false, true).unwrap();
        assert_eq!((rep.scan_start, rep.redispatch_from), (0, 0));
        let (_, rep) = recover(tmp.path(), SEG, 10 * SEG, false, true).unwrap();
        assert_eq!((rep.scan_start, rep.redispatch_from), (0, 0));
        // A clean shutdown with a trusted checkpoint re-dispatches nothing.
        let (_, rep) = recover(tmp.path(), SEG, end, true, true).unwrap();
        assert!(!rep.scanned);
        assert_eq!(rep.redispatch_from, end);
    }

    #[test]
    fn confirm_past_a_torn_tail_redispatches_from_the_valid_end() {
        let tmp = tempfile::tempdir().unwrap();
        let bounds = write_log(tmp.path(), 5);
        let end = *bounds.last().unwrap();
        // Tear the last record: its BODYCRC no longer matches.
        let p = tmp.path().join(segment_file_name(SEG));
        let mut b = std::fs::read(&p).unwrap();
        let last_start = (bounds[bounds.len() - 2] - SEG) as usize;
        b[last_start + 100] ^= 0xFF;
        std::fs::write(&p, &b).unwrap();
        let (_, rep) = recover(tmp.path(), SEG, end, false, true).unwrap();
        let cut = bounds[bounds.len() - 2];
        assert_eq!(rep.valid_end, cut);
        assert_eq!(rep.redispatch_from, cut);
        assert_eq!(rep.zeroed_pages, 1);
        let after = std::fs::read(&p).unwrap();
        assert!(after[(cut - SEG) as usize..].iter().all(|&x| x == 0));
    }

    #[test]
    fn stale_records_after_a_zero_gap_are_zeroed() {
        let tmp = tempfile::tempdir().unwrap();
        let bounds = write_log(tmp.path(), 5);
        // Lose the page holding the third record of the second segment: the records after it
        // are valid-looking leftovers that must never be read later.
        let p = tmp.path().join(segment_file_name(SEG));
        let mut b = std::fs::read(&p).unwrap();
        let third = (bounds[bounds.len() - 3] - SEG) as usize;
        for x in &mut b[third..third + 600] {
            *x = 0;
        }
        b[SEG as usize - 1] = 1;
        std::fs::write(&p, &b).unwrap();
        let (_, rep) = recover(tmp.path(), SEG, 0, false, true).unwrap();
        assert_eq!(rep.valid_end, bounds[bounds.len() - 3]);
        assert!(rep.zeroed_pages >= 2, "{rep:?}");
        let after = std::fs::read(&p).unwrap();
        assert!(after[third..].iter().all(|&x| x == 0));
    }

    /// One segment of many small records (several checker batches), with one body flipped.
    fn crc_cut_at(flip: Option<usize>, also_break_structure_at: Option<usize>) -> (u64, u64, bool) {
        const BIG: u64 = 1 << 20;
        let tmp = tempfile::tempdir().unwrap();
        let mut seg = vec![0u8; BIG as usize];
        let mut starts = Vec::new();
        let mut pos = 0u64;
        loop {
            let r = record(pos, 40 + starts.len() % 50);
            if pos + r.len() as u64 + record::BLANK_LEN_BYTES > BIG {
                break;
            }
            seg[pos as usize..pos as usize + r.len()].copy_from_slice(&r);
            starts.push(pos);
            pos += r.len() as u64;
        }
        seg[pos as usize..pos as usize + 8].copy_from_slice(&blank_marker((BIG - pos) as u32));
        assert!(
            starts.len() > 3 * CRC_BATCH_RECORDS,
            "{} records",
            starts.len()
        );
        let mut want = BIG;
        if let Some(i) = flip {
            seg[starts[i] as usize + 90] ^= 0x55; // inside the body (IPv4 body starts at 88)
            want = want.min(starts[i]);
        }
        if let Some(i) = also_break_structure_at {
            seg[starts[i] as usize + 4] ^= 0x01; // magic
            want = want.min(starts[i]);
        }
        std::fs::write(tmp.path().join(segment_file_name(0)), &seg).unwrap();
        let (_, rep) = recover(tmp.path(), BIG, 0, false, true).unwrap();
        let (_, again) = recover(tmp.path(), BIG, 0, false, true).unwrap();
        assert_eq!(again.valid_end, rep.valid_end, "recovery is idempotent");
        (rep.valid_end, want, rep.valid_end == BIG)
    }

    #[test]
    fn checker_thread_finds_the_first_bad_body_in_any_batch() {
        for (flip, structure) in [
            (None, None),
            (Some(0), None),
            (Some(5), None),
            (Some(CRC_BATCH_RECORDS - 1), None),
            (Some(CRC_BATCH_RECORDS), None),
            (Some(3 * CRC_BATCH_RECORDS + 7), None),
            (Some(CRC_BATCH_RECORDS + 3), Some(CRC_BATCH_RECORDS + 9)),
            (Some(2 * CRC_BATCH_RECORDS + 9), Some(CRC_BATCH_RECORDS + 3)),
            (None, Some(CRC_BATCH_RECORDS * 3)),
        ] {
            let (got, want, full) = crc_cut_at(flip, structure);
            assert_eq!(got, want, "flip {flip:?} structure {structure:?}");
            assert_eq!(full, flip.is_none() && structure.is_none());
        }
    }

    #[test]
    fn all_zero_sees_any_set_byte() {
        let mut page = vec![0u8; OS_PAGE_SIZE as usize];
        assert!(all_zero(&page));
        assert!(all_zero(&[]));
        for i in [0, 1, 63, 64, 2047, 4095] {
            page[i] = 0x80;
            assert!(!all_zero(&page), "byte {i}");
            page[i] = 0;
        }
        assert!(all_zero(&page[..17]));
    }
}
