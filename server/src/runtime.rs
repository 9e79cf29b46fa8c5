//! Process wiring: the nameserver and broker servers, their background tasks (broker expiry,
//! namesrv registration, offset persistence, client expiry), signal handling and the orderly
//! shutdown (stop accepting, finish in-flight, unregister, persist, flush, checkpoint).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrocket_net::{
    BoxFuture, Client, ClientConfig, ConnectionHandle, Processed, Processor, RemotingCommand,
    Server, ServerConfig, ShutdownHandle, TransferBackend,
};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::namesrv::{Namesrv, SCAN_INTERVAL_MS};
use crate::reply::{code, now_ms, reply};

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: ferrocket_net::WireError,
    },
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error("{0}")]
    Other(String),
}

/// How long a stopping server waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often silent client channels are looked for (Java: 10 s).
const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// Timeout of UNREGISTER_BROKER at shutdown.
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Nameserver

struct NamesrvProcessor(Arc<Namesrv>);

impl Processor for NamesrvProcessor {
    fn process(
        &self,
        conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        let ns = Arc::clone(&self.0);
        Box::pin(async move { Some(ns.handle(conn.id(), &req)) })
    }

    fn on_close(&self, conn: &ConnectionHandle) {
        self.0.routes.connection_closed(conn.id());
    }
}

/// A nameserver serving in this process.
pub struct RunningNamesrv {
    pub addr: SocketAddr,
    pub namesrv: Arc<Namesrv>,
    shutdown: ShutdownHandle,
    serve: JoinHandle<()>,
    scan: JoinHandle<()>,
}

/// Binds and starts a nameserver on `listen` (port 0 = any free port).
pub async fn start_namesrv(listen: SocketAddr) -> Result<RunningNamesrv, RuntimeError> {
    let namesrv = Namesrv::new();
    let config = ServerConfig {
        listen,
        shutdown_grace: SHUTDOWN_GRACE,
        ..ServerConfig::default()
    };
    let server = Server::bind(config, Arc::new(NamesrvProcessor(Arc::clone(&namesrv))))
        .await
        .map_err(|source| RuntimeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let serve = tokio::spawn(async move {
        if let Err(e) = server.serve().await {
            tracing::error!(error = %e, "nameserver stopped with an error");
        }
    });
    let ns = Arc::clone(&namesrv);
    let scan = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SCAN_INTERVAL_MS));
        loop {
            tick.tick().await;
            ns.routes.scan_expired(now_ms());
        }
    });
    tracing::info!(%addr, "The Name Server boot success. serializeType=JSON");
    Ok(RunningNamesrv {
        addr,
        namesrv,
        shutdown,
        serve,
        scan,
    })
}

impl RunningNamesrv {
    /// Stops accepting, finishes in-flight requests and returns.
    pub async fn stop(self) {
        self.scan.abort();
        self.shutdown.shutdown();
        let _ = self.serve.await;
        tracing::info!(addr = %self.addr, "nameserver stopped");
    }
}

// ---------------------------------------------------------------------------------------------
// Broker

/// The broker's processor. The `Broker` is set once the listener is bound (its port is the
/// STOREHOST of every record); requests before that are refused like Java does before
/// `startAcceptSendRequestTimeStamp`.
struct BrokerProcessor {
    broker: OnceLock<Arc<Broker>>,
}

impl Processor for BrokerProcessor {
    fn process(
        &self,
        conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        let broker = self.broker.get().cloned();
        Box::pin(async move {
            match broker {
                Some(b) => b.dispatch(&conn, req).await,
                None => Some(reply(
                    &req,
                    code::SYSTEM_ERROR,
                    "broker not ready, please try later",
                )),
            }
        })
    }

    fn process_now(&self, conn: &ConnectionHandle, req: RemotingCommand) -> Processed {
        match self.broker.get() {
            Some(b) if crate::broker::send::CODES.contains(&req.code) => {
                crate::broker::send::handle_now(b, conn, req)
            }
            _ => Processed::Later(self.process(conn.clone(), req)),
        }
    }

    fn on_close(&self, conn: &ConnectionHandle) {
        if let Some(b) = self.broker.get() {
            b.connection_closed(conn);
        }
    }
}

/// How long the start waits for a fresh store's first CommitLog segment (see `start_broker`).
const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(10);

