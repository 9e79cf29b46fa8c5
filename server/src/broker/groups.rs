//! Subscription group configs (`config/subscriptionGroup.json`, RocketMQ's
//! `SubscriptionGroupManager`): auto-created on first use when `autoCreateSubscriptionGroup`,
//! holding each group's retry settings (`retryQueueNums`, `retryMaxTimes`).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::persist::{
    self, get_bool, get_i64, get_str, value_to_out, DataVersion, JsonOut, JsonStyle, PersistError,
};
use super::validate::{self, validate_group};
use crate::config::BrokerConfig;

/// Upper bound on auto-created groups (a client inventing group names cannot grow memory and
/// subscriptionGroup.json without limit).
pub const AUTO_CREATED_GROUPS_MAX: usize = 20_000;
/// Default `retryMaxTimes`.
pub const DEFAULT_RETRY_MAX_TIMES: i32 = 16;

/// One group's configuration (Java `SubscriptionGroupConfig`, defaults as Java).
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: u32,
    pub retry_max_times: i32,
    pub broker_id: u64,
    pub which_broker_when_consume_slowly: u64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    pub attributes: BTreeMap<String, String>,
    /// `subscriptionDataSet` and `groupRetryPolicy` are kept as given (5.x features we store but
    /// do not interpret).
    pub subscription_data_set: Option<Value>,
    pub group_retry_policy: Option<Value>,
}

impl SubscriptionGroupConfig {
    pub fn new(group: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group.to_string(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: DEFAULT_RETRY_MAX_TIMES,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            attributes: BTreeMap::new(),
            subscription_data_set: None,
            group_retry_policy: None,
        }
    }

    /// Decodes a config object (file entry or UPDATE_AND_CREATE_SUBSCRIPTIONGROUP body); missing
    /// fields take Java's defaults. `None` when the name is missing or invalid.
    pub fn from_value(v: &Value) -> Option<Self> {
        let name = get_str(v, "groupName")?;
        validate_group(&name).ok()?;
        let d = SubscriptionGroupConfig::new(&name);
        let int = |k: &str, dflt: i32| {
            get_i64(v, k)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(dflt)
        };
        let uint = |k: &str, dflt: u64| {
            get_i64(v, k)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(dflt)
        };
        let flag = |k: &str, dflt: bool| get_bool(v, k).unwrap_or(dflt);
        Some(SubscriptionGroupConfig {
            consume_enable: flag("consumeEnable", d.consume_enable),
            consume_from_min_enable: flag("consumeFromMinEnable", d.consume_from_min_enable),
            consume_broadcast_enable: flag("consumeBroadcastEnable", d.consume_broadcast_enable),
            consume_message_orderly: flag("consumeMessageOrderly", d.consume_message_orderly),
            // A group has at most a handful of retry queues; cap hostile values.
            retry_queue_nums: u32::try_from(int("retryQueueNums", 1).clamp(0, 64)).unwrap_or(1),
            retry_max_times: int("retryMaxTimes", d.retry_max_times),
            broker_id: uint("brokerId", 0),
            which_broker_when_consume_slowly: uint("whichBrokerWhenConsumeSlowly", 1),
            notify_consumer_ids_changed_enable: flag(
                "notifyConsumerIdsChangedEnable",
                d.notify_consumer_ids_changed_enable,
            ),
            group_sys_flag: int("groupSysFlag", 0),
            consume_timeout_minute: int("consumeTimeoutMinute", 15),
            attributes: v
                .get("attributes")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            subscription_data_set: v
                .get("subscriptionDataSet")
                .filter(|s| s.is_array())
                .cloned(),
            group_retry_policy: v
                .get("groupRetryPolicy")
                .filter(|s| s.is_object() && **s != serde_json::json!({"type": "CUSTOMIZED"}))
                .cloned(),
            group_name: name,
        })
    }

    /// fastjson shape, properties in alphabetical order, nulls omitted.
    pub fn to_json(&self) -> JsonOut {
        let mut items: Vec<(&str, JsonOut)> = vec![
            (
                "attributes",
                JsonOut::obj(
                    self.attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), JsonOut::str(v.clone()))),
                ),
            ),
            (
                "brokerId",
                JsonOut::Int(i64::try_from(self.broker_id).unwrap_or(0)),
            ),
            (
                "consumeBroadcastEnable",
                JsonOut::Bool(self.consume_broadcast_enable),
            ),
            ("consumeEnable", JsonOut::Bool(self.consume_enable)),
            (
                "consumeFromMinEnable",
                JsonOut::Bool(self.consume_from_min_enable),
            ),
            (
                "consumeMessageOrderly",
                JsonOut::Bool(self.consume_message_orderly),
            ),
            (
                "consumeTimeoutMinute",
                JsonOut::Int(i64::from(self.consume_timeout_minute)),
            ),
            ("groupName", JsonOut::str(self.group_name.clone())),
            (
                "groupRetryPolicy",
                self.group_retry_policy
                    .as_ref()
                    .map(value_to_out)
                    .unwrap_or_else(|| JsonOut::obj([("type", JsonOut::str("CUSTOMIZED"))])),
            ),
            ("groupSysFlag", JsonOut::Int(i64::from(self.group_sys_flag))),
            (
                "notifyConsumerIdsChangedEnable",
                JsonOut::Bool(self.notify_consumer_ids_changed_enable),
            ),
            (
                "retryMaxTimes",
                JsonOut::Int(i64::from(self.retry_max_times)),
            ),
            (
                "retryQueueNums",
                JsonOut::Int(i64::from(self.retry_queue_nums)),
            ),
        ];
        if let Some(s) = &self.subscription_data_set {
            items.push(("subscriptionDataSet", value_to_out(s)));
        }
        items.push((
            "whichBrokerWhenConsumeSlowly",
            JsonOut::Int(i64::try_from(self.which_broker_when_consume_slowly).unwrap_or(1)),
        ));
        JsonOut::obj(items)
    }
}

