//! ConsumeQueue lookups against raw reads of the same 20-byte units, measured in the same run:
//! `get` (one unit at a random offset, decoded) vs a memcpy of those 20 bytes from an in-memory copy
//! of the file and vs a `pread` of them from the file; `read_units(32)` (decoded into a Vec) vs one
//! memcpy / one `pread` of the same 640 bytes. The baselines only move bytes (no decoding), so they
//! are floors. Prints ns/op and the ratio baseline/ours (1.0: as fast as copying the bytes).

use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrocket_store::consume_queue::{ConsumeQueue, CqUnit, CQ_FILE_SIZE_BYTES_DEFAULT};

/// Units in the bench queue (one default-size file holds 300 000); fewer in test mode
/// (`cargo test --benches` runs each bench once, unoptimized).
const UNITS: u64 = 200_000;
const UNITS_TEST_MODE: u64 = 10_000;
/// Units per `read_units` call (a pull batch of 32 messages).
const BATCH_UNITS: usize = 32;
/// Random offsets cycled through by the lookup benches.
const PROBES: usize = 4096;

static RESULTS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iters: u64, elapsed: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let e = r.entry(id.to_owned()).or_insert((0, Duration::ZERO));
    e.0 += iters;
    e.1 += elapsed;
}

/// Seeded xorshift, so every run probes the same offsets.
fn probes(seed: u64, n: usize, below: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % below
        })
        .collect()
}

/// Times `iters` calls of `f` over the probe list and records them under `id`.
fn run(id: &str, iters: u64, probes: &[u64], mut f: impl FnMut(u64)) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        f(probes[i as usize % probes.len()]);
    }
    let e = t.elapsed();
    record(id, iters, e);
    e
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cq = ConsumeQueue::open(dir.path(), "BenchTopic", 0, CQ_FILE_SIZE_BYTES_DEFAULT).unwrap();
    let units = if std::env::args().any(|a| a == "--bench") {
        UNITS
    } else {
        UNITS_TEST_MODE
    };
    for q in 0..units {
        let unit = CqUnit {
            phy_offset: q * 1024,
            size: 1024,
            tags_code: (q % 7) as i64,
        };
        cq.append(q, unit).unwrap();
    }
    cq.flush().unwrap();
    let path = cq.dir().join(format!("{:020}", 0));
    let file = File::open(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let offsets = probes(0x5EED_0001, PROBES, units - BATCH_UNITS as u64);
    // What is timed must be right: every probe reads back the units that were appended.
    for &q in offsets.iter().take(64) {
        let units = cq.read_units(q, BATCH_UNITS);
        assert_eq!(units.len(), BATCH_UNITS);
        assert_eq!(units[0].phy_offset, q * 1024);
        let at = q as usize * 20;
        assert_eq!(CqUnit::decode(&bytes[at..at + 20]), cq.get(q));
    }

    let mut g = c.benchmark_group("consume_queue/get");
    g.throughput(Throughput::Bytes(20));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("memcpy", |b| {
        b.iter_custom(|iters| {
            run("get/memcpy", iters, &offsets, |q| {
                let at = q as usize * 20;
                let mut unit = [0u8; 20];
                unit.copy_from_slice(black_box(&bytes[at..at + 20]));
                black_box(&unit);
            })
        })
    });
    g.bench_function("pread", |b| {
        b.iter_custom(|iters| {
            run("get/pread", iters, &offsets, |q| {
                let mut unit = [0u8; 20];
                file.read_exact_at(&mut unit, q * 20).unwrap();
                black_box(&unit);
            })
        })
    });
    g.bench_function("cq_get", |b| {
        b.iter_custom(|iters| {
            run("get/ours", iters, &offsets, |q| {
                black_box(cq.get(black_box(q)));
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("consume_queue/read_units_32");
    g.throughput(Throughput::Bytes(20 * BATCH_UNITS as u64));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("memcpy", |b| {
        b.iter_custom(|iters| {
            run("read_units/memcpy", iters, &offsets, |q| {
                let at = q as usize * 20;
                let mut buf = [0u8; 20 * BATCH_UNITS];
                buf.copy_from_slice(black_box(&bytes[at..at + 20 * BATCH_UNITS]));
                black_box(&buf);
            })
        })
    });
    g.bench_function("pread", |b| {
        b.iter_custom(|iters| {
            run("read_units/pread", iters, &offsets, |q| {
                let mut buf = [0u8; 20 * BATCH_UNITS];
                file.read_exact_at(&mut buf, q * 20).unwrap();
                black_box(&buf);
            })
        })
    });
    g.bench_function("cq_read_units", |b| {
        b.iter_custom(|iters| {
            run("read_units/ours", iters, &offsets, |q| {
                black_box(cq.read_units(black_box(q), BATCH_UNITS));
            })
        })
    });
    g.finish();
}

fn print_ratios() {
    let r = RESULTS.lock().unwrap();
    let ns = |k: &str| {
        r.get(k)
            .map(|(n, d)| d.as_nanos() as f64 / (*n).max(1) as f64)
    };
    println!("\nconsume_queue: ns/op, and ratio = baseline / ours (same run; > 1 means faster)");
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "op", "ours", "memcpy", "pread", "vs memcpy", "vs pread"
    );
    for op in ["get", "read_units"] {
        if let (Some(o), Some(m), Some(p)) = (
            ns(&format!("{op}/ours")),
            ns(&format!("{op}/memcpy")),
            ns(&format!("{op}/pread")),
        ) {
            println!(
                "{op:<22} {o:>10.1} {m:>10.1} {p:>10.1} {:>12.2} {:>12.2}",
                m / o.max(0.001),
                p / o.max(0.001)
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios();
}
