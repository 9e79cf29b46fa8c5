//! Serving page-cached file regions over loopback through each transfer backend (sendfile,
//! splice, io_uring, copy) against raw blocking sendfile(2) of the same bytes with the same
//! framing, in the same run. Prints GB/s and sender CPU-seconds per GB, and both as ratios to
//! raw sendfile.
//!
//! Sender CPU: for the raw baseline, the sending thread's `RUSAGE_THREAD`; for the backends,
//! the process's `RUSAGE_SELF` minus the receiving thread's own `RUSAGE_THREAD` (so tokio's
//! threads and io_uring's workers are all counted). Loopback receive processing that the kernel
//! runs in the sender's context is counted for both, the same way.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ferrocket_net::{
    Body, BoxFuture, ConnectionHandle, FileRegion, Processor, RemotingCommand, SerializeType,
    Server, ServerConfig, ShutdownHandle, TransferBackend,
};
use ferrocket_store::mmap::MappedFile;

/// The page-cached file regions are cut from.
const FILE_BYTES: usize = 64 << 20;
/// Requests kept in flight per receiving connection.
const WINDOW: usize = 8;
const REQUEST_CODE: i32 = 11;

/// (name, regions per response, bytes per region). The 32-region shape leaves a 4 KiB gap after
/// each region (other queues' messages in between), so the regions cannot be coalesced.
const SHAPES: [(&str, usize, usize); 2] = [("1x1MiB", 1, 1 << 20), ("32x32KiB_gaps", 32, 32 << 10)];
const GAP_BYTES: usize = 4096;

struct Region {
    map: Arc<MappedFile>,
    offset: usize,
    len: usize,
}

impl FileRegion for Region {
    fn file(&self) -> &File {
        self.map.file()
    }
    fn file_offset(&self) -> u64 {
        self.offset as u64
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_bytes(&self) -> &[u8] {
        self.map
            .read(self.offset as u64, self.len as u64)
            .unwrap_or_default()
    }
}

/// Hands out regions walking through the file, so responses come from different pages.
struct Cutter {
    map: Arc<MappedFile>,
    next: AtomicU64,
}

impl Cutter {
    fn regions(&self, count: usize, len: usize) -> Vec<Arc<dyn FileRegion>> {
        (0..count)
            .map(|_| {
                let gap = if count > 1 { GAP_BYTES } else { 0 };
                let at = self.next.fetch_add((len + gap) as u64, Ordering::Relaxed) as usize;
                let offset = at % (FILE_BYTES - len - GAP_BYTES);
                Arc::new(Region {
                    map: Arc::clone(&self.map),
                    offset,
                    len,
                }) as Arc<dyn FileRegion>
            })
            .collect()
    }
}

struct RegionServer {
    cutter: Arc<Cutter>,
}

impl Processor for RegionServer {
    fn process(
        &self,
        _: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        let count: usize = req
            .ext_fields
            .get("n")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let len: usize = req
            .ext_fields
            .get("len")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20);
        let resp = RemotingCommand::success(&req)
            .with_ext("nextBeginOffset", "1")
            .with_body(Body::Regions(self.cutter.regions(count, len)));
        Box::pin(async move { Some(resp) })
    }
}

/// CPU time (user + system) of this process: every thread, including tokio's and io_uring's
/// workers. Same accounting as getrusage(RUSAGE_SELF), with nanosecond resolution.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time of the calling thread (getrusage(RUSAGE_THREAD)).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Reads exactly one frame into `scratch`; returns its body length.
fn read_frame(s: &mut TcpStream, scratch: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    scratch.resize(len, 0);
    s.read_exact(scratch)?;
    let header_len =
        (u32::from_be_bytes([scratch[0], scratch[1], scratch[2], scratch[3]]) & 0xFF_FFFF) as usize;
    Ok(len - 4 - header_len)
}