struct Table {
    groups: BTreeMap<String, SubscriptionGroupConfig>,
    data_version: DataVersion,
    auto_created: usize,
}

/// Every subscription group, persisted in `<config_dir>/subscriptionGroup.json` on change.
pub struct SubscriptionGroupManager {
    path: PathBuf,
    /// `autoCreateSubscriptionGroup`, changeable at runtime (UPDATE_BROKER_CONFIG).
    auto_create: AtomicBool,
    table: RwLock<Table>,
    persist_lock: Mutex<()>,
}

/// Groups Java creates at startup.
const SYSTEM_GROUPS: &[&str] = &[
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "SELF_TEST_C_GROUP",
    "CID_RMQ_SYS_TRANS",
];

impl SubscriptionGroupManager {
    /// Loads the file leniently (`.bak` fallback). `auto_create` = `autoCreateSubscriptionGroup`.
    pub fn open(config_dir: &Path, auto_create: bool) -> Result<Self, PersistError> {
        std::fs::create_dir_all(config_dir).map_err(|source| PersistError::Io {
            op: "create dir",
            path: config_dir.to_path_buf(),
            source,
        })?;
        let path = config_dir.join("subscriptionGroup.json");
        let mut groups: BTreeMap<String, SubscriptionGroupConfig> = SYSTEM_GROUPS
            .iter()
            .map(|g| {
                let mut c = SubscriptionGroupConfig::new(g);
                c.consume_broadcast_enable = true;
                (g.to_string(), c)
            })
            .collect();
        let loaded = persist::load_json(&path);
        let mut data_version = DataVersion::new();
        if let Some(v) = &loaded.value {
            if let Some(dv) = v.get("dataVersion").and_then(DataVersion::from_value) {
                data_version = dv;
            }
            let table = v.get("subscriptionGroupTable").and_then(Value::as_object);
            for (k, entry) in table.into_iter().flatten() {
                match SubscriptionGroupConfig::from_value(entry).filter(|c| &c.group_name == k) {
                    Some(c) => {
                        groups.insert(k.clone(), c);
                    }
                    None => tracing::warn!(
                        "subscriptionGroup.json: dropped invalid entry {}",
                        validate::shown_name(k)
                    ),
                }
            }
        }
        let mgr = SubscriptionGroupManager {
            path,
            auto_create: AtomicBool::new(auto_create),
            table: RwLock::new(Table {
                groups,
                data_version,
                auto_created: 0,
            }),
            persist_lock: Mutex::new(()),
        };
        if loaded.source == persist::LoadSource::Backup {
            // Put a good main file back in place right away.
            if let Err(e) = mgr.persist() {
                tracing::warn!("subscriptionGroup.json: cannot rewrite after repair: {e}");
            }
        }
        Ok(mgr)
    }

    /// [`SubscriptionGroupManager::open`] with `autoCreateSubscriptionGroup` from `conf`.
    pub fn load(config_dir: &Path, conf: &BrokerConfig) -> Result<Self, PersistError> {
        Self::open(config_dir, conf.auto_create_subscription_group)
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.table.read().groups.get(group).cloned()
    }

