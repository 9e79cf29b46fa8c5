//! Long polling (RocketMQ `PullRequestHoldService`): a pull that found nothing and set the
//! SUSPEND flag waits here until the dispatcher reports new messages in its (topic, queue) or its
//! suspend timeout passes; the handler then runs the pull once more and answers.
//!
//! Each parked pull is a future awaiting a oneshot; the store's dispatcher thread calls
//! [`PullHold::notify`], which only takes a short lock and sends. The number parked is bounded
//! (`maxSuspendedPulls`); past the bound a pull is answered at once. A dropped future (the
//! connection went away) removes its own entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

struct Waiter {
    id: u64,
    /// The offset the pull asked for: woken once the queue's max offset passes it.
    offset: u64,
    tx: oneshot::Sender<()>,
}

/// Why a parked pull resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// New messages at or past the requested offset (or shutdown).
    Arrived,
    /// The suspend timeout passed.
    TimedOut,
    /// Too many pulls parked already: answer now.
    Full,
}

pub struct PullHold {
    waiting: Mutex<HashMap<String, HashMap<u32, Vec<Waiter>>>>,
    parked: AtomicUsize,
    max_parked: usize,
    next_id: AtomicU64,
}

/// Removes a waiter that did not get woken (timeout, or the future was dropped).
struct Guard<'a> {
    hold: &'a PullHold,
    topic: &'a str,
    queue_id: u32,
    id: u64,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.hold.remove(self.topic, self.queue_id, self.id);
    }
}

impl PullHold {
    pub fn new(max_parked: usize) -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
            parked: AtomicUsize::new(0),
            max_parked,
            next_id: AtomicU64::new(1),
        }
    }

    /// Number of pulls parked now.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Acquire)
    }

    /// Parks until `(topic, queue_id)` has a max offset beyond `offset`, or `timeout`.
    /// `current_max` is consulted after parking, closing the race with a message that arrived
    /// between the caller's read and the parking.
    pub async fn wait(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        timeout: Duration,
        current_max: impl Fn() -> u64,
    ) -> WaitOutcome {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut w = self.waiting.lock();
            if self.parked.load(Ordering::Acquire) >= self.max_parked {
                return WaitOutcome::Full;
            }
            w.entry(topic.to_string())
                .or_default()
                .entry(queue_id)
                .or_default()
                .push(Waiter { id, offset, tx });
            self.parked.fetch_add(1, Ordering::AcqRel);
        }
        let _guard = Guard {
            hold: self,
            topic,
            queue_id,
            id,
        };
        if current_max() > offset {
            return WaitOutcome::Arrived;
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(_) => WaitOutcome::Arrived,
            Err(_) => WaitOutcome::TimedOut,
        }
    }

    /// Dispatcher callback: `(topic, queue_id)` now holds offsets below `max_offset`.
    pub fn notify(&self, topic: &str, queue_id: u32, max_offset: u64) {
        let mut w = self.waiting.lock();
        let Some(per_topic) = w.get_mut(topic) else {
            return;
        };
        let Some(list) = per_topic.get_mut(&queue_id) else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            if list.get(i).is_some_and(|x| x.offset < max_offset) {
                let waiter = list.swap_remove(i);
                self.parked.fetch_sub(1, Ordering::AcqRel);
                let _ = waiter.tx.send(());
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            per_topic.remove(&queue_id);
            if per_topic.is_empty() {
                w.remove(topic);
            }
        }
    }

    /// Wakes every parked pull (shutdown: each answers with what it has).
    pub fn wake_all(&self) {
        let mut w = self.waiting.lock();
        for (_, per_topic) in w.drain() {
            for (_, list) in per_topic {
                for waiter in list {
                    self.parked.fetch_sub(1, Ordering::AcqRel);
                    let _ = waiter.tx.send(());
                }
            }
        }
    }

    fn remove(&self, topic: &str, queue_id: u32, id: u64) {
        let mut w = self.waiting.lock();
        let Some(per_topic) = w.get_mut(topic) else {
            return;
        };
        let Some(list) = per_topic.get_mut(&queue_id) else {
            return;
        };
        if let Some(pos) = list.iter().position(|x| x.id == id) {
            list.swap_remove(pos);
            self.parked.fetch_sub(1, Ordering::AcqRel);
        }
        if list.is_empty() {
            per_topic.remove(&queue_id);
            if per_topic.is_empty() {
                w.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(15);

    async fn until_parked(h: &PullHold, n: usize) {
        while h.parked() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_on_arrival_past_the_offset_only() {
        let h = Arc::new(PullHold::new(16));
        let h2 = h.clone();
        let t = tokio::spawn(async move { h2.wait("T", 1, 5, LONG, || 5).await });
        until_parked(&h, 1).await;
        h.notify("T", 1, 5); // nothing new beyond offset 5
        h.notify("T", 2, 9); // other queue
        h.notify("U", 1, 9); // other topic
        assert_eq!(h.parked(), 1);
        h.notify("T", 1, 6);
        assert_eq!(t.await.unwrap(), WaitOutcome::Arrived);
        assert_eq!(h.parked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_and_cleans_up() {
        let h = PullHold::new(16);
        let start = tokio::time::Instant::now();
        assert_eq!(h.wait("T", 0, 0, LONG, || 0).await, WaitOutcome::TimedOut);
        assert_eq!(start.elapsed(), LONG);
        assert_eq!(h.parked(), 0);
        assert!(h.waiting.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn arrival_between_read_and_park_is_not_lost() {
        let h = PullHold::new(16);
        assert_eq!(h.wait("T", 0, 3, LONG, || 4).await, WaitOutcome::Arrived);
        assert_eq!(h.parked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_and_dropped_futures_release_their_slot() {
        let h = Arc::new(PullHold::new(2));
        let a = tokio::spawn({
            let h = h.clone();
            async move { h.wait("T", 0, 0, LONG, || 0).await }
        });
        let b = tokio::spawn({
            let h = h.clone();
            async move { h.wait("T", 0, 0, LONG, || 0).await }
        });
        until_parked(&h, 2).await;
        assert_eq!(h.wait("T", 0, 0, LONG, || 0).await, WaitOutcome::Full);
        a.abort();
        let _ = a.await;
        assert_eq!(h.parked(), 1);
        h.wake_all();
        assert_eq!(b.await.unwrap(), WaitOutcome::Arrived);
        assert_eq!(h.parked(), 0);
    }
}