/// The receiving side: keeps `WINDOW` requests in flight, reads `responses` replies.
/// Returns (body bytes, wall time, this thread's CPU).
fn receive(addr: SocketAddr, request: &[u8], responses: u64) -> (u64, Duration, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let mut scratch = Vec::with_capacity(2 << 20);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut bytes = 0u64;
    while sent < responses.min(WINDOW as u64) {
        s.write_all(request).expect("request");
        sent += 1;
    }
    for _ in 0..responses {
        bytes += read_frame(&mut s, &mut scratch).expect("response") as u64;
        if sent < responses {
            s.write_all(request).expect("request");
            sent += 1;
        }
    }
    (bytes, t0.elapsed(), thread_cpu() - cpu0)
}

/// Raw baseline: a blocking thread answers each request with a pre-encoded header and
/// sendfile(2) of the regions; no runtime, no encoding.
fn raw_sendfile_server(
    cutter: Arc<Cutter>,
    count: usize,
    len: usize,
) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Sender CPU nanoseconds, summed over every response of every connection.
    let cpu = Arc::new(AtomicU64::new(0));
    let cpu_out = Arc::clone(&cpu);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            s.set_nodelay(true).ok();
            let head = RemotingCommand::success(&RemotingCommand::request(REQUEST_CODE))
                .with_ext("nextBeginOffset", "1")
                .with_body(Body::Bytes(vec![0u8; count * len].into()))
                .encode_head(SerializeType::Json);
            let mut scratch = Vec::new();
            while read_frame(&mut s, &mut scratch).is_ok() {
                let c0 = thread_cpu();
                if s.write_all(&head).is_err() {
                    break;
                }
                for r in cutter.regions(count, len) {
                    let mut off = r.file_offset();
                    let end = off + r.len() as u64;
                    while off < end {
                        let want = (end - off) as usize;
                        match rustix::fs::sendfile(s.as_fd(), r.file(), Some(&mut off), want) {
                            Ok(n) if n > 0 => {}
                            _ => return,
                        }
                    }
                }
                cpu_out.fetch_add((thread_cpu() - c0).as_nanos() as u64, Ordering::Relaxed);
            }
        }
    });
    (addr, cpu)
}

/// Where a measurement sends its requests.
enum Target {
    /// The blocking raw-sendfile thread and its CPU counter (nanoseconds).
    Raw(SocketAddr, Arc<AtomicU64>),
    /// A ferrocket server in this process.
    Ours(SocketAddr),
}

/// Interleaved rounds for the ratio table, and bytes per target per round.
const ROUNDS: usize = 5;
const ROUND_BYTES: u64 = 256 << 20;

