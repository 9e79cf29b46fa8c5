//! The broker: shared state ([`Broker`]) and the dispatch of request codes to handler modules.
//!
//! Handler modules each export `CODES` and
//! `async fn handle(b: &Arc<Broker>, conn: &ConnectionHandle, req: RemotingCommand) -> Option<RemotingCommand>`
//! (`None` = no reply). server-core owns send, pull, pull_hold, consumer, clients and register;
//! server-extra owns topics, offsets, groups, persist, validate, retry, schedule, lock, query
//! and admin.

pub mod admin;
pub mod clients;
pub mod consumer;
pub mod groups;
pub mod heartbeat;
pub mod lock;
pub mod message;
pub mod offsets;
pub mod persist;
pub mod pull;
pub mod pull_hold;
pub mod query;
pub mod register;
pub mod retry;
pub mod schedule;
pub mod send;
pub mod subscription;
pub mod topics;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::RemotingCommand;
use ferrocket_store::{MessageStore, StoreOptions};
use parking_lot::RwLock;

use crate::config::BrokerConfig;
use crate::reply::not_supported;
pub use ferrocket_net::ConnectionHandle;

/// Errors while starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("opening the store: {0}")]
    Store(#[from] ferrocket_store::StoreError),
    #[error("loading {what}: {source}")]
    Persist {
        what: &'static str,
        #[source]
        source: persist::PersistError,
    },
}

/// Everything the request handlers share.
pub struct Broker {
    conf: RwLock<Arc<BrokerConfig>>,
    /// `brokerIP1:listenPort` (IPv4): the registered address and every record's STOREHOST.
    pub store_host: SocketAddr,
    /// CommitLog, ConsumeQueues and IndexFile.
    pub store: Arc<MessageStore>,
    pub topics: topics::TopicConfigManager,
    pub offsets: offsets::ConsumerOffsetManager,
    pub groups: groups::SubscriptionGroupManager,
    pub locks: lock::LockManager,
    pub schedule: schedule::ScheduleService,
    /// Producer and consumer channels, consumer subscriptions.
    pub clients: clients::ClientManager<ConnectionHandle>,
    /// Parked long-polling pulls.
    pub pull_hold: pull_hold::PullHold,
    topics_changed: tokio::sync::Notify,
    /// Registration rounds, so a request that created a topic can answer once the nameservers
    /// know it (see [`Broker::registered_since`]).
    registration: Registration,
    shutting_down: AtomicBool,
    /// Counters for GET_BROKER_RUNTIME_INFO.
    pub stats: Stats,
}

/// Broker-wide counters since boot (RocketMQ's BrokerStatsManager, reduced to what admin tools
/// read).
#[derive(Debug, Default)]
pub struct Stats {
    pub boot_timestamp_ms: AtomicU64,
    /// Messages stored by sends.
    pub msg_put_total: AtomicU64,
    /// Messages returned by pulls.
    pub msg_get_total: AtomicU64,
}

/// Longest a reply waits for the nameservers to learn a topic its request created.
pub const REGISTERED_WAIT_MAX: Duration = Duration::from_secs(3);

/// Topic-change generations against finished registration rounds.
#[derive(Debug)]
struct Registration {
    /// Bumped by every `topics_changed`.
    wanted: AtomicU64,
    /// The highest `wanted` value a finished round began with.
    done: tokio::sync::watch::Sender<u64>,
    /// The registration loop is running.
    running: AtomicBool,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            wanted: AtomicU64::new(0),
            done: tokio::sync::watch::Sender::new(0),
            running: AtomicBool::new(false),
        }
    }
}

