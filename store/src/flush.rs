//! Flushing the CommitLog: ASYNC_FLUSH (a thread flushing every `flushIntervalCommitLog` ms when
//! at least `flushCommitLogLeastPages` pages are dirty, everything every 10 s) and SYNC_FLUSH group
//! commit (appenders wait until the flushed offset covers their end; one msync serves every waiter
//! that arrived before it started).
//!
//! A failed msync latches the store read-only (`WriteLatch`); it is never retried.
//!
//! The callbacks of one round ([`GroupCommit::notify`]) can be handed over together to a
//! [`RoundDelivery`] instead of being run one by one on the commit thread: the broker runs them
//! on its async runtime, so the round costs the commit thread one wake-up instead of one per
//! waiting send (each of which could wake, and preempt, an async worker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::commit_log::CommitLog;
use crate::error::{Result, StoreError};
use crate::sync;

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
    /// Taken by every SYNC_FLUSH append and by the commit thread each round (see `crate::sync`).
    state: sync::Mutex<GcState>,
    /// Signals the commit thread that `requested` moved past `flushed`.
    work: sync::Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    /// Where a round's [`notify`](Self::notify) callbacks go; `None`: run on the commit thread.
    delivery: Option<RoundDelivery>,
}

/// Called once when the bytes a caller waits for are durable (`Ok`), or the store failed or
/// stopped first (`Err`). Runs on the group-commit thread (or on the caller's, if already
/// durable), so it must be quick: typically it completes a channel.
pub type DurableCallback = Box<dyn FnOnce(Result<()>) + Send>;

/// The callbacks a group-commit round completed, with the round's verdict: what a
/// [`RoundDelivery`] receives. The bytes of every callback in it are durable (or the store
/// failed) before the round is built, so running it later never acknowledges early.
pub struct DurableRound {
    callbacks: Vec<DurableCallback>,
    /// `None`: durable. `Some`: every callback gets a copy of this error.
    failure: Option<StoreError>,
}

impl DurableRound {
    fn new(callbacks: Vec<DurableCallback>, verdict: Result<()>) -> Self {
        Self {
            callbacks,
            failure: verdict.err(),
        }
    }

    /// How many callbacks the round holds.
    pub fn len(&self) -> usize {
        self.callbacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// Runs every callback with the round's verdict, on the calling thread.
    pub fn run(self) {
        match self.failure {
            None => self.callbacks.into_iter().for_each(|cb| cb(Ok(()))),
            Some(e) => self
                .callbacks
                .into_iter()
                .for_each(|cb| cb(Err(copy_error(&e)))),
        }
    }
}

/// Takes a round's callbacks off the commit thread: it must see to it that [`DurableRound::run`]
/// is called, soon, on some other thread (or run it itself when it cannot hand it over). It is
/// called on the commit thread once per round, so it must not block. Dropping a round drops its
/// callbacks unrun (their waiters then see them vanish), which only a stopping runtime should do.
pub type RoundDelivery = Arc<dyn Fn(DurableRound) + Send + Sync>;

/// A caller waiting for `end` to be durable.
struct Waiter {
    end: u64,
    cb: DurableCallback,
    /// Run on the commit thread even when rounds are delivered elsewhere: a thread blocked in
    /// [`GroupCommit::wait`] may be one the delivery itself needs (an async worker).
    direct: bool,
}

#[derive(Default)]
struct GcState {
    /// Highest end offset any appender asked to have durable.
    requested: u64,
    stop: bool,
    /// Callers waiting without a thread of their own (see [`GroupCommit::notify`]).
    waiters: Vec<Waiter>,
}

/// How a wait for durability ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    Yes,
    TimedOut,
}

impl GroupCommit {
    /// `delivery`: where each round's callbacks are run (see [`RoundDelivery`]); `None` runs
    /// them on the commit thread.
    pub fn new(log: Arc<CommitLog>, delivery: Option<RoundDelivery>) -> Arc<Self> {
        Arc::new(Self {
            log,
            state: sync::Mutex::new(GcState::default()),
            work: sync::Condvar::new(),
            thread: Mutex::new(None),
            stopped: AtomicBool::new(false),
            delivery,
        })
    }