/// A broker serving in this process.
pub struct RunningBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    client: Client,
    shutdown: ShutdownHandle,
    serve: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds the broker's port, opens the store, loads config/*.json, registers with every
/// nameserver once, and starts the background tasks.
pub async fn start_broker(mut conf: BrokerConfig) -> Result<RunningBroker, RuntimeError> {
    let processor = Arc::new(BrokerProcessor {
        broker: OnceLock::new(),
    });
    let listen = conf.listen_addr();
    let server_config = ServerConfig {
        listen,
        idle_timeout: Duration::from_secs(conf.server_channel_max_idle_time_seconds.max(1)),
        transfer: if conf.transfer_msg_by_heap {
            TransferBackend::Copy
        } else {
            conf.transfer_backend
                .parse()
                .unwrap_or(TransferBackend::Auto)
        },
        shutdown_grace: SHUTDOWN_GRACE,
        ..ServerConfig::default()
    };
    let server = Server::bind(server_config, Arc::clone(&processor) as Arc<dyn Processor>)
        .await
        .map_err(|source| RuntimeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = server.local_addr();
    conf.listen_port = addr.port();
    let broker = tokio::task::spawn_blocking(move || {
        let broker = Broker::open(conf)?;
        // A fresh store zero-fills its first CommitLog segment in the background from the open
        // on: waited for here, before the broker registers, so that no first send waits for it
        // (a SYNC_FLUSH send did, 450-550 ms for 1 GiB here; under ASYNC_FLUSH the roll hurried
        // it, leaving the segment's rest reserved but unwritten). Nothing to wait for on a
        // store that already has its segment.
        if !broker.store.wait_preallocated(FIRST_SEGMENT_WAIT) {
            tracing::warn!(
                waited_s = FIRST_SEGMENT_WAIT.as_secs(),
                "the first CommitLog segment is still being made; the first sends will wait for it"
            );
        }
        Ok::<_, crate::broker::BrokerError>(broker)
    })
    .await
    .map_err(|e| RuntimeError::Other(format!("broker start task failed: {e}")))??;
    let _ = processor.broker.set(Arc::clone(&broker));
    crate::broker::schedule::ScheduleService::start(&broker);
    let shutdown = server.shutdown_handle();
    let transfer = server.transfer_backend();
    let serve = tokio::spawn(async move {
        if let Err(e) = server.serve().await {
            tracing::error!(error = %e, "broker server stopped with an error");
        }
    });
    let client = Client::new(ClientConfig::default());
    crate::broker::register::register_all(&broker, &client).await;
    let tasks = vec![
        tokio::spawn(crate::broker::register::register_loop(
            Arc::clone(&broker),
            client.clone(),
        )),
        tokio::spawn(persist_loop(Arc::clone(&broker))),
        tokio::spawn(client_scan_loop(Arc::clone(&broker))),
    ];
    let c = broker.conf();
    tracing::info!(
        cluster = %c.broker_cluster_name,
        transfer = ?transfer,
        "The broker[{}, {}] boot success. serializeType=JSON and name server is {}",
        c.broker_name,
        broker.store_host,
        c.namesrv_addr
    );
    Ok(RunningBroker {
        addr,
        broker,
        client,
        shutdown,
        serve,
        tasks,
    })
}

/// Writes consumer offsets every `flushConsumerOffsetInterval` and delay offsets every
/// `flushDelayOffsetInterval` (both read each round, so UPDATE_BROKER_CONFIG takes effect).
async fn persist_loop(b: Arc<Broker>) {
    let mut last_offsets = tokio::time::Instant::now();
    let mut last_delay = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let conf = b.conf();
        let now = tokio::time::Instant::now();
        let offsets_due =
            now - last_offsets >= Duration::from_millis(conf.flush_consumer_offset_interval);
        let delay_due = now - last_delay >= Duration::from_millis(conf.flush_delay_offset_interval);
        if offsets_due {
            last_offsets = now;
        }
        if delay_due {
            last_delay = now;
        }
        if offsets_due || delay_due {
            let b2 = Arc::clone(&b);
            let _ = tokio::task::spawn_blocking(move || {
                if offsets_due {
                    b2.persist_offsets();
                }
                if delay_due {
                    b2.persist_delay_offsets();
                }
            })
            .await;
        }
    }
}

