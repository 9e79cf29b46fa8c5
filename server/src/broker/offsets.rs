//! Committed consumer offsets (`config/consumerOffset.json`, RocketMQ's `ConsumerOffsetManager`):
//! `"topic@group" → {queueId: offset}`, persisted every `flushConsumerOffsetInterval` and at
//! shutdown. Offsets are clamped to the queue's current max so that, after a crash that lost the
//! tail of a queue, no committed offset points past what exists.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::persist::{
    self, value_i64, DataVersion, JsonKey, JsonOut, JsonStyle, LoadSource, PersistError,
};
use super::validate::{self, validate_group, validate_topic};

/// `TOPIC_GROUP_SEPARATOR`.
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// Returns a queue's max offset (exclusive), i.e. `MessageStore::max_offset(topic, queue_id)`.
pub type MaxOffsetFn = Arc<dyn Fn(&str, u32) -> u64 + Send + Sync>;

type Table = BTreeMap<String, BTreeMap<u32, u64>>;

/// Consumer offsets of every (topic, group, queue).
pub struct ConsumerOffsetManager {
    path: PathBuf,
    table: RwLock<Table>,
    data_version: Mutex<DataVersion>,
    dirty: AtomicBool,
    max_offset: RwLock<Option<MaxOffsetFn>>,
    persist_lock: Mutex<()>,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

/// Splits `topic@group`; both halves must be valid names.
fn split_key(k: &str) -> Option<(&str, &str)> {
    let (topic, group) = k.split_once(TOPIC_GROUP_SEPARATOR)?;
    (validate_topic(topic).is_ok() && validate_group(group).is_ok()).then_some((topic, group))
}

impl ConsumerOffsetManager {
    /// Loads `<config_dir>/consumerOffset.json` leniently (unquoted queue-id keys, `.bak`
    /// fallback). Only fails if the config directory cannot be created.
    pub fn load(config_dir: &Path) -> Result<Self, PersistError> {
        std::fs::create_dir_all(config_dir).map_err(|source| PersistError::Io {
            op: "create dir",
            path: config_dir.to_path_buf(),
            source,
        })?;
        let path = config_dir.join("consumerOffset.json");
        let loaded = persist::load_json(&path);
        let mut table = Table::new();
        let mut data_version = DataVersion::new();
        if let Some(v) = &loaded.value {
            if let Some(dv) = v.get("dataVersion").and_then(DataVersion::from_value) {
                data_version = dv;
            }
            decode_table(v.get("offsetTable"), &mut table);
        }
        Ok(ConsumerOffsetManager {
            path,
            table: RwLock::new(table),
            data_version: Mutex::new(data_version),
            // After a fallback to the backup, rewrite the main file at the next persist.
            dirty: AtomicBool::new(loaded.source == LoadSource::Backup),
            max_offset: RwLock::new(None),
            persist_lock: Mutex::new(()),
        })
    }

    /// Installs the store's max-offset lookup and clamps every loaded offset to it. Call once the
    /// store has recovered.
    pub fn set_max_offset_source(&self, f: MaxOffsetFn) {
        *self.max_offset.write() = Some(f.clone());
        let mut clamped = 0usize;
        {
            let mut t = self.table.write();
            for (k, queues) in t.iter_mut() {
                let Some((topic, _)) = k.split_once(TOPIC_GROUP_SEPARATOR) else {
                    continue;
                };
                for (qid, off) in queues.iter_mut() {
                    let max = f(topic, *qid);
                    if *off > max {
                        tracing::warn!(
                            "consumer offset {k} queue {qid}: {off} is past the queue end {max}; clamped"
                        );
                        *off = max;
                        clamped += 1;
                    }
                }
            }
        }
        if clamped > 0 {
            self.mark_dirty();
        }
    }

