//! The only `unsafe` in the store: memory-mapped files and the rules that make sharing them sound.
//!
//! Two types live here:
//!
//! * [`MappedFile`]: an append-only mapping shared between one writer and many readers without
//!   locks (CommitLog segments, ConsumeQueue files). A *published* offset splits the file: bytes
//!   below it are immutable and readable by anyone through [`MappedFile::read`]; bytes at or above
//!   it belong to the single [`MappedWriter`], which copies into them and then publishes.
//! * [`MappedMut`]: a plain read/write mapping accessed through `&self` / `&mut self`, so Rust's
//!   borrow rules (usually behind a `RwLock`) exclude concurrent mutation (IndexFile, checkpoint).
//!
//! # Invariants (every `SAFETY:` comment below cites these)
//!
//! * **M1. The store directory is ours alone.** The store holds an exclusive `flock` on its `lock`
//!   file for its whole life, so no other cooperating process truncates or writes our files. A
//!   file truncated behind our back by a non-cooperating process is outside what we can defend
//!   (the kernel would raise SIGBUS); we never truncate a mapped file ourselves: recovery zeroes a
//!   torn tail through the writer instead.
//! * **M2. A mapping outlives every reference into it.** The mapping is owned by the
//!   `MappedFile`/`MappedMut`; slices borrow from it, and callers that hand regions to other
//!   threads hold an `Arc<MappedFile>`. Unlinking a file while it is mapped is harmless on Linux
//!   (the inode lives until the last mapping and descriptor go).
//! * **M3. Below the published offset nothing changes; above it only the writer writes.**
//!   `published` only grows (Release store after the bytes are copied; Acquire load by readers).
//!   At most one `MappedWriter` exists per `MappedFile` (`writer_taken`), and every write it makes
//!   starts at or above `published`. So a `&[u8]` handed out by `read` never aliases a write.
//! * **M4. Bounds.** Every pointer offset is checked against the mapping length first.
//! * **M5. Stores land on reserved pages.** A store into a page of a shared mapping whose backing
//!   the file system cannot supply (a hole of a file on a full tmpfs, or a full disk under a
//!   delayed-allocation file system) raises SIGBUS instead of returning an error. Every file we
//!   store into through a mapping is reserved up front (zero-filled or `fallocate`d before it is
//!   mapped), except a CommitLog segment made in a hurry on tmpfs, which is reserved in steps
//!   ([`MappedFile::reserve`]): its writer (`commit_log.rs`) stores only below the reserved end it
//!   tracks, and reserves further (getting ENOSPC as an error) before storing past it.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions, MmapRaw};

/// Page size used for flush arithmetic and pre-faulting (RocketMQ's `OS_PAGE_SIZE`).
pub const OS_PAGE_SIZE: u64 = 4096;

/// Chunk used when zero-filling a new file. 64 KiB stays in the L2 cache, so the kernel's copy
/// into the page cache reads a warm source: with a 1 MiB chunk the fill of a 1 GiB segment cost
/// 0.73 s of CPU on tmpfs and 1.06 s on ext4, with 64 KiB 0.60 s and 0.79 s (2026-11-22, quiet).
const ZERO_FILL_CHUNK_BYTES: usize = 64 << 10;

/// `f_type` of tmpfs in `statfs` (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Whether `file` lives on tmpfs (RAM): its pages have no blocks on a disk, so nothing is gained by
/// writing zeros over `fallocate`.
fn on_tmpfs(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: no mapping is involved (M1-M4 are not at stake): the descriptor is valid for the
    // call (`file` is borrowed), and `st` points to writable memory of the right type, which
    // fstatfs fills completely when it returns 0.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it initialised `st` (see above).
    let st = unsafe { st.assume_init() };
    // f_type's integer type differs between targets.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let kind = st.f_type as i64;
    kind == TMPFS_MAGIC
}

/// `fallocate(file, 0, 0, len)`: every block (or tmpfs page) of `[0, len)` reserved, reading as
/// zeros.
fn fallocate_all(file: &File, len: u64) -> io::Result<()> {
    fallocate_range(file, 0, len)
}

/// `fallocate(file, 0, at, len)`: every block (or tmpfs page) of `[at, at + len)` reserved,
/// reading as zeros (the file grows to cover the range).
fn fallocate_range(file: &File, at: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(off_at), Ok(off_len)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file too large",
        ));
    };
    // SAFETY: fallocate only takes a descriptor we own (open for writing by the caller) and three
    // integers; it touches no memory of ours. Mode 0 only allocates: it never changes a byte that
    // is there nor shrinks the file, so a mapping of the file (M2-M4) is unaffected.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off_at, off_len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates `path` (which must not exist) with `len` zero bytes written out, so the file's blocks
