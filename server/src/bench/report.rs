//! Measurements of one run: latency histogram, throughput over time, counters; the final JSON line
//! and the live progress line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Width of one throughput-over-time bucket.
pub const BUCKET_NS: u64 = 100_000_000;
/// Largest latency the histogram holds (larger samples are clamped to it and still counted).
pub const LATENCY_MAX_NS: u64 = 60_000_000_000;

/// What one sender (or one consumer queue) measured; merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency samples in nanoseconds (3 significant digits).
    pub hist: Histogram<u64>,
    /// Messages completed per [`BUCKET_NS`] bucket since the run start.
    pub buckets: Vec<u64>,
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Time of the last completion, ns since the run start.
    pub last_ns: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3)
            .unwrap_or_else(|e| panic!("histogram bounds are constants: {e}"));
        Self {
            hist,
            buckets: Vec::new(),
            msgs: 0,
            bytes: 0,
            errors: 0,
            last_ns: 0,
        }
    }

    /// One latency sample (a request's ack, or one message's end-to-end time).
    pub fn latency(&mut self, latency_ns: u64) {
        self.hist
            .saturating_record(latency_ns.clamp(1, LATENCY_MAX_NS));
    }

    /// `msgs` messages of `bytes` payload bytes completed at `at_ns` since the run start.
    pub fn completed(&mut self, at_ns: u64, msgs: u64, bytes: u64) {
        self.msgs += msgs;
        self.bytes += bytes;
        self.last_ns = self.last_ns.max(at_ns);
        let b = usize::try_from(at_ns / BUCKET_NS)
            .unwrap_or(usize::MAX)
            .min(1 << 24);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        if let Some(x) = self.buckets.get_mut(b) {
            *x += msgs;
        }
    }

    pub fn error(&mut self) {
        self.errors += 1;
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.msgs += other.msgs;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.last_ns = self.last_ns.max(other.last_ns);
    }

    /// Messages per second over time, one point per bucket: (seconds since start, msgs/s).
    pub fn throughput_series(&self) -> Vec<(f64, f64)> {
        let per_s = 1e9 / BUCKET_NS as f64;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| ((i as f64 + 1.0) * BUCKET_NS as f64 / 1e9, n as f64 * per_s))
            .collect()
    }

    /// The latency percentile curve as (percentile in [0, 100], latency µs).
    pub fn percentile_curve(&self) -> Vec<(f64, f64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let mut pts: Vec<(f64, f64)> = self
            .hist
            .iter_quantiles(5)
            .map(|v| {
                (
                    v.quantile_iterated_to() * 100.0,
                    self.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1e3,
                )
            })
            .collect();
        pts.dedup_by(|a, b| a.0 == b.0);
        pts
    }

    /// Latency at `q` (0..=1) in µs, 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1e3
    }
}

