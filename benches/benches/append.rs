//! CommitLog append against its baseline, measured in the same run: `MessageStore::put` (single)
//! and `put_batch` (32 per call) of 128 B, 1 KiB and 16 KiB bodies vs a memcpy of the same record
//! bytes into a pre-faulted mapping, plus BODYCRC alone (crc32fast, which the store uses, and
//! crc-fast, a VPCLMULQDQ/AVX-512 crate measured for comparison). Prints ns/record, ratio =
//! baseline / ours (1.0 = as fast as memcpy) and the bound memcpy / (memcpy + CRC).
//! `cargo bench --bench append`; in test mode (`cargo test --benches`) sizes shrink.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ferrocket_store::mmap::MappedFile;
use ferrocket_store::record::record_len;
use ferrocket_store::{MessageInput, MessageStore, StoreConfig};

const SIZES: [usize; 3] = [128, 1024, 16 * 1024];
const BATCH: usize = 32;
/// Messages prepared (untimed) before each timed run of puts.
const CHUNK: usize = 1024;

static RESULTS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(id: String, iters: u64, elapsed: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let e = r.entry(id).or_insert((0, Duration::ZERO));
    e.0 += iters;
    e.1 += elapsed;
}

/// criterion passes `--bench` when measuring; without it (test mode) everything is small.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn segment_bytes() -> u64 {
    if measuring() {
        512 << 20
    } else {
        8 << 20
    }
}

fn msg(size: usize) -> MessageInput {
    MessageInput {
        topic: "BenchTopic".into(),
        queue_id: 0,
        flag: 0,
        body: vec![b'x'; size].into(),
        properties: "UNIQ_KEY\u{1}0A00000100002A9F0000000000000000\u{2}".into(),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// Stored record size of `msg(size)`.
fn rec_len(size: usize) -> u64 {
    let m = msg(size);
    record_len(size, m.topic.len(), m.properties.len(), false, false).unwrap() as u64
}

struct Target {
    _dir: tempfile::TempDir,
    store: Arc<MessageStore>,
}

fn fresh_store() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let mut c = StoreConfig::new(dir.path());
    c.mapped_file_size_commit_log = segment_bytes();
    c.message_index_enable = false;
    let store = MessageStore::open(c).unwrap();
    store.put(&msg(16)).unwrap();
    store.wait_preallocated(Duration::from_secs(60));
    Target { _dir: dir, store }
}

/// Room left in the active segment.
fn room(t: &Target) -> u64 {
    let seg = segment_bytes();
    seg - t.store.commit_log_max_offset() % seg
}

fn bench_store(t: &mut Target, size: usize, batched: bool, iters: u64) -> Duration {
    let rec = rec_len(size);
    let mut left = iters;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        if room(t) < (n as u64 + 1) * rec + 64 {
            // Rolling is measured by the roll bench of the pre-allocator, not here.
            t.store.shutdown();
            *t = fresh_store();
        }
        let msgs: Vec<MessageInput> = (0..n).map(|_| msg(size)).collect();
        let start = Instant::now();
        if batched {
            for b in msgs.chunks(BATCH) {
                black_box(t.store.put_batch(b).unwrap());
            }
        } else {
            for m in &msgs {
                black_box(t.store.put(m).unwrap());
            }
        }
        elapsed += start.elapsed();
        left -= n as u64;
    }
    elapsed
}

struct Baseline {
    _dir: tempfile::TempDir,
    file: Arc<MappedFile>,
    writer: ferrocket_store::mmap::MappedWriter,
}

fn fresh_baseline() -> Baseline {
    let dir = tempfile::tempdir().unwrap();
    let len = segment_bytes();
    let file = Arc::new(MappedFile::create(&dir.path().join("base"), len).unwrap());
    file.prefault_write(0, len).unwrap();
    let writer = file.writer().unwrap();
    Baseline {
        _dir: dir,
        file,
        writer,
    }
}