/// are allocated and later syncs do not pay for block allocation (measured here: a zero-filled file
/// syncs about 2x faster than a fallocated one).
///
/// On tmpfs the file is `fallocate`d instead. There the reason for writing does not exist (no
/// blocks, no disk, a sync does nothing), and fallocate leaves the same state, every page
/// allocated and charged, reading as zeros, at less than half the CPU (0.26 against 0.60 s per
/// GiB measured here). That CPU was the broker's largest cost in 16 KiB ingest: the fill of each
/// 1 GiB segment competes with the appends for the machine's 2 cores.
pub fn create_zero_filled(path: &Path, len: u64) -> io::Result<File> {
    create_zero_filled_until(path, len, &AtomicBool::new(false))
}

/// [`create_zero_filled`] that gives up with `ErrorKind::Interrupted` (leaving a partial file for
/// the caller to remove) as soon as `stop` is set, so a shutdown need not wait for a 1 GiB fill.
pub fn create_zero_filled_until(path: &Path, len: u64, stop: &AtomicBool) -> io::Result<File> {
    let mut step = |_filled: u64| {
        if stop.load(Ordering::Acquire) {
            FillStep::Stop
        } else {
            FillStep::Go
        }
    };
    create_zero_filled_with(path, len, &mut step).map(|(file, _)| file)
}

/// The error of a zero-fill given up on [`FillStep::Stop`].
fn fill_stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "zero-fill stopped")
}

/// How a zero-fill ended (see [`create_zero_filled_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    /// [`FillStep::Hurry`] cut it short: the rest reserved instead of written, or, on tmpfs,
    /// only a prefix reserved.
    pub hurried: bool,
    /// `[0, reserved)` is reserved (written, or `fallocate`d); the rest of the file (tmpfs, in a
    /// hurry) is a hole that the writer must [`MappedFile::reserve`] before storing into it (M5).
    pub reserved: u64,
}

/// What a zero-fill does before its next chunk (see [`create_zero_filled_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillStep {
    /// Write the next chunk.
    Go,
    /// Give up (`ErrorKind::Interrupted`, a partial file left for the caller to remove).
    Stop,
    /// Somebody is waiting for the file: finish it at once, reserving the rest instead of
    /// writing it ([`finish_fast`]); on tmpfs, reserve one more chunk and leave the rest to the
    /// writer (M5).
    Hurry,
}

/// Completes a zero-fill that was hurried at `at`: the rest of `[0, len)` is reserved by one
/// `fallocate` (reads as zeros, every block or tmpfs page reserved, so a store into the mapping
/// can never meet a full disk). On a disk file system these are unwritten extents, whose sync
/// once written costs about twice a sync of written blocks here; on tmpfs the call is the fill
/// anyway. Returns false where the file system cannot reserve (the caller writes the rest).
fn finish_fast(file: &File, at: u64, len: u64) -> io::Result<bool> {
    if at >= len {
        return Ok(true);
    }
    match fallocate_range(file, at, len - at) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Bytes fallocated at a time on tmpfs, between two calls of the `go_on` callback; also the step
/// of [`MappedFile::reserve`]'s callers.
pub const TMPFS_ALLOC_CHUNK_BYTES: u64 = 16 << 20;

/// [`create_zero_filled`] that calls `step` with the bytes filled so far before every chunk
/// (1 MiB written with direct I/O, see [`zero_fill_direct`]; 64 KiB through the page cache where
/// the file system has no direct I/O; or 16 MiB fallocated on tmpfs) and does what it says
/// ([`FillStep`]): on `Stop` it gives up with `ErrorKind::Interrupted`, leaving a partial file for
/// the caller to remove. The CommitLog's pre-allocation thread pre-faults the active segment from
/// there (a 1 GiB fill takes long enough, 0.3-2 s here, for the appends to run past the
/// pre-faulted window and take the page faults themselves, under the append lock), and, under
/// SYNC_FLUSH, paces the fill there (it may block in `step`).
///
/// Returns the file and how the fill ended ([`Filled`]). On tmpfs, a hurried fill reserves one
/// more chunk and stops there: the file is `len` bytes long, but only `[0, reserved)` is
/// reserved, and the caller reserves the rest before storing past it (M5). One `fallocate` of
/// the whole rest took 110-290 ms on tmpfs here (the kernel clears every new page), all of it
/// with the appends standing still at the roll.
pub fn create_zero_filled_with(
    path: &Path,
    len: u64,
    step: &mut dyn FnMut(u64) -> FillStep,
) -> io::Result<(File, Filled)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    if len > 0 && on_tmpfs(&file) {
        let mut at = 0u64;
        while at < len {
            match step(at) {
                FillStep::Go => {}
                FillStep::Stop => return Err(fill_stopped()),
                FillStep::Hurry => {
                    let n = (len - at).min(TMPFS_ALLOC_CHUNK_BYTES);
                    fallocate_range(&file, at, n)?;
                    // The rest stays a hole, but the file has its full length: the mapping
                    // covers it, and no store lands there before it is reserved (M5).
                    file.set_len(len)?;
                    let filled = Filled {
                        hurried: true,
                        reserved: at + n,
                    };
                    return Ok((file, filled));
                }
            }
            let n = (len - at).min(TMPFS_ALLOC_CHUNK_BYTES);
            fallocate_range(&file, at, n)?;
            at += n;
        }
        let filled = Filled {
            hurried: false,
            reserved: len,
        };
        return Ok((file, filled));
    }
    let (direct_end, hurry) = zero_fill_direct(path, len, step)?;
    let mut hurried = hurry && finish_fast(&file, direct_end, len)?;
    if !hurried {
        if direct_end > 0 {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(direct_end))?;
        }
        let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
        let mut at = direct_end;
        // Once a reservation failed (no fallocate here), hurrying cannot help: write on.
        let mut can_hurry = !hurry;
        while at < len {
            match step(at) {
                FillStep::Go => {}
                FillStep::Stop => return Err(fill_stopped()),
                FillStep::Hurry if can_hurry => {
                    if finish_fast(&file, at, len)? {
                        hurried = true;
                        break;
                    }
                    can_hurry = false;
                }
                FillStep::Hurry => {}
            }
            let n = (len - at).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
            file.write_all(&zeros[..n])?;
            at += n as u64;
        }
    }
    file.sync_all()?;
    let filled = Filled {
        hurried,
        reserved: len,
    };
    Ok((file, filled))
}

