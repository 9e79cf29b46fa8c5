//! One server-side connection: a reader that decodes pipelined frames and dispatches them, a
//! writer that sends responses (in completion order, matched by opaque) and pushes, and the
//! `ConnectionHandle` processors keep to talk back to the client.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::command::{Body, RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::error::{Result, WireError};
use crate::frame::{self, SerializeType, LEN_PREFIX_BYTES};
use crate::ratelimit::LogLimiter;
use crate::server::{wait_true, Processed, Shared};
use crate::transfer::{send_all, ConnTransfer, TransferBackend, COPY_THRESHOLD_BYTES};

/// Initial receive buffer; grows to the size of the frame being received.
const READ_BUF_BYTES: usize = 64 * 1024;
/// Small responses queued back to back are coalesced into one send up to this size.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// Room in the outgoing queue beyond the in-flight bound, for server → client pushes.
const PUSH_QUEUE_EXTRA: usize = 64;

/// Clients newer than this version (RocketMQ's V5_3_1 ordinal) are answered GO_AWAY (1500) while
/// the server shuts down, as Java's remoting server does: they reconnect and retry at once
/// instead of waiting for a reply that will not come.
const GO_AWAY_AFTER_VERSION: i32 = 475;
/// During shutdown, a connection whose client understands GO_AWAY keeps reading (and answering
/// GO_AWAY) at least this long, and until its in-flight requests are answered (at most the
/// shutdown grace).
const GO_AWAY_LINGER: Duration = Duration::from_millis(500);

static DECODE_ERR_LOG: LogLimiter = LogLimiter::new(10_000);
static WRITE_ERR_LOG: LogLimiter = LogLimiter::new(10_000);
static PUSH_FULL_LOG: LogLimiter = LogLimiter::new(10_000);

/// A cheap handle on one client connection, for processors: who it is, and a way to push
/// server → client requests (NOTIFY_CONSUMER_IDS_CHANGED, ...). Equality and hash are by id.
#[derive(Clone)]
pub struct ConnectionHandle {
    inner: Arc<ConnInner>,
}

struct ConnInner {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    out: mpsc::Sender<RemotingCommand>,
    /// Language and version of the first request (clients do not change them).
    client: Mutex<Option<(String, i32)>>,
    next_opaque: AtomicI32,
    closed: watch::Sender<bool>,
    /// Milliseconds since `born` of the last read or write.
    last_activity_ms: AtomicU64,
    born: Instant,
    /// Times the writer took the replies queued so far and wrote them (one write unless they
    /// exceed a batch or carry a zero-copy body).
    write_batches: AtomicU64,
}

impl ConnInner {
    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.born.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_activity_ms.load(Ordering::Relaxed)))
    }
    /// Whether the client (by its first request's version) is one Java answers GO_AWAY.
    fn understands_go_away(&self) -> bool {
        self.client
            .lock()
            .as_ref()
            .is_some_and(|(_, v)| *v > GO_AWAY_AFTER_VERSION)
    }
}

impl ConnectionHandle {
    /// A handle not attached to any socket whose pushes land in the returned receiver, for
    /// tests that check what a processor pushes (NOTIFY_CONSUMER_IDS_CHANGED, ...).
    pub fn detached_with_outbox(
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        capacity: usize,
    ) -> (ConnectionHandle, mpsc::Receiver<RemotingCommand>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (closed, _) = watch::channel(false);
        let handle = ConnectionHandle {
            inner: Arc::new(ConnInner {
                id,
                peer,
                local,
                out: tx,
                client: Mutex::new(None),
                next_opaque: AtomicI32::new(1),
                closed,
                last_activity_ms: AtomicU64::new(0),
                born: Instant::now(),
                write_batches: AtomicU64::new(0),
            }),
        };
        (handle, rx)
    }

    /// A handle not attached to any socket, for processors' unit tests: pushes fail with
    /// `ConnectionClosed` (the receiver is dropped), everything else answers normally.
    pub fn detached(id: u64, peer: SocketAddr, local: SocketAddr) -> ConnectionHandle {
        let (tx, _rx) = mpsc::channel(1);
        let (closed, _) = watch::channel(false);
        ConnectionHandle {
            inner: Arc::new(ConnInner {
                id,
                peer,
                local,
                out: tx,
                client: Mutex::new(None),
                next_opaque: AtomicI32::new(1),
                closed,
                last_activity_ms: AtomicU64::new(0),
                born: Instant::now(),
                write_batches: AtomicU64::new(0),
            }),
        }
    }

