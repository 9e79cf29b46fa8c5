//! Open-loop pacing: request `i` is due at `start + i / rate`, whatever happened before it, and its
//! latency is measured from that due time (no coordinated omission). Time is passed in, so the
//! math is tested with a fake clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock in nanoseconds since an arbitrary origin.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

/// The real clock: nanoseconds since `origin`.
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    pub origin: Instant,
}

impl MonoClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonoClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The schedule of an open-loop run: `total` requests at `rate_per_s`, the first at `start_ns`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub start_ns: u64,
    pub rate_per_s: f64,
    /// Number of requests in the run (the last one is due at `due_ns(total - 1)`).
    pub total: u64,
}

impl Schedule {
    /// Due time of request `i`. Computed from `i` directly (not by accumulating an interval), so
    /// rounding never drifts over a long run.
    pub fn due_ns(&self, i: u64) -> u64 {
        let offset = (i as f64) * 1e9 / self.rate_per_s;
        self.start_ns.saturating_add(offset as u64)
    }

    /// How many requests are due at `now_ns` (indices `0..n`), capped at `total`.
    pub fn due_count(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let elapsed_s = (now_ns - self.start_ns) as f64 / 1e9;
        // +1: request 0 is due at start.
        let n = (elapsed_s * self.rate_per_s).floor() as u64 + 1;
        // Guard the float boundary: never release a request before its due time.
        let mut n = n.min(self.total);
        while n > 0 && self.due_ns(n - 1) > now_ns {
            n -= 1;
        }
        n
    }

    /// Latency of request `i` completed at `done_ns`: measured from when it was due, so a sender
    /// that fell behind (because earlier requests were slow) is charged for the wait.
    pub fn latency_ns(&self, i: u64, done_ns: u64) -> u64 {
        done_ns.saturating_sub(self.due_ns(i))
    }
}

/// What the pacer should do after one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceStep {
    /// Release `release` more requests, then sleep `sleep_ns` before the next step.
    Continue { release: u64, sleep_ns: u64 },
    /// Release `release` more requests; the schedule is exhausted.
    Done { release: u64 },
}

/// The pacer's state: how many requests it released so far.
#[derive(Debug, Clone)]
pub struct Pacer {
    pub schedule: Schedule,
    released: u64,
    /// Shortest sleep worth asking the OS for; shorter gaps are served on the next wake-up with
    /// several releases at once (their latency still counts from their own due time).
    min_sleep_ns: u64,
}

impl Pacer {
    pub fn new(schedule: Schedule, min_sleep_ns: u64) -> Self {
        Self {
            schedule,
            released: 0,
            min_sleep_ns,
        }
    }

    /// One step at time `now_ns`: release everything due, and say how long to sleep until the
    /// next request is due.
    pub fn step(&mut self, now_ns: u64) -> PaceStep {
        let due = self.schedule.due_count(now_ns);
        let release = due.saturating_sub(self.released);
        self.released = self.released.max(due);
        if self.released >= self.schedule.total {
            return PaceStep::Done { release };
        }
        let next_due = self.schedule.due_ns(self.released);
        let sleep_ns = next_due.saturating_sub(now_ns).max(self.min_sleep_ns);
        PaceStep::Continue { release, sleep_ns }
    }
}

/// Runs a pacer on its own OS thread (std sleeps are precise to tens of µs, tokio's timer only
/// to 1 ms), adding one semaphore permit per due request. Senders acquire a permit before taking
/// the next request index, so index `i` is never sent before `schedule.due_ns(i)`. When the
/// schedule is exhausted it adds `senders` extra permits so every sender wakes, finds no index
/// left, and ends.
pub fn spawn_pacer(
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    permits: Arc<tokio::sync::Semaphore>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    senders: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            let mut pacer = Pacer::new(schedule, 20_000);
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    add_permits(&permits, senders);
                    break;
                }
                match pacer.step(clock.now_ns()) {
                    PaceStep::Continue { release, sleep_ns } => {
                        add_permits(&permits, release);
                        std::thread::sleep(Duration::from_nanos(sleep_ns));
                    }
                    PaceStep::Done { release } => {
                        add_permits(&permits, release.saturating_add(senders));
                        break;
                    }
                }
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the pacer thread: {e}"))
}

