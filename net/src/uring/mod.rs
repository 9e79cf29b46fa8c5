//! io_uring transfer backend: region bytes go file → pipe → socket as linked SPLICE operations
//! driven by one ring thread, so neither the copy nor the page-cache reads touch a runtime thread.
//!
//! Per pipeful (at most one pipe's capacity, up to `FILLS_MAX` file runs) the ring thread
//! submits one linked chain:
//!
//! ```text
//! SPLICE run0 → pipe.w ─link─▶ SPLICE run1 → pipe.w ─link─▶ … ─link─▶ POLL_ADD sock POLLOUT
//!                                                                  ─link─▶ SPLICE pipe.r → sock
//! ```
//!
//! A short fill cancels the rest of the chain (`-ECANCELED`); a partial or `-EAGAIN` drain
//! (tokio's socket is `O_NONBLOCK`) leaves bytes in the pipe, and the next chain is just
//! POLL_ADD + SPLICE out. A chain is always pushed whole (the SQ is flushed first if it lacks
//! room), because a submission that ends inside a chain would cut the link. Splice is always executed by io_uring's worker threads
//! (`iou-wrk`), which belong to this process, so `getrusage(RUSAGE_SELF)` counts their CPU.
//!
//! Invariants that make the `unsafe` here sound (each `// SAFETY:` refers to them):
//!
//! * **U1 (fds outlive their operations).** Every fd named in an SQE is owned by the `Job` the
//!   SQE belongs to: the socket is a `dup` owned by the job (so the connection closing its own fd
//!   cannot let the number be reused under us), the file is kept open by the job's
//!   `Arc<dyn FileRegion>`, the pipe is owned by the job until the job is finished. A job is
//!   finished only when every SQE it submitted has produced its CQE (`Job::pending == 0`).
//! * **U2 (no borrowed memory in operations).** SPLICE and POLL_ADD carry no buffer pointers. The
//!   only buffer the kernel writes is the 8-byte eventfd read target, which is leaked
//!   (`Box::leak`) so it outlives the ring even if a read is still queued at teardown.
//! * **U3 (bounded completions).** At most `JOBS_ACTIVE_MAX` jobs run at once, each with at most
//!   `CHAIN_SQES_MAX` operations outstanding, plus the eventfd read: fewer than the CQ ring's
//!   entries, so completions are never dropped; the SQ is flushed with `submit()` when full.
//! * **U4 (one owner).** The `IoUring` lives on the ring thread only; other threads talk to it
//!   through a mutex-protected queue and the eventfd.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::command::FileRegion;
use crate::transfer::send_all;

/// Submission queue entries (the CQ gets twice as many).
const RING_ENTRIES: u32 = 512;
/// Jobs (one response body each) the ring works on at once; more wait in the queue.
const JOBS_ACTIVE_MAX: usize = 32;
/// File runs spliced into the pipe by one chain at most.
const FILLS_MAX: usize = 16;
/// SQEs one job has outstanding at most: the fills, the poll, the drain.
const CHAIN_SQES_MAX: usize = FILLS_MAX + 2;
const _: () = assert!(CHAIN_SQES_MAX <= RING_ENTRIES as usize);
const _: () = assert!(JOBS_ACTIVE_MAX * CHAIN_SQES_MAX + 1 < 2 * RING_ENTRIES as usize);
/// Pipe capacity asked for (the unprivileged maximum by default).
const PIPE_CAPACITY_BYTES: usize = 1024 * 1024;
/// user_data of the eventfd read.
const WAKE: u64 = u64::MAX;

/// Step numbers in the low byte of user_data: fills are 0..FILLS_MAX.
const STEP_POLL: u64 = 0xfe;
const STEP_OUT: u64 = 0xff;
const _: () = assert!((FILLS_MAX as u64) < STEP_POLL);

