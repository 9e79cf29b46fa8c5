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
use std::sync::Arc;

use crate::commit_log::{
    parse_segment_file_name, segment_file_name, sync_dir, RecoveredLog, Segment,
};
use crate::error::{Result, StoreError};
use crate::mmap::{extend_with_zeros, MappedFile, MappedWriter, OS_PAGE_SIZE};
use crate::record::{self, Scan};

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
        };
        let report = RecoveryReport {
            scanned: false,
            scan_start: 0,
            valid_end: 0,
            scanned_bytes: 0,
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
    scan_from(dir, file_size, &bases, start_idx, check_crc)
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
        let mapped = Arc::new(MappedFile::open(&path, 0).map_err(|e| StoreError::io(&path, e))?);
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
    let deleted = delete_after(dir, bases, idx)?;
    let report = RecoveryReport {
        scanned: false,
        scan_start: confirm,
        valid_end: confirm,
        scanned_bytes: 0,
        zeroed_pages: 0,
        deleted_segments: deleted,
    };
    let log = RecoveredLog {
        segments,
        active,
        valid_end: confirm,
    };
    Ok(Some((log, report)))
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
    check_crc: bool,
) -> Result<(RecoveredLog, RecoveryReport)> {
    let mut segments = Vec::with_capacity(bases.len());
    for &b in bases.iter().take(start_idx) {
        segments.push(open_full(dir, b, file_size)?);
    }
    let scan_start = bases.get(start_idx).copied().unwrap_or(0);
    let mut scanned_bytes = 0;
    for (idx, &base) in bases.iter().enumerate().skip(start_idx) {
        let path = dir.join(segment_file_name(base));
        let mapped = Arc::new(MappedFile::open(&path, 0).map_err(|e| StoreError::io(&path, e))?);
        let mut w = mapped
            .writer()
            .ok_or_else(|| StoreError::Config("segment writer taken twice".into()))?;
        let (pos, full) = scan_segment(&w, base, file_size, check_crc);
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
            };
            let report = RecoveryReport {
                scanned: true,
                scan_start,
                valid_end,
                scanned_bytes,
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
        let log = RecoveredLog {
            segments,
            active: Some((seg, w)),
            valid_end,
        };
        let report = RecoveryReport {
            scanned: true,
            scan_start,
            valid_end,
            scanned_bytes,
            zeroed_pages,
            deleted_segments,
        };
        return Ok((log, report));
    }
    unreachable!("start_idx < bases.len(), so the loop returns")
}

/// Walks the records of one segment. Returns the end of the valid records and whether the segment
/// ended with a blank marker (then it is full).
fn scan_segment(w: &MappedWriter, base: u64, file_size: u64, check_crc: bool) -> (u64, bool) {
    let all = w.view(0, file_size).unwrap_or_default();
    let mut pos = 0u64;
    loop {
        let rest = all.get(pos as usize..).unwrap_or_default();
        match record::scan(rest, base + pos, check_crc) {
            Ok(Scan::Record(n)) => pos += u64::from(n),
            Ok(Scan::EndOfSegment) => return (pos, true),
            Ok(Scan::End) => return (pos, false),
            Err(e) => {
                if rest.iter().take(8).any(|&b| b != 0) {
                    tracing::warn!(at = base + pos, error = %e, "CommitLog scan stops at an invalid record");
                }
                return (pos, false);
            }
        }
    }
}

/// Zeroes every non-zero page (and the partial first page) from `pos` to the end of the file, and
/// syncs them, so bytes past the valid end can never be mistaken for records after a later crash.
fn zero_tail(w: &mut MappedWriter, pos: u64, file_size: u64) -> std::io::Result<u64> {
    let mut at = pos;
    let mut pages = 0;
    let zeros = [0u8; OS_PAGE_SIZE as usize];
    while at < file_size {
        let page_end = ((at / OS_PAGE_SIZE) + 1) * OS_PAGE_SIZE;
        let end = page_end.min(file_size);
        let dirty = w
            .view(at, end - at)
            .is_some_and(|b| b.iter().any(|&x| x != 0));
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
