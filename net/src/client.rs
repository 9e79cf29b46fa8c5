//! The remoting client: request/response with timeouts, oneway, one reused connection per
//! address, reconnect on the next call after a connection dies.

use std::collections::HashMap;
use std::fmt;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Body, RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::error::{Result, WireError};
use crate::frame::{self, SerializeType, FRAME_LEN_MAX, LEN_PREFIX_BYTES};

/// Called with requests the server pushes (NOTIFY_CONSUMER_IDS_CHANGED, ...): the address and
/// the command.
pub type PushHandler = Arc<dyn Fn(&str, RemotingCommand) + Send + Sync>;

/// Frames queued to one connection's writer before `invoke` waits.
const WRITE_QUEUE_FRAMES: usize = 1024;

/// Bodies at least this long are not copied behind the header: the frame goes to the writer as
/// two buffers, written by the same writev(2). Below it one copy is cheaper than a second iovec.
const BODY_BY_REFERENCE_BYTES: usize = 4096;

/// One frame for the writer: everything before the body (or the whole frame), and the body when
/// it is sent from the caller's buffer (empty otherwise).
struct OutFrame {
    head: Bytes,
    body: Bytes,
}

impl OutFrame {
    fn of(cmd: &RemotingCommand, serialize_type: SerializeType) -> OutFrame {
        match &cmd.body {
            // A 16 KiB load-tool body was copied here once more, into the frame buffer.
            Body::Bytes(b) if b.len() >= BODY_BY_REFERENCE_BYTES => OutFrame {
                head: Bytes::from(cmd.encode_head(serialize_type)),
                body: b.clone(),
            },
            _ => OutFrame {
                head: cmd.encode(serialize_type),
                body: Bytes::new(),
            },
        }
    }
}

#[derive(Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Header encoding of requests (JSON unless testing the binary header).
    pub serialize_type: SerializeType,
    pub frame_len_max: usize,
    pub push_handler: Option<PushHandler>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            serialize_type: SerializeType::Json,
            frame_len_max: FRAME_LEN_MAX,
            push_handler: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("serialize_type", &self.serialize_type)
            .field("frame_len_max", &self.frame_len_max)
            .field("push_handler", &self.push_handler.is_some())
            .finish()
    }
}

/// Cheap to clone; all clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    config: ClientConfig,
    conns: tokio::sync::Mutex<HashMap<String, Arc<ClientConn>>>,
    next_opaque: AtomicI32,
}

type Pending = Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>, OpaqueHash>>;

/// Hashes the opaques of our own requests: keys are chosen by us (sequential), so a
/// multiplicative hash cannot be driven into collisions by the server, and costs a few
/// instructions where SipHash cost ~100 per insert and per lookup.
type OpaqueHash = std::hash::BuildHasherDefault<OpaqueHasher>;

#[derive(Default)]
struct OpaqueHasher(u64);

impl std::hash::Hasher for OpaqueHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i32(&mut self, v: i32) {
        // Fibonacci hashing: the high bits hashbrown uses for its control bytes vary too.
        self.0 = u64::from(v as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct ClientConn {
    addr: String,
    out: mpsc::Sender<OutFrame>,
    pending: Arc<Pending>,
    closed: Arc<AtomicBool>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(ClientInner {
                config,
                conns: tokio::sync::Mutex::new(HashMap::new()),
                next_opaque: AtomicI32::new(0),
            }),
        }
    }

