//! broker.conf: RocketMQ's key names and defaults, parsed from a Java-properties file, and the
//! mapping onto the store's and the network's configuration structs.
//!
//! Every key is declared once in the `broker_config!` table below (field, Java key, default), so
//! parsing, `GET_BROKER_CONFIG` output and the README list cannot drift apart. Unknown keys are
//! logged as warnings (Java silently ignores them; a typo deserves a hint); a value that does not
//! parse is an error naming the key.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ferrocket_store::{FlushDiskType, StoreConfig};

/// Errors of configuration loading. Each names the key or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not a valid properties file: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("bad value for {key}: {value:?} ({reason})")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("unknown config key {0}")]
    UnknownKey(String),
}

/// `brokerRole`. Only masters are implemented; `SLAVE` is refused at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

/// A value type that broker.conf can hold. Parsing follows Java's `properties2Object` except
/// that booleans must be `true`/`false` (Java reads anything else as false, hiding typos).
trait ConfValue: Sized {
    fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError>;
    fn to_value(&self) -> String;
}

fn bad(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl ConfValue for String {
    fn parse_value(_key: &str, value: &str) -> Result<Self, ConfigError> {
        Ok(value.to_string())
    }
    fn to_value(&self) -> String {
        self.clone()
    }
}

impl ConfValue for bool {
    fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(key, value, "expected true or false")),
        }
    }
    fn to_value(&self) -> String {
        self.to_string()
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ConfValue for $t {
            fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError> {
                value
                    .parse::<$t>()
                    .map_err(|e| bad(key, value, format!("expected {}: {e}", stringify!($t))))
            }
            fn to_value(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_value!(u16, u32, u64, i32, i64);

impl ConfValue for FlushDiskType {
    fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value {
            "ASYNC_FLUSH" => Ok(FlushDiskType::Async),
            "SYNC_FLUSH" => Ok(FlushDiskType::Sync),
            _ => Err(bad(key, value, "expected ASYNC_FLUSH or SYNC_FLUSH")),
        }
    }
    fn to_value(&self) -> String {
        match self {
            FlushDiskType::Async => "ASYNC_FLUSH",
            FlushDiskType::Sync => "SYNC_FLUSH",
        }
        .to_string()
    }
}

impl ConfValue for BrokerRole {
    fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value {
            "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
            "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
            "SLAVE" => Ok(BrokerRole::Slave),
            _ => Err(bad(
                key,
                value,
                "expected ASYNC_MASTER, SYNC_MASTER or SLAVE",
            )),
        }
    }
    fn to_value(&self) -> String {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
        .to_string()
    }
}

macro_rules! broker_config {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr => $key:literal; )*) => {
        /// Broker configuration: one field per broker.conf key (Java name in each field's doc).
        #[derive(Debug, Clone, PartialEq)]
        pub struct BrokerConfig {
            $( $(#[$doc])* #[doc = concat!("`", $key, "`")] pub $field: $ty, )*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl BrokerConfig {
            /// Every key this broker understands, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            /// Applies one `key=value` (broker.conf line, command-line override or
            /// UPDATE_BROKER_CONFIG). The value is trimmed first.
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
                let value = value.trim();
                match key {
                    $( $key => self.$field = <$ty as ConfValue>::parse_value(key, value)?, )*
                    _ => return Err(ConfigError::UnknownKey(key.to_string())),
                }
                Ok(())
            }

            /// All keys with their current values (for GET_BROKER_CONFIG), sorted by key.
            pub fn to_properties(&self) -> Vec<(String, String)> {
                let mut v: Vec<(String, String)> =
                    vec![$( ($key.to_string(), ConfValue::to_value(&self.$field)) ),*];
                v.sort();
                v
            }
        }
    };
}

/// Default delay levels (`messageDelayLevel`).
pub const DEFAULT_MESSAGE_DELAY_LEVEL: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

