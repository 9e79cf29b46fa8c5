//! Flushing the CommitLog: ASYNC_FLUSH (a thread flushing every `flushIntervalCommitLog` ms when
//! at least `flushCommitLogLeastPages` pages are dirty, everything every 10 s) and SYNC_FLUSH group
//! commit (appenders wait until the flushed offset covers their end; one msync serves every waiter
//! that arrived before it started).
//!
//! A failed msync latches the store read-only (`WriteLatch`); it is never retried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::commit_log::CommitLog;
use crate::error::{Result, StoreError};

/// `flushCommitLogThoroughInterval`: flush whatever is dirty at least this often.
pub const FLUSH_THOROUGH_INTERVAL: Duration = Duration::from_secs(10);

/// A stoppable periodic thread: runs `tick` every `interval` until stopped.
pub struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub fn spawn(
        name: &str,
        interval: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                {
                    let mut stopped = s.0.lock();
                    if !*stopped {
                        s.1.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                tick();
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The ASYNC_FLUSH thread body: one flush decision per tick.
pub fn async_flush_tick(log: &CommitLog, least_pages: u32, last_thorough: &mut Instant) {
    let least = if last_thorough.elapsed() >= FLUSH_THOROUGH_INTERVAL {
        *last_thorough = Instant::now();
        0
    } else {
        least_pages
    };
    if let Err(e) = log.flush(least) {
        if !log.latch.is_disabled() {
            tracing::error!(error = %e, "async flush failed");
        }
    }
}

/// Where one blocked [`GroupCommit::wait`] receives its verdict.
#[derive(Default)]
struct WaitSlot {
    verdict: Mutex<Option<Result<()>>>,
    ready: Condvar,
}

/// SYNC_FLUSH group commit.
pub struct GroupCommit {
    log: Arc<CommitLog>,
    state: Mutex<GcState>,
    /// Signals the commit thread that `requested` moved past `flushed`.
    work: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
}

/// Called once when the bytes a caller waits for are durable (`Ok`), or the store failed or
/// stopped first (`Err`). Runs on the group-commit thread (or on the caller's, if already
/// durable), so it must be quick: typically it completes a channel.
pub type DurableCallback = Box<dyn FnOnce(Result<()>) + Send>;

#[derive(Default)]
struct GcState {
    /// Highest end offset any appender asked to have durable.
    requested: u64,
    stop: bool,
    /// Callers waiting without a thread of their own (see [`GroupCommit::notify`]).
    waiters: Vec<(u64, DurableCallback)>,
}

/// How a wait for durability ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    Yes,
    TimedOut,
}

impl GroupCommit {
    pub fn new(log: Arc<CommitLog>) -> Arc<Self> {
        Arc::new(Self {
            log,
            state: Mutex::new(GcState::default()),
            work: Condvar::new(),
            thread: Mutex::new(None),
            stopped: AtomicBool::new(false),
        })
    }

    pub fn start(self: &Arc<Self>) -> Result<()> {
        let me = Arc::clone(self);
        let h = std::thread::Builder::new()
            .name("ferrocket-group-commit".into())
            .spawn(move || me.run())
            .map_err(|e| StoreError::io(self.log.dir(), e))?;
        *self.thread.lock() = Some(h);
        Ok(())
    }

    /// Asks for `[.., end)` to become durable without waiting (messages with `WAIT=false`).
    pub fn request(&self, end: u64) {
        if self.log.flushed() >= end {
            return;
        }
        let mut st = self.state.lock();
        if st.requested < end {
            st.requested = end;
            self.work.notify_one();
        }
    }

    /// Calls `cb` once `[.., end)` is durable, or with the error if the store fails or stops
    /// first; never blocks. A timeout (FLUSH_DISK_TIMEOUT) is the caller's to apply: a callback
    /// that comes too late finds nobody listening.
    pub fn notify(&self, end: u64, cb: DurableCallback) {
        if self.log.flushed() >= end {
            return cb(Ok(()));
        }
        let mut st = self.state.lock();
        if st.stop {
            drop(st);
            return cb(Err(StoreError::WriteDisabled(
                "store is shutting down".into(),
            )));
        }
        if let Err(e) = self.log.latch.check() {
            drop(st);
            return cb(Err(e));
        }
        // Re-checked under the lock: the commit thread takes it after each round, so a round
        // that covered `end` either completed before this check or will see this waiter.
        if self.log.flushed() >= end {
            drop(st);
            return cb(Ok(()));
        }
        st.waiters.push((end, cb));
        if st.requested < end {
            st.requested = end;
            self.work.notify_one();
        }
    }

    /// Blocks until `[.., end)` is durable, the timeout passes, or the store fails or stops.
    ///
    /// Each waiter sleeps on its own slot, woken by the commit thread's callback. (Waiting on
    /// one shared condvar made every woken waiter re-take the shared state lock in turn, and
    /// the commit thread queued behind that chain before its next round: with 32 producers a
    /// round cost ~2.5x a raw fdatasync.)
    pub fn wait(&self, end: u64, timeout: Duration) -> Result<Durable> {
        if self.log.flushed() >= end {
            return Ok(Durable::Yes);
        }
        let deadline = Instant::now() + timeout;
        let slot = Arc::new(WaitSlot::default());
        let filler = Arc::clone(&slot);
        self.notify(
            end,
            Box::new(move |r| {
                *filler.verdict.lock() = Some(r);
                filler.ready.notify_one();
            }),
        );
        let mut verdict = slot.verdict.lock();
        loop {
            if let Some(r) = verdict.take() {
                return r.map(|()| Durable::Yes);
            }
            if slot.ready.wait_until(&mut verdict, deadline).timed_out() {
                if let Some(r) = verdict.take() {
                    return r.map(|()| Durable::Yes);
                }
                return Ok(if self.log.flushed() >= end {
                    Durable::Yes
                } else {
                    Durable::TimedOut
                });
            }
        }
    }

    fn run(&self) {
        loop {
            {
                let mut st = self.state.lock();
                while !st.stop
                    && (st.requested <= self.log.flushed() || self.log.latch.is_disabled())
                {
                    if !st.waiters.is_empty() {
                        // Nothing left to flush: every waiter's end is at most `requested`,
                        // which another flush (shutdown, `flush_now`) already covered; or the
                        // store failed.
                        let waiters = std::mem::take(&mut st.waiters);
                        drop(st);
                        if self.log.latch.is_disabled() {
                            fail_all(waiters, self.log.latch.check());
                        } else {
                            waiters.into_iter().for_each(|(_, cb)| cb(Ok(())));
                        }
                        st = self.state.lock();
                        continue;
                    }
                    self.work.wait(&mut st);
                }
                if st.stop {
                    let failed = std::mem::take(&mut st.waiters);
                    drop(st);
                    fail_all(
                        failed,
                        Err(StoreError::WriteDisabled("store is shutting down".into())),
                    );
                    return;
                }
            }
            // Everything appended so far is flushed in one go, covering every waiter queued up
            // while the previous round ran.
            let res = self.log.flush(0);
            let mut st = self.state.lock();
            if let Err(e) = &res {
                tracing::error!(error = %e, "group commit failed");
            }
            let flushed = self.log.flushed();
            let ready: Vec<_> = if res.is_ok() {
                let (ready, waiting) = std::mem::take(&mut st.waiters)
                    .into_iter()
                    .partition(|(end, _)| *end <= flushed);
                st.waiters = waiting;
                ready
            } else {
                std::mem::take(&mut st.waiters)
            };
            drop(st);
            match res {
                Ok(_) => ready.into_iter().for_each(|(_, cb)| cb(Ok(()))),
                Err(e) => fail_all(ready, Err(e)),
            }
        }
    }

    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut st = self.state.lock();
            st.stop = true;
            self.work.notify_all();
        }
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

/// Completes every callback with a copy of the failure.
fn fail_all(waiters: Vec<(u64, DurableCallback)>, why: Result<()>) {
    let why = match why {
        Err(e) => e,
        Ok(()) => StoreError::WriteDisabled("store stopped accepting writes".into()),
    };
    for (_, cb) in waiters {
        cb(Err(copy_error(&why)));
    }
}

/// `StoreError` holds an `io::Error`, which is not `Clone`: rebuild an equivalent one.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::WriteDisabled(r) => StoreError::WriteDisabled(r.clone()),
        StoreError::DiskFull(r) => StoreError::DiskFull(r.clone()),
        other => StoreError::WriteDisabled(other.to_string()),
    }
}
