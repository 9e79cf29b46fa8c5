//! SubscriptionGroupManager: subscriptionGroup.json (owned by server-extra; agreed-signature stub).

use std::path::Path;

use super::persist::PersistError;
use crate::config::BrokerConfig;

#[derive(Clone, Debug)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_broadcast_enable: bool,
    pub retry_queue_nums: u32,
    pub retry_max_times: i32,
    pub broker_id: u64,
    pub which_broker_when_consume_slowly: u64,
    pub notify_consumer_ids_changed_enable: bool,
}

pub struct SubscriptionGroupManager {
    auto_create: bool,
}

impl SubscriptionGroupManager {
    pub fn load(_config_dir: &Path, conf: &BrokerConfig) -> Result<Self, PersistError> {
        Ok(Self {
            auto_create: conf.auto_create_subscription_group,
        })
    }
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        Some(SubscriptionGroupConfig {
            group_name: group.to_string(),
            consume_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        })
    }
    pub fn get_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if self.auto_create {
            self.get(group)
        } else {
            None
        }
    }
    pub fn persist(&self) -> Result<(), PersistError> {
        Ok(())
    }
}