broker_config! {
    broker_cluster_name: String = "DefaultCluster".to_string() => "brokerClusterName";
    broker_name: String = "broker-a".to_string() => "brokerName";
    /// 0 = master (the only role implemented).
    broker_id: u64 = 0 => "brokerId";
    /// `;`-separated `host:port` list; empty = env `NAMESRV_ADDR`.
    namesrv_addr: String = String::new() => "namesrvAddr";
    /// Address clients use for this broker and the STOREHOST of stored messages. Must be IPv4.
    broker_ip1: String = String::new() => "brokerIP1";
    broker_ip2: String = String::new() => "brokerIP2";
    listen_port: u16 = 10911 => "listenPort";
    /// Accepted for compatibility; HA replication is not implemented.
    ha_listen_port: u32 = 10912 => "haListenPort";
    bind_address: String = "0.0.0.0".to_string() => "bindAddress";
    store_path_root_dir: String = "./ferrocket-data".to_string() => "storePathRootDir";
    /// Empty = `<storePathRootDir>/commitlog`.
    store_path_commit_log: String = String::new() => "storePathCommitLog";
    mapped_file_size_commit_log: u64 = 1024 * 1024 * 1024 => "mappedFileSizeCommitLog";
    mapped_file_size_consume_queue: u64 = 300_000 * 20 => "mappedFileSizeConsumeQueue";
    flush_disk_type: FlushDiskType = FlushDiskType::Async => "flushDiskType";
    flush_interval_commit_log: u64 = 500 => "flushIntervalCommitLog";
    flush_commit_log_least_pages: u32 = 4 => "flushCommitLogLeastPages";
    sync_flush_timeout: u64 = 5000 => "syncFlushTimeout";
    broker_role: BrokerRole = BrokerRole::AsyncMaster => "brokerRole";
    auto_create_topic_enable: bool = true => "autoCreateTopicEnable";
    auto_create_subscription_group: bool = true => "autoCreateSubscriptionGroup";
    /// Queues of TBW102 (Java's default is 8; Ferrocket's is 4, the C++ producer's cap).
    default_topic_queue_nums: u32 = 4 => "defaultTopicQueueNums";
    broker_permission: u32 = 6 => "brokerPermission";
    delete_when: String = "04".to_string() => "deleteWhen";
    file_reserved_time: u64 = 72 => "fileReservedTime";
    disk_max_used_space_ratio: u32 = 75 => "diskMaxUsedSpaceRatio";
    /// Above this disk usage (percent) old files are deleted whatever their age.
    disk_space_clean_forcibly_ratio: u32 = 85 => "diskSpaceCleanForciblyRatio";
    /// Above this disk usage (percent) sends are refused (SERVICE_NOT_AVAILABLE, "disk full").
    disk_space_warning_level_ratio: u32 = 90 => "diskSpaceWarningLevelRatio";
    max_message_size: u32 = 4 * 1024 * 1024 => "maxMessageSize";
    long_polling_enable: bool = true => "longPollingEnable";
    short_polling_time_mills: u64 = 1000 => "shortPollingTimeMills";
    max_hash_slot_num: u32 = 5_000_000 => "maxHashSlotNum";
    max_index_num: u32 = 20_000_000 => "maxIndexNum";
    message_index_enable: bool = true => "messageIndexEnable";
    check_crc_on_recover: bool = true => "checkCRCOnRecover";
    max_msgs_num_batch: u32 = 64 => "maxMsgsNumBatch";
    default_query_max_num: u32 = 32 => "defaultQueryMaxNum";
    message_delay_level: String = DEFAULT_MESSAGE_DELAY_LEVEL.to_string() => "messageDelayLevel";
    flush_delay_offset_interval: u64 = 10_000 => "flushDelayOffsetInterval";
    flush_consumer_offset_interval: u64 = 5000 => "flushConsumerOffsetInterval";
    /// Clamped to 10 000..=60 000 ms as Java does.
    register_name_server_period: u64 = 30_000 => "registerNameServerPeriod";
    register_broker_timeout_mills: u64 = 24_000 => "registerBrokerTimeoutMills";
    region_id: String = "DefaultRegion".to_string() => "regionId";
    trace_on: bool = true => "traceOn";
    notify_consumer_ids_changed_enable: bool = true => "notifyConsumerIdsChangedEnable";
    /// A client channel with no heartbeat for this long is dropped.
    channel_expired_timeout: u64 = 120_000 => "channelExpiredTimeout";
    lite_pull_message_enable: bool = true => "litePullMessageEnable";
    cluster_topic_enable: bool = true => "clusterTopicEnable";
    broker_topic_enable: bool = true => "brokerTopicEnable";
    trace_topic_enable: bool = false => "traceTopicEnable";
    msg_trace_topic_name: String = "RMQ_SYS_TRACE_TOPIC".to_string() => "msgTraceTopicName";
    max_transfer_bytes_on_message_in_memory: u64 = 262_144 => "maxTransferBytesOnMessageInMemory";
    max_transfer_count_on_message_in_memory: u32 = 32 => "maxTransferCountOnMessageInMemory";
    /// Ferrocket serves pull bodies zero-copy unless this is true (Java's default is true).
    transfer_msg_by_heap: bool = false => "transferMsgByHeap";
    /// How pull bodies reach the socket: `auto` (sendfile), `sendfile`, `splice`, `io_uring`,
    /// `copy` (Ferrocket addition; `transferMsgByHeap=true` forces `copy`).
    transfer_backend: String = "auto".to_string() => "transferBackend";
    /// SQL92 filtering is not implemented: pulls with `expressionType=SQL92` are refused either way.
    enable_property_filter: bool = false => "enablePropertyFilter";
    /// Refuse sends carrying `TRAN_MSG=true` (NO_PERMISSION).
    reject_transaction_message: bool = false => "rejectTransactionMessage";
    server_channel_max_idle_time_seconds: u64 = 120 => "serverChannelMaxIdleTimeSeconds";
    /// Bound on parked long-polling pulls (Ferrocket addition).
    max_suspended_pulls: u32 = 65_536 => "maxSuspendedPulls";
    /// Orderly-consumption lock lifetime (`rocketmq.broker.rebalance.lockMaxLiveTime` in Java).
    lock_max_live_time: u64 = 60_000 => "lockMaxLiveTime";
    /// Which busy threads run under SCHED_BATCH (Ferrocket addition, read at start):
    /// `dispatch`, `background` (and the SYNC_FLUSH commit thread), `all` (and the async
    /// workers), `off`. The environment variable `FERROCKET_SCHED_BATCH` overrides it.
    sched_batch_threads: crate::sched::BatchThreads = crate::sched::BatchThreads::Dispatch => "schedBatchThreads";
}