    /// Server-unique connection number (starts at 1).
    pub fn id(&self) -> u64 {
        self.inner.id
    }
    /// How many times the writer has taken and written the queued replies so far (diagnostics
    /// and tests: replies completed together should leave together).
    pub fn write_batches(&self) -> u64 {
        self.inner.write_batches.load(Ordering::Relaxed)
    }
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }
    /// Language of the client's requests ("JAVA", "CPP", ...); "" before the first request.
    pub fn language(&self) -> String {
        self.inner
            .client
            .lock()
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }
    /// Version of the client's requests; 0 before the first request.
    pub fn version(&self) -> i32 {
        self.inner.client.lock().as_ref().map_or(0, |c| c.1)
    }

    /// Queues a server → client oneway request. The opaque is assigned here and the flag set
    /// to ONEWAY. Never waits: a full queue (client not reading) is `Backpressure`.
    pub fn send_oneway(&self, mut cmd: RemotingCommand) -> Result<()> {
        if self.is_closed() {
            return Err(WireError::ConnectionClosed(self.inner.peer.to_string()));
        }
        cmd.flag = (cmd.flag | FLAG_ONEWAY) & !FLAG_RESPONSE;
        cmd.opaque = self.inner.next_opaque.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        self.inner.out.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                if let Some(n) = PUSH_FULL_LOG.allow() {
                    tracing::warn!(peer = %self.inner.peer, suppressed = n, "push queue full");
                }
                WireError::Backpressure
            }
            mpsc::error::TrySendError::Closed(_) => {
                WireError::ConnectionClosed(self.inner.peer.to_string())
            }
        })
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Asks the connection to close (queued responses are still written).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }
}

impl PartialEq for ConnectionHandle {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}
impl Eq for ConnectionHandle {}
impl std::hash::Hash for ConnectionHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state)
    }
}

impl fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.inner.id)
            .field("peer", &self.inner.peer)
            .finish()
    }
}

/// Why a connection's reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    PeerClosed,
    Idle,
    Undecodable,
    ReadError,
    Closed,
    Shutdown,
}

/// Serves one accepted connection to the end.
pub(crate) async fn run(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.config.listen);
    let (rd, wr) = stream.into_split();
    let inflight_max = shared.config.max_inflight_per_connection.max(1);
    let (tx, rx) = mpsc::channel(inflight_max + PUSH_QUEUE_EXTRA);
    let (closed, _) = watch::channel(false);
    let handle = ConnectionHandle {
        inner: Arc::new(ConnInner {
            id,
            peer,
            local,
            out: tx,
            client: Mutex::new(None),
            next_opaque: AtomicI32::new(1),
            closed,
            last_activity_ms: AtomicU64::new(0),
            born: Instant::now(),
            write_batches: AtomicU64::new(0),
        }),
    };
    tracing::debug!(id, %peer, "connection open");
    let inflight = Arc::new(Semaphore::new(inflight_max));
    let writer = tokio::spawn(write_loop(
        wr,
        rx,
        shared.transfer.for_connection(),
        handle.clone(),
        (Arc::clone(&inflight), inflight_max),
    ));
    let stop = read_loop(&shared, rd, &handle, (&inflight, inflight_max)).await;
    if matches!(stop, Stop::Shutdown | Stop::PeerClosed) {
        // Let in-flight requests finish so their responses go out before the socket closes
        // (a peer that only half-closed still reads them).
        let all = u32::try_from(inflight_max).unwrap_or(u32::MAX);
        let _ =
            tokio::time::timeout(shared.config.shutdown_grace, inflight.acquire_many(all)).await;
    }
    handle.close();
    let _ = writer.await;
    tracing::debug!(id, %peer, ?stop, "connection closed");
    shared.processor.on_close(&handle);
}

