//! Topic configurations (`config/topics.json`, RocketMQ's `TopicConfigManager`): system topics,
//! auto-creation from `TBW102`, retry/DLQ topics, the data version and the wrapper registered with
//! the nameserver.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::persist::{
    self, get_bool, get_i64, get_str, DataVersion, JsonOut, JsonStyle, PersistError,
};
use super::validate::{self, validate_topic};
use crate::config::BrokerConfig;

pub const AUTO_CREATE_TOPIC_KEY_TOPIC: &str = "TBW102";
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
/// SCHEDULE_TOPIC_XXXX has one queue per delay level; Java creates 18.
pub const SCHEDULE_TOPIC_QUEUE_NUMS: u32 = 18;
/// Queues per DLQ topic (`DLQ_NUMS_PER_GROUP`).
pub const DLQ_NUMS_PER_GROUP: u32 = 1;
/// Java `TopicConfig.defaultReadQueueNums` / `defaultWriteQueueNums`.
pub const DEFAULT_QUEUE_NUMS: u32 = 16;
/// Upper bound on a topic's queue count (BenchmarkTest has 1024): a hostile admin request or a
/// corrupt file cannot make one topic describe millions of queues.
pub const QUEUE_NUMS_MAX: u32 = 1024;
/// Upper bound on the number of topics created implicitly (auto-create, retry/DLQ): bounds memory
/// and the size of topics.json against clients that invent names.
pub const AUTO_CREATED_TOPICS_MAX: usize = 20_000;

/// `PermName` bits.
pub mod perm {
    pub const PRIORITY: u32 = 8;
    pub const READ: u32 = 4;
    pub const WRITE: u32 = 2;
    pub const INHERIT: u32 = 1;
    pub const RW: u32 = READ | WRITE;

    pub fn is_readable(p: u32) -> bool {
        p & READ != 0
    }
    pub fn is_writeable(p: u32) -> bool {
        p & WRITE != 0
    }
    pub fn is_inherited(p: u32) -> bool {
        p & INHERIT != 0
    }
}

/// Topics clients may never send to (`TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    matches!(
        topic,
        SCHEDULE_TOPIC
            | TRANS_HALF_TOPIC
            | TRANS_OP_HALF_TOPIC
            | TRANS_CHECK_MAX_TIME_TOPIC
            | SELF_TEST_TOPIC
            | OFFSET_MOVED_EVENT
            | "SCHEDULE_TOPIC_XXXX_V2"
    )
}

/// `TopicValidator.isSystemTopic`.
pub fn is_system_topic(topic: &str) -> bool {
    is_not_allowed_send_topic(topic)
        || matches!(
            topic,
            AUTO_CREATE_TOPIC_KEY_TOPIC | BENCHMARK_TOPIC | TRACE_TOPIC
        )
        || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// One topic's configuration (Java `TopicConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    pub topic_filter_type: String,
    pub topic_sys_flag: u32,
    pub order: bool,
    pub attributes: BTreeMap<String, String>,
}

/// The parts of a [`TopicConfig`] the send path checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendView {
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    /// `topicFilterType` is `MULTI_TAG`.
    pub multi_tag: bool,
}

impl From<&TopicConfig> for SendView {
    fn from(tc: &TopicConfig) -> Self {
        SendView {
            read_queue_nums: tc.read_queue_nums,
            write_queue_nums: tc.write_queue_nums,
            perm: tc.perm,
            multi_tag: tc.topic_filter_type == "MULTI_TAG",
        }
    }
}

