//! The remoting server: accept loop with a connection limit, graceful shutdown, and the
//! `Processor` trait the broker and nameserver implement.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::command::RemotingCommand;
use crate::connection::{self, ConnectionHandle};
use crate::error::{Result, WireError};
use crate::frame::FRAME_LEN_MAX;
use crate::ratelimit::LogLimiter;
use crate::transfer::{Transfer, TransferBackend};

/// A boxed, sendable future (what `Processor::process` returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Handles requests. The server calls `process` once per decoded request, concurrently (up to
/// `max_inflight_per_connection` per connection); the returned command is sent back with the
/// request's opaque and `FLAG_RESPONSE` (set by the server), unless the request was oneway
/// (flag bit 1) or the future returns `None`.
///
/// Unknown codes are the processor's to answer: `RemotingCommand::not_supported(&req)`.
/// Bad typed headers: `RemotingCommand::bad_header(&req, &err)`.
pub trait Processor: Send + Sync + 'static {
    fn process(
        &self,
        conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>>;
    /// What the server calls for each request: the reply at once when the request needs no
    /// waiting, else the future that makes it (the default: always [`Processor::process`]).
    /// Overriding it spares the common requests a boxed future (a broker's dispatch future,
    /// the union of every handler's, was ~1.3 KB allocated and copied per request).
    fn process_now(&self, conn: &ConnectionHandle, req: RemotingCommand) -> Processed {
        Processed::Later(self.process(conn.clone(), req))
    }
    /// Called once when a connection has closed (after its last response was written).
    fn on_close(&self, _conn: &ConnectionHandle) {}
}

/// The outcome of [`Processor::process_now`].
pub enum Processed {
    /// Answered without waiting (`None`: nothing to send back).
    Now(Option<RemotingCommand>),
    /// The reply comes when this future completes.
    Later(BoxFuture<Option<RemotingCommand>>),
}

/// Server settings. Every bound has a name and a default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest frame accepted, length prefix included (Java `frameMaxLength`, 16 MiB).
    pub frame_len_max: usize,
    /// Connections beyond this are closed on accept.
    pub max_connections: usize,
    /// Requests of one connection being processed at once; when reached the server stops
    /// reading that socket (TCP backpressure) until one finishes.
    pub max_inflight_per_connection: usize,
    /// Close a connection that neither read nor wrote for this long (Java: 120 s).
    pub idle_timeout: Duration,
    /// How region bodies are sent.
    pub transfer: TransferBackend,
    /// Graceful shutdown waits this long for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// listen(2) backlog (Java default 1024).
    pub backlog: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 10911)),
            frame_len_max: FRAME_LEN_MAX,
            max_connections: 10_000,
            max_inflight_per_connection: 256,
            idle_timeout: Duration::from_secs(120),
            transfer: TransferBackend::Auto,
            shutdown_grace: Duration::from_secs(10),
            backlog: 1024,
        }
    }
}

/// Stops a running server: no new connections, in-flight requests finish (up to
/// `shutdown_grace`), responses are flushed, then sockets close and `serve()` returns.
#[derive(Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }
}

/// Resolves once the flag is true (or its sender is gone). The watch guard is dropped inside,
/// so the future stays `Send`.
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub processor: Arc<dyn Processor>,
    pub transfer: Arc<Transfer>,
    pub shutdown: watch::Receiver<bool>,
}

pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
}

static REFUSED_LOG: LogLimiter = LogLimiter::new(10_000);
static ACCEPT_ERR_LOG: LogLimiter = LogLimiter::new(10_000);

impl Server {
    /// Binds the listener (SO_REUSEADDR) and resolves the transfer backend.
    pub async fn bind(config: ServerConfig, processor: Arc<dyn Processor>) -> Result<Server> {
        let socket = if config.listen.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(WireError::io("create listen socket"))?;
        socket
            .set_reuseaddr(true)
            .map_err(WireError::io("SO_REUSEADDR"))?;
        socket
            .bind(config.listen)
            .map_err(WireError::io("bind listen address"))?;
        let listener = socket
            .listen(config.backlog)
            .map_err(WireError::io("listen"))?;
        let local_addr = listener
            .local_addr()
            .map_err(WireError::io("listen address"))?;
        let (tx, rx) = watch::channel(false);
        let transfer = Transfer::new(config.transfer);
        tracing::info!(%local_addr, "remoting server listening");
        Ok(Server {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                config,
                processor,
                transfer,
                shutdown: rx,
            }),
            shutdown: ShutdownHandle { tx: Arc::new(tx) },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The transfer path that runs (after fallback).
    pub fn transfer_backend(&self) -> TransferBackend {
        self.shared.transfer.backend()
    }

    /// Accepts and serves connections until shutdown, then waits for them to drain.
    pub async fn serve(self) -> Result<()> {
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let mut shutdown = self.shared.shutdown.clone();
        let mut tasks = JoinSet::new();
        let next_id = AtomicU64::new(1);
        loop {
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = wait_true(&mut shutdown) => break,
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // EMFILE and friends: back off briefly instead of spinning.
                            if let Some(n) = ACCEPT_ERR_LOG.allow() {
                                tracing::warn!(error = %e, suppressed = n, "accept failed");
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                        if let Some(n) = REFUSED_LOG.allow() {
                            tracing::warn!(%peer, max = self.shared.config.max_connections,
                                suppressed = n, "connection limit reached; closing new connection");
                        }
                        drop(stream);
                        continue;
                    };
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&self.shared);
                    tasks.spawn(async move {
                        connection::run(shared, stream, peer, id).await;
                        drop(permit);
                    });
                }
            }
        }
        drop(self.listener);
        tracing::info!(connections = tasks.len(), "remoting server shutting down");
        // Connections saw the same signal; each drains its in-flight work within the grace.
        let grace = self.shared.config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                left = tasks.len(),
                "connections still busy after grace; aborting"
            );
            tasks.shutdown().await;
        }
        Ok(())
    }
}