/// [`create_zero_filled`], then its pages read into the page cache (readahead in
/// [`WILLNEED_CHUNK_BYTES`] pieces, so single-page folios, then waited for): for the
/// write+fdatasync baselines of the benchmarks. The direct-I/O fill leaves nothing cached, and a
/// `write` of part of an uncached page reads it from the disk first, which would make a baseline
/// slower than the store's own writes (which end on page boundaries so as never to read).
pub fn create_zero_filled_cached(path: &Path, len: u64) -> io::Result<File> {
    let file = create_zero_filled(path, len)?;
    if len > 0 {
        let m = MappedFile::open(path, 0)?;
        m.advise_read(0, len, false)?;
        m.advise_read(0, len, true)?;
    }
    Ok(file)
}

/// Chunk of a direct-I/O zero-fill: large enough that the disk, not the syscalls, sets the pace.
const DIRECT_FILL_CHUNK_BYTES: usize = 1 << 20;
/// Direct I/O needs offsets and lengths in whole logical blocks; 4 KiB covers every common disk.
const DIRECT_ALIGN_BYTES: u64 = 4096;

/// Writes zeros over `[0, len)` of the new file at `path` with O_DIRECT, as far as it can in whole
/// 4 KiB blocks, and returns where it stopped (0 where the file system has no direct I/O; the
/// caller writes the rest through the page cache, and syncs).
///
/// Why: a buffered fill copies 1 GiB of zeros into fresh page-cache pages and leaves them dirty,
/// so the kernel later writes the whole segment back in a burst that competes with the log's own
/// syncs. On this VM the first touch of each fresh page also costs a host fault: a buffered 1 GiB
/// fill took 2.25 s of CPU against 0.11 s direct, and in a SYNC_FLUSH 1 KiB run the fill of the
/// next segment was 47 % of the broker's CPU samples (perf, 2026-11-22). Direct, the zeros reach
/// the disk from one page-aligned buffer (an anonymous mapping: never written, so it stays the
/// kernel's zero page) and the page cache is not touched; the pre-faulting window reads the pages
/// back just ahead of the appender ([`MappedFile::prefault_write`], [`MappedFile::advise_read`]).
///
/// Also returns whether `step` asked to hurry (the fill stopped there; the caller reserves the
/// rest).
fn zero_fill_direct(
    path: &Path,
    len: u64,
    step: &mut dyn FnMut(u64) -> FillStep,
) -> io::Result<(u64, bool)> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let aligned = len - len % DIRECT_ALIGN_BYTES;
    if aligned == 0 {
        return Ok((0, false));
    }
    let unsupported = |e: &io::Error| e.raw_os_error() == Some(libc::EINVAL);
    let direct = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if unsupported(&e) => return Ok((0, false)),
        Err(e) => return Err(e),
    };
    let zeros = MmapMut::map_anon(DIRECT_FILL_CHUNK_BYTES)?;
    let mut at = 0u64;
    while at < aligned {
        match step(at) {
            FillStep::Go => {}
            FillStep::Stop => return Err(fill_stopped()),
            FillStep::Hurry => return Ok((at, true)),
        }
        let n = (aligned - at).min(DIRECT_FILL_CHUNK_BYTES as u64) as usize;
        match direct.write_all_at(&zeros[..n], at) {
            Ok(()) => at += n as u64,
            // A file system that takes O_DIRECT at open but wants larger blocks: the caller
            // writes the rest through the page cache.
            Err(e) if unsupported(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok((at, false))
}

/// Creates `path` (which must not exist) with `len` bytes reserved on disk by `fallocate` (read
/// as zeros), falling back to [`create_zero_filled`] where the file system cannot. For files
/// written through a mapping whose syncs are not on an acknowledgement path (ConsumeQueue,
/// IndexFile): reserving takes milliseconds where writing 420 MB of zeros took seconds of disk
/// bandwidth, and the blocks are allocated all the same, so a store into the mapping can never
/// meet a full disk (SIGBUS) — ENOSPC comes from here instead. CommitLog segments stay
/// zero-filled: a sync of written blocks is ~2x faster than of unwritten (fallocated) ones.
pub fn create_allocated(path: &Path, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    if let Err(err) = fallocate_all(&file, len) {
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            drop(file);
            std::fs::remove_file(path)?;
            return create_zero_filled(path, len);
        }
        return Err(err);
    }
    file.sync_all()?;
    Ok(file)
}

/// Extends `file` from its current length to `len` with written zeros (a torn short segment is
/// repaired this way; writing allocates the blocks, unlike `set_len`).
pub fn extend_with_zeros(file: &mut File, len: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let cur = file.metadata()?.len();
    if cur >= len {
        return Ok(());
    }
    file.seek(SeekFrom::Start(cur))?;
    let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
    let mut left = len - cur;
    while left > 0 {
        let n = left.min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// An append-only shared mapping: one writer, lock-free readers below the published offset.
pub struct MappedFile {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    len: u64,
    published: AtomicU64,
    writer_taken: AtomicBool,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("published", &self.published())
            .finish()
    }
}

impl MappedFile {
    /// Creates a new zero-filled file of `len` bytes and maps it, with nothing published.
    pub fn create(path: &Path, len: u64) -> io::Result<Self> {
        let file = create_zero_filled(path, len)?;
        Self::map(path, file, 0)
    }

    /// Maps an existing file. `published` is how many leading bytes are known valid (0 when the
    /// caller still has to scan, e.g. during recovery through the writer).
    pub fn open(path: &Path, published: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(path, file, published)
    }

    fn map(path: &Path, file: File, published: u64) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: empty file cannot be mapped", path.display()),
            ));
        }
        if published > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: published {published} > length {len}", path.display()),
            ));
        }
        let map = MmapOptions::new().len(len as usize).map_raw(&file)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            map,
            len,
            published: AtomicU64::new(published),
            writer_taken: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file lives on tmpfs (one `fstatfs`).
    pub fn on_tmpfs(&self) -> bool {
        on_tmpfs(&self.file)
    }

    /// Bytes the file system has allocated to the file (`st_blocks`): on tmpfs, written and
    /// `fallocate`d pages alike.
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.blocks().saturating_mul(512))
    }

    /// Offset of the file's first hole (`lseek` SEEK_HOLE): everything before it is allocated;
    /// the file's length if it has none. tmpfs counts a page that is `fallocate`d but not yet
    /// written as a hole, so this may be below the reserved end (never above it).
    pub fn first_hole(&self) -> io::Result<u64> {
        use std::os::fd::AsRawFd;
        // SAFETY: no mapping is involved (M1-M4 are not at stake): lseek takes a descriptor we
        // own (borrowed for the call) and two integers, and touches no memory of ours.
        let off = unsafe { libc::lseek(self.file.as_raw_fd(), 0, libc::SEEK_HOLE) };
        if off < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::try_from(off).unwrap_or(0).min(self.len))
    }

    /// Reserves `[at, at + len)` of the file (`fallocate`, clipped to the file's length): the
    /// pages or blocks exist afterwards, so a store into them through the mapping cannot meet a
    /// full file system (M5). A full one is reported here, as ENOSPC. Changes no byte.
    pub fn reserve(&self, at: u64, len: u64) -> io::Result<()> {
        let end = at.saturating_add(len).min(self.len);
        if end <= at {
            return Ok(());
        }
        fallocate_range(&self.file, at, end - at)
    }

    /// The open file behind the mapping (for sendfile/splice and fdatasync).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes below this offset are immutable and readable.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// The published bytes `[pos, pos + len)`, or `None` if any of them is not published yet.
    pub fn read(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.published() {
            return None;
        }
        // SAFETY: M4: end <= published <= self.len, the mapping length. M3: bytes below the
        // published offset (Acquire load above pairs with the writer's Release) are never written
        // again, so this shared slice aliases no write. M2: the slice borrows `self`, which owns
        // the mapping.
        Some(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(pos as usize), len as usize)
        })
    }

    /// Takes the single writer of this file. Returns `None` if one was already taken.
    pub fn writer(self: &Arc<Self>) -> Option<MappedWriter> {
        if self.writer_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(MappedWriter {
            file: Arc::clone(self),
        })
    }

    /// Synchronously writes dirty pages in `[start, start + len)` to disk (msync MS_SYNC).
    /// An error here means the kernel may have dropped data: callers must stop writing.
    pub fn flush_range(&self, start: u64, len: u64) -> io::Result<()> {
        let end = start.saturating_add(len).min(self.len);
        if end <= start {
            return Ok(());
        }
        // msync wants a page-aligned start.
        let aligned = start - start % OS_PAGE_SIZE;
        self.map
            .flush_range(aligned as usize, (end - aligned) as usize)
    }

    /// Asks the kernel to populate page tables for `[start, start + len)` as writable, so later
    /// appends take no page faults (MADV_POPULATE_WRITE, Linux 5.14+). Falls back to
    /// MADV_WILLNEED where unsupported. Errors are only performance hints and are returned for
    /// logging.
    ///
    /// In [`POPULATE_CHUNK_BYTES`] pieces: a populate holds the process's mmap lock (read) for
    /// its whole length, so any thread that maps or unmaps memory meanwhile (the allocator, a
    /// new thread's stack) waits for it, and every page fault queues behind that waiter. One
    /// call over 512 MiB of tmpfs blocked another thread's mmap for 155-202 ms here, 4 MiB
    /// pieces for 16 ms at most (2026-11-22); the segment's first 256 MiB window, populated in
    /// one call, could stall the whole broker for as long.
    pub fn prefault_write(&self, start: u64, len: u64) -> io::Result<()> {
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        self.madvise_chunked(start, len, MADV_POPULATE_WRITE, POPULATE_CHUNK_BYTES)
            .or_else(|err| {
                self.madvise_chunked(start, len, libc::MADV_WILLNEED, WILLNEED_CHUNK_BYTES)
                    .map_err(|_| err)
            })
    }

    /// [`Self::madvise_range`] over `[start, start + len)` in `chunk`-byte pieces.
    fn madvise_chunked(
        &self,
        start: u64,
        len: u64,
        advice: libc::c_int,
        chunk: u64,
    ) -> io::Result<()> {
        let end = start.saturating_add(len).min(self.len);
        let mut at = start;
        while at < end {
            let n = (end - at).min(chunk.max(OS_PAGE_SIZE));
            self.madvise_range(at, n, advice)?;
            at += n;
        }
        Ok(())
    }

    /// madvise over the pages covering `[start, start + len)` (clipped to the mapping), for
    /// advice that changes no byte of the file or the mapping: WILLNEED (readahead),
    /// POPULATE_READ / POPULATE_WRITE (fault pages in; populating writable pages keeps their
    /// bytes). Such hints are all this is for.
    fn madvise_range(&self, start: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
        let end = start.saturating_add(len).min(self.len);
        let aligned = start - start % OS_PAGE_SIZE;
        if end <= aligned {
            return Ok(());
        }
        // SAFETY: M4: [aligned, end) lies inside the mapping. The callers pass only advice that
        // leaves every byte as it was, so no reader or writer observes a change (M3).
        let rc = unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(aligned as usize).cast(),
                (end - aligned) as usize,
                advice,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl MappedFile {
    /// Read hints for a range about to be read front to back (recovery's scan): starts
    /// asynchronous readahead of `[start, start + len)` (MADV_WILLNEED) and, if `populate`, maps
    /// the range's pages into the page table now (MADV_POPULATE_READ, Linux 5.14+; it waits for
    /// pages still being read), so the reader takes no page fault per 64 KiB. Hints only: errors
    /// are returned for logging and change nothing.
    ///
    /// WILLNEED is given in [`WILLNEED_CHUNK_BYTES`] pieces: the kernel reads at most
    /// max(read-ahead window, device I/O size) pages per call (`force_page_cache_ra`), so one call
    /// over a large range read only its first few hundred KiB. Such readahead fills the page cache
    /// with single-page folios, where POPULATE_READ's faults make large ones; a 1 KiB `pwrite`
    /// into a large folio walks every buffer head of the folio (ext4), 4-5 us a write against
    /// 1.4 (measured 2026-11-22, 256 MiB file), so the write+fdatasync baseline's file is read
    /// with WILLNEED only.
    pub fn advise_read(&self, start: u64, len: u64, populate: bool) -> io::Result<()> {
        const MADV_POPULATE_READ: libc::c_int = 22;
        if populate {
            return self.madvise_chunked(start, len, MADV_POPULATE_READ, POPULATE_CHUNK_BYTES);
        }
        self.madvise_chunked(start, len, libc::MADV_WILLNEED, WILLNEED_CHUNK_BYTES)
    }
}

/// Piece of a populate (see [`MappedFile::prefault_write`]): the longest the mmap lock is held
/// by one call.
pub const POPULATE_CHUNK_BYTES: u64 = 2 << 20;

/// Piece of a WILLNEED hint (see [`MappedFile::advise_read`]): below the kernel's default
/// read-ahead window (128 KiB), so each piece is read whole.
pub const WILLNEED_CHUNK_BYTES: u64 = 64 << 10;

/// The single writer of a [`MappedFile`]. It may read and write anything at or above the published
/// offset, and publishes bytes once they are complete.
pub struct MappedWriter {
    file: Arc<MappedFile>,
}

impl std::fmt::Debug for MappedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedWriter")
            .field("file", &self.file)
            .finish()
    }
}

