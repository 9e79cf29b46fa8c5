//! TopicConfigManager: topics.json (owned by server-extra; agreed-signature stub, in memory).

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;

use super::persist::PersistError;
use crate::config::BrokerConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    pub topic_filter_type: String,
    pub topic_sys_flag: u32,
    pub order: bool,
    pub attributes: BTreeMap<String, String>,
}

impl TopicConfig {
    pub fn new(name: &str, queues: u32, perm: u32) -> Self {
        Self {
            topic_name: name.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            topic_filter_type: "SINGLE_TAG".to_string(),
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }
}

pub struct TopicConfigManager {
    table: RwLock<BTreeMap<String, TopicConfig>>,
}

impl TopicConfigManager {
    pub fn load(_config_dir: &Path, conf: &BrokerConfig) -> Result<Self, PersistError> {
        let mut t = BTreeMap::new();
        if conf.auto_create_topic_enable {
            t.insert(
                "TBW102".to_string(),
                TopicConfig::new("TBW102", conf.default_topic_queue_nums, 7),
            );
        }
        Ok(Self {
            table: RwLock::new(t),
        })
    }
    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table.read().get(topic).cloned()
    }
    pub fn all(&self) -> Vec<TopicConfig> {
        self.table.read().values().cloned().collect()
    }
    pub fn create_in_send(
        &self,
        topic: &str,
        default_topic: &str,
        default_queue_nums: u32,
        topic_sys_flag: u32,
    ) -> Result<Option<TopicConfig>, PersistError> {
        let Some(def) = self.get(default_topic) else {
            return Ok(None);
        };
        if def.perm & 1 == 0 {
            return Ok(None);
        }
        let n = default_queue_nums.min(def.write_queue_nums).max(1);
        let mut tc = TopicConfig::new(topic, n, def.perm & !1);
        tc.topic_sys_flag = topic_sys_flag;
        self.table
            .write()
            .entry(topic.to_string())
            .or_insert(tc.clone());
        Ok(self.get(topic))
    }
    pub fn create_if_absent(
        &self,
        topic: &str,
        queue_nums: u32,
        perm: u32,
        topic_sys_flag: u32,
    ) -> Result<TopicConfig, PersistError> {
        let mut tc = TopicConfig::new(topic, queue_nums, perm);
        tc.topic_sys_flag = topic_sys_flag;
        Ok(self
            .table
            .write()
            .entry(topic.to_string())
            .or_insert(tc)
            .clone())
    }
    pub fn upsert(&self, tc: TopicConfig) -> Result<(), PersistError> {
        self.table.write().insert(tc.topic_name.clone(), tc);
        Ok(())
    }
    pub fn delete(&self, topic: &str) -> Result<bool, PersistError> {
        Ok(self.table.write().remove(topic).is_some())
    }
    pub fn serialize_wrapper(&self) -> serde_json::Value {
        let table: serde_json::Map<String, serde_json::Value> = self
            .all()
            .into_iter()
            .map(|t| {
                (
                    t.topic_name.clone(),
                    serde_json::json!({"topicName": t.topic_name, "readQueueNums": t.read_queue_nums,
                        "writeQueueNums": t.write_queue_nums, "perm": t.perm,
                        "topicFilterType": t.topic_filter_type, "topicSysFlag": t.topic_sys_flag,
                        "order": t.order, "attributes": {}}),
                )
            })
            .collect();
        serde_json::json!({"dataVersion": {"counter": 0, "stateVersion": 0, "timestamp": 0}, "topicConfigTable": table})
    }
    pub fn persist(&self) -> Result<(), PersistError> {
        Ok(())
    }
}