impl ConfValue for crate::sched::BatchThreads {
    fn parse_value(key: &str, value: &str) -> Result<Self, ConfigError> {
        crate::sched::BatchThreads::parse(value)
            .ok_or_else(|| bad(key, value, "expected dispatch, background, all or off"))
    }
    fn to_value(&self) -> String {
        self.name().to_string()
    }
}

/// Keys Java brokers accept that Ferrocket reads but that have no effect here. They are logged
/// at info level instead of warned about, so a stock broker.conf loads quietly.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "flushCommitLogThoroughInterval",
    "slaveReadEnable",
    "transientStorePoolEnable",
    "transientStorePoolSize",
    "warmMapedFileEnable",
    "commitIntervalCommitLog",
    "commitCommitLogLeastPages",
    "commitCommitLogThoroughInterval",
    "flushIntervalConsumeQueue",
    "flushConsumeQueueLeastPages",
    "flushConsumeQueueThoroughInterval",
    "slaveTimeout",
    "putMessageTimeout",
    "messageIndexSafe",
    "haSendHeartbeatInterval",
    "haHousekeepingInterval",
    "haTransferBatchSize",
    "haMasterAddress",
    "haMaxGapNotInSync",
    "inSyncReplicas",
    "totalReplicas",
    "minInSyncReplicas",
    "maxTransferBytesOnMessageInDisk",
    "maxTransferCountOnMessageInDisk",
    "accessMessageInMemoryMaxRatio",
    "cleanResourceInterval",
    "deleteFileBatchMax",
    "destroyMapedFileIntervalForcibly",
    "autoMessageVersionOnTopicLen",
    "enabledAppendPropCRC",
    "forceVerifyPropCRC",
    "offsetCheckInSlave",
    "compressedRegister",
    "forceRegister",
    "transactionTimeOut",
    "transactionCheckMax",
    "transactionCheckInterval",
    "aclEnable",
    "serverWorkerThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverCallbackExecutorThreads",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "useReentrantLockWhenPutMessage",
];

