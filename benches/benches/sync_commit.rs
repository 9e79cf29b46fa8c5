//! SYNC_FLUSH group commit against its baseline, measured in the same run: 16 producer threads
//! each `put` 1 KiB messages and wait for durability; the baseline writes groups of the same size
//! (bytes per observed commit) with `pwrite` + `fdatasync` on a zero-filled file. Prints commits/s,
//! messages/s and ratio = ours / baseline commits per second.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrocket_store::mmap::create_zero_filled_cached;
use ferrocket_store::{FlushDiskType, MessageInput, MessageStore, PutStatus, StoreConfig};

const PRODUCERS: u64 = 16;
const BODY: usize = 1024;

/// (messages, commits, bytes, elapsed).
type Tally = (u64, u64, u64, Duration);

static RESULTS: Mutex<BTreeMap<&'static str, Tally>> = Mutex::new(BTreeMap::new());

fn record(id: &'static str, msgs: u64, commits: u64, bytes: u64, e: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let v = r.entry(id).or_insert((0, 0, 0, Duration::ZERO));
    v.0 += msgs;
    v.1 += commits;
    v.2 += bytes;
    v.3 += e;
}

fn msg(p: u64) -> MessageInput {
    MessageInput {
        topic: "SyncBench".into(),
        queue_id: p as u32,
        flag: 0,
        body: vec![b's'; BODY].into(),
        properties: String::new(),
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
    let mut cfg = StoreConfig::new(dir.path().join("store"));
    cfg.mapped_file_size_commit_log = 256 << 20;
    cfg.flush_disk_type = FlushDiskType::Sync;
    cfg.message_index_enable = false;
    let store = MessageStore::open(cfg).unwrap();
    store.put(&msg(0)).unwrap();
    store.wait_preallocated(Duration::from_secs(60));
    let base_path = dir.path().join("baseline");
    let base = create_zero_filled_cached(&base_path, 256 << 20).unwrap();
    let mut base_pos = 0u64;

    let mut g = c.benchmark_group("sync_commit/1KiB");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(PRODUCERS));
    g.bench_function("group_commit_16_producers", |b| {
        b.iter_custom(|iters| {
            let (c0, o0) = (store.flush_count(), store.commit_log_max_offset());
            let t = Instant::now();
            let hs: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let s = Arc::clone(&store);
                    std::thread::spawn(move || {
                        for _ in 0..iters {
                            assert_eq!(s.put(&msg(p)).unwrap().status, PutStatus::Ok);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            let e = t.elapsed();
            let commits = store.flush_count() - c0;
            let bytes = store.commit_log_max_offset() - o0;
            record("ours", iters * PRODUCERS, commits, bytes, e);
            e
        })
    });
    g.bench_function("pwrite_fdatasync_same_group", |b| {
        b.iter_custom(|iters| {
            let (msgs, commits, bytes, _) = RESULTS
                .lock()
                .unwrap()
                .get("ours")
                .copied()
                .unwrap_or((1, 1, 1100, Duration::ZERO));
            let group = (bytes / commits.max(1)).max(1);
            let per_commit = (msgs / commits.max(1)).max(1);
            // As many commits as `iters * PRODUCERS` messages need at the observed group size.
            let rounds = (iters * PRODUCERS).div_ceil(per_commit);
            let buf = vec![b'b'; group as usize];
            let t = Instant::now();
            for _ in 0..rounds {
                if base_pos + group > 256 << 20 {
                    base_pos = 0;
                }
                base.write_all_at(&buf, base_pos).unwrap();
                base.sync_data().unwrap();
                base_pos += group;
            }
            let e = t.elapsed();
            record("baseline", rounds * per_commit, rounds, rounds * group, e);
            // Criterion's unit is `iters` of PRODUCERS messages; scale to the same work.
            e.mul_f64((iters * PRODUCERS) as f64 / (rounds * per_commit) as f64)
        })
    });
    g.finish();
    store.shutdown();
}

fn print_ratios() {
    let r = RESULTS.lock().unwrap();
    let (Some(o), Some(b)) = (r.get("ours"), r.get("baseline")) else {
        return;
    };
    let cps = |v: &Tally| v.1 as f64 / v.3.as_secs_f64().max(1e-9);
    let mps = |v: &Tally| v.0 as f64 / v.3.as_secs_f64().max(1e-9);
    println!(
        "\nsync_commit: {} producers, 1 KiB; group = {:.1} msgs / {:.0} bytes per commit",
        PRODUCERS,
        o.0 as f64 / o.1.max(1) as f64,
        o.2 as f64 / o.1.max(1) as f64
    );
    println!("{:<10} {:>12} {:>12}", "", "commits/s", "msgs/s");
    println!("{:<10} {:>12.0} {:>12.0}", "ours", cps(o), mps(o));
    println!("{:<10} {:>12.0} {:>12.0}", "baseline", cps(b), mps(b));
    println!(
        "ratio (ours / baseline commits/s) = {:.3}",
        cps(o) / cps(b).max(1e-9)
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios();
}