async fn read_loop(
    shared: &Arc<Shared>,
    mut rd: OwnedReadHalf,
    handle: &ConnectionHandle,
    (inflight, inflight_max): (&Arc<Semaphore>, usize),
) -> Stop {
    let frame_len_max = shared.config.frame_len_max;
    let idle = shared.config.idle_timeout;
    let mut shutdown = shared.shutdown.clone();
    let mut closed = handle.inner.closed.subscribe();
    let mut buf = BytesMut::with_capacity(READ_BUF_BYTES);
    // One idle timer for the connection's life, re-armed only when it fires early (the
    // connection was active meanwhile): a new timer per read registered and removed an entry in
    // the timer wheel each time.
    let idle_timer = tokio::time::sleep(idle.saturating_sub(handle.inner.idle_for()));
    tokio::pin!(idle_timer);
    // Set when the server shuts down and this connection's client understands GO_AWAY: from
    // then on every request is answered GO_AWAY, until the in-flight ones are answered and
    // GO_AWAY_LINGER has passed (the first instant), or the grace runs out (the second).
    let mut going_away: Option<(tokio::time::Instant, tokio::time::Instant)> = None;
    loop {
        loop {
            match frame::check(&buf, frame_len_max) {
                Ok(Some(total)) => {
                    let frame = buf.split_to(total).freeze().slice(LEN_PREFIX_BYTES..);
                    match RemotingCommand::decode(frame) {
                        Ok(cmd) if going_away.is_some() => {
                            if cmd.version <= GO_AWAY_AFTER_VERSION {
                                // An older client's request is not read during shutdown.
                                return Stop::Shutdown;
                            }
                            go_away(handle, cmd).await;
                        }
                        Ok(cmd) => {
                            if !dispatch(shared, handle, inflight, cmd, &mut closed).await {
                                return Stop::Closed;
                            }
                        }
                        Err(e) => {
                            log_undecodable(handle, &e);
                            return Stop::Undecodable;
                        }
                    }
                }
                Ok(None) => {
                    // Length already validated by check(): room for the whole frame at once.
                    let want = buf.first_chunk::<LEN_PREFIX_BYTES>().map_or(0, |p| {
                        frame::frame_total(i32::from_be_bytes(*p), frame_len_max).unwrap_or(0)
                    });
                    make_room(&mut buf, want);
                    break;
                }
                Err(e) => {
                    log_undecodable(handle, &e);
                    return Stop::Undecodable;
                }
            }
        }
        tokio::select! {
            biased;
            _ = wait_true(&mut shutdown), if going_away.is_none() => {
                if !handle.inner.understands_go_away() {
                    return Stop::Shutdown;
                }
                let now = tokio::time::Instant::now();
                going_away = Some((now + GO_AWAY_LINGER, now + shared.config.shutdown_grace));
                tracing::debug!(peer = %handle.inner.peer, "shutting down: answering GO_AWAY");
            }
            _ = wait_true(&mut closed) => return Stop::Closed,
            () = drained(inflight, inflight_max, going_away), if going_away.is_some() => {
                return Stop::Shutdown;
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return Stop::PeerClosed,
                Ok(_) => handle.inner.touch(),
                Err(e) => {
                    tracing::debug!(peer = %handle.inner.peer, error = %e, "read failed");
                    return Stop::ReadError;
                }
            },
            () = &mut idle_timer => {
                let idle_for = handle.inner.idle_for();
                if idle_for >= idle {
                    tracing::info!(peer = %handle.inner.peer, idle_s = idle.as_secs(),
                        "closing idle connection");
                    return Stop::Idle;
                }
                idle_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + (idle - idle_for));
            }
        }
    }
}

/// Resolves once `going_away`'s linger has passed and every one of the connection's `max`
/// in-flight permits is free (all its requests answered), or at the grace deadline.
async fn drained(
    inflight: &Semaphore,
    max: usize,
    going_away: Option<(tokio::time::Instant, tokio::time::Instant)>,
) {
    let Some((linger, grace)) = going_away else {
        return std::future::pending().await;
    };
    tokio::time::sleep_until(linger).await;
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    // The permits are dropped at once: in this mode nothing else takes them.
    let _ = tokio::time::timeout_at(grace, inflight.acquire_many(all)).await;
}

