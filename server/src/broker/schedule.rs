//! Delay levels through SCHEDULE_TOPIC_XXXX (owned by server-extra; agreed-signature stub).

use std::path::Path;
use std::sync::Arc;

use super::persist::PersistError;
use super::Broker;
use crate::config::BrokerConfig;

pub struct ScheduleService;

impl ScheduleService {
    pub fn load(_config_dir: &Path, _conf: &BrokerConfig) -> Result<Self, PersistError> {
        Ok(Self)
    }
    pub fn start(_b: &Arc<Broker>) {}
    pub fn persist(&self) -> Result<(), PersistError> {
        Ok(())
    }
}

impl ScheduleService {
    /// Called before a put: if the DELAY property is > 0, rewrites the message to
    /// SCHEDULE_TOPIC_XXXX (queue = level - 1) with REAL_TOPIC/REAL_QID.
    pub fn redirect_delayed(&self, _msg: &mut ferrocket_store::MessageInput) {}
}