fn add_permits(permits: &tokio::sync::Semaphore, n: u64) {
    // Semaphore::MAX_PERMITS is large (usize::MAX >> 3); a single step never releases more than
    // the schedule's total, which the caller bounds.
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 40);
    if n > 0 {
        permits.add_permits(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct FakeClock(AtomicU64);
    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn due_times_are_exact_and_do_not_drift() {
        let s = Schedule {
            start_ns: 1_000,
            rate_per_s: 3.0,
            total: 10,
        };
        assert_eq!(s.due_ns(0), 1_000);
        assert_eq!(s.due_ns(3), 1_000 + 1_000_000_000);
        // 1/3 s is not representable; computing from i keeps request 3_000_000 at exactly 1e6 s.
        let long = Schedule {
            start_ns: 0,
            rate_per_s: 3.0,
            total: u64::MAX,
        };
        assert_eq!(long.due_ns(3_000_000), 1_000_000 * 1_000_000_000);
    }

    #[test]
    fn due_count_never_releases_early() {
        let s = Schedule {
            start_ns: 500,
            rate_per_s: 1_000_000.0 / 3.0, // every 3 µs, inexact in binary
            total: 1_000,
        };
        assert_eq!(s.due_count(0), 0);
        assert_eq!(s.due_count(499), 0);
        assert_eq!(s.due_count(500), 1);
        for now in (500..3_500_000u64).step_by(997) {
            let n = s.due_count(now);
            if n > 0 {
                assert!(s.due_ns(n - 1) <= now, "released {n} at {now}");
            }
            if n < s.total {
                assert!(s.due_ns(n) > now, "held back {n} at {now}");
            }
        }
        assert_eq!(s.due_count(u64::MAX), 1_000);
    }

    #[test]
    fn pacer_releases_in_order_with_an_injected_clock() {
        let clock = FakeClock(AtomicU64::new(0));
        let s = Schedule {
            start_ns: 0,
            rate_per_s: 1_000.0, // 1 ms apart
            total: 5,
        };
        let mut p = Pacer::new(s, 100_000);
        assert_eq!(
            p.step(clock.now_ns()),
            PaceStep::Continue {
                release: 1,
                sleep_ns: 1_000_000
            }
        );
        // The pacer overslept 2.5 ms (a stalled thread): everything due is released at once.
        clock.0.store(3_500_000, Ordering::SeqCst);
        assert_eq!(
            p.step(clock.now_ns()),
            PaceStep::Continue {
                release: 3,
                sleep_ns: 500_000
            }
        );
        // Woken a little early: nothing released, sleep at least min_sleep.
        clock.0.store(3_950_000, Ordering::SeqCst);
        assert_eq!(
            p.step(clock.now_ns()),
            PaceStep::Continue {
                release: 0,
                sleep_ns: 100_000
            }
        );
        clock.0.store(4_000_000, Ordering::SeqCst);
        assert_eq!(p.step(clock.now_ns()), PaceStep::Done { release: 1 });
        assert_eq!(p.released, 5);
    }

    /// A single sender at 1000 req/s against a server that takes 0.1 ms per request but stalls
    /// for 100 ms once. Closed-loop timing would record one 100 ms sample; measuring from the
    /// due time records the ~100 requests that should have been sent during the stall too.
    #[test]
    fn latency_from_due_time_counts_the_stall_for_every_request_behind_it() {
        let s = Schedule {
            start_ns: 0,
            rate_per_s: 1_000.0,
            total: 1_000,
        };
        let mut now: u64 = 0;
        let mut lat = Vec::new();
        for i in 0..s.total {
            now = now.max(s.due_ns(i)); // wait until due (never send early)
            let service = if i == 100 { 100_000_000 } else { 100_000 };
            now += service;
            lat.push(s.latency_ns(i, now));
        }
        // After the stall the sender is 100 ms behind and catches up 0.9 ms per request, so about
        // 111 requests see more than 1 ms; a closed-loop measurement would have recorded one.
        let slow = lat.iter().filter(|&&l| l > 1_000_000).count();
        assert!((105..=115).contains(&slow), "slow samples: {slow}");
        assert_eq!(lat[100], 100_000_000);
        assert!(lat[101] > 98_000_000);
        assert_eq!(lat[999], 100_000);
    }
}