/// Answers `req` GO_AWAY (1500, Java's remark), unless it is oneway or a response.
async fn go_away(handle: &ConnectionHandle, req: RemotingCommand) {
    if req.is_response() || req.is_oneway() {
        return;
    }
    let pending = Pending {
        oneway: false,
        opaque: req.opaque,
        code: req.code,
        peer: handle.inner.peer,
    };
    let resp = RemotingCommand::response(
        crate::header::codes::ResponseCode::GO_AWAY,
        "please go away".to_string(),
    );
    pending.reply(&handle.inner.out, Some(resp)).await;
}

/// Spare room below which the reader moves on to a new buffer rather than reading a few bytes.
const READ_SPARE_MIN: usize = 8 * 1024;

/// Makes sure `buf` (holding the start of the next frame, possibly nothing) can take the rest of a
/// frame of `want` bytes (0 if its length is not known yet) and at least [`READ_SPARE_MIN`] more
/// bytes. If it cannot, the unread bytes move to a new buffer of at least [`READ_BUF_BYTES`].
///
/// Not `BytesMut::reserve`: the frames split off the buffer keep its allocation shared, and when
/// the tail holds more than the consumed head, `reserve` grows the allocation in place, copying
/// everything before the tail along with it and doubling the capacity. Callgrind of the broker
/// under 16 KiB sends counted ~4,800 instructions per message in that copy, as much as the
/// store's own copy of the body (2026-11-22).
fn make_room(buf: &mut BytesMut, want: usize) {
    let target = want.max(buf.len() + READ_SPARE_MIN);
    if buf.capacity() >= target {
        return;
    }
    let mut fresh = BytesMut::with_capacity(target.max(READ_BUF_BYTES));
    fresh.extend_from_slice(buf);
    *buf = fresh;
}

fn log_undecodable(handle: &ConnectionHandle, e: &WireError) {
    if let Some(n) = DECODE_ERR_LOG.allow() {
        tracing::warn!(peer = %handle.inner.peer, error = %e, suppressed = n,
            "undecodable frame; closing this connection");
    }
}

/// Hands one request to the processor. Waits for an in-flight slot first: while it waits,
/// nothing more is read from the socket. Returns false if the connection closed.
///
/// The processor's future is polled once right here, on the reader's task: most requests (an
/// ASYNC_FLUSH send, a route query, an offset update) complete on that first poll, and their reply
/// is queued without spawning anything. Only a future that is still pending (a long-polling pull,
/// a SYNC_FLUSH send waiting for its group commit) moves to a task of its own. Two task spawns
/// per request (one for the request, one to isolate panics) were ~3k instructions and two
/// cross-task wake-ups per message on the broker (callgrind, 2026-11-21).
async fn dispatch(
    shared: &Arc<Shared>,
    handle: &ConnectionHandle,
    inflight: &Arc<Semaphore>,
    req: RemotingCommand,
    closed: &mut watch::Receiver<bool>,
) -> bool {
    if req.is_response() {
        // Answers to our oneway pushes should not exist; a response to nothing is dropped.
        tracing::debug!(peer = %handle.inner.peer, opaque = req.opaque, "unexpected response");
        return true;
    }
    {
        let mut client = handle.inner.client.lock();
        if client.is_none() {
            *client = Some((req.language.clone(), req.version));
        }
    }
    let permit = match Arc::clone(inflight).try_acquire_owned() {
        Ok(p) => p,
        Err(tokio::sync::TryAcquireError::Closed) => return false,
        Err(tokio::sync::TryAcquireError::NoPermits) => tokio::select! {
            p = Arc::clone(inflight).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
            _ = wait_true(closed) => return false,
        },
    };
    let pending = Pending {
        oneway: req.is_oneway(),
        opaque: req.opaque,
        code: req.code,
        peer: handle.inner.peer,
    };
    let processor = Arc::clone(&shared.processor);
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        processor.process_now(handle, req)
    }));
    let mut fut = match started {
        Ok(Processed::Later(fut)) => CatchUnwind(fut),
        Ok(Processed::Now(resp)) => {
            pending.reply(&handle.inner.out, resp).await;
            drop(permit);
            return true;
        }
        Err(_) => {
            let resp = pending.panicked();
            pending.reply(&handle.inner.out, resp).await;
            drop(permit);
            return true;
        }
    };
    // First poll inline, with the reader's waker. If the future is not ready it has registered
    // that waker; the task it moves to polls it again with its own (a spurious wake-up of the
    // reader at worst).
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx))).await;
    match first {
        Poll::Ready(result) => {
            let resp = result.unwrap_or_else(|()| pending.panicked());
            pending.reply(&handle.inner.out, resp).await;
            drop(permit);
        }
        Poll::Pending => {
            let out = handle.inner.out.clone();
            tokio::spawn(async move {
                let resp = fut.await.unwrap_or_else(|()| pending.panicked());
                pending.reply(&out, resp).await;
                drop(permit);
            });
        }
    }
    true
}