impl MappedWriter {
    pub fn mapped(&self) -> &Arc<MappedFile> {
        &self.file
    }

    /// Panics (a bug of ours, not bad input) unless `[pos, pos + len)` is at or above the
    /// published offset and inside the file.
    fn check_write(&self, pos: u64, len: usize) {
        let published = self.file.published();
        let end = pos
            .checked_add(len as u64)
            .expect("write end overflows u64");
        assert!(
            pos >= published,
            "write at {pos} below published {published}"
        );
        assert!(
            end <= self.file.len,
            "write end {end} past file length {}",
            self.file.len
        );
    }

    /// Copies `data` to `pos`. Panics (a bug of ours, not bad input) if `pos` is below the
    /// published offset or the write runs past the end of the file.
    pub fn write(&mut self, pos: u64, data: &[u8]) {
        self.check_write(pos, data.len());
        // SAFETY: M4: [pos, pos + data.len()) is inside the mapping (`check_write`). M3: pos >=
        // published and this is the only writer (`writer_taken`), so no reader holds a slice of
        // these bytes and no other thread writes them; `data` is a distinct Rust allocation, so
        // the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.file.map.as_mut_ptr().add(pos as usize),
                data.len(),
            );
        }
    }

    /// Copies `data` to `pos` through the file descriptor (`pwrite`) instead of through the
    /// mapping. The page cache is shared, so readers of the mapping see these bytes once they are
    /// published, exactly as after [`MappedWriter::write`]. Used under SYNC_FLUSH: pages dirtied
    /// by stores into a shared mapping are write-protected again by every msync/fdatasync, so the
    /// next store takes a write fault (`page_mkwrite`, a file time update), and on ext4 a sync of
    /// such pages measured ~3x slower than a sync of pages written with `pwrite` (300 vs 100 µs
    /// for a 1 KiB append + sync). Same preconditions as `write` (asserted: a bug of ours).
    pub fn write_through(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.check_write(pos, data.len());
        // M3: pos >= published and this is the only writer, so no reader holds these bytes.
        self.file.file.write_all_at(data, pos)
    }

    /// Any bytes at or above the published offset (unpublished, so only this writer sees them;
    /// used by recovery to scan a tail before deciding what is valid). `None` if out of bounds or
    /// below the published offset.
    pub fn view(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if pos < self.file.published() || end > self.file.len {
            return None;
        }
        // SAFETY: M4: [pos, end) is inside the mapping. M3: only this writer writes above the
        // published offset, and `&self` here excludes a concurrent `write(&mut self)`, so the
        // slice aliases no write for its lifetime.
        Some(unsafe {
            std::slice::from_raw_parts(self.file.map.as_ptr().add(pos as usize), len as usize)
        })
    }

    /// A mutable window `[pos, pos + len)` at or above the published offset, so a record can be
    /// encoded straight into the mapping (one copy of the body). Panics (a bug of ours) if the
    /// window is below the published offset or past the end of the file.
    pub fn slot_mut(&mut self, pos: u64, len: u64) -> &mut [u8] {
        let published = self.file.published();
        let end = pos.checked_add(len).expect("slot end overflows u64");
        assert!(
            pos >= published,
            "slot at {pos} below published {published}"
        );
        assert!(
            end <= self.file.len,
            "slot end {end} past file length {}",
            self.file.len
        );
        // SAFETY: M4: [pos, pos + len) is inside the mapping (`check_write`). M3: pos >= published and this is
        // the only writer, so no reader holds a slice of these bytes and no other thread writes
        // them; `&mut self` ties the slice's lifetime to an exclusive borrow of the writer, so no
        // `view` or `write` of this writer overlaps it either.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.file.map.as_mut_ptr().add(pos as usize),
                len as usize,
            )
        }
    }

    /// Makes `[old published, end)` visible to readers. `end` must not go backwards or past the end
    /// of the file (asserted: a bug of ours).
    pub fn publish(&mut self, end: u64) {
        let old = self.file.published();
        assert!(end >= old, "publish going backwards: {end} < {old}");
        assert!(
            end <= self.file.len,
            "publish {end} past file length {}",
            self.file.len
        );
        self.file.published.store(end, Ordering::Release);
    }
}