    fn clamp(&self, topic: &str, queue_id: u32, offset: u64) -> u64 {
        match &*self.max_offset.read() {
            Some(f) => offset.min(f(topic, queue_id)),
            None => offset,
        }
    }

    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// The committed offset, if any (never past the queue's max).
    pub fn query(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        let off = *self.table.read().get(&key(topic, group))?.get(&queue_id)?;
        Some(self.clamp(topic, queue_id, off))
    }

    /// Stores a committed offset (clamped to the queue's max). Invalid names are ignored.
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        if validate_topic(topic).is_err() || validate_group(group).is_err() {
            tracing::debug!(
                "ignoring offset commit for invalid topic/group {}@{}",
                validate::shown_name(topic),
                validate::shown_name(group)
            );
            return;
        }
        let offset = self.clamp(topic, queue_id, offset);
        let mut t = self.table.write();
        let queues = t.entry(key(topic, group)).or_default();
        if queues.insert(queue_id, offset) != Some(offset) {
            self.mark_dirty();
        }
    }

    /// Offsets of one (topic, group), by queue id.
    pub fn queue_offsets(&self, group: &str, topic: &str) -> BTreeMap<u32, u64> {
        self.table
            .read()
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Groups that committed offsets for `topic` (QUERY_TOPIC_CONSUME_BY_WHO).
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        self.table
            .read()
            .keys()
            .filter_map(|k| split_key(k))
            .filter(|(t, _)| *t == topic)
            .map(|(_, g)| g.to_string())
            .collect()
    }

    /// Topics a group committed offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        self.table
            .read()
            .keys()
            .filter_map(|k| split_key(k))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_string())
            .collect()
    }

    /// Drops every offset of `group` (DELETE_SUBSCRIPTIONGROUP with cleanOffset).
    pub fn remove_group(&self, group: &str) {
        let mut t = self.table.write();
        let before = t.len();
        t.retain(|k, _| split_key(k).map(|(_, g)| g != group).unwrap_or(true));
        if t.len() != before {
            self.mark_dirty();
        }
    }

    /// Drops every offset of `topic` (DELETE_TOPIC_IN_BROKER).
    pub fn remove_topic(&self, topic: &str) {
        let mut t = self.table.write();
        let before = t.len();
        t.retain(|k, _| split_key(k).map(|(tp, _)| tp != topic).unwrap_or(true));
        if t.len() != before {
            self.mark_dirty();
        }
    }

    /// The file content (`{"dataVersion":…,"offsetTable":{"t@g":{0:5}}}`) in the given style;
    /// also the body of GET_ALL_CONSUMER_OFFSET (fastjson compact).
    pub fn encode(&self, style: JsonStyle) -> String {
        let dv = *self.data_version.lock();
        let t = self.table.read();
        JsonOut::obj([
            ("dataVersion", dv.to_json()),
            (
                "offsetTable",
                JsonOut::obj(t.iter().map(|(k, queues)| {
                    (
                        k.clone(),
                        JsonOut::Obj(
                            queues
                                .iter()
                                .map(|(q, o)| {
                                    (
                                        JsonKey::Int(i64::from(*q)),
                                        JsonOut::Int(i64::try_from(*o).unwrap_or(i64::MAX)),
                                    )
                                })
                                .collect(),
                        ),
                    )
                })),
            ),
        ])
        .render(style)
    }

    /// Writes consumerOffset.json if anything changed since the last write.
    pub fn persist(&self) -> Result<(), PersistError> {
        let _g = self.persist_lock.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.data_version.lock().bump();
        let text = self.encode(JsonStyle::FastjsonPretty);
        let r = persist::write_atomic(&self.path, text.as_bytes());
        if r.is_err() {
            self.mark_dirty();
        }
        r
    }
}

