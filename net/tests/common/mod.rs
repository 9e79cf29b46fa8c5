//! Shared test fixtures: a processor with a few test codes, file regions, raw frame I/O.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrocket_net::header::*;
use ferrocket_net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ECHO: i32 = 1000;
pub const SLOW: i32 = 1001;
pub const PUSH: i32 = 1002;
pub const REGIONS: i32 = 1003;
pub const PANIC: i32 = 1004;

/// A file region backed by a real file, with its bytes kept in memory for `as_bytes`.
pub struct TestRegion {
    pub file: Arc<File>,
    pub offset: u64,
    pub data: Vec<u8>,
}

impl FileRegion for TestRegion {
    fn file(&self) -> &File {
        &self.file
    }
    fn file_offset(&self) -> u64 {
        self.offset
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A temp file of `len` pattern bytes.
pub fn pattern_file(len: usize, seed: u64) -> (tempfile::NamedTempFile, Arc<File>, Vec<u8>) {
    let data = pattern(len, seed);
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(&data).unwrap();
    tmp.flush().unwrap();
    let file = Arc::new(File::open(tmp.path()).unwrap());
    (tmp, file, data)
}

pub struct TestProcessor {
    pub running: Arc<AtomicUsize>,
    pub max_running: AtomicUsize,
    pub file: Option<(Arc<File>, Vec<u8>)>,
}

impl TestProcessor {
    pub fn new() -> Arc<Self> {
        Arc::new(TestProcessor {
            running: Arc::new(AtomicUsize::new(0)),
            max_running: AtomicUsize::new(0),
            file: None,
        })
    }
    pub fn with_file(file: Arc<File>, data: Vec<u8>) -> Arc<Self> {
        Arc::new(TestProcessor {
            running: Arc::new(AtomicUsize::new(0)),
            max_running: AtomicUsize::new(0),
            file: Some((file, data)),
        })
    }
}

impl Processor for TestProcessor {
    fn process(
        &self,
        conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        if req.code == PANIC {
            if req.ext_fields.contains_key("sync") {
                panic!("test processor: synchronous panic");
            }
            return Box::pin(async move { panic!("test processor: panic in the future") });
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let resp = match req.code {
            ECHO => {
                let mut r =
                    RemotingCommand::success(&req).with_body(Body::Bytes(req.body.to_bytes()));
                r.ext_fields = req.ext_fields.clone();
                r.ext_fields.insert("conn".into(), conn.id().to_string());
                r.ext_fields.insert("lang".into(), conn.language());
                Some(r)
            }
            PUSH => {
                let push = RemotingCommand::request_with(
                    RequestCode::NOTIFY_CONSUMER_IDS_CHANGED,
                    &NotifyConsumerIdsChangedRequestHeader {
                        consumer_group: "g".into(),
                    },
                );
                let ok = conn.send_oneway(push).is_ok();
                Some(RemotingCommand::success(&req).with_ext("pushed", ok.to_string()))
            }
            REGIONS => {
                let (file, data) = self.file.clone().expect("processor has a file");
                // ext "spans" = "off:len,off:len"
                let spans = req.ext_fields.get("spans").unwrap_or_default().to_owned();
                let regions: Vec<Arc<dyn FileRegion>> = spans
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let (o, l) = s.split_once(':').unwrap();
                        let (o, l): (usize, usize) = (o.parse().unwrap(), l.parse().unwrap());
                        Arc::new(TestRegion {
                            file: Arc::clone(&file),
                            offset: o as u64,
                            data: data[o..o + l].to_vec(),
                        }) as Arc<dyn FileRegion>
                    })
                    .collect();
                Some(RemotingCommand::success(&req).with_body(Body::Regions(regions)))
            }
            RequestCode::GET_MAX_OFFSET => {
                match GetMaxOffsetRequestHeader::from_ext(&req.ext_fields) {
                    Ok(h) => Some(RemotingCommand::success(&req).with_header(
                        &OffsetResponseHeader {
                            offset: i64::from(h.queue_id) * 10,
                        },
                    )),
                    Err(e) => Some(RemotingCommand::bad_header(&req, &e)),
                }
            }
            SLOW => None, // handled below
            _ => Some(RemotingCommand::not_supported(&req)),
        };
        let running = Arc::clone(&self.running);
        if req.code == SLOW {
            let ms: u64 = req
                .ext_fields
                .get("ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            return Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                let mut r = RemotingCommand::success(&req);
                r.ext_fields = req.ext_fields.clone();
                Some(r)
            });
        }
        running.fetch_sub(1, Ordering::SeqCst);
        Box::pin(async move { resp })
    }
}

pub async fn start(
    config: ServerConfig,
    processor: Arc<dyn Processor>,
) -> (
    std::net::SocketAddr,
    ShutdownHandle,
    tokio::task::JoinHandle<()>,
) {
    let server = Server::bind(config, processor).await.unwrap();
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let task = tokio::spawn(async move {
        server.serve().await.unwrap();
    });
    (addr, handle, task)
}

pub fn local_config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    }
}

/// Reads one frame from a raw socket; `None` on EOF.
pub async fn read_frame(s: &mut TcpStream) -> Option<RemotingCommand> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.ok()?;
    Some(RemotingCommand::decode(Bytes::from(buf)).expect("server frames decode"))
}

/// Raw header bytes of the next frame (for checking reply shape).
pub async fn read_raw_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

pub async fn write_cmd(s: &mut TcpStream, cmd: &RemotingCommand) {
    s.write_all(&cmd.encode(SerializeType::Json)).await.unwrap();
}

/// A fresh connection gets an answer to a valid request: the server is alive.
pub async fn assert_alive(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = RemotingCommand::request(ECHO);
    req.opaque = 77;
    write_cmd(&mut s, &req).await;
    let resp = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(resp.opaque, 77);
    assert_eq!(resp.code, ResponseCode::SUCCESS);
}
