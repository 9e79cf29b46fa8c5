//! The binary as interop tests and operators use it (contract D): `standalone` prints
//! `boot success`, exits 0 on SIGTERM after flushing; a bad broker.conf value exits non-zero with
//! the key named.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ferrocket");

#[test]
fn standalone_boots_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, "mappedFileSizeCommitLog=8388608\ndiskSpaceWarningLevelRatio=100\ndiskSpaceCleanForciblyRatio=100\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "standalone",
            "--namesrv-port",
            "0",
            "--broker-port",
            "0",
            "--store",
        ])
        .arg(dir.path().join("store"))
        .arg("-c")
        .arg(&conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let boot = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("boot success within 30 s");
        if line.contains("boot success") && line.contains("The broker[") {
            break line;
        }
    };
    assert!(
        boot.contains("broker-a") && boot.contains("serializeType=JSON"),
        "{boot}"
    );
    assert!(boot.contains("127.0.0.1:"), "{boot}");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut stopped = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        stopped |= line.contains("broker stopped (flushed, checkpoint written)");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(stopped, "the shutdown line was logged");
    assert!(
        dir.path().join("store/checkpoint").exists(),
        "checkpoint written"
    );
    assert!(
        !dir.path().join("store/abort").exists(),
        "clean shutdown leaves no abort marker"
    );
}

#[test]
fn bad_config_value_exits_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, "listenPort=notaport\n").unwrap();
    let out = Command::new(BIN)
        .args(["broker", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listenPort"), "{err}");
}
