//! `ferrocket bench recover`: builds a large store with the real append path, then times reopening
//! it after a clean shutdown and after a crash, next to a sequential read of the same files in the
//! same run. Prints one JSON object as its last line.
//!
//! * Build: `--gib` (or `--mib`) of 1 KiB records through `MessageStore::put` under ASYNC_FLUSH,
//!   round-robin over `--topics` × `--queues`, each with a UNIQ_KEY as real producers send; then a
//!   clean shutdown.
//! * Clean reopen: the checkpoint is trusted; the time of `MessageStore::open` with a cold page
//!   cache (every store file synced and dropped with `posix_fadvise(DONTNEED)`) and warm.
//! * Crash reopen: the abort file is put back and the checkpoint's `confirmPhyOffset` moved
//!   `--crash-back-mib` behind the end. The CommitLog scan (`recovery::recover`: every record's size
//!   bounds, magic, PHYSICALOFFSET and BODYCRC, then the tail check up to the end of the last
//!   segment) is timed against a `read(2)` of the same segment files, both cold and both warm,
//!   alternating, `--rounds` times (`ratio = scan GB/s / read GB/s`, the median of the paired
//!   ratios). Then the whole crash-style `MessageStore::open` (scan + ConsumeQueue/index repair +
//!   re-dispatch) is timed cold and warm.
//!
//! The store directory is removed at the end unless `--keep` is given.

use std::fs::File;
use std::io::Read;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocket_store::checkpoint::Checkpoint;
use ferrocket_store::commit_log::parse_segment_file_name;
use ferrocket_store::{FlushDiskType, MessageInput, MessageStore, StoreConfig};

/// Buffer of the sequential-read baseline (what `cat`/`dd` would use, and readahead-friendly).
const READ_BUF_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, clap::Args)]
pub struct RecoverBenchArgs {
    /// Store directory (created; must be empty or absent). Removed at the end unless --keep.
    #[arg(long)]
    pub dir: PathBuf,
    /// CommitLog bytes to write, in GiB.
    #[arg(long, default_value_t = 10)]
    pub gib: u64,
    /// CommitLog bytes to write, in MiB (overrides --gib; for quick runs).
    #[arg(long)]
    pub mib: Option<u64>,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Topics written round-robin.
    #[arg(long, default_value_t = 4)]
    pub topics: u32,
    /// Queues per topic.
    #[arg(long, default_value_t = 4)]
    pub queues: u32,
    /// CommitLog segment size (mappedFileSizeCommitLog).
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// For the crash reopen, how far behind the end the checkpoint is put (MiB).
    #[arg(long, default_value_t = 512)]
    pub crash_back_mib: u64,
    /// Measurement rounds (cold and warm each).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Also write 1 to /proc/sys/vm/drop_caches before every cold measurement (root only; drops
    /// every process's clean page cache, so it is off by default: posix_fadvise already empties
    /// the cache of the store's files).
    #[arg(long)]
    pub drop_caches: bool,
    /// Build the store without the IndexFile (messageIndexEnable=false).
    #[arg(long)]
    pub no_index: bool,
    /// Keep the store directory afterwards.
    #[arg(long)]
    pub keep: bool,
}

fn config(args: &RecoverBenchArgs) -> StoreConfig {
    let mut c = StoreConfig::new(&args.dir);
    c.mapped_file_size_commit_log = args.segment_bytes;
    c.flush_disk_type = FlushDiskType::Async;
    c.message_index_enable = !args.no_index;
    c
}