    /// Java `findSubscriptionGroupConfig`: the group's config, auto-created (and persisted) when
    /// unknown and `autoCreateSubscriptionGroup`; `None` when unknown otherwise or invalid.
    pub fn get_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if let Some(c) = self.get(group) {
            return Some(c);
        }
        if !self.auto_create.load(Ordering::Acquire) || validate_group(group).is_err() {
            return None;
        }
        let c = {
            let mut t = self.table.write();
            if let Some(c) = t.groups.get(group) {
                return Some(c.clone());
            }
            if t.auto_created >= AUTO_CREATED_GROUPS_MAX {
                tracing::warn!("not auto-creating group {group}: too many groups");
                return None;
            }
            let c = SubscriptionGroupConfig::new(group);
            t.groups.insert(group.to_string(), c.clone());
            t.auto_created += 1;
            t.data_version.bump();
            c
        };
        tracing::info!("auto-created subscription group {group}");
        if let Err(e) = self.persist() {
            tracing::warn!("subscriptionGroup.json: {e}");
        }
        Some(c)
    }

    /// Applies a runtime change of `autoCreateSubscriptionGroup`.
    pub fn set_auto_create(&self, on: bool) {
        self.auto_create.store(on, Ordering::Release);
    }

    /// Adds or replaces a group (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).
    pub fn upsert(&self, c: SubscriptionGroupConfig) -> Result<(), PersistError> {
        if validate_group(&c.group_name).is_err() {
            return Ok(());
        }
        {
            let mut t = self.table.write();
            t.groups.insert(c.group_name.clone(), c);
            t.data_version.bump();
        }
        self.persist()
    }

    /// Removes a group; `Ok(false)` if unknown.
    pub fn delete(&self, group: &str) -> Result<bool, PersistError> {
        let removed = {
            let mut t = self.table.write();
            let r = t.groups.remove(group).is_some();
            if r {
                t.data_version.bump();
            }
            r
        };
        if removed {
            self.persist()?;
        }
        Ok(removed)
    }

    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.table.read().groups.values().cloned().collect()
    }

    pub fn data_version(&self) -> DataVersion {
        self.table.read().data_version
    }

    /// `{"dataVersion":…,"forbiddenTable":{},"subscriptionGroupTable":{…}}` (the file, and the
    /// body of GET_ALL_SUBSCRIPTIONGROUP_CONFIG).
    pub fn encode(&self, style: JsonStyle) -> String {
        let t = self.table.read();
        JsonOut::obj([
            ("dataVersion", t.data_version.to_json()),
            ("forbiddenTable", JsonOut::Obj(vec![])),
            (
                "subscriptionGroupTable",
                JsonOut::obj(t.groups.iter().map(|(k, v)| (k.clone(), v.to_json()))),
            ),
        ])
        .render(style)
    }

    pub fn persist(&self) -> Result<(), PersistError> {
        let _g = self.persist_lock.lock();
        let text = self.encode(JsonStyle::FastjsonPretty);
        persist::write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auto_create_with_java_defaults_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let m = SubscriptionGroupManager::open(dir.path(), true).unwrap();
        let c = m.get_or_create("cg").unwrap();
        assert_eq!((c.retry_max_times, c.retry_queue_nums), (16, 1));
        assert!(c.consume_enable && c.notify_consumer_ids_changed_enable);
        assert!(m.get_or_create("../x").is_none());
        assert!(m.get_or_create(&"g".repeat(10_000)).is_none());
        let m = SubscriptionGroupManager::open(dir.path(), true).unwrap();
        assert_eq!(m.get("cg").unwrap(), c);
        assert!(m.get("TOOLS_CONSUMER").is_some());
    }

    #[test]
    fn no_auto_create_when_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let m = SubscriptionGroupManager::open(dir.path(), false).unwrap();
        assert!(m.get_or_create("cg").is_none());
        m.upsert(SubscriptionGroupConfig::new("cg")).unwrap();
        assert!(m.get_or_create("cg").is_some());
        assert!(m.delete("cg").unwrap());
        assert!(m.get("cg").is_none());
    }

    #[test]
    fn decodes_java_entry_and_encodes_java_shape() {
        let v = json!({"groupName":"g1","consumeEnable":false,"retryMaxTimes":"3",
                       "retryQueueNums":1000000,"brokerId":0,"groupRetryPolicy":{"type":"EXPONENTIAL"},
                       "subscriptionDataSet":[{"topic":"T","expression":"*"}]});
        let c = SubscriptionGroupConfig::from_value(&v).unwrap();
        assert!(!c.consume_enable);
        assert_eq!(c.retry_max_times, 3);
        assert_eq!(c.retry_queue_nums, 64);
        let out: Value = serde_json::from_str(&c.to_json().render(JsonStyle::Standard)).unwrap();
        assert_eq!(out["groupRetryPolicy"]["type"], json!("EXPONENTIAL"));
        assert_eq!(out["subscriptionDataSet"][0]["topic"], json!("T"));
        assert_eq!(out["whichBrokerWhenConsumeSlowly"], json!(1));
        assert!(SubscriptionGroupConfig::from_value(&json!({"groupName":"a/b"})).is_none());
        assert!(SubscriptionGroupConfig::from_value(&json!({})).is_none());
    }

    #[test]
    fn corrupt_file_uses_backup() {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = SubscriptionGroupManager::open(dir.path(), true).unwrap();
            m.get_or_create("first");
            m.get_or_create("second");
        }
        std::fs::write(dir.path().join("subscriptionGroup.json"), b"\0\0\0").unwrap();
        let m = SubscriptionGroupManager::open(dir.path(), true).unwrap();
        assert!(m.get("first").is_some());
    }
}
