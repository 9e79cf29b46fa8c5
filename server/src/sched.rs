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
//!   (Threads inherit the policy of the thread that spawns them: with `all`, the store's other
//!   threads, started from a worker when the broker opens the store, run under SCHED_BATCH too.)
//!
//! * `background`: the dispatcher and the SYNC_FLUSH group-commit thread. Opt-in: measured
//!   (2026-11-22, SYNC 1 KiB 2 x 32 on /var/tmp, 4 interleaved pairs against `dispatch`, load 2.5-2.9,
//!   the disk shared and swinging 300-10,000 raw commits/s) it cut context switches per message
//!   (0.48-0.66 vs 0.55-0.77) and broker CPU a little (15.3-20.0 vs 16.1-19.8 µs), but the commit
//!   thread, no longer preempting a worker when its fdatasync returns, started fewer rounds: in the
//!   runs where the disk was quiet, 3,493-3,632 commits/s (0.38-0.49 of raw) against 4,587 (0.53).
//!   The commit ratio is the target, so by default the commit thread keeps the default policy and
//!   runs as soon as a sync returns.

/// Environment variable: `dispatch` (default), `background` (dispatcher and group-commit thread),
/// `all` (those and the async workers), or `0`/`off` for the default policy everywhere. When set it
/// overrides the broker.conf key `schedBatchThreads` (same values), for experiments.
pub const SCHED_BATCH_ENV: &str = "FERROCKET_SCHED_BATCH";

/// The choice from broker.conf (`schedBatchThreads`), set once before the threads start.
static CONFIGURED: std::sync::OnceLock<BatchThreads> = std::sync::OnceLock::new();

/// Records broker.conf's choice. Call before the runtime and the store start their threads; a
/// second call is ignored (one process runs one broker).
pub fn configure(choice: BatchThreads) {
    let _ = CONFIGURED.set(choice);
}

/// Which threads run under SCHED_BATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchThreads {
    None,
    Dispatch,
    /// The dispatcher and the SYNC_FLUSH group-commit thread.
    Background,
    All,
}

/// The threads to switch: [`SCHED_BATCH_ENV`] if set (unknown values: the default), else
/// broker.conf's `schedBatchThreads`, else the default (`dispatch`).
pub fn batch_threads() -> BatchThreads {
    resolve(
        std::env::var(SCHED_BATCH_ENV).ok().as_deref(),
        CONFIGURED.get().copied(),
    )
}

/// The environment's value over the configured one.
fn resolve(env: Option<&str>, configured: Option<BatchThreads>) -> BatchThreads {
    match env {
        Some(v) => parse_batch_threads(Some(v)),
        None => configured.unwrap_or(BatchThreads::Dispatch),
    }
}

/// The value of [`SCHED_BATCH_ENV`] (`None`: unset) as a choice of threads.
fn parse_batch_threads(v: Option<&str>) -> BatchThreads {
    v.and_then(BatchThreads::parse)
        .unwrap_or(BatchThreads::Dispatch)
}

impl BatchThreads {
    /// `dispatch`, `background` (or `commit`), `all` (`1`, `true`, `on`), `off` (`0`, `false`,
    /// `no`, `none`); `None` for anything else.
    pub fn parse(v: &str) -> Option<Self> {
        match v.trim() {
            "0" | "false" | "off" | "no" | "none" => Some(BatchThreads::None),
            "all" | "1" | "true" | "on" => Some(BatchThreads::All),
            "background" | "commit" => Some(BatchThreads::Background),
            "dispatch" => Some(BatchThreads::Dispatch),
            _ => None,
        }
    }

    /// The canonical name (what broker.conf and GET_BROKER_CONFIG show).
    pub fn name(self) -> &'static str {
        match self {
            BatchThreads::None => "off",
            BatchThreads::Dispatch => "dispatch",
            BatchThreads::Background => "background",
            BatchThreads::All => "all",
        }
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

/// For the store's SYNC_FLUSH group-commit thread: SCHED_BATCH with `background` or `all`.
pub fn batch_commit_thread() {
    if matches!(
        batch_threads(),
        BatchThreads::Background | BatchThreads::All
    ) {
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

    #[test]
    fn the_variable_picks_the_threads() {
        assert_eq!(parse_batch_threads(None), BatchThreads::Dispatch);
        assert_eq!(
            parse_batch_threads(Some("dispatch")),
            BatchThreads::Dispatch
        );
        assert_eq!(
            parse_batch_threads(Some("nonsense")),
            BatchThreads::Dispatch
        );
        assert_eq!(parse_batch_threads(Some(" off ")), BatchThreads::None);
        assert_eq!(
            parse_batch_threads(Some("background")),
            BatchThreads::Background
        );
        assert_eq!(
            parse_batch_threads(Some("commit")),
            BatchThreads::Background
        );
        assert_eq!(parse_batch_threads(Some("all")), BatchThreads::All);
    }

    #[test]
    fn the_variable_overrides_broker_conf() {
        assert_eq!(resolve(None, None), BatchThreads::Dispatch);
        assert_eq!(resolve(None, Some(BatchThreads::All)), BatchThreads::All);
        assert_eq!(
            resolve(Some("off"), Some(BatchThreads::All)),
            BatchThreads::None
        );
        for t in [
            BatchThreads::None,
            BatchThreads::Dispatch,
            BatchThreads::Background,
            BatchThreads::All,
        ] {
            assert_eq!(BatchThreads::parse(t.name()), Some(t));
        }
        assert_eq!(BatchThreads::parse("nonsense"), None);
    }

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