impl Drop for MappedWriter {
    fn drop(&mut self) {
        self.file.writer_taken.store(false, Ordering::Release);
    }
}

/// Takes an exclusive, non-blocking `flock` on `file` (the store's `lock` file, invariant M1).
/// Returns `Ok(false)` if another process (or another open file description) holds it. The lock
/// lives as long as the descriptor.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: M1 is what this establishes. `flock` only reads the descriptor number, which is
    // valid for the call because `file` is borrowed; it touches no memory of ours.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Space on the file system holding `path` (statvfs), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    /// Free, including blocks reserved for root (`f_bfree`; Java's `File.getFreeSpace`).
    pub free_bytes: u64,
    /// Available to unprivileged users (`f_bavail`).
    pub available_bytes: u64,
}

impl DiskSpace {
    /// Used share in percent, as RocketMQ computes it (`getDiskPartitionSpaceUsedPercent`):
    /// `(total - free) / total`.
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        let used = self.total_bytes.saturating_sub(self.free_bytes);
        used as f64 * 100.0 / self.total_bytes as f64
    }
}

/// Asks the kernel how much space the file system of `path` has (statvfs).
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: no mapping is involved (M1-M4 are not at stake): `c_path` is a valid NUL-terminated
    // string for the call, and `st` points to writable memory of the right type, which statvfs
    // fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st` (see above).
    let st = unsafe { st.assume_init() };
    // c_ulong and fsblkcnt_t are u64 here but not on every target.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let (frag, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let free = st.f_bfree as u64;
    Ok(DiskSpace {
        total_bytes: blocks.saturating_mul(frag),
        free_bytes: free.saturating_mul(frag),
        available_bytes: avail.saturating_mul(frag),
    })
}