async fn client_scan_loop(b: Arc<Broker>) {
    let mut tick = tokio::time::interval(CLIENT_SCAN_INTERVAL);
    loop {
        tick.tick().await;
        b.scan_expired_clients(now_ms());
    }
}

impl RunningBroker {
    /// Orderly shutdown: stop accepting and answer parked pulls, let in-flight requests finish,
    /// unregister from the nameservers, persist config/*.json, flush the store and write the
    /// checkpoint.
    pub async fn stop(self) {
        self.broker.begin_shutdown();
        for t in &self.tasks {
            t.abort();
        }
        self.shutdown.shutdown();
        self.broker.pull_hold.wake_all();
        let _ = self.serve.await;
        crate::broker::register::unregister_all(&self.broker, &self.client, UNREGISTER_TIMEOUT)
            .await;
        self.client.close_all().await;
        let b = Arc::clone(&self.broker);
        let _ = tokio::task::spawn_blocking(move || b.close()).await;
        tracing::info!(addr = %self.addr, "broker stopped (flushed, checkpoint written)");
    }
}

// ---------------------------------------------------------------------------------------------
// Whole processes

/// SIGINT/SIGTERM listeners. Installed before the servers start, so a signal that arrives right
/// after the `boot success` line is never lost (a not-yet-installed handler would let SIGTERM
/// kill the process without the flush).
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Must be called inside the runtime.
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Signals {
                term: listen(SignalKind::terminate(), "SIGTERM"),
                int: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Resolves on SIGINT or SIGTERM.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(self.term.as_mut()) => tracing::info!("SIGTERM received, shutting down"),
                _ = next(self.int.as_mut()) => tracing::info!("SIGINT received, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received, shutting down");
        }
    }
}

/// Environment variable: number of async worker threads (default: one per core).
pub const WORKER_THREADS_ENV: &str = "FERROCKET_WORKER_THREADS";

fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var(WORKER_THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .thread_name("ferrocket")
        .on_thread_start(crate::sched::batch_worker_thread)
        .build()
        .map_err(|e| RuntimeError::Other(format!("cannot start the async runtime: {e}")))
}

/// Nameserver + broker in this process (what `standalone` runs; tests call it directly with
/// port 0 for both). The broker registers with the in-process nameserver (and any others in
/// `namesrvAddr`).
pub async fn start_standalone(
    mut conf: BrokerConfig,
    namesrv_port: u16,
) -> Result<(RunningNamesrv, RunningBroker), RuntimeError> {
    let bind_ip = conf.listen_addr().ip();
    let ns = start_namesrv(SocketAddr::new(bind_ip, namesrv_port)).await?;
    let own = format!("127.0.0.1:{}", ns.addr.port());
    let mut addrs = conf.namesrv_addrs();
    if !addrs.contains(&own) {
        addrs.insert(0, own);
    }
    conf.namesrv_addr = addrs.join(";");
    match start_broker(conf).await {
        Ok(b) => Ok((ns, b)),
        Err(e) => {
            ns.stop().await;
            Err(e)
        }
    }
}

/// `ferrocket standalone`: nameserver + broker until a signal.
pub fn run_standalone(conf: BrokerConfig, namesrv_port: u16) -> Result<(), RuntimeError> {
    crate::sched::configure(conf.sched_batch_threads);
    runtime()?.block_on(async move {
        let signals = Signals::install();
        let (ns, broker) = start_standalone(conf, namesrv_port).await?;
        signals.recv().await;
        broker.stop().await;
        ns.stop().await;
        Ok(())
    })
}

/// `ferrocket namesrv`: until a signal.
pub fn run_namesrv(listen: SocketAddr) -> Result<(), RuntimeError> {
    runtime()?.block_on(async move {
        let signals = Signals::install();
        let ns = start_namesrv(listen).await?;
        signals.recv().await;
        ns.stop().await;
        Ok(())
    })
}

/// `ferrocket broker`: until a signal.
pub fn run_broker(conf: BrokerConfig) -> Result<(), RuntimeError> {
    crate::sched::configure(conf.sched_batch_threads);
    runtime()?.block_on(async move {
        let signals = Signals::install();
        let broker = start_broker(conf).await?;
        signals.recv().await;
        broker.stop().await;
        Ok(())
    })
}
