//! Crash-recovery scan against its baseline, measured in the same run: reopening a store after a
//! crash (abort file present, no checkpoint: every record is validated, BODYCRC included) vs a
//! sequential `read` of the same segment files. Both read from the page cache. Prints MB/s and
//! ratio = ours / baseline throughput.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrocket_store::{MessageInput, MessageStore, StoreConfig, StoreOptions};

static RESULTS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.mapped_file_size_commit_log = if measuring() { 64 << 20 } else { 1 << 20 };
    c.message_index_enable = false;
    c
}

fn manual() -> StoreOptions {
    StoreOptions {
        background: false,
        ..StoreOptions::default()
    }
}

fn msg(i: u64) -> MessageInput {
    MessageInput {
        topic: "Recover".into(),
        queue_id: (i % 8) as u32,
        flag: 0,
        body: vec![(i % 251) as u8; 1024].into(),
        properties: "TAGS\u{1}a\u{2}".into(),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let seg = config(dir.path()).mapped_file_size_commit_log;
    // Two and a half segments of 1 KiB records.
    let n = (seg * 5 / 2) / 1100;
    let log_bytes;
    {
        let store = MessageStore::open_with(config(dir.path()), manual()).unwrap();
        for i in 0..n {
            store.put(&msg(i)).unwrap();
        }
        store.dispatch_now().unwrap();
        store.flush_now().unwrap();
        log_bytes = store.commit_log_max_offset();
        store.halt();
    }
    let ckpt = dir.path().join("checkpoint");
    let mut g = c.benchmark_group("recovery_scan");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(log_bytes));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sequential_read", |b| {
        let mut buf = vec![0u8; 1 << 20];
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let mut left = log_bytes;
                let mut names: Vec<_> = std::fs::read_dir(dir.path().join("commitlog"))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                names.sort();
                for p in names {
                    let mut f = std::fs::File::open(p).unwrap();
                    while left > 0 {
                        let k = f.read(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        left = left.saturating_sub(k as u64);
                    }
                }
            }
            let e = t.elapsed();
            let mut r = RESULTS.lock().unwrap();
            let v = r.entry("read").or_insert((0, Duration::ZERO));
            v.0 += iters;
            v.1 += e;
            e
        })
    });
    g.bench_function("scan_only", |b| {
        // The CommitLog part of crash recovery alone: validate every record (CRC included) and
        // check the tail past the end; no ConsumeQueue re-dispatch.
        let log_dir = dir.path().join("commitlog");
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let (log, rep) =
                    ferrocket_store::recovery::recover(&log_dir, seg, 0, false, true).unwrap();
                assert_eq!(rep.valid_end, log_bytes);
                drop(log);
            }
            let e = t.elapsed();
            let mut r = RESULTS.lock().unwrap();
            let v = r.entry("scan").or_insert((0, Duration::ZERO));
            v.0 += iters;
            v.1 += e;
            e
        })
    });
    g.bench_function("abnormal_recovery", |b| {
        b.iter_custom(|iters| {
            let mut e = Duration::ZERO;
            for _ in 0..iters {
                // No checkpoint: the scan starts at the first segment.
                let _ = std::fs::remove_file(&ckpt);
                let t = Instant::now();
                let store = MessageStore::open_with(config(dir.path()), manual()).unwrap();
                e += t.elapsed();
                let rep = store.recovery_report();
                assert!(rep.scanned && rep.valid_end == log_bytes, "{rep:?}");
                store.halt();
            }
            let mut r = RESULTS.lock().unwrap();
            let v = r.entry("recover").or_insert((0, Duration::ZERO));
            v.0 += iters;
            v.1 += e;
            e
        })
    });
    g.finish();
    let r = RESULTS.lock().unwrap();
    if let (Some(rd), Some(rc)) = (r.get("read"), r.get("recover")) {
        let mbps =
            |v: &(u64, Duration)| (log_bytes * v.0) as f64 / v.1.as_secs_f64().max(1e-9) / 1e6;
        println!(
            "\nrecovery_scan: {} MB of 1 KiB records",
            log_bytes / 1_000_000
        );
        println!("sequential read {:>10.0} MB/s", mbps(rd));
        println!(
            "full reopen     {:>10.0} MB/s (scan + ConsumeQueue re-dispatch)",
            mbps(rc)
        );
        println!(
            "ratio (reopen / read) = {:.3}",
            mbps(rc) / mbps(rd).max(1e-9)
        );
        if let Some(sc) = r.get("scan") {
            println!("scan only       {:>10.0} MB/s", mbps(sc));
            println!("ratio (scan / read) = {:.3}", mbps(sc) / mbps(rd).max(1e-9));
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