impl TopicConfig {
    /// A topic with `queues` read and write queues, the given perm, SINGLE_TAG.
    pub fn new(name: &str, queues: u32, perm: u32) -> Self {
        TopicConfig {
            topic_name: name.to_string(),
            read_queue_nums: queues.min(QUEUE_NUMS_MAX),
            write_queue_nums: queues.min(QUEUE_NUMS_MAX),
            perm,
            topic_filter_type: "SINGLE_TAG".to_string(),
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }

    /// Java's number of queues a send may address: max(read, write).
    pub fn queue_nums_max(&self) -> u32 {
        self.read_queue_nums.max(self.write_queue_nums)
    }

    /// Decodes one `topicConfigTable` entry. The table key is authoritative for the name; invalid
    /// names and impossible values give `None` (the entry is dropped with a warning by the caller).
    pub fn from_value(key: &str, v: &Value) -> Option<Self> {
        let name = get_str(v, "topicName").unwrap_or_else(|| key.to_string());
        if name != key || validate_topic(key).is_err() {
            return None;
        }
        let nums = |field: &str| -> Option<u32> {
            let n = get_i64(v, field).unwrap_or(i64::from(DEFAULT_QUEUE_NUMS));
            u32::try_from(n).ok().map(|n| n.min(QUEUE_NUMS_MAX))
        };
        let attributes = v
            .get("attributes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Some(TopicConfig {
            topic_name: name,
            read_queue_nums: nums("readQueueNums")?,
            write_queue_nums: nums("writeQueueNums")?,
            perm: u32::try_from(get_i64(v, "perm").unwrap_or(i64::from(perm::RW)))
                .ok()
                .filter(|p| *p <= 0xF)?,
            topic_filter_type: match get_str(v, "topicFilterType").as_deref() {
                Some("MULTI_TAG") => "MULTI_TAG".to_string(),
                _ => "SINGLE_TAG".to_string(),
            },
            topic_sys_flag: u32::try_from(get_i64(v, "topicSysFlag").unwrap_or(0)).unwrap_or(0),
            order: get_bool(v, "order").unwrap_or(false),
            attributes,
        })
    }

    /// The fastjson shape (keys in alphabetical order, as fastjson sorts bean properties).
    pub fn to_json(&self) -> JsonOut {
        JsonOut::obj([
            (
                "attributes",
                JsonOut::obj(
                    self.attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), JsonOut::str(v.clone()))),
                ),
            ),
            ("order", JsonOut::Bool(self.order)),
            ("perm", JsonOut::Int(i64::from(self.perm))),
            (
                "readQueueNums",
                JsonOut::Int(i64::from(self.read_queue_nums)),
            ),
            (
                "topicFilterType",
                JsonOut::str(self.topic_filter_type.clone()),
            ),
            ("topicName", JsonOut::str(self.topic_name.clone())),
            ("topicSysFlag", JsonOut::Int(i64::from(self.topic_sys_flag))),
            (
                "writeQueueNums",
                JsonOut::Int(i64::from(self.write_queue_nums)),
            ),
        ])
    }
}