    /// Starts the commit thread; `on_start` runs first on it (the embedder's scheduling policy).
    pub fn start(self: &Arc<Self>, on_start: Option<fn()>) -> Result<()> {
        let me = Arc::clone(self);
        let h = std::thread::Builder::new()
            .name("ferrocket-group-commit".into())
            .spawn(move || {
                if let Some(f) = on_start {
                    f();
                }
                me.run()
            })
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
    /// that comes too late finds nobody listening. With a [`RoundDelivery`], callbacks completed
    /// by a group-commit round run wherever the delivery runs them; the others (already durable,
    /// store failed or stopping) run on the calling thread before this returns.
    pub fn notify(&self, end: u64, cb: DurableCallback) {
        self.enqueue(end, cb, false);
    }

    fn enqueue(&self, end: u64, cb: DurableCallback, direct: bool) {
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
        st.waiters.push(Waiter { end, cb, direct });
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
        self.enqueue(
            end,
            Box::new(move |r| {
                *filler.verdict.lock() = Some(r);
                filler.ready.notify_one();
            }),
            true,
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
                        let verdict = if self.log.latch.is_disabled() {
                            Err(failure(self.log.latch.check()))
                        } else {
                            Ok(())
                        };
                        self.complete(waiters, verdict);
                        st = self.state.lock();
                        continue;
                    }
                    st = self.work.wait(st);
                }
                if st.stop {
                    let failed = std::mem::take(&mut st.waiters);
                    drop(st);
                    // On the commit thread: the delivery's runtime may be stopping too.
                    DurableRound::new(
                        failed.into_iter().map(|w| w.cb).collect(),
                        Err(StoreError::WriteDisabled("store is shutting down".into())),
                    )
                    .run();
                    return;
                }
            }
            // Everything appended so far is flushed in one go, covering every waiter queued up
            // while the previous round ran.
            // The round's acknowledgements go out before the dispatcher is woken (`announce`).
            let res = self.log.flush_unannounced(0);
            let announce = matches!(res, Ok((_, true)));
            let mut st = self.state.lock();
            if let Err(e) = &res {
                tracing::error!(error = %e, "group commit failed");
            }
            let flushed = self.log.flushed();
            let ready: Vec<_> = if res.is_ok() {
                let (ready, waiting) = std::mem::take(&mut st.waiters)
                    .into_iter()
                    .partition(|w| w.end <= flushed);
                st.waiters = waiting;
                ready
            } else {
                std::mem::take(&mut st.waiters)
            };
            drop(st);
            self.complete(ready, res.map(|_| ()));
            if announce {
                self.log.announce();
            }
        }
    }

    /// Completes `waiters` with `verdict`: the ones blocked in [`wait`](Self::wait) right here,
    /// the others as one [`DurableRound`] through the delivery (or here, without one).
    fn complete(&self, waiters: Vec<Waiter>, verdict: Result<()>) {
        if waiters.is_empty() {
            return;
        }
        let Some(deliver) = &self.delivery else {
            return DurableRound::new(waiters.into_iter().map(|w| w.cb).collect(), verdict).run();
        };
        let (direct, handed): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|w| w.direct);
        let round =
            |ws: Vec<Waiter>, v| DurableRound::new(ws.into_iter().map(|w| w.cb).collect(), v);
        if direct.is_empty() {
            return deliver(round(handed, verdict));
        }
        let copy = match &verdict {
            Ok(()) => Ok(()),
            Err(e) => Err(copy_error(e)),
        };
        if !handed.is_empty() {
            deliver(round(handed, copy));
        }
        round(direct, verdict).run();
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

/// The error to hand waiters for a `why` that should have been one (a latch that reads as not
/// disabled any more still refuses the waiters it was about to fail).
fn failure(why: Result<()>) -> StoreError {
    match why {
        Err(e) => e,
        Ok(()) => StoreError::WriteDisabled("store stopped accepting writes".into()),
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