/// The result of loading a properties source: the config plus what was skipped (for logs/tests).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub unknown_keys: Vec<String>,
    pub ignored_keys: Vec<String>,
}

impl BrokerConfig {
    /// Reads a broker.conf file over the defaults.
    pub fn load_file(path: &Path) -> Result<(Self, LoadReport), ConfigError> {
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = BrokerConfig::default();
        let report = cfg.apply_properties(file, path)?;
        Ok((cfg, report))
    }

    /// Applies a Java-properties stream over the current values. Later duplicates win.
    pub fn apply_properties(
        &mut self,
        input: impl Read,
        origin: &Path,
    ) -> Result<LoadReport, ConfigError> {
        let mut pairs = Vec::new();
        // java-properties 2.0 can panic inside its decoder on some invalid bytes; a bad file
        // must be an error, never a crash.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            java_properties::PropertiesIter::new(input).read_into(|k, v| pairs.push((k, v)))
        }));
        match parsed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    reason: "undecodable bytes".to_string(),
                })
            }
        }
        let mut report = LoadReport::default();
        for (key, value) in pairs {
            match self.set(&key, &value) {
                Ok(()) => {}
                Err(ConfigError::UnknownKey(k)) => {
                    if ACCEPTED_WITHOUT_EFFECT.contains(&k.as_str()) {
                        tracing::info!(key = %k, "broker.conf key accepted but has no effect in ferrocket");
                        report.ignored_keys.push(k);
                    } else {
                        tracing::warn!(key = %k, "unknown broker.conf key ignored");
                        report.unknown_keys.push(k);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Checks relations between keys; returns an error naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_role == BrokerRole::Slave {
            return Err(bad(
                "brokerRole",
                "SLAVE",
                "slave brokers (HA replication) are not supported",
            ));
        }
        if self.broker_id != 0 {
            return Err(bad(
                "brokerId",
                &self.broker_id.to_string(),
                "only masters (brokerId=0) are supported",
            ));
        }
        if self.broker_ip1.parse::<Ipv4Addr>().is_err() {
            return Err(bad(
                "brokerIP1",
                &self.broker_ip1,
                "must be an IPv4 address (clients decode 4-byte store hosts)",
            ));
        }
        if self.bind_address.parse::<IpAddr>().is_err() {
            return Err(bad("bindAddress", &self.bind_address, "not an IP address"));
        }
        if self.listen_port == 0 {
            // Port 0 (ephemeral) is allowed only through the CLI for tests; see `standalone`.
        }
        if self.default_topic_queue_nums == 0 || self.default_topic_queue_nums > 1024 {
            return Err(bad(
                "defaultTopicQueueNums",
                &self.default_topic_queue_nums.to_string(),
                "must be 1..=1024",
            ));
        }
        if self.mapped_file_size_commit_log < 64 * 1024 {
            return Err(bad(
                "mappedFileSizeCommitLog",
                &self.mapped_file_size_commit_log.to_string(),
                "must be at least 65536",
            ));
        }
        if self.mapped_file_size_consume_queue < 20
            || !self.mapped_file_size_consume_queue.is_multiple_of(20)
        {
            return Err(bad(
                "mappedFileSizeConsumeQueue",
                &self.mapped_file_size_consume_queue.to_string(),
                "must be a positive multiple of 20",
            ));
        }
        if self.disk_max_used_space_ratio == 0 || self.disk_max_used_space_ratio > 100 {
            return Err(bad(
                "diskMaxUsedSpaceRatio",
                &self.disk_max_used_space_ratio.to_string(),
                "must be 1..=100",
            ));
        }
        for (key, v) in [
            (
                "diskSpaceCleanForciblyRatio",
                self.disk_space_clean_forcibly_ratio,
            ),
            (
                "diskSpaceWarningLevelRatio",
                self.disk_space_warning_level_ratio,
            ),
        ] {
            if v == 0 || v > 100 {
                return Err(bad(key, &v.to_string(), "must be 1..=100"));
            }
        }
        if self.max_message_size == 0 {
            return Err(bad("maxMessageSize", "0", "must be positive"));
        }
        if u64::from(self.max_message_size) >= self.mapped_file_size_commit_log {
            return Err(bad(
                "maxMessageSize",
                &self.max_message_size.to_string(),
                "must be smaller than mappedFileSizeCommitLog",
            ));
        }
        self.transfer_backend
            .parse::<ferrocket_net::TransferBackend>()
            .map_err(|reason| bad("transferBackend", &self.transfer_backend, reason))?;
        parse_delay_levels(&self.message_delay_level)
            .map_err(|reason| bad("messageDelayLevel", &self.message_delay_level, reason))?;
        for hour in self.delete_when.split(';') {
            match hour.trim().parse::<u32>() {
                Ok(h) if h < 24 => {}
                _ => {
                    return Err(bad(
                        "deleteWhen",
                        &self.delete_when,
                        "expected hours 0..23 separated by ';'",
                    ))
                }
            }
        }
        for addr in self.namesrv_addrs() {
            if !addr.contains(':') {
                return Err(bad(
                    "namesrvAddr",
                    &self.namesrv_addr,
                    "expected host:port;host:port",
                ));
            }
        }
        Ok(())
    }

    /// The nameserver addresses (`namesrvAddr` split on `;`, blanks dropped).
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `brokerIP1:listenPort`, the address registered with the nameserver and stored as
    /// STOREHOST. `validate()` guarantees brokerIP1 is IPv4.
    pub fn broker_addr(&self) -> SocketAddr {
        let ip = self
            .broker_ip1
            .parse::<Ipv4Addr>()
            .unwrap_or(Ipv4Addr::LOCALHOST);
        SocketAddr::new(IpAddr::V4(ip), self.listen_port)
    }

    /// The address the broker's listener binds.
    pub fn listen_addr(&self) -> SocketAddr {
        let ip = self
            .bind_address
            .parse::<IpAddr>()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.listen_port)
    }

    /// `<storePathRootDir>/config`, where topics.json and friends live.
    pub fn config_dir(&self) -> PathBuf {
        Path::new(&self.store_path_root_dir).join("config")
    }

    /// The `registerNameServerPeriod`, clamped to 10..=60 s as Java does.
    pub fn register_period_ms(&self) -> u64 {
        self.register_name_server_period.clamp(10_000, 60_000)
    }

    /// Maps the storage keys onto the store's config.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            root_dir: PathBuf::from(&self.store_path_root_dir),
            commit_log_dir: if self.store_path_commit_log.trim().is_empty() {
                None
            } else {
                Some(PathBuf::from(self.store_path_commit_log.trim()))
            },
            mapped_file_size_commit_log: self.mapped_file_size_commit_log,
            mapped_file_size_consume_queue: self.mapped_file_size_consume_queue,
            flush_disk_type: self.flush_disk_type,
            flush_interval_commit_log_ms: self.flush_interval_commit_log,
            flush_commit_log_least_pages: self.flush_commit_log_least_pages,
            sync_flush_timeout_ms: self.sync_flush_timeout,
            max_message_size: self.max_message_size,
            file_reserved_time_hours: self.file_reserved_time,
            delete_when: self.delete_when.clone(),
            disk_max_used_space_ratio: self.disk_max_used_space_ratio,
            max_hash_slot_num: self.max_hash_slot_num,
            max_index_num: self.max_index_num,
            message_index_enable: self.message_index_enable,
            check_crc_on_recover: self.check_crc_on_recover,
        }
    }
}