impl Broker {
    /// Loads the config/*.json managers around an open store. `conf.listen_port` must be the
    /// bound port (it is every record's STOREHOST).
    pub fn new(conf: BrokerConfig, store: Arc<MessageStore>) -> Result<Arc<Self>, BrokerError> {
        let dir = conf.config_dir();
        let p = |what| move |source| BrokerError::Persist { what, source };
        let b = Broker {
            store_host: conf.broker_addr(),
            store,
            topics: topics::TopicConfigManager::load(&dir, &conf).map_err(p("topics.json"))?,
            offsets: offsets::ConsumerOffsetManager::load(&dir)
                .map_err(p("consumerOffset.json"))?,
            groups: groups::SubscriptionGroupManager::load(&dir, &conf)
                .map_err(p("subscriptionGroup.json"))?,
            locks: lock::LockManager::new(conf.lock_max_live_time),
            schedule: schedule::ScheduleService::load(&dir, &conf)
                .map_err(p("delayOffset.json"))?,
            clients: clients::ClientManager::new(),
            pull_hold: pull_hold::PullHold::new(conf.max_suspended_pulls as usize),
            conf: RwLock::new(Arc::new(conf)),
            topics_changed: tokio::sync::Notify::new(),
            registration: Registration::default(),
            shutting_down: AtomicBool::new(false),
            stats: Stats::default(),
        };
        b.stats.boot_timestamp_ms.store(
            u64::try_from(crate::reply::now_ms()).unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(Arc::new(b))
    }

    /// Opens everything the broker needs on disk (blocking: run off the async threads).
    pub fn open(conf: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        let options = StoreOptions {
            message_delay_level_ms: crate::config::parse_delay_levels(&conf.message_delay_level)
                .unwrap_or_else(|_| StoreOptions::default().message_delay_level_ms),
            disk_space_clean_forcibly_ratio: conf.disk_space_clean_forcibly_ratio,
            disk_space_warning_level_ratio: conf.disk_space_warning_level_ratio,
            dispatch_thread_start: Some(crate::sched::batch_dispatch_thread),
            group_commit_thread_start: Some(crate::sched::batch_commit_thread),
            durable_delivery: send::durable_delivery(),
            ..StoreOptions::default()
        };
        let store = MessageStore::open_with(conf.store_config(), options)?;
        let b = Self::new(conf, Arc::clone(&store))?;
        // A topics.json restored from .bak may miss the newest topics: recreate a config for
        // every topic that has queues on disk.
        match b.topics.adopt_store_topics(&store.topics_and_queues()) {
            Ok(adopted) if !adopted.is_empty() => {
                tracing::warn!(topics = ?adopted, "topics found in the store but not in topics.json were restored");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "restoring topics from the store failed"),
        }
        // Weak: the store outlives no broker, and an Arc here would be a cycle.
        let weak = Arc::downgrade(&b);
        store.set_arrival_listener(Arc::new(
            move |topic: &str, queue_id: u32, max_offset: u64| {
                if let Some(b) = weak.upgrade() {
                    b.pull_hold.notify(topic, queue_id, max_offset);
                }
            },
        ));
        let s = Arc::clone(&store);
        // Every appended message counts, dispatched or not: a consumer offset committed right
        // after its send was acknowledged (an admin tool, a test) must not be clamped below it
        // because the dispatcher is a moment behind.
        b.offsets
            .set_max_offset_source(Arc::new(move |topic: &str, queue_id: u32| {
                s.max_offset_assigned(topic, queue_id)
            }));
        Ok(b)
    }

    /// Periodic persistence of consumer offsets (`flushConsumerOffsetInterval`).
    pub fn persist_offsets(&self) {
        if let Err(e) = self.offsets.persist() {
            tracing::error!(error = %e, "persisting consumerOffset.json failed");
        }
    }

    /// Periodic persistence of delay-level progress (`flushDelayOffsetInterval`).
    pub fn persist_delay_offsets(&self) {
        if let Err(e) = self.schedule.persist() {
            tracing::error!(error = %e, "persisting delayOffset.json failed");
        }
    }

    /// Final step of shutdown (blocking): persist config/*.json, then flush the store and
    /// write its checkpoint.
    pub fn close(&self) {
        self.persist_all();
        self.store.shutdown();
    }

    /// The current configuration (a snapshot; cheap to clone).
    pub fn conf(&self) -> Arc<BrokerConfig> {
        self.conf.read().clone()
    }

    /// Applies a change to the configuration (UPDATE_BROKER_CONFIG).
    pub fn update_conf(&self, f: impl FnOnce(&mut BrokerConfig)) {
        let mut guard = self.conf.write();
        let mut next = BrokerConfig::clone(&guard);
        f(&mut next);
        *guard = Arc::new(next);
    }

    /// `<storePathRootDir>/config`.
    pub fn config_dir(&self) -> PathBuf {
        self.conf().config_dir()
    }

    /// Call after creating, updating or deleting a topic: re-registers with the nameservers now.
    pub fn topics_changed(&self) {
        self.registration.wanted.fetch_add(1, Ordering::AcqRel);
        self.topics_changed.notify_one();
    }

    /// A mark to pass to [`Broker::registered_since`] after handling a request.
    pub fn registration_mark(&self) -> u64 {
        self.registration.wanted.load(Ordering::Acquire)
    }

    /// If topics changed since `mark` (this request created one, or another did meanwhile),
    /// waits until a registration round that started after the change has finished, at most
    /// [`REGISTERED_WAIT_MAX`] (or `registerBrokerTimeoutMills` if shorter). Java's broker
    /// registers inline when a send, a heartbeat or an admin request creates a topic, so a client
    /// that got the reply finds the topic's route at the nameserver: the C++ consumer that starts
    /// right after the first send to a new topic queries that route once, and without it sends
    /// no heartbeat for 30 s. Returns at once without a registration loop (tests, shutdown).
    pub async fn registered_since(&self, mark: u64) {
        let want = self.registration_mark();
        if want == mark || !self.registration.running.load(Ordering::Acquire) {
            return;
        }
        let mut rx = self.registration.done.subscribe();
        let limit = Duration::from_millis(self.conf().register_broker_timeout_mills.max(1))
            .min(REGISTERED_WAIT_MAX);
        if tokio::time::timeout(limit, rx.wait_for(|done| *done >= want))
            .await
            .is_err()
        {
            tracing::warn!(
                ?limit,
                "replying before the nameservers confirmed the new topic's registration"
            );
        }
    }

    /// The registration loop runs: requests that change topics may wait for it.
    pub(crate) fn registration_started(&self) {
        self.registration.running.store(true, Ordering::Release);
    }

    /// The registration loop stopped: release every waiter.
    pub(crate) fn registration_stopped(&self) {
        self.registration.running.store(false, Ordering::Release);
        self.registration.done.send_replace(u64::MAX);
    }

    /// Called by the registration loop when the round that began with `covered` finished
    /// (whatever the nameservers answered: failures are logged and retried by the loop).
    pub(crate) fn registration_round_done(&self, covered: u64) {
        self.registration.done.send_if_modified(|done| {
            let newer = covered > *done;
            if newer {
                *done = covered;
            }
            newer
        });
    }

    /// Resolves when `topics_changed` was called (used by the registration loop).
    pub async fn wait_topics_changed(&self) {
        self.topics_changed.notified().await;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Writes every config/*.json file (periodically and at shutdown).
    pub fn persist_all(&self) {
        let results = [
            ("topics.json", self.topics.persist()),
            ("consumerOffset.json", self.offsets.persist()),
            ("subscriptionGroup.json", self.groups.persist()),
            ("delayOffset.json", self.schedule.persist()),
        ];
        for (what, r) in results {
            if let Err(e) = r {
                tracing::error!(file = what, error = %e, "persisting broker state failed");
            }
        }
    }

    /// Runtime figures for GET_BROKER_RUNTIME_INFO (Java key names). Totals count since boot.
    pub fn runtime_stats(&self) -> Vec<(&'static str, String)> {
        let boot = self.stats.boot_timestamp_ms.load(Ordering::Relaxed);
        let now = u64::try_from(crate::reply::now_ms()).unwrap_or(0);
        let up_s = now.saturating_sub(boot) / 1000;
        vec![
            ("bootTimestamp", boot.to_string()),
            (
                "runtime",
                format!(
                    "[ {} days, {} hours, {} minutes, {} seconds ]",
                    up_s / 86_400,
                    up_s / 3600 % 24,
                    up_s / 60 % 60,
                    up_s % 60
                ),
            ),
            (
                "msgPutTotalTodayNow",
                self.stats.msg_put_total.load(Ordering::Relaxed).to_string(),
            ),
            (
                "msgGetTotalTodayNow",
                self.stats.msg_get_total.load(Ordering::Relaxed).to_string(),
            ),
            (
                "commitLogMinOffset",
                self.store.commit_log_min_offset().to_string(),
            ),
            (
                "commitLogMaxOffset",
                self.store.commit_log_max_offset().to_string(),
            ),
            (
                "brokerVersionDesc",
                format!("ferrocket {}", env!("CARGO_PKG_VERSION")),
            ),
            // Ferrocket's own key (Java has none): CommitLog syncs (fdatasync/msync) since boot.
            // Under SYNC_FLUSH each is one group commit, so the load tool can report commits/s
            // and the real group size instead of guessing them from the requests in flight.
            ("commitLogSyncCount", self.store.flush_count().to_string()),
        ]
    }

    /// Tells every client of `group` that its membership changed (NOTIFY_CONSUMER_IDS_CHANGED,
    /// oneway), so they rebalance now instead of at their next 20 s timer.
    pub fn notify_consumer_ids_changed(&self, group: &str) {
        if !self.conf().notify_consumer_ids_changed_enable {
            return;
        }
        if let Some(g) = self.groups.get(group) {
            if !g.notify_consumer_ids_changed_enable {
                return;
            }
        }
        for ch in self.clients.consumer_channels(group) {
            let cmd = RemotingCommand::request(crate::reply::req::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_ext("consumerGroup", group);
            if let Err(e) = ch.send_oneway(cmd) {
                tracing::debug!(group, peer = %ch.peer_addr(), error = %e, "notify consumer ids changed failed");
            }
        }
    }

    /// A client connection closed: forget its registrations and tell the affected groups.
    pub fn connection_closed(&self, conn: &ConnectionHandle) {
        for group in self.clients.connection_closed(conn.id()) {
            tracing::info!(group = %group, peer = %conn.peer_addr(), "consumer channel closed");
            self.notify_consumer_ids_changed(&group);
        }
    }

    /// Drops clients silent for longer than `channelExpiredTimeout`.
    pub fn scan_expired_clients(&self, now_ms: i64) {
        let timeout = i64::try_from(self.conf().channel_expired_timeout).unwrap_or(i64::MAX);
        for group in self.clients.scan_expired(now_ms, timeout) {
            tracing::warn!(group = %group, "consumer channel expired (no heartbeat)");
            self.notify_consumer_ids_changed(&group);
        }
    }

    /// Dispatches one request to its handler.
    pub async fn dispatch(
        self: &Arc<Self>,
        conn: &ConnectionHandle,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let code = req.code;
        match code {
            c if send::CODES.contains(&c) => send::handle(self, conn, req).await,
            c if pull::CODES.contains(&c) => pull::handle(self, conn, req).await,
            c if consumer::CODES.contains(&c) => consumer::handle(self, conn, req).await,
            c if retry::CODES.contains(&c) => retry::handle(self, conn, req).await,
            c if lock::CODES.contains(&c) => lock::handle(self, conn, req).await,
            c if query::CODES.contains(&c) => query::handle(self, conn, req).await,
            c if admin::CODES.contains(&c) => admin::handle(self, conn, req).await,
            _ => Some(not_supported(&req)),
        }
    }
}