/// The last line of every run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: String,
    pub msgs: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub errors: u64,
    /// Broker CPU seconds per GB (1e9 bytes) of payload moved; null when the broker is not a local
    /// process.
    pub broker_cpu_s_per_gb: Option<f64>,
    pub broker_cpu_us_per_msg: Option<f64>,
    pub broker_pid: Option<u32>,
    /// Run parameters and mode-specific extras.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Summary {
    /// Builds the summary from merged measurements. `elapsed_ns` is the measured wall time.
    pub fn new(
        mode: &str,
        rec: &Recorder,
        elapsed_ns: u64,
        broker_cpu_s: Option<(u32, f64)>,
    ) -> Self {
        let elapsed_s = (elapsed_ns.max(1)) as f64 / 1e9;
        let gb = rec.bytes as f64 / 1e9;
        let (pid, cpu_per_gb, cpu_per_msg) = match broker_cpu_s {
            Some((pid, cpu)) => (
                Some(pid),
                (gb > 0.0).then(|| round3(cpu / gb)),
                (rec.msgs > 0).then(|| round3(cpu * 1e6 / rec.msgs as f64)),
            ),
            None => (None, None, None),
        };
        let max_us = if rec.hist.is_empty() {
            0.0
        } else {
            rec.hist.max() as f64 / 1e3
        };
        Self {
            mode: mode.to_string(),
            msgs: rec.msgs,
            bytes: rec.bytes,
            elapsed_s: round3(elapsed_s),
            msgs_per_s: round1(rec.msgs as f64 / elapsed_s),
            mb_per_s: round3(rec.bytes as f64 / 1e6 / elapsed_s),
            p50_us: round1(rec.quantile_us(0.5)),
            p99_us: round1(rec.quantile_us(0.99)),
            p999_us: round1(rec.quantile_us(0.999)),
            max_us: round1(max_us),
            errors: rec.errors,
            broker_cpu_s_per_gb: cpu_per_gb,
            broker_cpu_us_per_msg: cpu_per_msg,
            broker_pid: pid,
            extra: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Adds the load generator's own CPU per message (`own_cpu0`: its CPU seconds at the start)
    /// and the machine's 1-minute load average, so a reader can tell a busy machine from a slow
    /// broker.
    pub fn with_environment(self, rec: &Recorder, own_cpu0: Option<f64>) -> Self {
        let client_us = match (own_cpu0, super::cpu::own_cpu_s()) {
            (Some(a), Some(b)) if rec.msgs > 0 => Some(round3((b - a) * 1e6 / rec.msgs as f64)),
            _ => None,
        };
        self.with("client_cpu_us_per_msg", client_us)
            .with("loadavg_1m", super::cpu::load_average_1m())
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Counters shared with the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// The live progress line: only when stderr is a terminal; quiet otherwise.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: String, live: Arc<Live>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, thread: None };
        }
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || {
                let bar = indicatif::ProgressBar::new_spinner();
                let t0 = std::time::Instant::now();
                let mut last = (0u64, 0u64, t0);
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let m = live.msgs.load(Ordering::Relaxed);
                    let b = live.bytes.load(Ordering::Relaxed);
                    let e = live.errors.load(Ordering::Relaxed);
                    let now = std::time::Instant::now();
                    let dt = now.duration_since(last.2).as_secs_f64().max(1e-3);
                    bar.set_message(format!(
                        "{label} {:>6.1}s  {m} msgs  {:.0} msgs/s  {:.1} MB/s  errors {e}",
                        now.duration_since(t0).as_secs_f64(),
                        (m - last.0) as f64 / dt,
                        (b - last.1) as f64 / 1e6 / dt,
                    ));
                    bar.tick();
                    last = (m, b, now);
                }
                bar.finish_and_clear();
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_has_the_contract_fields() {
        let mut r = Recorder::new();
        for i in 1..=1000u64 {
            r.latency(i * 1_000); // 1..1000 µs
            r.completed(i * 1_000_000, 1, 100); // spread over 1 s
        }
        r.error();
        let s = Summary::new("produce", &r, 1_000_000_000, Some((42, 0.5)))
            .with("size", 100)
            .with("batch", 1);
        let line = s.to_json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for k in [
            "msgs_per_s",
            "mb_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "errors",
            "broker_cpu_s_per_gb",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {line}");
        }
        assert_eq!(v["msgs_per_s"], 1000.0);
        assert_eq!(v["mb_per_s"], 0.1);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["size"], 100);
        // 3 significant digits: p50 of 1..1000 µs is 500 µs within 0.1 %.
        let p50 = v["p50_us"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        let p99 = v["p99_us"].as_f64().unwrap();
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        assert!((v["max_us"].as_f64().unwrap() - 1000.0).abs() < 1.0);
        // 0.5 s of CPU for 1e5 bytes = 1e-4 GB.
        assert_eq!(v["broker_cpu_s_per_gb"], 5000.0);
        assert_eq!(v["broker_cpu_us_per_msg"], 500.0);
    }

    #[test]
    fn summary_without_broker_or_samples() {
        let r = Recorder::new();
        let s = Summary::new("consume", &r, 0, None);
        let v: serde_json::Value = serde_json::from_str(&s.to_json_line()).unwrap();
        assert!(v["broker_cpu_s_per_gb"].is_null());
        assert_eq!(v["p50_us"], 0.0);
        assert_eq!(v["msgs_per_s"], 0.0);
    }

    #[test]
    fn merge_and_series() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.completed(50_000_000, 2, 20);
        b.completed(250_000_000, 3, 30);
        b.latency(5_000);
        a.merge(&b);
        assert_eq!(a.msgs, 5);
        assert_eq!(a.bytes, 50);
        assert_eq!(a.buckets, vec![2, 0, 3]);
        assert_eq!(a.last_ns, 250_000_000);
        let s = a.throughput_series();
        assert_eq!(s.len(), 3);
        assert!((s[0].1 - 20.0).abs() < 1e-9);
        assert!((s[2].0 - 0.3).abs() < 1e-9);
        let curve = a.percentile_curve();
        assert!(!curve.is_empty());
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