    /// Sends `cmd` to `addr` ("host:port") and waits for the response with its opaque.
    pub async fn invoke(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr, timeout).await?;
        cmd.opaque = self.next_opaque();
        cmd.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let opaque = cmd.opaque;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(opaque, tx);
        let frame = OutFrame::of(&cmd, self.inner.config.serialize_type);
        let sent = async {
            conn.out
                .send(frame)
                .await
                .map_err(|_| WireError::ConnectionClosed(addr.to_owned()))?;
            rx.await
                .map_err(|_| WireError::ConnectionClosed(addr.to_owned()))
        };
        match tokio::time::timeout(timeout, sent).await {
            Ok(r) => {
                if r.is_err() {
                    conn.pending.lock().remove(&opaque);
                }
                r
            }
            Err(_) => {
                conn.pending.lock().remove(&opaque);
                Err(WireError::Timeout {
                    addr: addr.to_owned(),
                    opaque,
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    /// Sends `cmd` with the ONEWAY flag; returns once it is queued on the connection.
    pub async fn invoke_oneway(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        let conn = self
            .connection(addr, self.inner.config.connect_timeout)
            .await?;
        cmd.opaque = self.next_opaque();
        cmd.flag = (cmd.flag | FLAG_ONEWAY) & !FLAG_RESPONSE;
        conn.out
            .send(OutFrame::of(&cmd, self.inner.config.serialize_type))
            .await
            .map_err(|_| WireError::ConnectionClosed(addr.to_owned()))
    }

    /// Closes every connection (pending calls fail with `ConnectionClosed`).
    pub async fn close_all(&self) {
        let conns: Vec<_> = self.inner.conns.lock().await.drain().collect();
        for (_, c) in conns {
            c.closed.store(true, Ordering::Release);
        }
    }

    fn next_opaque(&self) -> i32 {
        self.inner.next_opaque.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// The live connection to `addr`, connecting (again) if there is none.
    async fn connection(&self, addr: &str, timeout: Duration) -> Result<Arc<ClientConn>> {
        let mut conns = self.inner.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if !c.closed.load(Ordering::Acquire) {
                return Ok(Arc::clone(c));
            }
            conns.remove(addr);
        }
        let connect_timeout = timeout.min(self.inner.config.connect_timeout);
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| WireError::Timeout {
                addr: addr.to_owned(),
                opaque: -1,
                timeout_ms: connect_timeout.as_millis() as u64,
            })?
            .map_err(WireError::io("connect"))?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (out, out_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
        let conn = Arc::new(ClientConn {
            addr: addr.to_owned(),
            out,
            pending: Arc::new(Mutex::new(HashMap::default())),
            closed: Arc::new(AtomicBool::new(false)),
        });
        tokio::spawn(client_writer(
            wr,
            out_rx,
            Arc::clone(&conn.pending),
            Arc::clone(&conn.closed),
        ));
        tokio::spawn(client_reader(
            rd,
            conn.addr.clone(),
            Arc::clone(&conn.pending),
            Arc::clone(&conn.closed),
            self.inner.config.clone(),
        ));
        conns.insert(addr.to_owned(), Arc::clone(&conn));
        Ok(conn)
    }
}

/// Frames queued together are coalesced into one write up to this many bytes.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// Most frames gathered into one writev(2).
const WRITE_BATCH_FRAMES_MAX: usize = 64;

/// Writes queued frames; frames waiting in the queue go out together in one writev(2), without
/// copying them into a staging buffer (a 16 KiB body used to be copied once more here).
async fn client_writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<OutFrame>,
    pending: Arc<Pending>,
    closed: Arc<AtomicBool>,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(2 * WRITE_BATCH_FRAMES_MAX);
    let push = |batch: &mut Vec<Bytes>, f: OutFrame| {
        let n = f.head.len() + f.body.len();
        batch.push(f.head);
        if !f.body.is_empty() {
            batch.push(f.body);
        }
        n
    };
    while let Some(first) = rx.recv().await {
        if closed.load(Ordering::Acquire) {
            break;
        }
        // With other requests in flight, let every task that is ready to run queue its frame
        // first: the first frame woke this task, which (tokio's LIFO slot) would otherwise run
        // before the other callers woken by the same batch of responses, and write one frame
        // per writev. A pipelining caller (the load tool, 2 x 32 in flight) made one writev per
        // request; on loopback each write also runs the receiver's TCP path, so each saved one
        // is microseconds. A lone request goes out at once: the yield would cost it a pass of
        // the scheduler (~6 us more ack latency at one in flight).
        if pending.lock().len() > 1 {
            tokio::task::yield_now().await;
        }
        let mut bytes = push(&mut batch, first);
        let mut frames = 1;
        while bytes < WRITE_BATCH_BYTES_MAX && frames < WRITE_BATCH_FRAMES_MAX {
            match rx.try_recv() {
                Ok(frame) => {
                    bytes += push(&mut batch, frame);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        let written = write_all_vectored(&mut wr, &batch).await;
        batch.clear();
        if written.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Release);
}

/// Writes every byte of `frames` in order, with as few writev(2) calls as the socket allows.
async fn write_all_vectored(wr: &mut OwnedWriteHalf, frames: &[Bytes]) -> std::io::Result<()> {
    let (mut idx, mut off) = (0usize, 0usize);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(frames.len());
    while idx < frames.len() {
        slices.clear();
        let rest = frames.get(idx..).unwrap_or_default();
        for (i, f) in rest.iter().enumerate() {
            let from = if i == 0 { off } else { 0 };
            slices.push(IoSlice::new(f.get(from..).unwrap_or_default()));
        }
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(f) = frames.get(idx) else { break };
            let left = f.len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
        // Empty frames (none are sent, but be safe) are skipped.
        while frames.get(idx).is_some_and(|f| f.len() == off) {
            idx += 1;
            off = 0;
        }
    }
    Ok(())
}

async fn client_reader(
    mut rd: OwnedReadHalf,
    addr: String,
    pending: Arc<Pending>,
    closed: Arc<AtomicBool>,
    config: ClientConfig,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match frame::check(&buf, config.frame_len_max) {
                Ok(Some(total)) => {
                    let frame = buf.split_to(total).freeze().slice(LEN_PREFIX_BYTES..);
                    let Ok(cmd) = RemotingCommand::decode(frame) else {
                        tracing::warn!(%addr, "undecodable frame from server; closing");
                        break 'read;
                    };
                    if cmd.is_response() {
                        if let Some(tx) = pending.lock().remove(&cmd.opaque) {
                            let _ = tx.send(cmd);
                        }
                    } else if let Some(h) = &config.push_handler {
                        h(&addr, cmd);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "bad frame from server; closing");
                    break 'read;
                }
            }
        }
        if closed.load(Ordering::Acquire) {
            break;
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    closed.store(true, Ordering::Release);
    // Dropping the senders wakes every waiter with ConnectionClosed.
    pending.lock().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames with big bodies go out as header + body buffers and small ones as one buffer, mixed
    /// in the same writev batches: the peer must read exactly the frames that were sent, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_and_small_bodies_arrive_intact_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sizes: Vec<usize> = (0..200)
            .map(|i| match i % 5 {
                0 => BODY_BY_REFERENCE_BYTES,
                1 => BODY_BY_REFERENCE_BYTES - 1,
                2 => 70_000 + i,
                3 => 0,
                _ => 17 * i,
            })
            .collect();
        let body_of =
            |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 31 + j) as u8).collect() };
        let expect: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| body_of(i, n))
            .collect();
        let n = expect.len();
        let reader = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            while got.len() < n {
                while let Some(total) = frame::check(&buf, FRAME_LEN_MAX).unwrap() {
                    let f = buf.split_to(total).freeze().slice(LEN_PREFIX_BYTES..);
                    let cmd = RemotingCommand::decode(f).unwrap();
                    got.push((
                        cmd.ext_fields.get("i").map(str::to_owned),
                        cmd.body.to_bytes(),
                    ));
                }
                if got.len() < n && sock.read_buf(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
            got
        });
        let client = Client::new(ClientConfig::default());
        for (i, body) in expect.iter().enumerate() {
            let req = RemotingCommand::request(10)
                .with_ext("i", i.to_string())
                .with_body(Body::Bytes(Bytes::from(body.clone())));
            client.invoke_oneway(&addr, req).await.unwrap();
        }
        let got = reader.await.unwrap();
        assert_eq!(got.len(), n);
        for (i, (ext, body)) in got.iter().enumerate() {
            assert_eq!(ext.as_deref(), Some(i.to_string().as_str()));
            assert!(body[..] == expect[i][..], "frame {i}: body differs");
        }
        client.close_all().await;
    }
}
