//! Writing a response body of file regions: the header from memory, then the regions by
//! sendfile(2), by splice(2) through a pipe, through io_uring, or by copying.
//!
//! All paths work on tokio's non-blocking socket: a syscall that returns EAGAIN clears tokio's
//! readiness (`try_io`) and the loop awaits `writable()`; partial writes advance the offset and
//! loop. Regions are expected to be in the page cache (the store just wrote or read them); a cold
//! page makes sendfile/splice read from disk on the runtime thread, as Netty's FileRegion does.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::net::SendFlags;
use rustix::pipe::SpliceFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::command::FileRegion;

/// Which path sends region bodies. `Auto` picks the measured default (see docs/design.md,
/// "Transfer").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferBackend {
    #[default]
    Auto,
    Sendfile,
    Splice,
    IoUring,
    Copy,
}

impl std::str::FromStr for TransferBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "sendfile" => Ok(Self::Sendfile),
            "splice" => Ok(Self::Splice),
            "io_uring" | "iouring" | "uring" => Ok(Self::IoUring),
            "copy" => Ok(Self::Copy),
            other => Err(format!("unknown transfer backend {other:?}")),
        }
    }
}

/// The backend `Auto` resolves to.
pub const AUTO_BACKEND: TransferBackend = TransferBackend::Sendfile;

/// Region bodies smaller than this are copied next to the header: one send beats a send plus a
/// sendfile per region when the bytes are few.
pub const COPY_THRESHOLD_BYTES: usize = 16 * 1024;

/// Most bytes one sendfile/splice call is asked to move (the kernel caps at 0x7ffff000 anyway;
/// a smaller step keeps one connection from holding a runtime thread too long).
const STEP_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Pipe capacity requested for the splice path (the unprivileged maximum by default).
const PIPE_CAPACITY_BYTES: usize = 1024 * 1024;

/// The server-wide transfer choice, resolved once at startup.
pub struct Transfer {
    backend: TransferBackend,
    #[cfg(feature = "uring")]
    ring: Option<Arc<crate::uring::Ring>>,
}

impl Transfer {
    /// Resolves `requested`: `Auto` → [`AUTO_BACKEND`]; `IoUring` falls back to sendfile when the
    /// kernel or the container forbids io_uring. Logs the path that runs.
    pub fn new(requested: TransferBackend) -> Arc<Transfer> {
        #[cfg(feature = "uring")]
        return Self::with_ring_starter(requested, crate::uring::Ring::start);
        #[cfg(not(feature = "uring"))]
        return Self::with_ring_starter(requested, || {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "built without the uring feature",
            ))
        });
    }

    /// `new` with the ring constructor passed in, so tests can make io_uring "unavailable".
    #[cfg(feature = "uring")]
    pub(crate) fn with_ring_starter(
        requested: TransferBackend,
        start: impl FnOnce() -> io::Result<Arc<crate::uring::Ring>>,
    ) -> Arc<Transfer> {
        let mut backend = match requested {
            TransferBackend::Auto => AUTO_BACKEND,
            other => other,
        };
        let mut ring = None;
        if backend == TransferBackend::IoUring {
            match start() {
                Ok(r) => ring = Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable; falling back to sendfile");
                    backend = TransferBackend::Sendfile;
                }
            }
        }
        tracing::info!(requested = ?requested, running = ?backend, "zero-copy transfer path");
        Arc::new(Transfer { backend, ring })
    }

    #[cfg(not(feature = "uring"))]
    pub(crate) fn with_ring_starter(
        requested: TransferBackend,
        start: impl FnOnce() -> io::Result<()>,
    ) -> Arc<Transfer> {
        let mut backend = match requested {
            TransferBackend::Auto => AUTO_BACKEND,
            other => other,
        };
        if backend == TransferBackend::IoUring {
            if let Err(e) = start() {
                tracing::warn!(error = %e, "io_uring unavailable; falling back to sendfile");
            }
            backend = TransferBackend::Sendfile;
        }
        tracing::info!(requested = ?requested, running = ?backend, "zero-copy transfer path");
        Arc::new(Transfer { backend })
    }

    /// The path that actually runs.
    pub fn backend(&self) -> TransferBackend {
        self.backend
    }

    /// Per-connection state (the splice pipe is made on first use).
    pub fn for_connection(self: &Arc<Self>) -> ConnTransfer {
        ConnTransfer {
            shared: Arc::clone(self),
            pipe: None,
        }
    }
}