fn message(args: &RecoverBenchArgs, i: u64) -> MessageInput {
    let topics = u64::from(args.topics.max(1));
    let queues = u64::from(args.queues.max(1));
    let body_byte = b'a' + (i % 26) as u8;
    MessageInput {
        topic: format!("RecoverBench{}", i % topics),
        queue_id: ((i / topics) % queues) as u32,
        flag: 0,
        body: vec![body_byte; args.size].into(),
        properties: format!(
            "UNIQ_KEY\u{1}7F0000010000{i:020X}\u{2}TAGS\u{1}t{}\u{2}",
            i % 7
        ),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().expect("literal address"),
        store_host: "127.0.0.1:10911".parse().expect("literal address"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let p = e.path();
        let ft = e.file_type().map_err(|e| e.to_string())?;
        if ft.is_dir() {
            files_under(&p, out)?;
        } else if ft.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Syncs each file and asks the kernel to drop its cached pages, so the next read comes from the
/// disk. Pages still mapped by a live mapping are not dropped: call this with the store closed.
fn make_cold(files: &[PathBuf], drop_caches: bool) -> Result<(), String> {
    for p in files {
        let f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.sync_all().map_err(|e| format!("{}: {e}", p.display()))?;
        rustix::fs::fadvise(&f, 0, None::<NonZeroU64>, rustix::fs::Advice::DontNeed)
            .map_err(|e| format!("fadvise {}: {e}", p.display()))?;
    }
    if drop_caches {
        std::fs::write("/proc/sys/vm/drop_caches", b"1")
            .map_err(|e| format!("/proc/sys/vm/drop_caches: {e}"))?;
    }
    Ok(())
}

/// The baseline: `read(2)` of every byte of `files`, in order, through one buffer.
fn sequential_read(files: &[PathBuf]) -> Result<(u64, Duration), String> {
    let mut buf = vec![0u8; READ_BUF_BYTES];
    let mut total = 0u64;
    let t = Instant::now();
    for p in files {
        let mut f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok((total, t.elapsed()))
}

/// CommitLog segment files with base >= `from`, in order.
fn segments_from(log_dir: &Path, from: u64) -> Result<Vec<PathBuf>, String> {
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(log_dir)
        .map_err(|e| format!("{}: {e}", log_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let base = parse_segment_file_name(e.file_name().to_str()?)?;
            (base >= from).then(|| (base, e.path()))
        })
        .collect();
    segs.sort();
    Ok(segs.into_iter().map(|(_, p)| p).collect())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9
}

/// Writes the store; returns (CommitLog bytes, messages, seconds).
fn build(args: &RecoverBenchArgs, target: u64) -> Result<(u64, u64, f64), String> {
    let store = MessageStore::open(config(args)).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut i = 0u64;
    let mut next_note = 1u64 << 30;
    while store.commit_log_max_offset() < target {
        store.put(&message(args, i)).map_err(|e| e.to_string())?;
        i += 1;
        if store.commit_log_max_offset() >= next_note {
            eprintln!(
                "built {} GiB ({:.1} s)",
                next_note >> 30,
                t.elapsed().as_secs_f64()
            );
            next_note += 1 << 30;
        }
    }
    let end = store.commit_log_max_offset();
    if !store.wait_dispatched(end, Duration::from_secs(600)) {
        return Err("dispatch did not catch up within 600 s".into());
    }
    store.shutdown();
    let secs = t.elapsed().as_secs_f64();
    drop(store);
    Ok((end, i, secs))
}

/// Opens the store and times it; returns (seconds, recovery report, CommitLog end).
fn timed_open(
    args: &RecoverBenchArgs,
) -> Result<(f64, ferrocket_store::RecoveryReport, u64), String> {
    let t = Instant::now();
    let store: Arc<MessageStore> = MessageStore::open(config(args)).map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let report = store.recovery_report();
    let end = store.commit_log_max_offset();
    store.shutdown();
    drop(store);
    Ok((secs, report, end))
}

/// Puts the store in the state a crash leaves: abort file present, checkpoint `confirm`.
fn stage_crash(dir: &Path, confirm: u64) -> Result<(), String> {
    let ck = Checkpoint::open(&dir.join("checkpoint")).map_err(|e| e.to_string())?;
    let mut d = ck.get();
    d.confirm_phy_offset = confirm as i64;
    ck.write(d).map_err(|e| e.to_string())?;
    drop(ck);
    std::fs::write(dir.join("abort"), b"bench").map_err(|e| e.to_string())
}

pub fn measure(args: &RecoverBenchArgs) -> Result<serde_json::Value, String> {
    super::require_empty_dir(&args.dir)?;
    if args.size == 0 || args.rounds == 0 {
        return Err("--size and --rounds must be positive".into());
    }
    let target = match args.mib {
        Some(m) => m << 20,
        None => args.gib << 30,
    };
    if target == 0 {
        return Err("--gib/--mib must be positive".into());
    }
    let load_before = load_avg();
    let (end, msgs, build_secs) = build(args, target)?;
    eprintln!(
        "built {end} bytes, {msgs} messages in {build_secs:.1} s; measuring (load {})",
        load_avg()
    );
    let mut all_files = Vec::new();
    files_under(&args.dir, &mut all_files)?;

    // (a) Clean shutdown, recent checkpoint: reopen cold, then warm.
    let mut clean_cold = Vec::new();
    let mut clean_warm = Vec::new();
    for _ in 0..args.rounds {
        all_files.clear();
        files_under(&args.dir, &mut all_files)?;
        make_cold(&all_files, args.drop_caches)?;
        let (s, rep, e) = timed_open(args)?;
        if rep.scanned || e != end {
            return Err(format!(
                "clean reopen scanned or lost data: {rep:?}, end {e}"
            ));
        }
        clean_cold.push(s);
        let (s, _, _) = timed_open(args)?;
        clean_warm.push(s);
    }

    // (b) Crash with the checkpoint `crash_back_mib` behind the end: the CommitLog scan against
    // a sequential read of the same segment files, then the whole reopen.
    let log_dir = config(args).commit_log_path();
    let confirm = end.saturating_sub(args.crash_back_mib << 20);
    stage_crash(&args.dir, confirm)?;
    // One untimed pass removes what the clean reopens left behind (a half-made next segment).
    let (_, first) =
        ferrocket_store::recovery::recover(&log_dir, args.segment_bytes, confirm, false, true)
            .map_err(|e| e.to_string())?;
    if !first.scanned || first.valid_end != end {
        return Err(format!("crash scan did not reach the end: {first:?}"));
    }
    let scan_files = segments_from(&log_dir, first.scan_start)?;
    let mut runs = Vec::new();
    for _ in 0..args.rounds {
        let mut one = serde_json::Map::new();
        for cold in [true, false] {
            if cold {
                make_cold(&scan_files, args.drop_caches)?;
            }
            let (read_bytes, read_t) = sequential_read(&scan_files)?;
            if cold {
                make_cold(&scan_files, args.drop_caches)?;
            }
            let t = Instant::now();
            let (log, rep) = ferrocket_store::recovery::recover(
                &log_dir,
                args.segment_bytes,
                confirm,
                false,
                true,
            )
            .map_err(|e| e.to_string())?;
            let scan_t = t.elapsed();
            drop(log);
            if rep.valid_end != end || rep.scan_start != first.scan_start {
                return Err(format!("crash scan changed: {rep:?}"));
            }
            let read = gbps(read_bytes, read_t);
            let scan = gbps(read_bytes, scan_t);
            let k = if cold { "cold" } else { "warm" };
            one.insert(format!("{k}_read_gb_per_s"), read.into());
            one.insert(format!("{k}_scan_gb_per_s"), scan.into());
            one.insert(format!("{k}_ratio"), (scan / read).into());
        }
        runs.push(serde_json::Value::Object(one));
    }
    let scan_bytes: u64 = scan_files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut crash_cold = Vec::new();
    let mut crash_warm = Vec::new();
    let mut crash_report = None;
    for _ in 0..args.rounds {
        stage_crash(&args.dir, confirm)?;
        all_files.clear();
        files_under(&args.dir, &mut all_files)?;
        make_cold(&all_files, args.drop_caches)?;
        let (s, rep, e) = timed_open(args)?;
        if !rep.scanned || e != end {
            return Err(format!(
                "crash reopen did not scan to the end: {rep:?}, end {e}"
            ));
        }
        crash_report = Some(rep);
        crash_cold.push(s);
        stage_crash(&args.dir, confirm)?;
        let (s, _, _) = timed_open(args)?;
        crash_warm.push(s);
    }
    let pick = |k: &str| -> f64 {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(k)?.as_f64()).collect();
        median(&mut v)
    };
    let json = serde_json::json!({
        "mode": "recover",
        "commit_log_bytes": end,
        "messages": msgs,
        "segment_bytes": args.segment_bytes,
        "index": !args.no_index,
        "build_secs": build_secs,
        "clean_open_cold_s": median(&mut clean_cold.clone()),
        "clean_open_warm_s": median(&mut clean_warm.clone()),
        "clean_open_cold_all_s": clean_cold,
        "crash_confirm": confirm,
        "crash_scan_start": first.scan_start,
        "crash_scan_file_bytes": scan_bytes,
        "crash_scanned_record_bytes": crash_report.map(|r| r.scanned_bytes),
        "crash_scan_runs": runs,
        "crash_scan_cold_ratio": pick("cold_ratio"),
        "crash_scan_warm_ratio": pick("warm_ratio"),
        "crash_scan_cold_gb_per_s": pick("cold_scan_gb_per_s"),
        "crash_read_cold_gb_per_s": pick("cold_read_gb_per_s"),
        "crash_scan_warm_gb_per_s": pick("warm_scan_gb_per_s"),
        "crash_read_warm_gb_per_s": pick("warm_read_gb_per_s"),
        "crash_open_cold_s": median(&mut crash_cold.clone()),
        "crash_open_warm_s": median(&mut crash_warm.clone()),
        "load_before": load_before,
        "load_after": load_avg(),
    });
    Ok(json)
}

pub fn run(args: RecoverBenchArgs) -> Result<(), String> {
    let r = measure(&args);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    println!("{}", r?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_store_reopens_clean_and_after_a_crash() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let args = RecoverBenchArgs {
            dir: dir.clone(),
            gib: 0,
            mib: Some(3),
            size: 1024,
            topics: 2,
            queues: 2,
            segment_bytes: 1 << 20,
            crash_back_mib: 1,
            rounds: 1,
            drop_caches: false,
            no_index: false,
            keep: false,
        };
        let j = measure(&args).expect("bench runs");
        assert!(j["commit_log_bytes"].as_u64().expect("bytes") >= 3 << 20);
        assert!(j["clean_open_cold_s"].as_f64().expect("clean") > 0.0);
        assert!(j["crash_scan_cold_ratio"].as_f64().expect("ratio") > 0.0);
        assert!(j["crash_open_warm_s"].as_f64().expect("crash") > 0.0);
        // The scan covered the segments from the one holding the checkpoint to the end.
        assert!(j["crash_scan_file_bytes"].as_u64().expect("scan bytes") >= 1 << 20);
        let dir2 = tmp.path().join("store2");
        run(RecoverBenchArgs {
            dir: dir2.clone(),
            ..args
        })
        .expect("run");
        assert!(!dir2.exists(), "store removed");
    }
}