/// The ring thread's handle. Dropping the last `Arc` stops the thread once its jobs finish.
pub struct Ring {
    queue: Mutex<VecDeque<Job>>,
    wake: OwnedFd,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// One response body: its regions, sent in order, and the waiter to tell.
struct Job {
    sock: OwnedFd,
    /// Never read: owning the regions keeps every file in `spans` open (U1).
    _keep_open: Vec<Arc<dyn FileRegion>>,
    /// Coalesced runs: (fd of one of `regions`, offset, len).
    spans: Vec<(RawFd, u64, usize)>,
    /// Index into `spans` of the run being sent.
    region: usize,
    file_offset: u64,
    file_left: usize,
    in_pipe: usize,
    pipe: Option<Pipe>,
    pending: usize,
    /// Bytes asked of each fill of the chain in flight, in order.
    fills: Vec<usize>,
    /// (step, result) of the chain in flight.
    results: Vec<(u64, i32)>,
    error: Option<io::Error>,
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// A blocking pipe: only io_uring workers touch it, and they may block.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY_BYTES)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }
}

impl Ring {
    /// Creates the ring and its thread. Fails where io_uring is missing or forbidden (old
    /// kernels, seccomp profiles of container runtimes, `kernel.io_uring_disabled`).
    pub fn start() -> io::Result<Arc<Ring>> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // Probe that SPLICE exists (5.7+) rather than failing on the first response.
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Splice::CODE) || !probe.is_supported(opcode::PollAdd::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks SPLICE or POLL_ADD",
            ));
        }
        let wake = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
        let thread_wake = wake.try_clone()?;
        let alive = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let ring_handle = Arc::new(Ring {
            queue: Mutex::new(VecDeque::new()),
            wake,
            alive: Arc::clone(&alive),
            stop: Arc::clone(&stop),
        });
        let weak = Arc::downgrade(&ring_handle);
        std::thread::Builder::new()
            .name("ferrocket-uring".into())
            .spawn(move || {
                let mut driver = Driver {
                    ring,
                    wake: thread_wake,
                    jobs: Vec::new(),
                    pipes: Vec::new(),
                };
                if let Err(e) = driver.run(&weak, &stop) {
                    tracing::error!(error = %e, "io_uring thread failed; responses fall back to sendfile");
                }
                alive.store(false, Ordering::Release);
                driver.fail_all();
            })?;
        Ok(ring_handle)
    }

    /// False once the ring thread has died; callers then use sendfile.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Sends `head` from memory, then every region through the ring.
    pub async fn write_regions(
        &self,
        sock: &TcpStream,
        head: &[u8],
        regions: &[Arc<dyn FileRegion>],
    ) -> io::Result<()> {
        if !self.is_alive() {
            return crate::transfer::sendfile_regions(sock, head, regions).await;
        }
        send_all(sock, head, true).await?;
        let (tx, rx) = oneshot::channel();
        let spans: Vec<(RawFd, u64, usize)> = crate::transfer::coalesce(regions)
            .into_iter()
            .map(|s| (s.file.as_raw_fd(), s.offset, s.len))
            .collect();
        let first_len = spans.first().map_or(0, |s| s.2);
        let first_off = spans.first().map_or(0, |s| s.1);
        let job = Job {
            sock: sock.as_fd().try_clone_to_owned()?,
            _keep_open: regions.to_vec(),
            spans,
            region: 0,
            file_offset: first_off,
            file_left: first_len,
            in_pipe: 0,
            pipe: None,
            pending: 0,
            fills: Vec::new(),
            results: Vec::new(),
            error: None,
            done: Some(tx),
        };
        self.queue.lock().push_back(job);
        self.notify()?;
        rx.await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "io_uring thread stopped",
            ))
        })
    }

    fn notify(&self) -> io::Result<()> {
        // eventfd counters are native-endian by definition (eventfd(2)).
        #[allow(clippy::host_endian_bytes)]
        let one = 1u64.to_ne_bytes();
        rustix::io::write(&self.wake, &one)?;
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.notify();
    }
}

struct Driver {
    ring: IoUring,
    wake: OwnedFd,
    /// Active jobs by slot; `None` slots are free.
    jobs: Vec<Option<Job>>,
    /// Idle pipes for reuse.
    pipes: Vec<Pipe>,
}

impl Driver {
    fn run(&mut self, handle: &std::sync::Weak<Ring>, stop: &AtomicBool) -> io::Result<()> {
        let wake_buf: &'static mut [u8; 8] = Box::leak(Box::new([0u8; 8]));
        let wake_ptr = wake_buf.as_mut_ptr();
        self.push(
            opcode::Read::new(types::Fd(self.wake.as_raw_fd()), wake_ptr, 8)
                .build()
                .user_data(WAKE),
        )?;
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            let cqes: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (user_data, result) in cqes {
                if user_data == WAKE {
                    self.push(
                        opcode::Read::new(types::Fd(self.wake.as_raw_fd()), wake_ptr, 8)
                            .build()
                            .user_data(WAKE),
                    )?;
                    continue;
                }
                self.complete(user_data, result)?;
            }
            self.admit(handle)?;
            let idle = self.jobs.iter().all(Option::is_none);
            if idle && stop.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }

    /// Moves queued jobs into free slots and starts them.
    fn admit(&mut self, handle: &std::sync::Weak<Ring>) -> io::Result<()> {
        let Some(ring) = handle.upgrade() else {
            return Ok(());
        };
        loop {
            let active = self.jobs.iter().filter(|j| j.is_some()).count();
            if active >= JOBS_ACTIVE_MAX {
                return Ok(());
            }
            let Some(job) = ring.queue.lock().pop_front() else {
                return Ok(());
            };
            let slot = match self.jobs.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    self.jobs.push(None);
                    self.jobs.len() - 1
                }
            };
            if let Some(s) = self.jobs.get_mut(slot) {
                *s = Some(job);
            }
            self.advance(slot)?;
        }
    }

    fn complete(&mut self, user_data: u64, result: i32) -> io::Result<()> {
        let slot = (user_data >> 8) as usize;
        let step = user_data & 0xff;
        let Some(Some(job)) = self.jobs.get_mut(slot) else {
            return Ok(());
        };
        job.results.push((step, result));
        job.pending = job.pending.saturating_sub(1);
        if job.pending == 0 {
            self.advance(slot)?;
        }
        Ok(())
    }

    /// Applies the results of the finished chain and submits the next, or finishes the job.
    fn advance(&mut self, slot: usize) -> io::Result<()> {
        let Some(Some(job)) = self.jobs.get_mut(slot) else {
            return Ok(());
        };
        let results = std::mem::take(&mut job.results);
        apply_results(job, results);
        if job.error.is_some() || (job.in_pipe == 0 && job.file_left == 0) {
            return self.finish(slot);
        }
        if job.pipe.is_none() {
            job.pipe = Some(match self.pipes.pop() {
                Some(p) => p,
                None => match Pipe::new() {
                    Ok(p) => p,
                    Err(e) => {
                        job.error = Some(e);
                        return self.finish(slot);
                    }
                },
            });
        }
        let entries = chain(slot, job);
        job.pending = entries.len();
        self.push_chain(&entries)
    }

    fn finish(&mut self, slot: usize) -> io::Result<()> {
        let Some(job) = self.jobs.get_mut(slot).and_then(Option::take) else {
            return Ok(());
        };
        let Job {
            pipe,
            error,
            in_pipe,
            mut done,
            ..
        } = job;
        // A pipe with stranded bytes is dropped; an empty one is reused.
        if let (Some(p), 0) = (pipe, in_pipe) {
            self.pipes.push(p);
        }
        if let Some(tx) = done.take() {
            let _ = tx.send(error.map_or(Ok(()), Err));
        }
        Ok(())
    }

    /// Fails every job (the ring is gone).
    fn fail_all(&mut self) {
        for job in self.jobs.iter_mut().filter_map(Option::take) {
            if let Some(tx) = job.done {
                let _ = tx.send(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "io_uring thread stopped",
                )));
            }
        }
    }

    /// Pushes a linked chain whole: a submission must not end inside a chain.
    fn push_chain(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let free = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if free < entries.len() {
            self.ring.submit()?;
        }
        for e in entries {
            self.push(e.clone())?;
        }
        Ok(())
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: U1/U2: the entry names only fds owned by a live job (or the eventfd owned
            // by this driver) and at most the leaked 8-byte wake buffer, all of which outlive the
            // operation; U4: only this thread touches the ring.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return Ok(());
            }
            // SQ full: hand the queued entries to the kernel and retry.
            self.ring.submit()?;
        }
    }
}

impl Job {
    /// `n` bytes of the current run moved into the pipe: advance the cursor, stepping to the
    /// next non-empty run when this one is done.
    fn consume(&mut self, n: usize) {
        self.in_pipe += n;
        self.file_left = self.file_left.saturating_sub(n);
        self.file_offset += n as u64;
        while self.file_left == 0 && self.region + 1 < self.spans.len() {
            self.region += 1;
            if let Some(&(_, offset, len)) = self.spans.get(self.region) {
                self.file_offset = offset;
                self.file_left = len;
            }
        }
    }
}

/// Folds the CQE results of the last chain into the job's counters.
fn apply_results(job: &mut Job, mut results: Vec<(u64, i32)>) {
    results.sort_unstable_by_key(|r| r.0);
    let fills = std::mem::take(&mut job.fills);
    // Fills in order; the first short or failed one ends the run (the rest were cancelled).
    for (k, want) in fills.iter().enumerate() {
        let Some(&(_, n)) = results.iter().find(|r| r.0 == k as u64) else {
            break;
        };
        if n > 0 {
            job.consume(n as usize);
            if (n as usize) < *want {
                break;
            }
            continue;
        }
        if n == 0 {
            job.error = Some(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended inside region",
            ));
        } else if n != -libc::EAGAIN && n != -libc::EINTR && n != -libc::ECANCELED {
            job.error = Some(io::Error::from_raw_os_error(-n));
        }
        break;
    }
    if let Some(&(_, n)) = results.iter().find(|r| r.0 == STEP_POLL) {
        if n < 0 && n != -libc::ECANCELED && n != -libc::EINTR {
            job.error = Some(io::Error::from_raw_os_error(-n));
        }
    }
    if let Some(&(_, n)) = results.iter().find(|r| r.0 == STEP_OUT) {
        if n > 0 {
            job.in_pipe = job.in_pipe.saturating_sub(n as usize);
        } else if n == 0 && job.in_pipe > 0 {
            job.error = Some(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket took no bytes",
            ));
        } else if n < 0 && n != -libc::EAGAIN && n != -libc::ECANCELED && n != -libc::EINTR {
            job.error = Some(io::Error::from_raw_os_error(-n));
        }
    }
}