/// A pipe owned by one connection's writer for splice.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
        )?;
        // A bigger pipe means fewer splice round trips; the default (64 KiB) still works.
        let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY_BYTES)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }
}

/// One connection's sender of region bodies.
pub struct ConnTransfer {
    shared: Arc<Transfer>,
    pipe: Option<Pipe>,
}

impl ConnTransfer {
    pub fn backend(&self) -> TransferBackend {
        self.shared.backend
    }

    /// Writes `head` (frame prefix + header) and then every region, in order.
    pub async fn write_regions(
        &mut self,
        sock: &TcpStream,
        head: &[u8],
        regions: &[Arc<dyn FileRegion>],
    ) -> io::Result<()> {
        let total: usize = regions.iter().map(|r| r.len()).sum();
        if total < COPY_THRESHOLD_BYTES || self.shared.backend == TransferBackend::Copy {
            return copy_regions(sock, head, regions).await;
        }
        match self.shared.backend {
            #[cfg(feature = "uring")]
            TransferBackend::IoUring => {
                if let Some(ring) = &self.shared.ring {
                    return ring.write_regions(sock, head, regions).await;
                }
                sendfile_regions(sock, head, regions).await
            }
            TransferBackend::Splice => {
                if self.pipe.is_none() {
                    self.pipe = Some(Pipe::new()?);
                }
                let Some(pipe) = self.pipe.as_mut() else {
                    unreachable!("pipe was just created")
                };
                let result = splice_regions(sock, pipe, head, regions).await;
                if result.is_err() {
                    // Bytes may be stranded in the pipe; a fresh one is made next time.
                    self.pipe = None;
                }
                result
            }
            _ => sendfile_regions(sock, head, regions).await,
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// send(2) until `buf` is gone; `MSG_MORE` when more bytes follow so the header and the first
/// file bytes share a segment.
pub async fn send_all(sock: &TcpStream, mut buf: &[u8], more: bool) -> io::Result<()> {
    let flags = if more {
        SendFlags::MORE | SendFlags::NOSIGNAL
    } else {
        SendFlags::NOSIGNAL
    };
    while !buf.is_empty() {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            rustix::net::send(sock, buf, flags).map_err(io::Error::from)
        }) {
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(e) if would_block(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn copy_regions(
    sock: &TcpStream,
    head: &[u8],
    regions: &[Arc<dyn FileRegion>],
) -> io::Result<()> {
    let total: usize = regions.iter().map(|r| r.len()).sum();
    if total < COPY_THRESHOLD_BYTES {
        let mut buf = Vec::with_capacity(head.len() + total);
        buf.extend_from_slice(head);
        regions
            .iter()
            .for_each(|r| buf.extend_from_slice(r.as_bytes()));
        return send_all(sock, &buf, false).await;
    }
    send_all(sock, head, true).await?;
    let last = regions.len().saturating_sub(1);
    for (i, r) in regions.iter().enumerate() {
        send_all(sock, r.as_bytes(), i < last).await?;
    }
    Ok(())
}

/// A run of bytes in one file: adjacent regions of the same open file merged, so consecutive
/// messages of a pull (contiguous in the CommitLog) cost one syscall instead of one each.
#[derive(Clone, Copy)]
pub struct Span<'a> {
    pub file: &'a std::fs::File,
    pub offset: u64,
    pub len: usize,
}

/// Merges regions that continue each other in the same file (same fd, next offset).
pub fn coalesce(regions: &[Arc<dyn FileRegion>]) -> Vec<Span<'_>> {
    use std::os::fd::AsRawFd;
    let mut spans: Vec<Span<'_>> = Vec::with_capacity(regions.len());
    for r in regions.iter().filter(|r| !r.is_empty()) {
        if let Some(last) = spans.last_mut() {
            let same_file = last.file.as_raw_fd() == r.file().as_raw_fd();
            if same_file && last.offset + last.len as u64 == r.file_offset() {
                last.len += r.len();
                continue;
            }
        }
        spans.push(Span {
            file: r.file(),
            offset: r.file_offset(),
            len: r.len(),
        });
    }
    spans
}

pub(crate) async fn sendfile_regions(
    sock: &TcpStream,
    head: &[u8],
    regions: &[Arc<dyn FileRegion>],
) -> io::Result<()> {
    send_all(sock, head, true).await?;
    for span in coalesce(regions) {
        sendfile_span(sock, span).await?;
    }
    Ok(())
}

fn short_file(span: Span<'_>) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("file ended inside region [{}, +{})", span.offset, span.len),
    )
}

/// sendfile(2) one span, looping over partial writes and EAGAIN.
pub async fn sendfile_span(sock: &TcpStream, span: Span<'_>) -> io::Result<()> {
    let file = span.file;
    let mut offset = span.offset;
    let end = offset + span.len as u64;
    while offset < end {
        let step = (end - offset).min(STEP_BYTES_MAX as u64) as usize;
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(sock.as_fd(), file, Some(&mut offset), step)
                .map_err(io::Error::from)
        }) {
            Ok(0) => return Err(short_file(span)),
            Ok(_) => {} // the kernel advanced `offset`
            Err(e) if would_block(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn splice_regions(
    sock: &TcpStream,
    pipe: &mut Pipe,
    head: &[u8],
    regions: &[Arc<dyn FileRegion>],
) -> io::Result<()> {
    send_all(sock, head, true).await?;
    let spans = coalesce(regions);
    let last = spans.len().saturating_sub(1);
    for (i, span) in spans.into_iter().enumerate() {
        splice_span(sock, pipe, span, i < last).await?;
    }
    Ok(())
}

/// File → pipe (no copy: the pipe references page-cache pages), then pipe → socket, looping
/// over partial transfers and EAGAIN. The pipe is empty on entry and on successful exit.
async fn splice_span(
    sock: &TcpStream,
    pipe: &mut Pipe,
    span: Span<'_>,
    more_follows: bool,
) -> io::Result<()> {
    let file = span.file;
    let mut offset = span.offset;
    let mut file_left = span.len;
    let mut in_pipe = 0usize;
    while file_left > 0 || in_pipe > 0 {
        if in_pipe == 0 {
            let want = file_left.min(pipe.capacity);
            let n = rustix::pipe::splice(
                file,
                Some(&mut offset),
                &pipe.write,
                None,
                want,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )?;
            if n == 0 {
                return Err(short_file(span));
            }
            file_left -= n;
            in_pipe = n;
        }
        let mut flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        if more_follows || file_left > 0 {
            flags |= SpliceFlags::MORE;
        }
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            rustix::pipe::splice(&pipe.read, None, sock.as_fd(), None, in_pipe, flags)
                .map_err(io::Error::from)
        }) {
            Ok(n) => in_pipe -= n,
            Err(e) if would_block(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(std::sync::Arc<std::fs::File>, u64, usize);
    impl FileRegion for R {
        fn file(&self) -> &std::fs::File {
            &self.0
        }
        fn file_offset(&self) -> u64 {
            self.1
        }
        fn len(&self) -> usize {
            self.2
        }
        fn as_bytes(&self) -> &[u8] {
            &[]
        }
    }

    #[test]
    fn coalesce_merges_only_contiguous_runs_of_one_file() {
        let a = Arc::new(tempfile::tempfile().unwrap());
        let b = Arc::new(tempfile::tempfile().unwrap());
        let rs: Vec<Arc<dyn FileRegion>> = vec![
            Arc::new(R(a.clone(), 0, 10)),
            Arc::new(R(a.clone(), 10, 5)),
            Arc::new(R(a.clone(), 15, 0)),
            Arc::new(R(b.clone(), 15, 5)),
            Arc::new(R(a.clone(), 20, 5)),
            Arc::new(R(a.clone(), 30, 5)),
        ];
        let spans: Vec<(u64, usize)> = coalesce(&rs).iter().map(|s| (s.offset, s.len)).collect();
        assert_eq!(spans, vec![(0, 15), (15, 5), (20, 5), (30, 5)]);
    }

    #[test]
    fn io_uring_unavailable_falls_back_to_sendfile() {
        let t = Transfer::with_ring_starter(TransferBackend::IoUring, || {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
        assert_eq!(t.backend(), TransferBackend::Sendfile);
        assert_eq!(Transfer::new(TransferBackend::Auto).backend(), AUTO_BACKEND);
        assert_eq!(
            Transfer::new(TransferBackend::Splice).backend(),
            TransferBackend::Splice
        );
    }

    #[cfg(feature = "uring")]
    #[test]
    fn io_uring_runs_where_available() {
        let expected = if crate::uring::available() {
            TransferBackend::IoUring
        } else {
            TransferBackend::Sendfile
        };
        assert_eq!(Transfer::new(TransferBackend::IoUring).backend(), expected);
    }
}
