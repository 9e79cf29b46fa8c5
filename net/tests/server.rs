//! Server and client over real loopback sockets: matching by opaque, out-of-order and oneway
//! replies, backpressure, limits, idle timeout, graceful shutdown, pushes, zero-copy bodies.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrocket_net::header::*;
use ferrocket_net::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn request_response_not_supported_and_bad_field() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();

    let req = RemotingCommand::request(ECHO)
        .with_ext("k", "v")
        .with_body(Body::Bytes("body".into()));
    let resp = client.invoke(&a, req, T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SUCCESS);
    assert!(resp.is_response());
    assert_eq!(&resp.ext_fields["k"], "v");
    assert_eq!(&resp.ext_fields["lang"], "JAVA");
    assert_eq!(resp.body.to_bytes(), "body");

    let resp = client
        .invoke(&a, RemotingCommand::request(4242), T)
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(resp.remark_str(), " request type 4242 not supported");

    let ok = RemotingCommand::request_with(
        RequestCode::GET_MAX_OFFSET,
        &GetMaxOffsetRequestHeader {
            topic: "t".into(),
            queue_id: 4,
            committed: None,
        },
    );
    let resp = client.invoke(&a, ok, T).await.unwrap();
    assert_eq!(
        OffsetResponseHeader::from_ext(&resp.ext_fields)
            .unwrap()
            .offset,
        40
    );

    let bad = RemotingCommand::request(RequestCode::GET_MAX_OFFSET)
        .with_ext("topic", "t")
        .with_ext("queueId", "four");
    let resp = client.invoke(&a, bad, T).await.unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    assert!(
        resp.remark_str().contains("queueId"),
        "{}",
        resp.remark_str()
    );

    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn binary_header_requests_get_json_replies() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = RemotingCommand::request(ECHO).with_ext("x", "1");
    req.opaque = 9;
    use tokio::io::AsyncWriteExt;
    s.write_all(&req.encode(SerializeType::RocketMq))
        .await
        .unwrap();
    let raw = read_raw_frame(&mut s).await.unwrap();
    assert_eq!(raw[0], 0, "type byte 0 (JSON)");
    let text = std::str::from_utf8(&raw[4..]).unwrap();
    assert!(
        text.starts_with(r#"{"code":0,"extFields":{"conn":"#),
        "{text}"
    );
    assert!(text.contains(r#""x":"1""#), "{text}");
    assert!(
        text.contains(r#""serializeTypeCurrentRPC":"JSON""#),
        "{text}"
    );
    assert!(text.contains(r#""language":"JAVA""#), "{text}");
    assert!(text.contains(r#""opaque":9"#), "{text}");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_answer_out_of_order_by_opaque() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut slow = RemotingCommand::request(SLOW).with_ext("ms", "1000");
    slow.opaque = 1;
    let mut fast = RemotingCommand::request(ECHO);
    fast.opaque = 2;
    // Both frames in one write: the server must split them itself.
    let mut both = slow.encode(SerializeType::Json).to_vec();
    both.extend_from_slice(&fast.encode(SerializeType::Json));
    use tokio::io::AsyncWriteExt;
    s.write_all(&both).await.unwrap();
    let first = read_frame(&mut s).await.unwrap();
    let second = read_frame(&mut s).await.unwrap();
    assert_eq!((first.opaque, second.opaque), (2, 1));
    assert_eq!(&second.ext_fields["ms"], "1000");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn oneway_flag_gets_no_reply_but_flag_zero_does() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut oneway = RemotingCommand::request(ECHO);
    oneway.flag = FLAG_ONEWAY;
    oneway.opaque = 5;
    write_cmd(&mut s, &oneway).await;
    // The C++ client's "oneway" UPDATE_CONSUMER_OFFSET arrives with flag 0: it is answered.
    let mut cpp = RemotingCommand::request(ECHO);
    cpp.opaque = 6;
    write_cmd(&mut s, &cpp).await;
    let resp = read_frame(&mut s).await.unwrap();
    assert_eq!(resp.opaque, 6, "only the flag-0 request is answered");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn inflight_bound_limits_concurrency() {
    let processor = TestProcessor::new();
    let config = ServerConfig {
        max_inflight_per_connection: 2,
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, processor.clone()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            let a = a.clone();
            tokio::spawn(async move {
                c.invoke(&a, RemotingCommand::request(SLOW).with_ext("ms", "30"), T)
                    .await
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap().code, 0);
    }
    let max = processor.max_running.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "max concurrent {max}");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn connection_limit_closes_extra_connections() {
    let config = ServerConfig {
        max_connections: 1,
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, TestProcessor::new()).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut req = RemotingCommand::request(ECHO);
    req.opaque = 1;
    write_cmd(&mut first, &req).await;
    assert!(read_frame(&mut first).await.is_some());
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(T, second.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "second connection closed");
    drop(first);
    // Once the first is gone a new one is served (the slot is freed asynchronously).
    let mut ok = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        write_cmd(&mut s, &req).await;
        if tokio::time::timeout(T, read_frame(&mut s))
            .await
            .ok()
            .flatten()
            .is_some()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(200),
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(T, s.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(150));
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_inflight_requests() {
    let processor = TestProcessor::new();
    let (addr, shutdown, task) = start(local_config(), processor.clone()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    let c = client.clone();
    let call = tokio::spawn(async move {
        c.invoke(&a, RemotingCommand::request(SLOW).with_ext("ms", "200"), T)
            .await
    });
    // Shut down only once the request is being processed.
    while processor.running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    shutdown.shutdown();
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.code, 0);
    tokio::time::timeout(T, task).await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

/// While the server shuts down, a client newer than V5_3_1 (version > 475) gets GO_AWAY (1500,
/// "please go away") for every new request, at once, while its in-flight request still gets its
/// real answer (Java's remoting server does the same). An older client's new request is not
/// read: it gets the in-flight answer, then the connection closes.
#[tokio::test]
async fn shutdown_answers_go_away_to_clients_that_understand_it() {
    for (version, go_away) in [(476, true), (475, false)] {
        let processor = TestProcessor::new();
        let (addr, shutdown, task) = start(local_config(), processor.clone()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut slow = RemotingCommand::request(SLOW).with_ext("ms", "300");
        slow.version = version;
        slow.opaque = 1;
        write_cmd(&mut s, &slow).await;
        while processor.running.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        shutdown.shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut next = RemotingCommand::request(ECHO);
        next.version = version;
        next.opaque = 2;
        write_cmd(&mut s, &next).await;
        let mut oneway = RemotingCommand::request(ECHO);
        oneway.version = version;
        oneway.opaque = 3;
        oneway.flag |= FLAG_ONEWAY;
        write_cmd(&mut s, &oneway).await;
        let mut got = Vec::new();
        while let Ok(Some(r)) = tokio::time::timeout(T, read_frame(&mut s)).await {
            got.push((r.opaque, r.code, r.remark_str().to_string()));
        }
        if go_away {
            assert_eq!(
                got,
                vec![
                    (2, ResponseCode::GO_AWAY, "please go away".to_string()),
                    (1, ResponseCode::SUCCESS, String::new()),
                ],
                "version {version}"
            );
        } else {
            assert_eq!(got.len(), 1, "version {version}: {got:?}");
            assert_eq!((got[0].0, got[0].1), (1, ResponseCode::SUCCESS));
        }
        tokio::time::timeout(T, task).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn client_reuses_and_reconnects() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    let c1 = client
        .invoke(&a, RemotingCommand::request(ECHO), T)
        .await
        .unwrap();
    let c2 = client
        .invoke(&a, RemotingCommand::request(ECHO), T)
        .await
        .unwrap();
    assert_eq!(
        c1.ext_fields["conn"], c2.ext_fields["conn"],
        "one connection reused"
    );
    client
        .invoke_oneway(&a, RemotingCommand::request(ECHO))
        .await
        .unwrap();
    shutdown.shutdown();
    task.await.unwrap();

    // Same port, new server: the next call reconnects.
    let config = ServerConfig {
        listen: addr,
        ..local_config()
    };
    let (_, shutdown, task) = start(config, TestProcessor::new()).await;
    let mut ok = None;
    for _ in 0..3 {
        if let Ok(r) = client.invoke(&a, RemotingCommand::request(ECHO), T).await {
            ok = Some(r);
            break;
        }
    }
    assert_eq!(ok.expect("reconnected").code, 0);
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn client_times_out() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let client = Client::new(ClientConfig::default());
    let r = client
        .invoke(
            &addr.to_string(),
            RemotingCommand::request(SLOW).with_ext("ms", "500"),
            Duration::from_millis(50),
        )
        .await;
    assert!(matches!(r, Err(WireError::Timeout { .. })), "{r:?}");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn server_pushes_oneway_requests_to_the_client() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = Client::new(ClientConfig {
        push_handler: Some(Arc::new(move |_addr: &str, cmd: RemotingCommand| {
            let _ = tx.send(cmd);
        })),
        ..ClientConfig::default()
    });
    let resp = client
        .invoke(&addr.to_string(), RemotingCommand::request(PUSH), T)
        .await
        .unwrap();
    assert_eq!(&resp.ext_fields["pushed"], "true");
    let push = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(push.code, RequestCode::NOTIFY_CONSUMER_IDS_CHANGED);
    assert!(push.is_oneway());
    assert_eq!(&push.ext_fields["consumerGroup"], "g");
    shutdown.shutdown();
    task.await.unwrap();
}

async fn zero_copy_through(backend: TransferBackend) {
    let len = 3 * 1024 * 1024 + 517;
    let (_tmp, file, data) = pattern_file(len, 0xfeed);
    let config = ServerConfig {
        transfer: backend,
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, TestProcessor::with_file(file, data.clone())).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    // Several regions, one tiny (copied), one spanning most of the file, odd offsets.
    for spans in [
        "7:100",
        "0:3145728",
        "1:65536,70000:1000000,2000000:1145728,3145000:1044",
    ] {
        let resp = client
            .invoke(
                &a,
                RemotingCommand::request(REGIONS).with_ext("spans", spans),
                T,
            )
            .await
            .unwrap();
        let mut expected = Vec::new();
        for s in spans.split(',') {
            let (o, l) = s.split_once(':').unwrap();
            let (o, l): (usize, usize) = (o.parse().unwrap(), l.parse().unwrap());
            expected.extend_from_slice(&data[o..o + l]);
        }
        let got = resp.body.to_bytes();
        assert_eq!(got.len(), expected.len(), "{backend:?} {spans}");
        assert!(got == expected, "{backend:?} {spans}: bytes differ");
    }
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn zero_copy_sendfile_body_is_byte_exact() {
    zero_copy_through(TransferBackend::Sendfile).await;
}

#[tokio::test]
async fn zero_copy_splice_body_is_byte_exact() {
    zero_copy_through(TransferBackend::Splice).await;
}

#[tokio::test]
async fn zero_copy_io_uring_body_is_byte_exact() {
    zero_copy_through(TransferBackend::IoUring).await;
}

#[tokio::test]
async fn copy_backend_body_is_byte_exact() {
    zero_copy_through(TransferBackend::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_under_a_slow_reader_handles_partial_writes() {
    // The client reads slowly in small pieces, so the socket buffer fills and sendfile/splice
    // return EAGAIN and partial counts many times.
    for backend in [
        TransferBackend::Sendfile,
        TransferBackend::Splice,
        TransferBackend::IoUring,
    ] {
        let len = 2 * 1024 * 1024;
        let (_tmp, file, data) = pattern_file(len, 0xabc);
        let config = ServerConfig {
            transfer: backend,
            ..local_config()
        };
        let (addr, shutdown, task) =
            start(config, TestProcessor::with_file(file, data.clone())).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = RemotingCommand::request(REGIONS).with_ext("spans", "0:2097152");
        req.opaque = 3;
        write_cmd(&mut s, &req).await;
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 7919];
        let mut reads = 0;
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "{backend:?}: early EOF");
            got.extend_from_slice(&chunk[..n]);
            reads += 1;
            if reads % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if got.len() >= 4 {
                let total = 4 + u32::from_be_bytes(got[..4].try_into().unwrap()) as usize;
                if got.len() >= total {
                    break;
                }
            }
        }
        let cmd = RemotingCommand::decode(bytes::Bytes::from(got).slice(4..)).unwrap();
        assert_eq!(cmd.opaque, 3);
        assert!(cmd.body.to_bytes() == data, "{backend:?}: bytes differ");
        shutdown.shutdown();
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_on_one_connection_match_by_opaque() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    let calls: Vec<_> = (0..500)
        .map(|i| {
            let c = client.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let body = format!("call-{i}").repeat(i % 50 + 1);
                let req = RemotingCommand::request(ECHO)
                    .with_ext("i", i.to_string())
                    .with_body(Body::Bytes(body.clone().into()));
                let resp = c.invoke(&a, req, T).await.unwrap();
                assert_eq!(&resp.ext_fields["i"], i.to_string());
                assert_eq!(resp.body.to_bytes(), body);
                resp.ext_fields["conn"].to_owned()
            })
        })
        .collect();
    let mut conns = std::collections::HashSet::new();
    for c in calls {
        conns.insert(c.await.unwrap());
    }
    assert_eq!(conns.len(), 1, "all calls shared one connection");
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn a_panicking_processor_costs_one_request_not_the_connection() {
    let config = ServerConfig {
        max_inflight_per_connection: 1,
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, TestProcessor::new()).await;
    let client = Client::new(ClientConfig::default());
    let a = addr.to_string();
    for req in [
        RemotingCommand::request(PANIC),
        RemotingCommand::request(PANIC).with_ext("sync", "1"),
    ] {
        let resp = client.invoke(&a, req, T).await.unwrap();
        assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
        // With one in-flight slot, a leaked slot would hang the next call.
        let ok = client
            .invoke(&a, RemotingCommand::request(ECHO), T)
            .await
            .unwrap();
        assert_eq!(ok.code, 0);
    }
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unframeable_reply_becomes_system_error() {
    struct Huge;
    impl Processor for Huge {
        fn process(
            &self,
            _: ConnectionHandle,
            req: RemotingCommand,
        ) -> BoxFuture<Option<RemotingCommand>> {
            let remark = "r".repeat(17 << 20);
            Box::pin(async move { Some(RemotingCommand::response_to(&req, 0, remark)) })
        }
    }
    let (addr, shutdown, task) = start(local_config(), Arc::new(Huge)).await;
    let client = Client::new(ClientConfig::default());
    let resp = client
        .invoke(&addr.to_string(), RemotingCommand::request(1), T)
        .await
        .unwrap();
    assert_eq!(resp.code, ResponseCode::SYSTEM_ERROR);
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn requests_answered_by_process_now_get_their_replies() {
    // Code 1: answered at once; code 2: panics before any future exists; code 3: a future.
    struct Now;
    impl Processor for Now {
        fn process(
            &self,
            _: ConnectionHandle,
            req: RemotingCommand,
        ) -> BoxFuture<Option<RemotingCommand>> {
            Box::pin(async move { Some(RemotingCommand::response_to(&req, 0, "later")) })
        }
        fn process_now(&self, conn: &ConnectionHandle, req: RemotingCommand) -> Processed {
            match req.code {
                1 => Processed::Now(Some(RemotingCommand::response_to(&req, 0, "now"))),
                2 => panic!("test processor: panic in process_now"),
                _ => Processed::Later(self.process(conn.clone(), req)),
            }
        }
    }
    let mut cfg = local_config();
    cfg.max_inflight_per_connection = 1;
    let (addr, shutdown, task) = start(cfg, Arc::new(Now)).await;
    let a = addr.to_string();
    let client = Client::new(ClientConfig::default());
    for _ in 0..3 {
        let r = client
            .invoke(&a, RemotingCommand::request(1), T)
            .await
            .unwrap();
        assert_eq!((r.code, r.remark.as_deref()), (0, Some("now")));
        // A panic costs this request only: SYSTEM_ERROR, and the one in-flight slot is back.
        let r = client
            .invoke(&a, RemotingCommand::request(2), T)
            .await
            .unwrap();
        assert_eq!(r.code, ResponseCode::SYSTEM_ERROR);
        let r = client
            .invoke(&a, RemotingCommand::request(3), T)
            .await
            .unwrap();
        assert_eq!((r.code, r.remark.as_deref()), (0, Some("later")));
    }
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn half_closed_peer_still_gets_its_answers() {
    use tokio::io::AsyncWriteExt;
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = RemotingCommand::request(SLOW).with_ext("ms", "100");
    req.opaque = 21;
    write_cmd(&mut s, &req).await;
    s.shutdown().await.unwrap();
    let resp = tokio::time::timeout(T, read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.opaque, 21);
    shutdown.shutdown();
    task.await.unwrap();
}

/// Holds every request until the gate opens, then all complete at once (as a SYNC_FLUSH group
/// commit completes a round of sends); remembers the connection.
struct GateProcessor {
    gate: tokio::sync::watch::Receiver<bool>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    conn: parking_lot::Mutex<Option<ConnectionHandle>>,
}

impl Processor for GateProcessor {
    fn process(
        &self,
        conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        *self.conn.lock() = Some(conn);
        let mut gate = self.gate.clone();
        let waiting = Arc::clone(&self.waiting);
        Box::pin(async move {
            waiting.fetch_add(1, Ordering::SeqCst);
            let _ = gate.wait_for(|open| *open).await;
            Some(RemotingCommand::success(&req))
        })
    }
}

/// Replies completed together by their own tasks leave in one batch, not one write each: the
/// writer, woken by the first, waits for the others (one worker thread, so tokio's LIFO slot
/// would otherwise run the writer right after each reply); and a lone request is answered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn replies_completed_together_leave_in_one_write() {
    use tokio::io::AsyncWriteExt;
    let (open, gate) = tokio::sync::watch::channel(false);
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p = Arc::new(GateProcessor {
        gate,
        waiting: Arc::clone(&waiting),
        conn: parking_lot::Mutex::new(None),
    });
    let (addr, shutdown, task) = start(local_config(), Arc::clone(&p) as Arc<dyn Processor>).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    const N: i32 = 16;
    let mut all = Vec::new();
    for opaque in 1..=N {
        let mut r = RemotingCommand::request(ECHO);
        r.opaque = opaque;
        all.extend_from_slice(&r.encode(SerializeType::Json));
    }
    s.write_all(&all).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while waiting.load(Ordering::SeqCst) < N as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests not all in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let conn = p.conn.lock().clone().unwrap();
    let before = conn.write_batches();
    open.send(true).unwrap();
    let mut seen = Vec::new();
    for _ in 0..N {
        let r = tokio::time::timeout(T, read_frame(&mut s))
            .await
            .unwrap()
            .unwrap();
        seen.push(r.opaque);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
    let batches = conn.write_batches() - before;
    assert!(
        batches <= 2,
        "{N} replies completed together took {batches} writes"
    );
    // Nothing else in flight: answered without waiting for anything.
    let mut r = RemotingCommand::request(ECHO);
    r.opaque = 99;
    write_cmd(&mut s, &r).await;
    let one = tokio::time::timeout(T, read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.opaque, 99);
    shutdown.shutdown();
    task.await.unwrap();
}