/// The next linked chain for `job`: fill the pipe from consecutive runs if it is empty, wait
/// for the socket, drain. Records the fills in `job.fills`.
fn chain(slot: usize, job: &mut Job) -> Vec<squeue::Entry> {
    let Some(pipe) = &job.pipe else {
        return Vec::new();
    };
    let sock: RawFd = job.sock.as_raw_fd();
    let ud = |step: u64| ((slot as u64) << 8) | step;
    let mut out = Vec::with_capacity(CHAIN_SQES_MAX);
    job.fills.clear();
    let mut len = job.in_pipe;
    if job.in_pipe == 0 {
        // Plan fills over a copy of the cursor; the real cursor moves when results arrive.
        let (mut region, mut offset, mut left) = (job.region, job.file_offset, job.file_left);
        while job.fills.len() < FILLS_MAX && len < pipe.capacity && left > 0 {
            let Some(&(file_fd, _, _)) = job.spans.get(region) else {
                break;
            };
            let want = left.min(pipe.capacity - len);
            out.push(
                opcode::Splice::new(
                    types::Fd(file_fd),
                    offset as i64,
                    types::Fd(pipe.write.as_raw_fd()),
                    -1,
                    want as u32,
                )
                .flags(libc::SPLICE_F_MOVE)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(ud(job.fills.len() as u64)),
            );
            job.fills.push(want);
            len += want;
            offset += want as u64;
            left -= want;
            while left == 0 && region + 1 < job.spans.len() {
                region += 1;
                if let Some(&(_, o, l)) = job.spans.get(region) {
                    offset = o;
                    left = l;
                }
            }
        }
    }
    out.push(
        opcode::PollAdd::new(types::Fd(sock), libc::POLLOUT as u32)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(ud(STEP_POLL)),
    );
    let planned_left: usize = job.file_left
        + job
            .spans
            .iter()
            .skip(job.region + 1)
            .map(|s| s.2)
            .sum::<usize>();
    let more_follows = planned_left > len - job.in_pipe;
    let flags = libc::SPLICE_F_MOVE | if more_follows { libc::SPLICE_F_MORE } else { 0 };
    out.push(
        opcode::Splice::new(
            types::Fd(pipe.read.as_raw_fd()),
            -1,
            types::Fd(sock),
            -1,
            len as u32,
        )
        .flags(flags)
        .build()
        .user_data(ud(STEP_OUT)),
    );
    out
}

/// True where a ring can be created (for tests and the startup log).
pub fn available() -> bool {
    Ring::start().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_fold_short_and_cancelled_chains() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let mut job = Job {
            sock: r,
            _keep_open: Vec::new(),
            spans: vec![(0, 100, 1000), (0, 5000, 300)],
            region: 0,
            file_offset: 100,
            file_left: 1000,
            in_pipe: 0,
            pipe: None,
            pending: 0,
            fills: vec![1000, 300],
            results: Vec::new(),
            error: None,
            done: None,
        };
        // Short first fill: 400 of 1000; the rest of the chain was cancelled.
        let c = -libc::ECANCELED;
        apply_results(
            &mut job,
            vec![(STEP_OUT, c), (0, 400), (1, c), (STEP_POLL, c)],
        );
        assert_eq!(
            (job.in_pipe, job.file_left, job.file_offset),
            (400, 600, 500)
        );
        assert!(job.error.is_none());
        // Partial drain, then EAGAIN.
        apply_results(&mut job, vec![(STEP_POLL, 4), (STEP_OUT, 150)]);
        assert_eq!(job.in_pipe, 250);
        apply_results(&mut job, vec![(STEP_POLL, 4), (STEP_OUT, -libc::EAGAIN)]);
        assert_eq!(job.in_pipe, 250);
        // Both fills complete: the cursor steps into the second run and past it.
        job.in_pipe = 0;
        job.fills = vec![600, 300];
        apply_results(
            &mut job,
            vec![(0, 600), (1, 300), (STEP_POLL, 4), (STEP_OUT, 900)],
        );
        assert_eq!((job.region, job.file_left, job.in_pipe), (1, 0, 0));
        assert!(job.error.is_none());
        apply_results(&mut job, vec![(STEP_POLL, 4), (STEP_OUT, -libc::EPIPE)]);
        assert!(job.error.is_some());
    }
}
