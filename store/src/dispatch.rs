//! The dispatcher ("reput"): one thread tails the published CommitLog and feeds each record into
//! its ConsumeQueue and the IndexFile, then tells the arrival listener (long polling).
//!
//! Invariant: `next` is always a record boundary (or a segment base) at or below the CommitLog's
//! published end, and every record below it has been handed to the ConsumeQueues and the index.

use std::sync::atomic::{fence, AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::commit_log::{CommitLog, Segment};
use crate::consume_queue::{ConsumeQueue, ConsumeQueues, CqUnit};
use crate::error::{Result, StoreError};
use crate::hash::tags_code;
use crate::index_file::IndexService;
use crate::message_store::ArrivalListener;
use crate::record::{self, DispatchView};
use crate::tombstone::{self, Tombstones};

/// `SCHEDULE_TOPIC_XXXX`: its ConsumeQueue tagsCode holds the delivery time instead of a tag hash.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// RocketMQ's default `messageDelayLevel`, in milliseconds per level (index 0 = level 1).
pub const DEFAULT_DELAY_LEVELS_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
/// Records dispatched per step before progress is published to waiters.
const DISPATCH_BATCH_RECORDS_MAX: usize = 4096;
/// ConsumeQueue units of consecutive records of one queue written (one lock) and announced (one
/// listener call) together: per record, the queue's writer lock and the broker's long-polling
/// notify (a lock and a map lookup) were a fifth of the dispatcher's work.
const PENDING_UNITS_MAX: usize = 32;

/// Units of one queue not yet written, in log order.
type PendingUnits = smallvec::SmallVec<[(u64, CqUnit); PENDING_UNITS_MAX]>;
/// Queues a step keeps units for at once. Records of a few queues usually interleave (a
/// producer spreads its sends over the topic's queues): with one cached queue, every record of
/// 4 interleaved queues was its own write, listener call and two hash lookups.
const OPEN_QUEUES_MAX: usize = 8;

/// The queues a step has looked up, each with its units not yet written (see [`Self::push`]).
/// Queues are removed from [`ConsumeQueues`] only between steps (under the step lock), so a
/// queue found here stays the right one for the whole step.
#[derive(Default)]
struct OpenQueues(smallvec::SmallVec<[(Arc<ConsumeQueue>, PendingUnits); OPEN_QUEUES_MAX]>);

impl OpenQueues {
    /// The slot of `(topic, queue_id)` if this step has it.
    fn find(&self, topic: &str, queue_id: u32) -> Option<usize> {
        self.0
            .iter()
            .position(|(q, _)| q.queue_id() == queue_id && q.topic() == topic)
    }

    /// Writes and announces every queue's units (in the order the queues were first met).
    fn flush_all(&mut self, listener: Option<&ArrivalListener>) -> Result<()> {
        let mut first_err = None;
        for (q, pending) in &mut self.0 {
            if let Err(e) = flush_units(Some(q), pending, listener) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
/// How long an idle dispatcher spins before it parks.
const IDLE_SPIN: Duration = Duration::from_micros(20);
/// The dispatcher re-checks the log at least this often even without a wake-up.
const IDLE_PARK: Duration = Duration::from_millis(50);

pub struct Dispatcher {
    log: Arc<CommitLog>,
    cqs: Arc<ConsumeQueues>,
    index: Option<Arc<IndexService>>,
    delay_levels_ms: Vec<u64>,
    next: AtomicU64,
    last_store_ts: AtomicI64,
    listener: RwLock<Option<ArrivalListener>>,
    progress: Mutex<()>,
    progressed: Condvar,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    waker: OnceLock<std::thread::Thread>,
    /// The thread is about to park or parked: appenders unpark it only then, so a busy
    /// dispatcher costs an appender one fence and one load, not a futex wake.
    sleeping: AtomicBool,
    /// Deleted topics: their records below the cut are skipped.
    tombstones: Arc<Tombstones>,
    /// Held for a whole step: DELETE_TOPIC takes it to remove queues between steps, so a step's
    /// cached queue is never one that was removed.
    step_lock: Mutex<()>,
}

impl Dispatcher {
    pub fn new(
        log: Arc<CommitLog>,
        cqs: Arc<ConsumeQueues>,
        index: Option<Arc<IndexService>>,
        delay_levels_ms: Vec<u64>,
        tombstones: Arc<Tombstones>,
        from: u64,
    ) -> Self {
        Self {
            log,
            cqs,
            index,
            delay_levels_ms,
            next: AtomicU64::new(from),
            last_store_ts: AtomicI64::new(0),
            listener: RwLock::new(None),
            progress: Mutex::new(()),
            progressed: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            waker: OnceLock::new(),
            sleeping: AtomicBool::new(false),
            tombstones,
            step_lock: Mutex::new(()),
        }
    }

    /// Holds off dispatch steps while the guard lives (DELETE_TOPIC removes queues under it).
    pub fn exclusive(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.step_lock.lock()
    }

    pub fn set_listener(&self, l: ArrivalListener) {
        *self.listener.write() = Some(l);
    }

    /// Next CommitLog offset to dispatch: everything below it is in the ConsumeQueues.
    pub fn dispatched(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Store timestamp of the last dispatched record (0 if none since open).
    pub fn last_store_ts(&self) -> i64 {
        self.last_store_ts.load(Ordering::Acquire)
    }

    /// Dispatches records up to `limit` (or the published end, whichever is lower), at most
    /// [`DISPATCH_BATCH_RECORDS_MAX`] of them. Returns how many records it handled.
    ///
    /// Per step, not per record: the segment, the listener and the last ConsumeQueue are looked
    /// up once and reused while they still apply, and the units of consecutive records of one
    /// queue are written and announced together. On 2 cores the dispatcher shares the CPUs with
    /// the appenders, so every lock and atomic it saves per record is producer time.
    pub fn step(&self, limit: u64) -> Result<usize> {
        let _step = self.step_lock.lock();
        let max = self.log.max_offset().min(limit);
        let from = self.dispatched();
        let listener = self.listener.read().clone();
        let mut seg: Option<Arc<Segment>> = None;
        let mut open = OpenQueues::default();
        let walked = self.walk(from, max, &mut seg, &mut open, listener.as_ref());
        // Written even when the walk stopped at an error: the records before it are dispatched
        // (a retry of the step finds their units written and skips them).
        let flushed = open.flush_all(listener.as_ref());
        let (phy, n) = walked?;
        flushed?;
        if phy != self.dispatched() {
            self.next.store(phy, Ordering::Release);
            let _g = self.progress.lock();
            self.progressed.notify_all();
        }
        Ok(n)
    }

    /// The record loop of [`step`](Self::step), from `phy` up to `max`: returns where it stopped
    /// and how many records it handled.
    fn walk(
        &self,
        mut phy: u64,
        max: u64,
        seg: &mut Option<Arc<Segment>>,
        open: &mut OpenQueues,
        listener: Option<&ArrivalListener>,
    ) -> Result<(u64, usize)> {
        let mut n = 0;
        // Deleted topics are looked up per record only below the largest cut (right after a
        // deletion, or in a re-dispatch after a reopen): past it there is nothing to skip.
        let deleted = (phy < self.tombstones.max_cut()).then(|| self.tombstones.snapshot());
        while phy < max && n < DISPATCH_BATCH_RECORDS_MAX {
            let s = match seg.take() {
                Some(s) if s.base() <= phy && phy < s.end() => s,
                _ => match self.log.segment_for(phy) {
                    Some(s) => s,
                    None => {
                        // Retention removed it: resume at the first segment still there.
                        let min = self.log.min_offset();
                        if min > phy {
                            phy = min;
                            continue;
                        }
                        return Err(corrupt(
                            &self.log,
                            phy,
                            "no segment holds this offset".into(),
                        ));
                    }
                },
            };
            let pos = phy - s.base();
            let published = s.mapped().published();
            let rest = s
                .mapped()
                .read(pos, published.saturating_sub(pos))
                .unwrap_or_default();
            if is_blank(rest) {
                phy = s.end();
                continue;
            }
            let rec = record::decode_dispatch(rest)
                .map_err(|e| corrupt(&self.log, phy, e.to_string()))?;
            if rec.phy_offset != phy as i64 {
                return Err(corrupt(&self.log, phy, "PHYSICALOFFSET mismatch".into()));
            }
            if deleted
                .as_deref()
                .is_some_and(|d| tombstone::is_deleted(d, rec.topic, phy))
            {
                // A deleted topic's record: no ConsumeQueue unit, no index entry.
                self.last_store_ts
                    .store(rec.store_timestamp, Ordering::Release);
            } else {
                self.dispatch_one(phy, &rec, open, listener)?;
            }
            phy += u64::from(rec.total_size);
            n += 1;
            *seg = Some(s);
        }
        Ok((phy, n))
    }

    fn dispatch_one(
        &self,
        phy: u64,
        rec: &DispatchView<'_>,
        open: &mut OpenQueues,
        listener: Option<&ArrivalListener>,
    ) -> Result<()> {
        let tx = rec.transaction_type();
        // One pass over the properties for everything dispatch reads (3 scans cost ~2.5k
        // instructions per 128 B message).
        let [tags, uniq_key, keys] = rec.properties([
            record::PROPERTY_TAGS,
            record::PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
            record::PROPERTY_KEYS,
        ]);
        if tx == record::SYSFLAG_TRANSACTION_NOT || tx == record::SYSFLAG_TRANSACTION_COMMIT {
            self.append_unit(phy, rec, tags, open, listener)?;
        }
        if let Some(index) = &self.index {
            if tx != record::SYSFLAG_TRANSACTION_ROLLBACK {
                index.build_index(rec.topic, uniq_key, keys, phy, rec.store_timestamp)?;
            }
        }
        self.last_store_ts
            .store(rec.store_timestamp, Ordering::Release);
        Ok(())
    }

    /// The unit joins its queue's pending units in `open` (the queue looked up once per step),
    /// which are written when [`PENDING_UNITS_MAX`] of them wait, or all queues' at the end of
    /// the step, or when a new queue finds [`OPEN_QUEUES_MAX`] of them open.
    fn append_unit(
        &self,
        phy: u64,
        rec: &DispatchView<'_>,
        tags: Option<&str>,
        open: &mut OpenQueues,
        listener: Option<&ArrivalListener>,
    ) -> Result<()> {
        let (Ok(queue_id), Ok(queue_offset)) =
            (u32::try_from(rec.queue_id), u64::try_from(rec.queue_offset))
        else {
            tracing::warn!(
                phy,
                "record with a negative queue id or offset is not dispatched"
            );
            return Ok(());
        };
        let slot = match open.find(rec.topic, queue_id) {
            Some(i) => i,
            None => {
                let q = match self.cqs.get_or_create(rec.topic, queue_id) {
                    Ok(q) => q,
                    Err(StoreError::MessageIllegal(why)) => {
                        tracing::warn!(phy, topic = rec.topic, %why, "record not dispatched");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                if open.0.len() >= OPEN_QUEUES_MAX {
                    open.flush_all(listener)?;
                    open.0.clear();
                }
                open.0.push((q, PendingUnits::new()));
                open.0.len() - 1
            }
        };
        let unit = CqUnit {
            phy_offset: phy,
            size: rec.total_size,
            tags_code: self.tags_code_of(rec, tags),
        };
        let Some((q, pending)) = open.0.get_mut(slot) else {
            return Ok(());
        };
        if pending.len() >= PENDING_UNITS_MAX {
            flush_units(Some(q), pending, listener)?;
        }
        pending.push((queue_offset, unit));
        Ok(())
    }

    /// tagsCode: Java `String.hashCode` of TAGS (0 without), or for SCHEDULE_TOPIC_XXXX the
    /// delivery time `storeTimestamp + delay(level)` (unknown level: + 1000 ms).
    fn tags_code_of(&self, rec: &DispatchView<'_>, tags: Option<&str>) -> i64 {
        if rec.topic == SCHEDULE_TOPIC {
            let level = rec
                .property(record::PROPERTY_DELAY_TIME_LEVEL)
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if level > 0 {
                let max = self.delay_levels_ms.len();
                let delay = self
                    .delay_levels_ms
                    .get(level.min(max).saturating_sub(1))
                    .copied()
                    .unwrap_or(1000);
                return rec.store_timestamp.saturating_add(delay as i64);
            }
        }
        match tags {
            Some(t) if !t.is_empty() => tags_code(t),
            _ => 0,
        }
    }

    /// Dispatches synchronously until everything below `end` is dispatched (recovery, shutdown).
    pub fn catch_up(&self, end: u64) -> Result<()> {
        while self.dispatched() < end.min(self.log.max_offset()) {
            if self.step(end)? == 0 && self.dispatched() < end.min(self.log.max_offset()) {
                // Only blanks/segment jumps happened; step again.
                continue;
            }
        }
        Ok(())
    }

    /// Blocks until everything below `phy_end` is dispatched or `timeout` passes.
    pub fn wait_dispatched(&self, phy_end: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.progress.lock();
        while self.dispatched() < phy_end {
            if self.progressed.wait_until(&mut g, deadline).timed_out() {
                return self.dispatched() >= phy_end;
            }
        }
        true
    }

    /// Wakes the dispatcher thread (after an append).
    pub fn wake(&self) {
        // Pairs with the fence in `run`: either this load sees `sleeping`, or the dispatcher's
        // re-check after setting it sees the new max offset (published before this call).
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.waker.get() {
                t.unpark();
            }
        }
    }

    /// Starts the dispatcher thread; `on_start` runs first on it.
    pub fn start(self: &Arc<Self>, on_start: Option<fn()>) -> Result<()> {
        let me = Arc::clone(self);
        let h = std::thread::Builder::new()
            .name("ferrocket-dispatch".into())
            .spawn(move || {
                if let Some(f) = on_start {
                    f();
                }
                me.run()
            })
            .map_err(|e| StoreError::io(self.log.dir(), e))?;
        let _ = self.waker.set(h.thread().clone());
        *self.thread.lock() = Some(h);
        Ok(())
    }

    fn run(&self) {
        let mut failing = false;
        // When work last arrived, and the gap before it: a busy log (gap below IDLE_SPIN) is
        // worth spinning for; a quiet one is not (spinning would burn a core between requests).
        let mut last_work = Instant::now();
        let mut gap = Duration::MAX;
        while !self.stop.load(Ordering::Acquire) {
            match self.step(u64::MAX) {
                Ok(0) => {
                    // Under load the next record arrives within microseconds: spin briefly
                    // instead of parking, so appenders almost never pay for a futex wake.
                    if gap < IDLE_SPIN && self.spin_for_work() {
                        continue;
                    }
                    self.sleeping.store(true, Ordering::Relaxed);
                    fence(Ordering::SeqCst);
                    if self.log.max_offset() <= self.dispatched() {
                        std::thread::park_timeout(IDLE_PARK);
                    }
                    self.sleeping.store(false, Ordering::Relaxed);
                }
                Ok(_) => {
                    failing = false;
                    gap = last_work.elapsed();
                    last_work = Instant::now();
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, at = self.dispatched(), "dispatch failed; retrying");
                    }
                    failing = true;
                    std::thread::park_timeout(IDLE_PARK * 20);
                }
            }
        }
    }

    /// Spins up to [`IDLE_SPIN`] for the CommitLog to grow; true if it did.
    fn spin_for_work(&self) -> bool {
        let start = Instant::now();
        while start.elapsed() < IDLE_SPIN {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if self.log.max_offset() > self.dispatched() || self.stop.load(Ordering::Acquire) {
                return true;
            }
        }
        false
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.waker.get() {
            t.unpark();
        }
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

/// Writes `pending` into `cq` under one lock, then tells the listener once, with the offset after
/// the last of them (a long-polling pull waiting below any of them is below that one too).
fn flush_units(
    cq: Option<&Arc<ConsumeQueue>>,
    pending: &mut PendingUnits,
    listener: Option<&ArrivalListener>,
) -> Result<()> {
    let (Some(q), Some(&(last, _))) = (cq, pending.last()) else {
        pending.clear();
        return Ok(());
    };
    let written = q.append_all(pending);
    pending.clear();
    written?;
    if let Some(l) = listener {
        l(q.topic(), q.queue_id(), last + 1);
    }
    Ok(())
}

fn is_blank(rest: &[u8]) -> bool {
    rest.get(4..8) == Some(&record::BLANK_MAGIC.to_be_bytes()[..])
}

fn corrupt(log: &CommitLog, at: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        file: log.dir().to_path_buf(),
        at,
        reason,
    }
}
