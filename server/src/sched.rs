//! Scheduling policy of the broker's busy threads: SCHED_BATCH on Linux.
//!
//! The async workers and the store's dispatcher wake each other (and the load on the same cores)
//! for every few messages. Under the default policy each wake-up may preempt whatever runs on
//! that core, so on a 2-core machine a pipelined producer's messages cost a context switch or two
//! each. SCHED_BATCH threads keep their share of the CPU (same nice value) but do not preempt on
//! wake-up.
//!
//! Measured here (2026-11-22, 2 cores shared by broker and load tool, A/B by this variable):
//! * `all` (workers and dispatcher): 128 B async sends, 2 x 32 in flight, 125–143k → 166–171k
//!   msgs/s and 6.9–8.0 → 5.9–6.1 µs broker CPU per message; but with one request in flight the
//!   ack p99.9 rose from 258–320 µs to 661–1,292 µs (a woken worker waits for the running task's
//!   slice instead of preempting it). So it is not the default.
//! * `dispatch` (the default): only the dispatcher thread, which is not on the acknowledgement path.
//!
//! The group-commit thread always keeps the default policy: it should run as soon as a sync returns.

/// Environment variable: `dispatch` (default), `all`, or `0`/`off` for the default policy everywhere.
pub const SCHED_BATCH_ENV: &str = "FERROCKET_SCHED_BATCH";

/// Which threads run under SCHED_BATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchThreads {
    None,
    Dispatch,
    All,
}

/// What [`SCHED_BATCH_ENV`] asks for (unknown values: the default).
pub fn batch_threads() -> BatchThreads {
    match std::env::var(SCHED_BATCH_ENV) {
        Ok(v) => match v.trim() {
            "0" | "false" | "off" | "no" | "none" => BatchThreads::None,
            "all" | "1" | "true" | "on" => BatchThreads::All,
            _ => BatchThreads::Dispatch,
        },
        Err(_) => BatchThreads::Dispatch,
    }
}

/// For the async runtime's threads: SCHED_BATCH only with `all`.
pub fn batch_worker_thread() {
    if batch_threads() == BatchThreads::All {
        batch_current_thread();
    }
}

/// For the store's dispatcher thread: SCHED_BATCH unless turned off.
pub fn batch_dispatch_thread() {
    if batch_threads() != BatchThreads::None {
        batch_current_thread();
    }
}

/// Puts the calling thread under SCHED_BATCH with nice 0. A refusal (a sandbox, another OS) only
/// costs the speed-up: it is logged at debug level and ignored.
pub fn batch_current_thread() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
        let r = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Os(ThreadPriorityOsValue::default()),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        );
        if let Err(e) = r {
            tracing::debug!(error = ?e, "cannot switch this thread to SCHED_BATCH");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread ends up under SCHED_BATCH (read back from /proc), and a thread that
    /// was not switched keeps the default policy.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_switched_thread_runs_under_sched_batch() {
        fn policy_of_this_thread() -> Option<u32> {
            // Field 41 of /proc/thread-self/stat is the policy (0 = SCHED_OTHER, 3 = SCHED_BATCH);
            // the comm field (2) may hold spaces, so count from its closing parenthesis.
            let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(41 - 3)?.parse().ok()
        }
        let (before, after) = std::thread::spawn(|| {
            let before = policy_of_this_thread();
            batch_current_thread();
            (before, policy_of_this_thread())
        })
        .join()
        .unwrap();
        assert_eq!(before, Some(0), "a new thread starts under SCHED_OTHER");
        assert_eq!(after, Some(3), "SCHED_BATCH after the switch");
    }
}
