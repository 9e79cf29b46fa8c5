//! ConsumerOffsetManager: consumerOffset.json (owned by server-extra; agreed-signature stub).

use std::collections::HashMap;
use std::path::Path;

use parking_lot::RwLock;

use super::persist::PersistError;

#[derive(Default)]
pub struct ConsumerOffsetManager {
    table: RwLock<HashMap<(String, String, u32), u64>>,
}

impl ConsumerOffsetManager {
    pub fn load(_config_dir: &Path) -> Result<Self, PersistError> {
        Ok(Self::default())
    }
    pub fn query(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.table
            .read()
            .get(&(group.to_string(), topic.to_string(), queue_id))
            .copied()
    }
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        self.table
            .write()
            .insert((group.to_string(), topic.to_string(), queue_id), offset);
    }
    pub fn persist(&self) -> Result<(), PersistError> {
        Ok(())
    }
}

impl ConsumerOffsetManager {
    /// Once the store is open: offsets are clamped to the queue's max offset.
    pub fn set_max_offset_source(&self, _f: std::sync::Arc<dyn Fn(&str, u32) -> u64 + Send + Sync>) {}
}