/// Parses `messageDelayLevel` ("1s 5s 10s 30s 1m ... 2h") into milliseconds per level
/// (index 0 = level 1). Units: s, m, h, d.
pub fn parse_delay_levels(spec: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for item in spec.split_whitespace() {
        let (num, unit) = item.split_at(item.len().saturating_sub(1));
        let mult: u64 = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("level {item:?} lacks a unit s/m/h/d")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("level {item:?} is not a number"))?;
        out.push(
            n.checked_mul(mult)
                .ok_or_else(|| format!("level {item:?} overflows"))?,
        );
    }
    if out.is_empty() {
        return Err("no delay levels".to_string());
    }
    Ok(out)
}

/// Best-effort first non-loopback IPv4 address of this host (Java's default brokerIP1), found
/// by asking the kernel which source address would route to a public address (no packet is
/// sent). Falls back to 127.0.0.1.
pub fn local_ipv4() -> Ipv4Addr {
    let probe = || -> std::io::Result<Ipv4Addr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?; // TEST-NET-1, never routed anywhere real
        match s.local_addr()?.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => Ok(v4),
            _ => Ok(Ipv4Addr::LOCALHOST),
        }
    };
    probe().unwrap_or(Ipv4Addr::LOCALHOST)
}

/// All known keys with their default values, for the README table and `--help`.
pub fn defaults_table() -> BTreeMap<String, String> {
    BrokerConfig::default()
        .to_properties()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(BrokerConfig, LoadReport), ConfigError> {
        let mut c = BrokerConfig::default();
        let r = c.apply_properties(text.as_bytes(), Path::new("test.conf"))?;
        Ok((c, r))
    }

    #[test]
    fn defaults_match_rocketmq() {
        let c = BrokerConfig::default();
        assert_eq!(c.broker_cluster_name, "DefaultCluster");
        assert_eq!(c.listen_port, 10911);
        assert_eq!(c.flush_disk_type, FlushDiskType::Async);
        assert!(c.auto_create_topic_enable);
        assert_eq!(c.default_topic_queue_nums, 4);
        assert_eq!(c.mapped_file_size_commit_log, 1 << 30);
        assert_eq!(c.mapped_file_size_consume_queue, 6_000_000);
        assert_eq!(c.max_message_size, 4 << 20);
        assert_eq!(c.file_reserved_time, 72);
        assert_eq!(c.delete_when, "04");
        assert_eq!(c.disk_max_used_space_ratio, 75);
    }

    #[test]
    fn distribution_broker_conf_parses() {
        let text = "brokerClusterName = DefaultCluster\nbrokerName = broker-b\nbrokerId = 0\n\
                    deleteWhen = 04\nfileReservedTime = 48\nbrokerRole = ASYNC_MASTER\n\
                    flushDiskType = SYNC_FLUSH\n# a comment\n! another\nlistenPort=20911\n\
                    namesrvAddr=127.0.0.1:9876;10.0.0.2:9876\nbrokerIP1=10.1.2.3\n";
        let (c, r) = parse(text).unwrap();
        assert_eq!(c.broker_name, "broker-b");
        assert_eq!(c.file_reserved_time, 48);
        assert_eq!(c.flush_disk_type, FlushDiskType::Sync);
        assert_eq!(c.listen_port, 20911);
        assert_eq!(c.namesrv_addrs(), vec!["127.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(c.broker_addr().to_string(), "10.1.2.3:20911");
        assert!(r.unknown_keys.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let (c, r) = parse("brokerNmae=x\ntransientStorePoolEnable=true\nbrokerName=y\n").unwrap();
        assert_eq!(c.broker_name, "y");
        assert_eq!(r.unknown_keys, vec!["brokerNmae"]);
        assert_eq!(r.ignored_keys, vec!["transientStorePoolEnable"]);
    }

    #[test]
    fn sched_batch_threads_is_read_from_broker_conf() {
        use crate::sched::BatchThreads;
        assert_eq!(
            BrokerConfig::default().sched_batch_threads,
            BatchThreads::Dispatch
        );
        for (text, want) in [
            ("schedBatchThreads=all", BatchThreads::All),
            ("schedBatchThreads= off ", BatchThreads::None),
            ("schedBatchThreads=background", BatchThreads::Background),
        ] {
            let (c, _) = parse(text).unwrap();
            assert_eq!(c.sched_batch_threads, want, "{text}");
        }
        let shown = parse("schedBatchThreads=all").unwrap().0.to_properties();
        assert!(shown.contains(&("schedBatchThreads".to_string(), "all".to_string())));
    }

    #[test]
    fn bad_value_names_the_key() {
        for (text, key) in [
            ("listenPort=abc", "listenPort"),
            ("listenPort=70000", "listenPort"),
            ("autoCreateTopicEnable=yes", "autoCreateTopicEnable"),
            ("flushDiskType=SOMETIMES", "flushDiskType"),
            ("mappedFileSizeCommitLog=-1", "mappedFileSizeCommitLog"),
            ("schedBatchThreads=sometimes", "schedBatchThreads"),
        ] {
            let err = parse(text).unwrap_err();
            match &err {
                ConfigError::BadValue { key: k, .. } => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: unexpected {other:?}"),
            }
            assert!(err.to_string().contains(key));
        }
    }

    #[test]
    fn validate_rejects_inconsistent_values() {
        let cases = [
            ("brokerRole=SLAVE", "brokerRole"),
            ("brokerIP1=::1", "brokerIP1"),
            (
                "brokerIP1=127.0.0.1\nmessageDelayLevel=1s 5x",
                "messageDelayLevel",
            ),
            (
                "brokerIP1=127.0.0.1\nmappedFileSizeConsumeQueue=30",
                "mappedFileSizeConsumeQueue",
            ),
            ("brokerIP1=127.0.0.1\ndeleteWhen=04;25", "deleteWhen"),
            ("brokerIP1=127.0.0.1\nnamesrvAddr=localhost", "namesrvAddr"),
            (
                "brokerIP1=127.0.0.1\ntransferBackend=carrier-pigeon",
                "transferBackend",
            ),
        ];
        for (text, key) in cases {
            let (c, _) = parse(text).unwrap();
            match c.validate() {
                Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_files_are_errors_not_panics() {
        for bytes in [&b"\xff"[..], b"\xff\xfe=\x00\n", b"a=\\u12", b"\\"] {
            let mut c = BrokerConfig::default();
            let _ = c.apply_properties(bytes, Path::new("x"));
        }
    }

    #[test]
    fn store_config_mapping() {
        let (c, _) = parse(
            "storePathRootDir=/data/rmq\nstorePathCommitLog=/fast/commitlog\n\
             mappedFileSizeCommitLog=1048576\nflushDiskType=SYNC_FLUSH\nsyncFlushTimeout=777\n\
             maxMessageSize=1000\nfileReservedTime=5\ndeleteWhen=01;13\nmessageIndexEnable=false\n",
        )
        .unwrap();
        let s = c.store_config();
        assert_eq!(s.root_dir, PathBuf::from("/data/rmq"));
        assert_eq!(s.commit_log_dir, Some(PathBuf::from("/fast/commitlog")));
        assert_eq!(s.mapped_file_size_commit_log, 1_048_576);
        assert_eq!(s.flush_disk_type, FlushDiskType::Sync);
        assert_eq!(s.sync_flush_timeout_ms, 777);
        assert_eq!(s.max_message_size, 1000);
        assert_eq!(s.file_reserved_time_hours, 5);
        assert_eq!(s.delete_when, "01;13");
        assert!(!s.message_index_enable);
        assert_eq!(c.config_dir(), PathBuf::from("/data/rmq/config"));
    }

    #[test]
    fn properties_round_trip_through_set() {
        let c = BrokerConfig::default();
        let mut d = BrokerConfig {
            broker_name: "other".into(),
            ..Default::default()
        };
        for (k, v) in c.to_properties() {
            d.set(&k, &v).unwrap();
        }
        assert_eq!(c, d);
        assert_eq!(BrokerConfig::KEYS.len(), c.to_properties().len());
    }

    #[test]
    fn delay_levels() {
        let v = parse_delay_levels(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        assert_eq!(v.len(), 18);
        assert_eq!(v.first(), Some(&1000));
        assert_eq!(v.get(2), Some(&10_000));
        assert_eq!(v.last(), Some(&7_200_000));
        assert!(parse_delay_levels("").is_err());
        assert!(parse_delay_levels("5").is_err());
    }

    #[test]
    fn register_period_is_clamped() {
        let mut c = BrokerConfig {
            register_name_server_period: 1,
            ..Default::default()
        };
        assert_eq!(c.register_period_ms(), 10_000);
        c.register_name_server_period = 1_000_000;
        assert_eq!(c.register_period_ms(), 60_000);
    }
}
