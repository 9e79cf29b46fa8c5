//! IndexFile query by key against two baselines measured in the same run: raw slot reads (the same
//! hash, slot and chain walk over an in-memory copy of the file: the floor for this layout) and a
//! linear scan of every entry for the key's hash (what a query costs without the hash slots).
//! Prints ns/op and the ratio baseline/ours.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrocket_store::hash::index_key_hash;
use ferrocket_store::index_file::{index_key, IndexService};

const SLOTS: u32 = 50_000;
const INDEX_NUM: u32 = 200_000;
/// Messages indexed, each with one unique key and one of `SHARED_KEYS` shared keys.
const MESSAGES: u64 = 60_000;
/// Messages in test mode (`cargo test --benches`: one unoptimized pass).
const MESSAGES_TEST_MODE: u64 = 5_000;
const SHARED_KEYS: u64 = 1_000;
/// Results wanted per query (a QUERY_MESSAGE maxNum).
const MAX_RESULTS: usize = 32;
const PROBES: usize = 1024;
const T0: i64 = 1_700_000_000_000;

static RESULTS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iters: u64, elapsed: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let e = r.entry(id.to_owned()).or_insert((0, Duration::ZERO));
    e.0 += iters;
    e.1 += elapsed;
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// The chain walk on raw bytes: slot → newest entry → prev ... (header 40 B, slots 4 B, entries
/// 20 B: keyHash, phy, timeDiff, prev).
fn raw_query(file: &[u8], key: &str, max: usize) -> Vec<u64> {
    let hash = index_key_hash(key);
    let slot_at = 40 + (hash as u32 % SLOTS) as usize * 4;
    let entries_at = 40 + SLOTS as usize * 4;
    let mut out = Vec::new();
    let mut idx = be_i32(file, slot_at);
    while idx > 0 && out.len() < max {
        let at = entries_at + idx as usize * 20;
        if be_i32(file, at) == hash {
            out.push(be_i64(file, at + 4) as u64);
        }
        idx = be_i32(file, at + 16);
    }
    out
}

/// Every entry compared with the key's hash, newest first.
fn linear_query(file: &[u8], key: &str, max: usize) -> Vec<u64> {
    let hash = index_key_hash(key);
    let count = be_i32(file, 36) as usize;
    let entries_at = 40 + SLOTS as usize * 4;
    let mut out = Vec::new();
    for idx in (1..count).rev() {
        let at = entries_at + idx * 20;
        if be_i32(file, at) == hash {
            out.push(be_i64(file, at + 4) as u64);
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

fn keys(seed: u64, messages: u64) -> Vec<(String, String)> {
    let mut x = seed;
    (0..PROBES)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Alternate unique keys (one hit) and shared keys (up to 32 hits).
            let k = if i % 2 == 0 {
                format!("uniq-{}", x % messages)
            } else {
                format!("shared-{}", x % SHARED_KEYS)
            };
            (index_key("BenchTopic", &k), k)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::open(dir.path(), SLOTS, INDEX_NUM, 0, true).unwrap();
    let messages = if std::env::args().any(|a| a == "--bench") {
        MESSAGES
    } else {
        MESSAGES_TEST_MODE
    };
    for i in 0..messages {
        let uniq = format!("uniq-{i}");
        let shared = format!("shared-{}", i % SHARED_KEYS);
        svc.build_index(
            "BenchTopic",
            Some(&uniq),
            Some(&shared),
            i * 1024,
            T0 + i as i64,
        )
        .unwrap();
    }
    svc.flush().unwrap();
    let names = svc.file_names();
    assert_eq!(names.len(), 1, "the bench data fits one file");
    let file = std::fs::read(dir.path().join(&names[0])).unwrap();
    let probes = keys(0x5EED_0002, messages);
    // The service and the raw walk must agree before their speed is compared.
    for (full, k) in probes.iter().take(64) {
        assert_eq!(
            svc.query("BenchTopic", k, MAX_RESULTS, 0, i64::MAX),
            raw_query(&file, full, MAX_RESULTS)
        );
        assert_eq!(
            raw_query(&file, full, MAX_RESULTS),
            linear_query(&file, full, MAX_RESULTS)
        );
    }

    let mut g = c.benchmark_group("index/query");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    let mut bench_one = |name: &str, id: &'static str, f: &dyn Fn(&str, &str) -> Vec<u64>| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    let (full, k) = &probes[i as usize % probes.len()];
                    black_box(f(black_box(full), black_box(k)));
                }
                let e = t.elapsed();
                record(id, iters, e);
                e
            })
        });
    };
    bench_one("raw_slot_reads", "raw", &|full, _| {
        raw_query(&file, full, MAX_RESULTS)
    });
    bench_one("linear_scan", "linear", &|full, _| {
        linear_query(&file, full, MAX_RESULTS)
    });
    bench_one("index_service", "ours", &|_, k| {
        svc.query("BenchTopic", k, MAX_RESULTS, 0, i64::MAX)
    });
    g.finish();
}

fn print_ratios() {
    let r = RESULTS.lock().unwrap();
    let ns = |k: &str| {
        r.get(k)
            .map(|(n, d)| d.as_nanos() as f64 / (*n).max(1) as f64)
    };
    if let (Some(o), Some(raw), Some(lin)) = (ns("ours"), ns("raw"), ns("linear")) {
        println!("\nindex query: ns/op, ratio = baseline / ours (same run; > 1 means faster)");
        println!(
            "{:<16} {:>12} {:>12} {:>12} {:>10} {:>10}",
            "op", "ours", "raw slots", "linear", "vs raw", "vs linear"
        );
        println!(
            "{:<16} {o:>12.1} {raw:>12.1} {lin:>12.1} {:>10.2} {:>10.1}",
            "query_by_key",
            raw / o.max(0.001),
            lin / o.max(0.001)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios();
}