/// `cargo bench` passes `--bench`; `cargo test --benches` does not (then everything is tiny).
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Serves `responses` responses; returns (body bytes, wall time, sender CPU).
fn measure(target: &Target, request: &[u8], responses: u64) -> (u64, Duration, Duration) {
    match target {
        Target::Raw(addr, cpu) => {
            let before = cpu.load(Ordering::Relaxed);
            let (bytes, wall, _) = receive(*addr, request, responses);
            // The raw sender adds its CPU after each response; let the last one land.
            std::thread::sleep(Duration::from_millis(2));
            let after = cpu.load(Ordering::Relaxed);
            (
                bytes,
                wall,
                Duration::from_nanos(after.saturating_sub(before)),
            )
        }
        Target::Ours(addr) => {
            let p0 = process_cpu();
            let (bytes, wall, recv_cpu) = receive(*addr, request, responses);
            (bytes, wall, (process_cpu() - p0).saturating_sub(recv_cpu))
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Acc {
    bytes: u64,
    wall: Duration,
    sender_cpu: Duration,
}

static RESULTS: Mutex<BTreeMap<String, Acc>> = Mutex::new(BTreeMap::new());

fn add(id: &str, bytes: u64, wall: Duration, sender_cpu: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let a = r.entry(id.to_owned()).or_default();
    a.bytes += bytes;
    a.wall += wall;
    a.sender_cpu += sender_cpu;
}

fn warm(path: &std::path::Path) {
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).unwrap_or(0) > 0 {}
}

fn bench(c: &mut Criterion) {
    let mut tmp = tempfile::NamedTempFile::new().expect("tempfile");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..FILE_BYTES >> 20 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        tmp.write_all(&chunk).expect("write");
    }
    tmp.flush().expect("flush");
    warm(tmp.path());
    let map = Arc::new(MappedFile::open(tmp.path(), FILE_BYTES as u64).expect("map"));
    let cutter = Arc::new(Cutter {
        map,
        next: AtomicU64::new(0),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let backends = [
        ("sendfile", TransferBackend::Sendfile),
        ("splice", TransferBackend::Splice),
        ("io_uring", TransferBackend::IoUring),
        ("copy", TransferBackend::Copy),
    ];
    let mut servers: Vec<(&str, SocketAddr, ShutdownHandle)> = Vec::new();
    for (name, backend) in backends {
        let processor = Arc::new(RegionServer {
            cutter: Arc::clone(&cutter),
        });
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            transfer: backend,
            ..ServerConfig::default()
        };
        let server = rt.block_on(Server::bind(config, processor)).expect("bind");
        let running = server.transfer_backend();
        let name = if running == backend {
            name
        } else {
            "io_uring(fell back to sendfile)"
        };
        let addr = server.local_addr();
        let sd = server.shutdown_handle();
        rt.spawn(async move { server.serve().await.ok() });
        servers.push((name, addr, sd));
    }

    for (shape, count, len) in SHAPES {
        let body = (count * len) as u64;
        let request = RemotingCommand::request(REQUEST_CODE)
            .with_ext("n", count.to_string())
            .with_ext("len", len.to_string());
        let mut request = request;
        request.opaque = 1;
        let request = request.encode(SerializeType::Json);
        let mut g = c.benchmark_group(format!("transfer/{shape}"));
        g.throughput(Throughput::Bytes(body));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(2));
        g.warm_up_time(Duration::from_millis(500));

        let (raw_addr, raw_cpu) = raw_sendfile_server(Arc::clone(&cutter), count, len);
        let mut targets: Vec<(String, Target)> = vec![(
            "raw_sendfile".to_owned(),
            Target::Raw(raw_addr, Arc::clone(&raw_cpu)),
        )];
        for (name, addr, _) in &servers {
            targets.push(((*name).to_owned(), Target::Ours(*addr)));
        }
        for (name, target) in &targets {
            g.bench_function(name.as_str(), |b| {
                b.iter_custom(|iters| measure(target, &request, iters).1)
            });
        }
        // The ratio table comes from rounds that interleave the targets, so load from other
        // processes on the machine hits every target alike instead of whichever ran during a
        // busy second.
        let (rounds, responses) = if full_run() {
            (ROUNDS, (ROUND_BYTES / body).max(1))
        } else {
            (1, 2)
        };
        for _ in 0..rounds {
            for (name, target) in &targets {
                let (bytes, wall, cpu) = measure(target, &request, responses);
                add(&format!("{shape}/{name}"), bytes, wall, cpu);
            }
        }
        g.finish();
    }
    for (_, _, sd) in &servers {
        sd.shutdown();
    }
}

fn print_table() {
    let r = RESULTS.lock().unwrap();
    println!(
        "\ntransfer over loopback, {} interleaved rounds: throughput and sender CPU per GB, \
         ratios to raw sendfile (same run)",
        if full_run() { ROUNDS } else { 1 }
    );
    println!(
        "{:<40} {:>8} {:>12} {:>10} {:>10}",
        "shape/backend", "GB/s", "CPU-s/GB", "x tput", "x CPU/GB"
    );
    for (id, a) in r.iter() {
        let gb = a.bytes as f64 / 1e9;
        let gbps = gb / a.wall.as_secs_f64().max(1e-9);
        let cpu_gb = a.sender_cpu.as_secs_f64() / gb.max(1e-12);
        let shape = id.split('/').next().unwrap_or("");
        let base = r
            .get(&format!("{shape}/raw_sendfile"))
            .copied()
            .unwrap_or_default();
        let bgb = base.bytes as f64 / 1e9;
        let b_gbps = bgb / base.wall.as_secs_f64().max(1e-9);
        let b_cpu = base.sender_cpu.as_secs_f64() / bgb.max(1e-12);
        println!(
            "{id:<40} {gbps:>8.2} {cpu_gb:>12.4} {:>9.2}x {:>9.2}x",
            gbps / b_gbps.max(1e-12),
            cpu_gb / b_cpu.max(1e-12)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_table();
}
