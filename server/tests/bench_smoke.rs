//! SMOKE TEST of the load tool against the real broker: starts `ferrocket standalone` on a fresh
//! store with ephemeral ports, runs `ferrocket bench produce` and `ferrocket bench consume` for a
//! tiny count, and checks their JSON summaries. (Owned by the bench helper.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrocket");

/// A free TCP port (bound then released; a race with another process is possible but unlikely).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the standalone broker and waits for its "boot success" line.
fn start_standalone(store: &std::path::Path) -> (Broker, u16, u16) {
    let (ns, bp) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .args(["standalone", "--store"])
        .arg(store)
        .args([
            "--namesrv-port",
            &ns.to_string(),
            "--broker-port",
            &bp.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrocket standalone");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("boot success") {
                let _ = tx.send(());
            }
        }
    });
    let broker = Broker(child);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("standalone printed `boot success` within 30 s");
    (broker, ns, bp)
}

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run ferrocket bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("a summary line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

#[test]
fn produce_and_consume_a_tiny_count_against_standalone() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, ns, _bp) = start_standalone(&dir.path().join("store"));
    let ns = format!("127.0.0.1:{ns}");
    let plot = dir.path().join("p.svg");
    let p = bench(&[
        "produce",
        "--namesrv",
        &ns,
        "--topic",
        "SmokeTopic",
        "--size",
        "256",
        "--count",
        "200",
        "--connections",
        "2",
        "--inflight",
        "4",
        // The first sends after boot can take seconds while the store preallocates its next
        // 1 GiB segment on a busy machine; a smoke test checks that they succeed, not how fast.
        "--timeout-ms",
        "30000",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(p["msgs"], 200, "{p}");
    assert_eq!(p["errors"], 0, "{p}");
    assert!(p["p50_us"].as_f64().unwrap() > 0.0);
    assert!(p["broker_pid"].is_u64(), "the local broker was found: {p}");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    let b = bench(&[
        "produce",
        "--namesrv",
        &ns,
        "--topic",
        "SmokeTopic",
        "--size",
        "100",
        "--count",
        "64",
        "--batch",
        "32",
        "--timeout-ms",
        "30000",
    ]);
    assert_eq!(b["msgs"], 64, "{b}");
    assert_eq!(b["errors"], 0, "{b}");
    // Not --until-caught-up: a send is acknowledged before the dispatcher makes it visible in the
    // ConsumeQueue, so "the max offset now" can lag the last acks on a loaded machine. Reading a
    // known count (with long polling, bounded by a duration) waits for them instead.
    let c = bench(&[
        "consume",
        "--namesrv",
        &ns,
        "--topic",
        "SmokeTopic",
        "--group",
        "smoke",
        "--from-start",
        "--count",
        "264",
        "--duration",
        "60",
        "--suspend-ms",
        "2000",
    ]);
    assert_eq!(c["msgs"], 264, "{c}");
    assert_eq!(c["errors"], 0, "{c}");
    assert!(
        c["p50_us"].as_f64().unwrap() > 0.0,
        "end-to-end latency measured: {c}"
    );
}