/// The broker settings topic management depends on (a narrow view of broker.conf).
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub broker_cluster_name: String,
    pub broker_name: String,
    /// `autoCreateTopicEnable` (default true).
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums` (default 8): queues of TBW102.
    pub default_topic_queue_nums: u32,
    /// `clusterTopicEnable` (default true).
    pub cluster_topic_enable: bool,
    /// `brokerTopicEnable` (default true).
    pub broker_topic_enable: bool,
    /// `traceTopicEnable` (default false) and `msgTraceTopicName`.
    pub trace_topic_enable: bool,
    pub msg_trace_topic_name: String,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            broker_cluster_name: "DefaultCluster".to_string(),
            broker_name: "broker-a".to_string(),
            auto_create_topic_enable: true,
            default_topic_queue_nums: 8,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            trace_topic_enable: false,
            msg_trace_topic_name: TRACE_TOPIC.to_string(),
        }
    }
}

impl From<&BrokerConfig> for TopicDefaults {
    fn from(c: &BrokerConfig) -> Self {
        TopicDefaults {
            broker_cluster_name: c.broker_cluster_name.clone(),
            broker_name: c.broker_name.clone(),
            auto_create_topic_enable: c.auto_create_topic_enable,
            default_topic_queue_nums: c.default_topic_queue_nums,
            cluster_topic_enable: c.cluster_topic_enable,
            broker_topic_enable: c.broker_topic_enable,
            trace_topic_enable: c.trace_topic_enable,
            msg_trace_topic_name: c.msg_trace_topic_name.clone(),
        }
    }
}

struct Table {
    topics: BTreeMap<String, TopicConfig>,
    data_version: DataVersion,
    auto_created: usize,
}

/// All topic configs, persisted in `<config_dir>/topics.json` after every change.
pub struct TopicConfigManager {
    path: PathBuf,
    defaults: TopicDefaults,
    /// `autoCreateTopicEnable`, changeable at runtime (UPDATE_BROKER_CONFIG).
    auto_create: AtomicBool,
    table: RwLock<Table>,
    /// Serialises persists so a later snapshot is never overwritten by an earlier one.
    persist_lock: Mutex<()>,
}

impl TopicConfigManager {
    /// Loads `<config_dir>/topics.json` (leniently, falling back to `.bak`) over the built-in
    /// system topics. Only fails if the config directory cannot be created.
    pub fn open(config_dir: &Path, defaults: TopicDefaults) -> Result<Self, PersistError> {
        std::fs::create_dir_all(config_dir).map_err(|source| PersistError::Io {
            op: "create dir",
            path: config_dir.to_path_buf(),
            source,
        })?;
        let path = config_dir.join("topics.json");
        let mut topics = system_topics(&defaults);
        let loaded = persist::load_json(&path);
        let mut data_version = DataVersion::new();
        if let Some(v) = &loaded.value {
            if let Some(dv) = v.get("dataVersion").and_then(DataVersion::from_value) {
                data_version = dv;
            }
            let table = v.get("topicConfigTable").and_then(Value::as_object);
            for (key, entry) in table.into_iter().flatten() {
                match TopicConfig::from_value(key, entry) {
                    Some(tc) => {
                        topics.insert(key.clone(), tc);
                    }
                    None => tracing::warn!(
                        "topics.json: dropped invalid entry {}",
                        validate::shown_name(key)
                    ),
                }
            }
        }
        if !defaults.auto_create_topic_enable {
            // Without auto-creation TBW102 must not act as a template.
            if let Some(tbw) = topics.get_mut(AUTO_CREATE_TOPIC_KEY_TOPIC) {
                tbw.perm &= !perm::INHERIT;
            }
        }
        let mgr = TopicConfigManager {
            path,
            auto_create: AtomicBool::new(defaults.auto_create_topic_enable),
            defaults,
            table: RwLock::new(Table {
                topics,
                data_version,
                auto_created: 0,
            }),
            persist_lock: Mutex::new(()),
        };
        if let Err(e) = mgr.persist() {
            tracing::warn!("topics.json: cannot write: {e}");
        }
        Ok(mgr)
    }

    /// [`TopicConfigManager::open`] with the settings of `conf`.
    pub fn load(config_dir: &Path, conf: &BrokerConfig) -> Result<Self, PersistError> {
        Self::open(config_dir, TopicDefaults::from(conf))
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table.read().topics.get(topic).cloned()
    }

    /// What a send needs of the topic's config, without cloning its strings (a send looks
    /// its topic up on every request).
    pub fn send_view(&self, topic: &str) -> Option<SendView> {
        self.table.read().topics.get(topic).map(SendView::from)
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.table.read().topics.contains_key(topic)
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<TopicConfig> {
        self.table.read().topics.values().cloned().collect()
    }

    pub fn data_version(&self) -> DataVersion {
        self.table.read().data_version
    }

    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// Applies a runtime change of `autoCreateTopicEnable` (TBW102 stops or starts acting as a
    /// template at once).
    pub fn set_auto_create(&self, on: bool) {
        self.auto_create.store(on, Ordering::Release);
    }

    /// Java `createTopicInSendMessageMethod` (§7.7): creates `topic` from the template
    /// `default_topic` if that template has PERM_INHERIT. `Ok(None)` means TOPIC_NOT_EXIST.
    pub fn create_in_send(
        &self,
        topic: &str,
        default_topic: &str,
        default_queue_nums: u32,
        topic_sys_flag: u32,
    ) -> Result<Option<TopicConfig>, PersistError> {
        if let Some(tc) = self.get(topic) {
            return Ok(Some(tc));
        }
        if let Err(e) = validate_topic(topic) {
            tracing::warn!(
                "refusing to create topic {}: {e}",
                validate::shown_name(topic)
            );
            return Ok(None);
        }
        let created = {
            let mut t = self.table.write();
            if let Some(tc) = t.topics.get(topic) {
                return Ok(Some(tc.clone()));
            }
            let Some(template) = t.topics.get(default_topic) else {
                return Ok(None);
            };
            let mut template_perm = template.perm;
            if default_topic == AUTO_CREATE_TOPIC_KEY_TOPIC
                && !self.auto_create.load(Ordering::Acquire)
            {
                template_perm = perm::RW;
            }
            if !perm::is_inherited(template_perm) {
                tracing::warn!(
                    "create topic {topic}: template {} has no inherit permission ({template_perm})",
                    validate::shown_name(default_topic)
                );
                return Ok(None);
            }
            if t.auto_created >= AUTO_CREATED_TOPICS_MAX {
                tracing::warn!("create topic {topic}: too many auto-created topics");
                return Ok(None);
            }
            let queues = default_queue_nums.min(template.write_queue_nums);
            let mut tc = TopicConfig::new(topic, queues, template_perm & !perm::INHERIT);
            tc.topic_filter_type = template.topic_filter_type.clone();
            tc.topic_sys_flag = topic_sys_flag;
            t.topics.insert(topic.to_string(), tc.clone());
            t.auto_created += 1;
            t.data_version.bump();
            tc
        };
        tracing::info!(
            "auto-created topic {} from {} ({} queues, perm {})",
            topic,
            default_topic,
            created.write_queue_nums,
            created.perm
        );
        self.persist()?;
        Ok(Some(created))
    }

    /// Creates `topic` with `queue_nums` queues if it does not exist (retry topics on heartbeat
    /// and send-back, DLQ topics). Returns the existing or new config; `Ok(None)` if the name is
    /// invalid or too many topics were created implicitly.
    pub fn create_if_absent(
        &self,
        topic: &str,
        queue_nums: u32,
        perm: u32,
        topic_sys_flag: u32,
    ) -> Result<Option<TopicConfig>, PersistError> {
        if let Some(tc) = self.get(topic) {
            return Ok(Some(tc));
        }
        if let Err(e) = validate_topic(topic) {
            tracing::warn!(
                "refusing to create topic {}: {e}",
                validate::shown_name(topic)
            );
            return Ok(None);
        }
        let tc = {
            let mut t = self.table.write();
            if let Some(tc) = t.topics.get(topic) {
                return Ok(Some(tc.clone()));
            }
            if t.auto_created >= AUTO_CREATED_TOPICS_MAX {
                tracing::warn!("create topic {topic}: too many auto-created topics");
                return Ok(None);
            }
            let mut tc = TopicConfig::new(topic, queue_nums, perm);
            tc.topic_sys_flag = topic_sys_flag;
            t.topics.insert(topic.to_string(), tc.clone());
            t.auto_created += 1;
            t.data_version.bump();
            tc
        };
        tracing::info!("created topic {topic} ({queue_nums} queues, perm {perm})");
        self.persist()?;
        Ok(Some(tc))
    }

    /// Repairs the table from what the store holds: a topic with ConsumeQueues on disk but no
    /// config (topics.json lost or rolled back to its backup) gets one with enough queues (at
    /// least the default, RW), and a known topic whose queues on disk exceed its config grows.
    /// `queues` is `MessageStore::topics_and_queues()`. Returns the topics repaired.
    pub fn adopt_store_topics(
        &self,
        queues: &[(String, u32)],
    ) -> Result<Vec<String>, PersistError> {
        let mut needed: BTreeMap<&str, u32> = BTreeMap::new();
        for (topic, qid) in queues {
            if validate_topic(topic).is_err() {
                continue;
            }
            let n = qid.saturating_add(1).min(QUEUE_NUMS_MAX);
            let e = needed.entry(topic.as_str()).or_insert(0);
            *e = (*e).max(n);
        }
        let mut repaired = Vec::new();
        {
            let mut t = self.table.write();
            for (topic, n) in needed {
                match t.topics.get_mut(topic) {
                    Some(tc) if tc.queue_nums_max() >= n => {}
                    Some(tc) => {
                        tracing::warn!(
                            "topic {topic}: queues up to {n} exist on disk but the config has {}; enlarged",
                            tc.queue_nums_max()
                        );
                        tc.read_queue_nums = tc.read_queue_nums.max(n);
                        tc.write_queue_nums = tc.write_queue_nums.max(n);
                        repaired.push(topic.to_string());
                    }
                    None => {
                        let queues = if validate::is_retry_or_dlq_topic(topic) {
                            n
                        } else {
                            n.max(self.defaults.default_topic_queue_nums)
                        };
                        let p = if topic.starts_with(validate::DLQ_GROUP_TOPIC_PREFIX) {
                            perm::WRITE
                        } else {
                            perm::RW
                        };
                        tracing::warn!(
                            "topic {topic} has messages but no config (topics.json lost?); recreated with {queues} queues"
                        );
                        t.topics
                            .insert(topic.to_string(), TopicConfig::new(topic, queues, p));
                        repaired.push(topic.to_string());
                    }
                }
            }
            if !repaired.is_empty() {
                t.data_version.bump();
            }
        }
        if !repaired.is_empty() {
            self.persist()?;
        }
        Ok(repaired)
    }

    /// Adds or replaces a topic (UPDATE_AND_CREATE_TOPIC). The caller validated the name.
    pub fn upsert(&self, tc: TopicConfig) -> Result<(), PersistError> {
        if validate_topic(&tc.topic_name).is_err() {
            return Ok(());
        }
        {
            let mut t = self.table.write();
            let mut tc = tc;
            tc.read_queue_nums = tc.read_queue_nums.min(QUEUE_NUMS_MAX);
            tc.write_queue_nums = tc.write_queue_nums.min(QUEUE_NUMS_MAX);
            t.topics.insert(tc.topic_name.clone(), tc);
            t.data_version.bump();
        }
        self.persist()
    }

    /// Removes a topic; `Ok(false)` if it did not exist.
    pub fn delete(&self, topic: &str) -> Result<bool, PersistError> {
        let removed = {
            let mut t = self.table.write();
            let removed = t.topics.remove(topic).is_some();
            if removed {
                t.data_version.bump();
            }
            removed
        };
        if removed {
            self.persist()?;
        }
        Ok(removed)
    }

    /// `TopicConfigSerializeWrapper` JSON, the body of REGISTER_BROKER and GET_ALL_TOPIC_CONFIG.
    pub fn serialize_wrapper(&self) -> Value {
        let text = self.wrapper_json().render(JsonStyle::Standard);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The same wrapper as a [`JsonOut`] tree (for callers that render it themselves).
    pub fn wrapper_json(&self) -> JsonOut {
        let t = self.table.read();
        JsonOut::obj([
            ("dataVersion", t.data_version.to_json()),
            (
                "topicConfigTable",
                JsonOut::obj(t.topics.iter().map(|(k, v)| (k.clone(), v.to_json()))),
            ),
        ])
    }

    /// Writes topics.json atomically (it is also written after every change).
    pub fn persist(&self) -> Result<(), PersistError> {
        let _g = self.persist_lock.lock();
        let text = self.wrapper_json().render(JsonStyle::FastjsonPretty);
        persist::write_atomic(&self.path, text.as_bytes())
    }
}

/// The topics Java's `TopicConfigManager` creates at startup (§7.7).
fn system_topics(d: &TopicDefaults) -> BTreeMap<String, TopicConfig> {
    let mut m = BTreeMap::new();
    let mut add = |tc: TopicConfig| {
        if validate_topic(&tc.topic_name).is_ok() {
            m.insert(tc.topic_name.clone(), tc);
        } else {
            tracing::warn!(
                "not creating system topic {}: invalid name",
                validate::shown_name(&tc.topic_name)
            );
        }
    };
    add(TopicConfig::new(SELF_TEST_TOPIC, 1, perm::RW));
    if d.auto_create_topic_enable {
        add(TopicConfig::new(
            AUTO_CREATE_TOPIC_KEY_TOPIC,
            d.default_topic_queue_nums,
            perm::RW | perm::INHERIT,
        ));
    }
    add(TopicConfig::new(BENCHMARK_TOPIC, 1024, perm::RW));
    if d.cluster_topic_enable {
        add(TopicConfig::new(
            &d.broker_cluster_name,
            DEFAULT_QUEUE_NUMS,
            perm::RW | perm::INHERIT,
        ));
    }
    let broker_perm = if d.broker_topic_enable {
        perm::RW | perm::INHERIT
    } else {
        perm::INHERIT
    };
    add(TopicConfig::new(&d.broker_name, 1, broker_perm));
    add(TopicConfig::new(OFFSET_MOVED_EVENT, 1, perm::RW));
    add(TopicConfig::new(
        SCHEDULE_TOPIC,
        SCHEDULE_TOPIC_QUEUE_NUMS,
        perm::RW,
    ));
    if d.trace_topic_enable {
        add(TopicConfig::new(&d.msg_trace_topic_name, 1, perm::RW));
    }
    add(TopicConfig::new(
        &format!("{}_REPLY_TOPIC", d.broker_cluster_name),
        1,
        perm::RW,
    ));
    add(TopicConfig::new(TRANS_HALF_TOPIC, 1, perm::RW));
    add(TopicConfig::new(TRANS_OP_HALF_TOPIC, 1, perm::RW));
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(dir: &Path) -> TopicConfigManager {
        TopicConfigManager::open(dir, TopicDefaults::default()).unwrap()
    }

    #[test]
    fn system_topics_exist_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let tbw = m.get("TBW102").unwrap();
        assert_eq!(
            (tbw.perm, tbw.read_queue_nums, tbw.write_queue_nums),
            (7, 8, 8)
        );
        let sched = m.get(SCHEDULE_TOPIC).unwrap();
        assert_eq!(sched.write_queue_nums, 18);
        assert!(m.get("DefaultCluster").is_some());
        assert!(m.get("broker-a").is_some());
        assert!(m.get("DefaultCluster_REPLY_TOPIC").is_some());
        assert!(dir.path().join("topics.json").exists());
    }

    #[test]
    fn auto_create_from_tbw102_and_persist_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let v0 = m.data_version();
        let tc = m
            .create_in_send("TopicTest", "TBW102", 4, 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            (tc.read_queue_nums, tc.write_queue_nums, tc.perm),
            (4, 4, 6)
        );
        assert!(m.data_version().counter > v0.counter);
        // More queues than the template has are capped by the template.
        let tc = m.create_in_send("Big", "TBW102", 100, 0).unwrap().unwrap();
        assert_eq!(tc.write_queue_nums, 8);
        // A template without INHERIT refuses.
        assert_eq!(m.create_in_send("X", "TopicTest", 4, 0).unwrap(), None);
        // An unknown template refuses.
        assert_eq!(m.create_in_send("X", "Nope", 4, 0).unwrap(), None);
        // Invalid names are never created.
        assert_eq!(m.create_in_send("../../x", "TBW102", 4, 0).unwrap(), None);
        assert_eq!(m.create_in_send("a\0b", "TBW102", 4, 0).unwrap(), None);
        drop(m);
        let m = open(dir.path());
        assert_eq!(m.get("TopicTest").unwrap().write_queue_nums, 4);
        assert!(m.data_version().counter >= 2);
    }

    #[test]
    fn auto_create_disabled_means_no_tbw102_template() {
        let dir = tempfile::tempdir().unwrap();
        let d = TopicDefaults {
            auto_create_topic_enable: false,
            ..TopicDefaults::default()
        };
        let m = TopicConfigManager::open(dir.path(), d).unwrap();
        assert!(m.get("TBW102").is_none());
        assert_eq!(m.create_in_send("T", "TBW102", 4, 0).unwrap(), None);
    }

    #[test]
    fn retry_topics_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let tc = m
            .create_if_absent("%RETRY%g1", 1, perm::RW, 0)
            .unwrap()
            .unwrap();
        assert_eq!((tc.write_queue_nums, tc.perm), (1, 6));
        // Idempotent: returns the existing config.
        let again = m
            .create_if_absent("%RETRY%g1", 5, perm::RW, 0)
            .unwrap()
            .unwrap();
        assert_eq!(again.write_queue_nums, 1);
        assert!(m.delete("%RETRY%g1").unwrap());
        assert!(!m.delete("%RETRY%g1").unwrap());
        assert!(m.get("%RETRY%g1").is_none());
    }

    #[test]
    fn loads_java_written_topics_json_and_drops_hostile_entries() {
        let dir = tempfile::tempdir().unwrap();
        // As written by a Java 4.9 broker (pretty fastjson), plus two hostile entries.
        let text = r#"{
	"dataVersion":{
		"counter":42,
		"timestamp":1700000000000
	},
	"topicConfigTable":{
		"TopicTest":{
			"order":false,
			"perm":6,
			"readQueueNums":4,
			"topicFilterType":"SINGLE_TAG",
			"topicName":"TopicTest",
			"topicSysFlag":0,
			"writeQueueNums":4
		},
		"../../etc":{"perm":6,"readQueueNums":4,"topicName":"../../etc","writeQueueNums":4},
		"Huge":{"perm":6,"readQueueNums":2147483647,"topicName":"Huge","writeQueueNums":"8",},
		"Mismatch":{"topicName":"Other","perm":6},
	}
}"#;
        std::fs::write(dir.path().join("topics.json"), text).unwrap();
        let m = open(dir.path());
        assert_eq!(m.data_version().counter, 42);
        let t = m.get("TopicTest").unwrap();
        assert_eq!((t.read_queue_nums, t.perm), (4, 6));
        assert!(m.get("../../etc").is_none());
        assert!(m.get("Mismatch").is_none() && m.get("Other").is_none());
        let h = m.get("Huge").unwrap();
        assert_eq!((h.read_queue_nums, h.write_queue_nums), (QUEUE_NUMS_MAX, 8));
    }

    #[test]
    fn corrupt_topics_json_uses_backup() {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = open(dir.path());
            m.create_in_send("Kept", "TBW102", 4, 0).unwrap();
            m.create_in_send("Kept2", "TBW102", 4, 0).unwrap();
        }
        std::fs::write(dir.path().join("topics.json"), b"{\"dataVersion\":{").unwrap();
        let m = open(dir.path());
        assert!(
            m.get("Kept").is_some(),
            "backup holds the state before the last write"
        );
    }

    #[test]
    fn store_topics_missing_from_config_are_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        m.create_in_send("Known", "TBW102", 2, 0).unwrap();
        let on_disk: Vec<(String, u32)> = vec![
            ("Known".into(), 5),
            ("Lost".into(), 0),
            ("Lost".into(), 2),
            ("%RETRY%g".into(), 0),
            ("%DLQ%g".into(), 0),
            ("../bad".into(), 0),
        ];
        let mut repaired = m.adopt_store_topics(&on_disk).unwrap();
        repaired.sort();
        assert_eq!(repaired, vec!["%DLQ%g", "%RETRY%g", "Known", "Lost"]);
        assert_eq!(m.get("Known").unwrap().write_queue_nums, 6);
        assert_eq!(m.get("Lost").unwrap().write_queue_nums, 8);
        assert_eq!(m.get("%RETRY%g").unwrap().write_queue_nums, 1);
        assert_eq!(m.get("%DLQ%g").unwrap().perm, perm::WRITE);
        assert!(m.get("../bad").is_none());
        // Idempotent.
        assert!(m.adopt_store_topics(&on_disk).unwrap().is_empty());
        let m = open(dir.path());
        assert!(m.get("Lost").is_some());
    }

    #[test]
    fn wrapper_shape() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let w = m.serialize_wrapper();
        assert!(w["dataVersion"]["counter"].is_i64());
        assert_eq!(
            w["topicConfigTable"]["TBW102"],
            json!({"attributes":{},"order":false,"perm":7,"readQueueNums":8,
                   "topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,
                   "writeQueueNums":8})
        );
    }

    #[test]
    fn system_topic_sets() {
        assert!(is_not_allowed_send_topic(SCHEDULE_TOPIC));
        assert!(!is_not_allowed_send_topic("TBW102"));
        assert!(is_system_topic("TBW102"));
        assert!(is_system_topic("rmq_sys_x"));
        assert!(!is_system_topic("TopicTest"));
    }
}