static PANIC_LOG: LogLimiter = LogLimiter::new(10_000);

/// What is needed to answer a request once its processor is done.
struct Pending {
    oneway: bool,
    opaque: i32,
    code: i32,
    peer: SocketAddr,
}

impl Pending {
    /// The processor panicked: log it and answer like Java answers an exception.
    fn panicked(&self) -> Option<RemotingCommand> {
        if let Some(n) = PANIC_LOG.allow() {
            tracing::error!(peer = %self.peer, code = self.code, suppressed = n,
                "request processor panicked");
        }
        Some(RemotingCommand::response(
            crate::header::codes::ResponseCode::SYSTEM_ERROR,
            format!("internal error processing request code {}", self.code),
        ))
    }

    /// Queues the reply (matched by opaque) unless the request was oneway or there is none.
    async fn reply(&self, out: &mpsc::Sender<RemotingCommand>, resp: Option<RemotingCommand>) {
        if let (Some(mut resp), false) = (resp, self.oneway) {
            resp.opaque = self.opaque;
            resp.flag = (resp.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
            // try_send first: the common case needs no await point.
            match out.try_send(resp) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(resp)) => {
                    let _ = out.send(resp).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// Polls a processor's future so that a panic (a bug in a handler) costs one request, not the
/// connection's in-flight slot or the process: `Err(())` means it panicked.
struct CatchUnwind(crate::server::BoxFuture<Option<RemotingCommand>>);

impl Future for CatchUnwind {
    type Output = std::result::Result<Option<RemotingCommand>, ()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Sends the queued replies, as few writes as possible: everything queued when it runs goes out
/// in one batch.
///
/// `inflight` is the connection's in-flight bound and its size. When a reply arrives while other
/// requests of the connection are still being processed, the writer yields once before taking
/// the queue: a SYNC_FLUSH group commit completes a whole round of sends together, each from its
/// own task, and the first reply's wake-up put the writer in tokio's LIFO slot, so it ran right
/// after that reply and wrote it alone: ~0.9 sendto per message at 1 KiB x 64 in flight (each
/// also running the client's receive path). `yield_now` defers the writer until the worker has
/// run the other ready tasks, i.e. until the round's replies are queued: 0.09 sendto per message.
/// A lone request (nothing else in flight) and requests answered inline by the reader (their
/// permits are back before the writer runs) do not yield.
async fn write_loop(
    wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<RemotingCommand>,
    mut transfer: ConnTransfer,
    handle: ConnectionHandle,
    inflight: (Arc<Semaphore>, usize),
) {
    let sock: &TcpStream = wr.as_ref();
    let mut closed = handle.inner.closed.subscribe();
    let mut batch: Vec<u8> = Vec::with_capacity(READ_BUF_BYTES);
    loop {
        let first = tokio::select! {
            biased;
            c = rx.recv() => c,
            _ = wait_true(&mut closed) => rx.try_recv().ok(),
        };
        let Some(mut cmd) = first else { break };
        if inflight.0.available_permits() < inflight.1 {
            tokio::task::yield_now().await;
        }
        let result = async {
            loop {
                write_one(sock, &mut transfer, &mut batch, cmd).await?;
                if batch.len() >= WRITE_BATCH_BYTES_MAX {
                    flush(sock, &mut batch).await?;
                }
                match rx.try_recv() {
                    Ok(next) => cmd = next,
                    Err(_) => break,
                }
            }
            flush(sock, &mut batch).await
        }
        .await;
        handle.inner.write_batches.fetch_add(1, Ordering::Relaxed);
        handle.inner.touch();
        if let Err(e) = result {
            if let Some(n) = WRITE_ERR_LOG.allow() {
                tracing::debug!(peer = %handle.inner.peer, error = %e, suppressed = n, "write failed");
            }
            handle.close();
            break;
        }
    }
    // Dropping the write half shuts down our direction; the reader sees `closed`.
}

async fn flush(sock: &TcpStream, batch: &mut Vec<u8>) -> std::io::Result<()> {
    if !batch.is_empty() {
        send_all(sock, batch, false).await?;
        batch.clear();
    }
    Ok(())
}

static OVERSIZE_LOG: LogLimiter = LogLimiter::new(10_000);

/// Appends a command to the batch, or (for a big region body) flushes the batch and sends the
/// command through the transfer path. Every reply is a JSON frame with type byte 0. A reply
/// that goes into the batch has its head encoded right there (no buffer of its own).
async fn write_one(
    sock: &TcpStream,
    transfer: &mut ConnTransfer,
    batch: &mut Vec<u8>,
    cmd: RemotingCommand,
) -> std::io::Result<()> {
    let body_len = cmd.body.len();
    let batched = match &cmd.body {
        Body::Regions(_)
            if body_len >= COPY_THRESHOLD_BYTES && transfer.backend() != TransferBackend::Copy =>
        {
            false
        }
        Body::Regions(_) | Body::Bytes(_) => body_len < WRITE_BATCH_BYTES_MAX,
        Body::Empty => true,
    };
    if batched {
        if let Err(e) = cmd.try_encode_head_into(SerializeType::Json, batch) {
            unframable(batch, &cmd, &e);
            return Ok(());
        }
        match &cmd.body {
            Body::Empty => {}
            Body::Bytes(b) => batch.extend_from_slice(b),
            Body::Regions(regions) => regions
                .iter()
                .for_each(|r| batch.extend_from_slice(r.as_bytes())),
        }
        return Ok(());
    }
    let head = match cmd.try_encode_head(SerializeType::Json) {
        Ok(head) => head,
        Err(e) => {
            unframable(batch, &cmd, &e);
            return Ok(());
        }
    };
    flush(sock, batch).await?;
    match &cmd.body {
        Body::Regions(regions) => transfer.write_regions(sock, &head, regions).await,
        Body::Bytes(b) => {
            send_all(sock, &head, true).await?;
            send_all(sock, b, false).await
        }
        Body::Empty => send_all(sock, &head, false).await,
    }
}

/// A reply that cannot be framed: SYSTEM_ERROR goes out in its place.
fn unframable(batch: &mut Vec<u8>, cmd: &RemotingCommand, e: &WireError) {
    if let Some(n) = OVERSIZE_LOG.allow() {
        tracing::error!(code = cmd.code, error = %e, suppressed = n,
            "reply cannot be framed; sending SYSTEM_ERROR instead");
    }
    let mut err = RemotingCommand::response(
        crate::header::codes::ResponseCode::SYSTEM_ERROR,
        "response too large to frame",
    );
    err.opaque = cmd.opaque;
    err.flag = cmd.flag;
    batch.extend_from_slice(&err.encode(SerializeType::Json));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make_room` keeps the unread bytes, gives room for the whole frame and some reading, and
    /// never disturbs frames already split off the old buffer.
    #[test]
    fn make_room_keeps_bytes_and_split_frames() {
        for (read, consumed, want) in [
            (64 * 1024, 60 * 1024, 16 * 1024 + 300),
            (64 * 1024, 10 * 1024, 600 * 1024),
            (64 * 1024, 64 * 1024, 0),
            (100, 0, 0),
            (40 * 1024, 16 * 1024, 20 * 1024),
        ] {
            let mut buf = BytesMut::with_capacity(READ_BUF_BYTES);
            buf.extend((0..read).map(|i| (i % 251) as u8));
            let frame = buf.split_to(consumed).freeze();
            let rest: Vec<u8> = buf.to_vec();
            make_room(&mut buf, want);
            assert_eq!(&buf[..], &rest[..]);
            assert!(buf.capacity() >= want.max(rest.len() + READ_SPARE_MIN));
            assert!(frame.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
            let cap = buf.capacity();
            make_room(&mut buf, want);
            assert_eq!(buf.capacity(), cap, "enough room: nothing moves");
        }
    }
}