/// A read/write mapping guarded by Rust's borrow rules (wrap it in a lock to share it).
pub struct MappedMut {
    path: PathBuf,
    file: File,
    map: MmapMut,
}

impl std::fmt::Debug for MappedMut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedMut")
            .field("path", &self.path)
            .field("len", &self.map.len())
            .finish()
    }
}

impl MappedMut {
    /// Creates a new zero-filled file of `len` bytes and maps it.
    pub fn create(path: &Path, len: u64) -> io::Result<Self> {
        let file = create_zero_filled(path, len)?;
        Self::map(path, file)
    }

    /// Maps an existing, non-empty file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(path, file)
    }

    fn map(path: &Path, file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: empty file cannot be mapped", path.display()),
            ));
        }
        // SAFETY: M1: the store directory is locked by us, so no cooperating process truncates or
        // resizes the file while mapped. M2: the map is owned by the returned value and every slice
        // borrows from it; `&`/`&mut` access below follows Rust's aliasing rules.
        let map = unsafe { MmapOptions::new().len(len as usize).map_mut(&file)? };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.map
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Synchronously writes all dirty pages to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_files_read_zeros_and_own_their_blocks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alloc");
        let len = 3 * 1024 * 1024 + 100;
        let f = create_allocated(&p, len).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), len);
        // Not sparse: every byte has a block (st_blocks counts 512-byte units).
        assert!(
            md.blocks() * 512 >= len,
            "{} blocks for {len} bytes",
            md.blocks()
        );
        drop(f);
        let mut m = MappedMut::open(&p).unwrap();
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.as_mut_slice()[len as usize - 1] = 7;
        m.flush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap()[len as usize - 1], 7);
        // Never replaces an existing file.
        assert!(create_allocated(&p, 4096).is_err());
    }

    /// Zero-filled files read as zeros and own all their blocks or pages, both on the test's temp
    /// dir (a disk: written zeros) and on /dev/shm when there is one (tmpfs: fallocated).
    #[test]
    fn zero_filled_files_read_zeros_and_own_their_blocks() {
        use std::os::unix::fs::MetadataExt;
        let disk = tempfile::tempdir().unwrap();
        let mut dirs = vec![disk];
        // /var/tmp is a disk where /tmp is not: the direct-I/O fill is tried there.
        for other in ["/dev/shm", "/var/tmp"] {
            if let Ok(d) = tempfile::tempdir_in(other) {
                dirs.push(d);
            }
        }
        for (dir, len) in dirs.iter().flat_map(|d| {
            [
                2 * ZERO_FILL_CHUNK_BYTES as u64 + 4096 + 100,
                DIRECT_FILL_CHUNK_BYTES as u64 + 8192 + 1,
            ]
            .map(|len| (d, len))
        }) {
            let p = dir.path().join(format!("zf{len}"));
            // Where the file system takes direct I/O it covers the whole 4 KiB blocks, and
            // nothing else.
            let probe = dir.path().join(format!("probe{len}"));
            File::create(&probe).unwrap();
            let (direct, _) = zero_fill_direct(&probe, len, &mut |_| FillStep::Go).unwrap();
            assert!(
                direct == 0 || direct == len - len % DIRECT_ALIGN_BYTES,
                "{direct}"
            );
            let f = create_zero_filled(&p, len).unwrap();
            let md = f.metadata().unwrap();
            assert_eq!(md.len(), len);
            assert!(
                md.blocks() * 512 >= len,
                "{}: {} blocks for {len} bytes",
                p.display(),
                md.blocks()
            );
            drop(f);
            assert!(std::fs::read(&p).unwrap().iter().all(|&b| b == 0));
            let m = Arc::new(MappedFile::open(&p, 0).unwrap());
            m.prefault_write(0, len).unwrap();
            let mut w = m.writer().unwrap();
            w.write(len - 3, b"end");
            w.publish(len);
            assert_eq!(m.read(len - 3, 3), Some(&b"end"[..]));
            assert!(
                create_zero_filled(&p, 4096).is_err(),
                "never replaces a file"
            );
            let stop = AtomicBool::new(true);
            let q = dir.path().join(format!("stopped{len}"));
            // A stopped fill gives up on a disk; on tmpfs there is nothing long to stop.
            let _ = create_zero_filled_until(&q, len, &stop);
        }
    }

    /// A WILLNEED hint over a large range reads all of it (the kernel reads only a few hundred
    /// KiB per call), here on a file whose zeros were written with direct I/O, so nothing of it
    /// was in the page cache before; a populate in pieces covers its whole range too.
    #[test]
    fn read_hints_cover_the_whole_range() {
        let Ok(dir) = tempfile::tempdir_in("/var/tmp") else {
            return;
        };
        // Above this machine's read-ahead window (8 MiB; the kernel's default is 128 KiB).
        let len = 32u64 << 20 | 4096;
        for populate in [false, true] {
            let p = dir.path().join(format!("ra{populate}"));
            let f = create_zero_filled(&p, len).unwrap();
            drop(f);
            let m = MappedFile::open(&p, 0).unwrap();
            if populate {
                m.prefault_write(0, len).unwrap();
            } else {
                m.advise_read(0, len, false).unwrap();
            }
            wait_resident(&m, len);
        }
        // The benchmarks' baseline file is cached when made, as a segment is before appends.
        let p = dir.path().join("cached");
        drop(create_zero_filled_cached(&p, len).unwrap());
        wait_resident(&MappedFile::open(&p, 0).unwrap(), len);
    }

    fn wait_resident(m: &MappedFile, len: u64) {
        let pages = (len / OS_PAGE_SIZE) as usize;
        let mut vec = vec![0u8; pages];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            // SAFETY: the range is the whole mapping (M4) and `vec` has one byte per page of it;
            // mincore only reports residency and changes nothing (M3).
            let rc =
                unsafe { libc::mincore(m.map.as_mut_ptr().cast(), len as usize, vec.as_mut_ptr()) };
            assert_eq!(rc, 0);
            let resident = vec.iter().filter(|&&b| b & 1 == 1).count();
            if resident == pages {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{resident} of {pages} pages read"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn writer_publishes_and_readers_see_only_published() {
        let dir = tempfile::tempdir().unwrap();
        let f = Arc::new(MappedFile::create(&dir.path().join("seg"), 8192).unwrap());
        let mut w = f.writer().unwrap();
        assert!(f.writer().is_none(), "second writer must be refused");
        w.write(0, b"hello");
        assert_eq!(f.read(0, 5), None);
        assert_eq!(w.view(0, 5), Some(&b"hello"[..]));
        w.publish(5);
        assert_eq!(f.read(0, 5), Some(&b"hello"[..]));
        assert_eq!(f.read(4, 2), None);
        assert_eq!(
            w.view(0, 5),
            None,
            "published bytes are no longer the writer's"
        );
        f.flush_range(0, 5).unwrap();
        f.prefault_write(0, 8192).unwrap();
        drop(w);
        assert!(f.writer().is_some(), "writer can be taken again after drop");
    }

    #[test]
    #[should_panic(expected = "below published")]
    fn writing_below_published_is_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let f = Arc::new(MappedFile::create(&dir.path().join("seg"), 4096).unwrap());
        let mut w = f.writer().unwrap();
        w.write(0, b"abc");
        w.publish(3);
        w.write(1, b"x");
    }

    #[test]
    fn reopen_keeps_bytes_and_mapped_mut_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        {
            let f = Arc::new(MappedFile::create(&p, 4096).unwrap());
            let mut w = f.writer().unwrap();
            w.write(10, b"xyz");
            w.publish(13);
            f.flush_range(0, 4096).unwrap();
        }
        let f = MappedFile::open(&p, 13).unwrap();
        assert_eq!(f.read(10, 3), Some(&b"xyz"[..]));
        let mut m = MappedMut::open(&p).unwrap();
        m.as_mut_slice()[0] = 7;
        m.flush().unwrap();
        assert_eq!(m.as_slice()[0], 7);
        assert!(MappedMut::open(&dir.path().join("missing")).is_err());
    }
}