/// Decodes `offsetTable`, dropping entries with invalid names, queue ids or offsets.
fn decode_table(v: Option<&Value>, table: &mut Table) {
    let Some(obj) = v.and_then(Value::as_object) else {
        return;
    };
    for (k, queues) in obj {
        if split_key(k).is_none() {
            tracing::warn!(
                "consumerOffset.json: dropped entry with invalid key {}",
                validate::shown_name(k)
            );
            continue;
        }
        let Some(queues) = queues.as_object() else {
            continue;
        };
        let mut m = BTreeMap::new();
        for (q, off) in queues {
            let qid = q.trim().parse::<u32>().ok();
            let off = value_i64(off).and_then(|o| u64::try_from(o).ok());
            match (qid, off) {
                (Some(qid), Some(off)) => {
                    m.insert(qid, off);
                }
                _ => tracing::warn!(
                    "consumerOffset.json: dropped bad offset {}/{}",
                    validate::shown_name(k),
                    validate::shown_name(q)
                ),
            }
        }
        table.insert(k.clone(), m);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn commit_query_persist_reload() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m.query("g", "T", 0), None);
        m.commit("g", "T", 0, 10);
        m.commit("g", "T", 3, 7);
        m.commit("g2", "T", 0, 1);
        assert_eq!(m.query("g", "T", 0), Some(10));
        m.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join("consumerOffset.json")).unwrap();
        // Java shape: unquoted integer queue-id keys.
        assert!(text.contains("\"T@g\":{\n\t\t\t0:10,\n\t\t\t3:7"), "{text}");
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m.query("g", "T", 3), Some(7));
        assert_eq!(
            m.groups_of_topic("T"),
            vec!["g".to_string(), "g2".to_string()]
        );
        assert_eq!(m.topics_of_group("g"), vec!["T".to_string()]);
    }

    #[test]
    fn persist_only_when_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        m.persist().unwrap();
        assert!(!dir.path().join("consumerOffset.json").exists());
        m.commit("g", "T", 0, 1);
        m.persist().unwrap();
        assert!(dir.path().join("consumerOffset.json").exists());
    }

    #[test]
    fn offsets_never_point_past_queue_max() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        m.commit("g", "T", 0, 100);
        m.commit("g", "T", 1, 5);
        // After recovery the store holds only 50 messages in queue 0.
        m.set_max_offset_source(Arc::new(|_t: &str, q: u32| if q == 0 { 50 } else { 10 }));
        assert_eq!(m.query("g", "T", 0), Some(50));
        assert_eq!(m.query("g", "T", 1), Some(5));
        m.commit("g", "T", 1, 1_000);
        assert_eq!(m.query("g", "T", 1), Some(10));
        m.persist().unwrap();
        let m2 = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m2.query("g", "T", 0), Some(50));
    }

    #[test]
    fn loads_java_file_and_drops_hostile_entries() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"offsetTable\":{\"TopicTest@cg\":{0:37960,1:\"37961\",x:5,2:-4},\
                    \"../../x@cg\":{0:1},\"noseparator\":{0:1},\"%RETRY%cg@cg\":{0:0}},\
                    \"groupTopicMap\":{\"cg\":[\"TopicTest\"]}}";
        std::fs::write(dir.path().join("consumerOffset.json"), text).unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        assert_eq!(m.query("cg", "TopicTest", 0), Some(37960));
        assert_eq!(m.query("cg", "TopicTest", 1), Some(37961));
        assert_eq!(m.query("cg", "TopicTest", 2), None);
        assert_eq!(m.query("cg", "%RETRY%cg", 0), Some(0));
        assert_eq!(m.queue_offsets("cg", "TopicTest").len(), 2);
        assert!(m.groups_of_topic("../../x").is_empty());
    }

    #[test]
    fn invalid_names_are_not_committed_and_removals_work() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(dir.path()).unwrap();
        m.commit("g", "../x", 0, 1);
        m.commit("g@h", "T", 0, 1);
        assert!(m.encode(JsonStyle::Standard).contains("\"offsetTable\":{}"));
        m.commit("g", "T", 0, 1);
        m.commit("g", "U", 0, 1);
        m.remove_topic("T");
        assert_eq!(m.query("g", "T", 0), None);
        m.remove_group("g");
        assert_eq!(m.query("g", "U", 0), None);
    }
}
