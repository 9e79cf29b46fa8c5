//! `ferrocket bench limits`: this machine's own limits, measured in the same run as the figures
//! they divide: loopback bulk TCP, loopback round trip, memcpy into a pre-faulted file mapping,
//! write+fdatasync at a group size on a zero-filled file, and sendfile of a cached file over
//! loopback. Small and quick: each test runs for `--seconds`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocket_store::mmap::{create_zero_filled_cached, MappedFile};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::report::{round1, round3};

#[derive(Debug, Clone, clap::Args)]
pub struct LimitsArgs {
    /// Directory for the test files (put it on the same disk as the store; not tmpfs).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Seconds per test.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Record sizes for the mmap memcpy test (comma-separated bytes).
    #[arg(long, value_delimiter = ',', default_value = "128,1024,16384")]
    pub record_sizes: Vec<usize>,
    /// Group sizes for the write+fdatasync test (comma-separated bytes).
    #[arg(long, value_delimiter = ',', default_value = "4096")]
    pub group_bytes: Vec<usize>,
    /// Size of the pre-faulted mapping in MiB.
    #[arg(long, default_value_t = 256)]
    pub mmap_mb: u64,
    /// Size of the cached file sent with sendfile, in MiB.
    #[arg(long, default_value_t = 256)]
    pub sendfile_mb: u64,
    /// Bytes per sendfile call (RocketMQ serves at most 256 KiB per pull from memory).
    #[arg(long, default_value_t = 262_144)]
    pub sendfile_chunk: usize,
    /// Message size of the round-trip test.
    #[arg(long, default_value_t = 128)]
    pub rtt_bytes: usize,
    /// Bytes of new data for the fresh-pages test, in MiB (the volume a run writes: on this VM
    /// the first few GiB come from recycled guest pages, the rest from memory the host must
    /// supply first).
    #[arg(long, default_value_t = 1024)]
    pub fresh_mb: u64,
    /// Record size of the fresh-pages test.
    #[arg(long, default_value_t = 16384)]
    pub fresh_record: usize,
    /// Run only these tests (comma-separated: tcp,rtt,mmap,fresh,sync,sendfile; `fresh` only
    /// when named).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RttResult {
    pub msg_bytes: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub round_trips_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemcpyResult {
    pub record_bytes: usize,
    pub gb_per_s: f64,
    pub records_per_s: f64,
}

/// Copies into pages never touched before (see [`fresh_append`]).
#[derive(Debug, Clone, Serialize)]
pub struct FreshResult {
    pub record_bytes: usize,
    pub bytes: u64,
    pub gb_per_s: f64,
    /// CPU of the copying thread per GB (page allocation and clearing happen in its faults).
    pub cpu_s_per_gb: f64,
    /// The same per GiB for the first GiB and for the last one, in seconds: where the host has to
    /// supply memory first, the later GiBs cost several times the first.
    pub first_gib_s: f64,
    pub last_gib_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncResult {
    pub group_bytes: usize,
    pub commits_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendfileResult {
    pub chunk_bytes: usize,
    pub gb_per_s: f64,
    /// CPU of the sending thread per GB sent (the receiver's is not included).
    pub cpu_s_per_gb: f64,
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(if d.is_finite() && d > 0.0 { d } else { 1.0 })
}

/// Loopback bulk TCP throughput in GB/s (1 MiB writes, one stream).
pub fn tcp_bulk(duration: Duration) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let rx = std::thread::spawn(move || -> io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got += n as u64;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    let buf = vec![0x5Au8; 1 << 20];
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < duration {
        s.write_all(&buf)?;
        sent += buf.len() as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let got = rx
        .join()
        .map_err(|_| io::Error::other("receiver thread panicked"))??;
    let t = t0.elapsed().as_secs_f64();
    if got != sent {
        return Err(io::Error::other(format!(
            "sent {sent} bytes, received {got}"
        )));
    }
    Ok(sent as f64 / t / 1e9)
}

/// Loopback TCP ping-pong (TCP_NODELAY, `msg_bytes` each way), after a warm-up.
pub fn tcp_rtt(duration: Duration, msg_bytes: usize) -> io::Result<RttResult> {
    let msg_bytes = msg_bytes.max(1);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; msg_bytes];
        loop {
            if let Err(e) = s.read_exact(&mut buf) {
                return if e.kind() == io::ErrorKind::UnexpectedEof {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            s.write_all(&buf)?;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = vec![1u8; msg_bytes];
    for _ in 0..1000 {
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < duration {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        h.saturating_record(t.elapsed().as_nanos().max(1) as u64);
        n += 1;
    }
    let total = t0.elapsed().as_secs_f64();
    drop(s);
    echo.join()
        .map_err(|_| io::Error::other("echo thread panicked"))??;
    Ok(RttResult {
        msg_bytes,
        p50_us: round1(h.value_at_quantile(0.5) as f64 / 1e3),
        p99_us: round1(h.value_at_quantile(0.99) as f64 / 1e3),
        p999_us: round1(h.value_at_quantile(0.999) as f64 / 1e3),
        max_us: round1(h.max() as f64 / 1e3),
        round_trips_per_s: round1(n as f64 / total),
    })
}

/// Removes a test file when dropped.
struct TempPath(PathBuf);
impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_path(dir: &Path, what: &str) -> TempPath {
    TempPath(dir.join(format!(
        ".ferrocket-limits-{what}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )))
}

/// Sequential record copies into a zero-filled, pre-faulted shared file mapping of `map_bytes`
/// (the CommitLog append path without anything else), repeated for `duration`.
pub fn mmap_memcpy(
    dir: &Path,
    map_bytes: u64,
    record_bytes: usize,
    duration: Duration,
) -> io::Result<MemcpyResult> {
    let record_bytes = record_bytes.max(1);
    let path = temp_path(dir, "mmap");
    let map_bytes = map_bytes.max(record_bytes as u64 * 16);
    let mapped = Arc::new(MappedFile::create(&path.0, map_bytes)?);
    mapped.prefault_write(0, map_bytes)?;
    let mut writer = mapped
        .writer()
        .ok_or_else(|| io::Error::other("mapping already has a writer"))?;
    let mut rec = vec![b'r'; record_bytes];
    let per_pass = map_bytes / record_bytes as u64;
    let t0 = Instant::now();
    let mut copied = 0u64;
    loop {
        let mut pos = 0u64;
        for i in 0..per_pass {
            // Change the record a little, as every real record differs (and the copy cannot be
            // hoisted out of the loop).
            if let Some(b) = rec.first_mut() {
                *b = i as u8;
            }
            writer.write(pos, &rec);
            pos += record_bytes as u64;
        }
        copied += per_pass;
        if t0.elapsed() >= duration {
            break;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    Ok(MemcpyResult {
        record_bytes,
        gb_per_s: round3(copied as f64 * record_bytes as f64 / t / 1e9),
        records_per_s: round1(copied as f64 / t),
    })
}

/// Sequential record copies, once, through a shared mapping of a new sparse file of `bytes` in
/// `dir`: every page's first touch allocates and clears it. This is what any writer pays to put
/// that much new data in memory here (page cache or tmpfs), the cost the pre-faulted
/// [`mmap_memcpy`] leaves out; a store pays it too, in its pre-allocation thread. Per-GiB times
/// show whether the pages came from the guest's free lists or from memory the host had taken
/// back (free page reporting), which on this VM costs several times more.
pub fn fresh_append(dir: &Path, bytes: u64, record_bytes: usize) -> io::Result<FreshResult> {
    const GIB: u64 = 1 << 30;
    let record_bytes = record_bytes.clamp(1, 1 << 20);
    let bytes = bytes.max(record_bytes as u64 * 16);
    let path = temp_path(dir, "fresh");
    {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path.0)?;
        f.set_len(bytes)?;
    }
    let mapped = Arc::new(MappedFile::open(&path.0, 0)?);
    let mut writer = mapped
        .writer()
        .ok_or_else(|| io::Error::other("mapping already has a writer"))?;
    let mut rec = vec![b'f'; record_bytes];
    let per_pass = bytes / record_bytes as u64;
    let (mut first_gib_s, mut last_gib_s) = (0.0, 0.0);
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut gib_start = t0;
    let mut pos = 0u64;
    for i in 0..per_pass {
        if let Some(b) = rec.first_mut() {
            *b = i as u8;
        }
        writer.write(pos, &rec);
        let next = pos + record_bytes as u64;
        if next / GIB != pos / GIB || i + 1 == per_pass {
            let now = Instant::now();
            let s = now.duration_since(gib_start).as_secs_f64();
            // A partial last piece is scaled to a whole GiB.
            let piece = next - (pos / GIB) * GIB;
            let per_gib = s * GIB as f64 / piece.max(1) as f64;
            if pos < GIB {
                first_gib_s = per_gib;
            }
            last_gib_s = per_gib;
            gib_start = now;
        }
        pos = next;
    }
    let t = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu = thread_cpu_s() - cpu0;
    drop(writer);
    drop(mapped);
    let gb = pos as f64 / 1e9;
    Ok(FreshResult {
        record_bytes,
        bytes: pos,
        gb_per_s: round3(gb / t),
        cpu_s_per_gb: round3(cpu / gb.max(1e-9)),
        first_gib_s: round3(first_gib_s),
        last_gib_s: round3(last_gib_s),
    })
}

/// pwrite of `group_bytes` then fdatasync, sequentially through a zero-filled file, for
/// `duration`: the commits/s a group commit of that size can reach at best.
pub fn write_fdatasync(
    dir: &Path,
    group_bytes: usize,
    duration: Duration,
) -> io::Result<SyncResult> {
    let group_bytes = group_bytes.max(1);
    let path = temp_path(dir, "sync");
    let file_bytes = (64u64 << 20).max(group_bytes as u64 * 64);
    let file: File = create_zero_filled_cached(&path.0, file_bytes)?;
    let buf = vec![0xA5u8; group_bytes];
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let t0 = Instant::now();
    let mut pos = 0u64;
    let mut n = 0u64;
    while t0.elapsed() < duration || n < 10 {
        if pos + group_bytes as u64 > file_bytes {
            pos = 0;
        }
        let t = Instant::now();
        file.write_all_at(&buf, pos)?;
        file.sync_data()?;
        h.saturating_record(t.elapsed().as_nanos().max(1) as u64);
        pos += group_bytes as u64;
        n += 1;
    }
    let total = t0.elapsed().as_secs_f64();
    Ok(SyncResult {
        group_bytes,
        commits_per_s: round1(n as f64 / total),
        mb_per_s: round3(n as f64 * group_bytes as f64 / total / 1e6),
        p50_us: round1(h.value_at_quantile(0.5) as f64 / 1e3),
        p99_us: round1(h.value_at_quantile(0.99) as f64 / 1e3),
        p999_us: round1(h.value_at_quantile(0.999) as f64 / 1e3),
    })
}

fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// sendfile of a page-cached file of `file_bytes` over loopback TCP in `chunk` calls, for
/// `duration`; a receiver thread reads and discards.
pub fn sendfile(
    dir: &Path,
    file_bytes: u64,
    chunk: usize,
    duration: Duration,
) -> io::Result<SendfileResult> {
    let chunk = chunk.max(4096);
    let file_bytes = file_bytes.max(chunk as u64);
    let path = temp_path(dir, "sendfile");
    {
        let mut f = File::create(&path.0)?;
        let block = vec![0x3Cu8; 1 << 20];
        let mut left = file_bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            f.write_all(block.get(..n).unwrap_or(&block))?;
            left -= n as u64;
        }
    }
    let file = File::open(&path.0)?;
    // Read it once so every page is cached.
    {
        let mut r = File::open(&path.0)?;
        let mut buf = vec![0u8; 1 << 20];
        while r.read(&mut buf)? > 0 {}
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let rx = std::thread::spawn(move || -> io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got += n as u64;
        }
    });
    let sock = TcpStream::connect(addr)?;
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut off = 0u64;
    while t0.elapsed() < duration {
        if off + chunk as u64 > file_bytes {
            off = 0;
        }
        let mut left = chunk;
        while left > 0 {
            let n = rustix::fs::sendfile(&sock, &file, Some(&mut off), left)?;
            if n == 0 {
                return Err(io::Error::other("sendfile wrote nothing"));
            }
            left -= n;
            sent += n as u64;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    sock.shutdown(std::net::Shutdown::Write)?;
    let got = rx
        .join()
        .map_err(|_| io::Error::other("receiver thread panicked"))??;
    if got != sent {
        return Err(io::Error::other(format!(
            "sent {sent} bytes, received {got}"
        )));
    }
    let gb = sent as f64 / 1e9;
    Ok(SendfileResult {
        chunk_bytes: chunk,
        gb_per_s: round3(gb / t),
        cpu_s_per_gb: round3(cpu / gb),
    })
}

/// All limits of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub mode: &'static str,
    pub seconds_per_test: f64,
    pub tcp_bulk_gb_per_s: Option<f64>,
    pub tcp_rtt: Option<RttResult>,
    pub mmap_memcpy: Vec<MemcpyResult>,
    pub fresh_append: Option<FreshResult>,
    pub fdatasync: Vec<SyncResult>,
    pub sendfile: Option<SendfileResult>,
}

/// The `bench limits` command.
pub fn run(a: LimitsArgs) -> Result<(), String> {
    let d = secs(a.seconds);
    let want = |t: &str| a.only.is_empty() || a.only.iter().any(|o| o == t);
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    fn ctx(what: &'static str) -> impl Fn(io::Error) -> String {
        move |e| format!("limit {what}: {e}")
    }
    let mut out = Limits {
        mode: "limits",
        seconds_per_test: d.as_secs_f64(),
        tcp_bulk_gb_per_s: None,
        tcp_rtt: None,
        mmap_memcpy: Vec::new(),
        fresh_append: None,
        fdatasync: Vec::new(),
        sendfile: None,
    };
    if want("tcp") {
        out.tcp_bulk_gb_per_s = Some(round3(tcp_bulk(d).map_err(ctx("tcp bulk"))?));
    }
    if want("rtt") {
        out.tcp_rtt = Some(tcp_rtt(d, a.rtt_bytes).map_err(ctx("tcp rtt"))?);
    }
    if want("mmap") {
        for &r in &a.record_sizes {
            out.mmap_memcpy
                .push(mmap_memcpy(&a.dir, a.mmap_mb << 20, r, d).map_err(ctx("mmap memcpy"))?);
        }
    }
    // Only when named: it writes `fresh_mb` of new memory, GiBs at the report's volumes.
    if a.only.iter().any(|o| o == "fresh") {
        out.fresh_append = Some(
            fresh_append(&a.dir, a.fresh_mb << 20, a.fresh_record)
                .map_err(ctx("fresh-page append"))?,
        );
    }
    if want("sync") {
        for &g in &a.group_bytes {
            out.fdatasync
                .push(write_fdatasync(&a.dir, g, d).map_err(ctx("write+fdatasync"))?);
        }
    }
    if want("sendfile") {
        out.sendfile = Some(
            sendfile(&a.dir, a.sendfile_mb << 20, a.sendfile_chunk, d).map_err(ctx("sendfile"))?,
        );
    }
    println!(
        "{}",
        serde_json::to_string(&out).map_err(|e| format!("cannot encode limits: {e}"))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Functional checks only (each test runs for a few ms): the numbers are not asserted beyond
    //! being measured, because speed is shown by the report, not by unit tests.
    use super::*;

    const TINY: Duration = Duration::from_millis(20);

    #[test]
    fn tcp_tests_measure_something() {
        assert!(tcp_bulk(TINY).unwrap() > 0.0);
        let r = tcp_rtt(TINY, 64).unwrap();
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us && r.p99_us <= r.max_us);
        assert!(r.round_trips_per_s > 0.0);
    }

    #[test]
    fn file_tests_clean_up_after_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let m = mmap_memcpy(dir.path(), 1 << 20, 1024, TINY).unwrap();
        assert!(m.gb_per_s > 0.0 && m.records_per_s > 0.0);
        let s = write_fdatasync(dir.path(), 4096, TINY).unwrap();
        assert!(s.commits_per_s > 0.0 && s.p50_us > 0.0);
        let f = sendfile(dir.path(), 1 << 20, 65536, TINY).unwrap();
        let n = fresh_append(dir.path(), 3 << 20, 16384).unwrap();
        assert_eq!(n.bytes, 3 << 20);
        assert!(n.gb_per_s > 0.0 && n.first_gib_s > 0.0 && n.last_gib_s > 0.0);
        assert!(f.gb_per_s > 0.0 && f.cpu_s_per_gb >= 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