fn bench_memcpy(b: &mut Baseline, size: usize, iters: u64) -> Duration {
    let rec = rec_len(size);
    let src = vec![b'x'; rec as usize];
    let mut left = iters;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let n = left.min(CHUNK as u64);
        if b.file.len() - b.file.published() < n * rec {
            *b = fresh_baseline();
        }
        let start = Instant::now();
        let mut pos = b.file.published();
        for _ in 0..n {
            b.writer.slot_mut(pos, rec).copy_from_slice(black_box(&src));
            pos += rec;
            b.writer.publish(pos);
        }
        elapsed += start.elapsed();
        left -= n;
    }
    elapsed
}

/// BODYCRC of one body per iteration: the one pass over the body a put makes besides the copy.
fn bench_crc(size: usize, iters: u64) -> Duration {
    let body = vec![b'x'; size];
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..iters {
        acc ^= ferrocket_store::body_crc(black_box(&body));
    }
    black_box(acc);
    start.elapsed()
}

/// The same CRC (CRC-32/ISO-HDLC = IEEE, masked like BODYCRC) with the crc-fast crate.
fn bench_crc_fast(size: usize, iters: u64) -> Duration {
    let body = vec![b'x'; size];
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..iters {
        let c = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, black_box(&body));
        acc ^= c as u32 & 0x7FFF_FFFF;
    }
    black_box(acc);
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    // Both crates must agree before either is timed.
    for size in SIZES {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let fast = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &body) as u32;
        assert_eq!(fast & 0x7FFF_FFFF, ferrocket_store::body_crc(&body));
    }
    let mut target = fresh_store();
    let mut base = fresh_baseline();
    for size in SIZES {
        let rec = rec_len(size);
        let mut g = c.benchmark_group(format!("append/{size}B"));
        g.throughput(Throughput::Bytes(rec));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(2));
        g.bench_function(BenchmarkId::new("memcpy_prefaulted_mmap", size), |b| {
            b.iter_custom(|iters| {
                let e = bench_memcpy(&mut base, size, iters);
                record(format!("{size}/memcpy"), iters, e);
                e
            })
        });
        g.bench_function(BenchmarkId::new("body_crc", size), |b| {
            b.iter_custom(|iters| {
                let e = bench_crc(size, iters);
                record(format!("{size}/crc"), iters, e);
                e
            })
        });
        g.bench_function(BenchmarkId::new("body_crc_crc_fast", size), |b| {
            b.iter_custom(|iters| {
                let e = bench_crc_fast(size, iters);
                record(format!("{size}/crc_fast"), iters, e);
                e
            })
        });
        for (name, batched) in [("put", false), ("put_batch32", true)] {
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    let e = bench_store(&mut target, size, batched, iters);
                    record(format!("{size}/{name}"), iters, e);
                    e
                })
            });
        }
        g.finish();
    }
    target.store.shutdown();
}

fn print_ratios() {
    let r = RESULTS.lock().unwrap();
    let ns = |k: &str| {
        r.get(k)
            .map(|(n, d)| d.as_nanos() as f64 / (*n).max(1) as f64)
    };
    println!("\nappend: ns/record, ratio = memcpy / ours (same run; 1.0 = as fast as memcpy)");
    println!(
        "bound = memcpy / (memcpy + BODYCRC): the best ratio of a put that only CRCs and copies"
    );
    println!(
        "{:<8} {:>10} {:>8} {:>10} {:>12} {:>8} {:>8} {:>8}",
        "body", "memcpy", "crc", "put", "put_batch32", "put", "batch", "bound"
    );
    for size in SIZES {
        if let (Some(c), Some(f)) = (ns(&format!("{size}/crc")), ns(&format!("{size}/crc_fast"))) {
            println!("{size:<8} BODYCRC: crc32fast {c:.1} ns, crc-fast {f:.1} ns");
        }
    }
    for size in SIZES {
        if let (Some(m), Some(c), Some(p), Some(b)) = (
            ns(&format!("{size}/memcpy")),
            ns(&format!("{size}/crc")),
            ns(&format!("{size}/put")),
            ns(&format!("{size}/put_batch32")),
        ) {
            println!(
                "{size:<8} {m:>10.1} {c:>8.1} {p:>10.1} {b:>12.1} {:>8.3} {:>8.3} {:>8.3}",
                m / p.max(0.001),
                m / b.max(0.001),
                m / (m + c).max(0.001)
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
