//! Client channels by producer and consumer group (RocketMQ `ConsumerManager`,
//! `ProducerManager`): who is online, each consumer group's subscriptions, and which groups'
//! membership changed (their clients get NOTIFY_CONSUMER_IDS_CHANGED).
//!
//! Generic over the channel type so tests use a fake connection; time is passed in.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use super::heartbeat::{ConsumeType, ConsumerData, MessageModel};
use super::subscription::SubscriptionData;

/// What the manager needs from a connection.
pub trait Channel: Clone + Send + Sync + 'static {
    fn channel_id(&self) -> u64;
    fn remote(&self) -> String;
}

impl Channel for ferrocket_net::ConnectionHandle {
    fn channel_id(&self) -> u64 {
        self.id()
    }
    fn remote(&self) -> String {
        self.peer_addr().to_string()
    }
}

/// One client connection in a group.
#[derive(Debug, Clone)]
pub struct ClientInfo<C> {
    pub channel: C,
    pub client_id: String,
    pub language: String,
    pub version: i32,
    pub last_update_ms: i64,
}

/// A consumer group as its clients describe it in heartbeats.
#[derive(Debug, Clone)]
pub struct ConsumerGroupInfo<C> {
    pub group: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: String,
    /// by channel id
    pub clients: BTreeMap<u64, ClientInfo<C>>,
    /// by topic
    pub subscriptions: BTreeMap<String, SubscriptionData>,
}

pub struct ClientManager<C: Channel> {
    consumers: RwLock<HashMap<String, ConsumerGroupInfo<C>>>,
    producers: RwLock<HashMap<String, BTreeMap<u64, ClientInfo<C>>>>,
}

impl<C: Channel> Default for ClientManager<C> {
    fn default() -> Self {
        Self {
            consumers: RwLock::new(HashMap::new()),
            producers: RwLock::new(HashMap::new()),
        }
    }
}

impl<C: Channel> ClientManager<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers one consumer group from a heartbeat. Returns true when the group's set of
    /// client connections changed (a new member: notify the group).
    pub fn register_consumer(&self, c: &ConsumerData, client: ClientInfo<C>) -> bool {
        let mut map = self.consumers.write();
        let g = map
            .entry(c.group_name.clone())
            .or_insert_with(|| ConsumerGroupInfo {
                group: c.group_name.clone(),
                consume_type: c.consume_type,
                message_model: c.message_model,
                consume_from_where: c.consume_from_where.clone(),
                clients: BTreeMap::new(),
                subscriptions: BTreeMap::new(),
            });
        g.consume_type = c.consume_type;
        g.message_model = c.message_model;
        g.consume_from_where = c.consume_from_where.clone();
        let id = client.channel.channel_id();
        let changed = match g.clients.get(&id) {
            Some(old) => old.client_id != client.client_id,
            None => true,
        };
        g.clients.insert(id, client);
        // Java keeps subscriptions of topics still mentioned by any client; a heartbeat carries
        // the client's full set, so newer versions replace older ones per topic.
        for s in &c.subscriptions {
            match g.subscriptions.get(&s.topic) {
                Some(old) if old.sub_version > s.sub_version && old.sub_string == s.sub_string => {}
                _ => {
                    g.subscriptions.insert(s.topic.clone(), s.clone());
                }
            }
        }
        changed
    }

    pub fn register_producer(&self, group: &str, client: ClientInfo<C>) {
        self.producers
            .write()
            .entry(group.to_string())
            .or_default()
            .insert(client.channel.channel_id(), client);
    }

    /// UNREGISTER_CLIENT for a consumer group: true when a member left.
    pub fn unregister_consumer(&self, group: &str, channel_id: u64) -> bool {
        let mut map = self.consumers.write();
        let Some(g) = map.get_mut(group) else {
            return false;
        };
        let removed = g.clients.remove(&channel_id).is_some();
        if g.clients.is_empty() {
            map.remove(group);
        }
        removed
    }

    pub fn unregister_producer(&self, group: &str, channel_id: u64) {
        let mut map = self.producers.write();
        if let Some(p) = map.get_mut(group) {
            p.remove(&channel_id);
            if p.is_empty() {
                map.remove(group);
            }
        }
    }

    /// A connection closed: drop it everywhere; returns the consumer groups that lost a member.
    pub fn connection_closed(&self, channel_id: u64) -> Vec<String> {
        self.remove_where(|id, _| id == channel_id)
    }

    /// Drops clients whose last heartbeat is older than `timeout_ms`; returns the consumer
    /// groups that lost a member.
    pub fn scan_expired(&self, now_ms: i64, timeout_ms: i64) -> Vec<String> {
        self.remove_where(|_, c| c.last_update_ms.saturating_add(timeout_ms) < now_ms)
    }

    fn remove_where(&self, pred: impl Fn(u64, &ClientInfo<C>) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        {
            let mut map = self.consumers.write();
            for (name, g) in map.iter_mut() {
                let before = g.clients.len();
                g.clients.retain(|id, c| !pred(*id, c));
                if g.clients.len() != before {
                    changed.push(name.clone());
                }
            }
            map.retain(|_, g| !g.clients.is_empty());
        }
        let mut p = self.producers.write();
        for clients in p.values_mut() {
            clients.retain(|id, c| !pred(*id, c));
        }
        p.retain(|_, c| !c.is_empty());
        changed.sort();
        changed
    }

    /// The group's client ids, sorted and without duplicates (GET_CONSUMER_LIST_BY_GROUP).
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let map = self.consumers.read();
        let mut ids: Vec<String> = map
            .get(group)
            .map(|g| g.clients.values().map(|c| c.client_id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The group's channels (to notify them).
    pub fn consumer_channels(&self, group: &str) -> Vec<C> {
        self.consumers
            .read()
            .get(group)
            .map(|g| g.clients.values().map(|c| c.channel.clone()).collect())
            .unwrap_or_default()
    }

    /// The group's registered subscription to `topic`.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.consumers
            .read()
            .get(group)
            .and_then(|g| g.subscriptions.get(topic).cloned())
    }

    /// A snapshot of a group (admin: consumer connection list).
    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupInfo<C>> {
        self.consumers.read().get(group).cloned()
    }

    /// Names of online consumer groups.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.consumers.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Producer clients of a group (admin: producer connection list).
    pub fn producer_clients(&self, group: &str) -> Vec<ClientInfo<C>> {
        self.producers
            .read()
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Refreshes the heartbeat time of every registration of this channel.
    pub fn touch(&self, channel_id: u64, now_ms: i64) {
        for g in self.consumers.write().values_mut() {
            if let Some(c) = g.clients.get_mut(&channel_id) {
                c.last_update_ms = now_ms;
            }
        }
        for p in self.producers.write().values_mut() {
            if let Some(c) = p.get_mut(&channel_id) {
                c.last_update_ms = now_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Fake(u64);
    impl Channel for Fake {
        fn channel_id(&self) -> u64 {
            self.0
        }
        fn remote(&self) -> String {
            format!("127.0.0.1:{}", self.0)
        }
    }

    fn consumer(group: &str, subs: &[(&str, &str, i64)]) -> ConsumerData {
        ConsumerData {
            group_name: group.into(),
            consume_type: ConsumeType::Passively,
            message_model: MessageModel::Clustering,
            consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
            subscriptions: subs
                .iter()
                .map(|(t, e, v)| SubscriptionData::parse(t, Some(e), *v).unwrap())
                .collect(),
            unit_mode: false,
        }
    }

    fn client(id: u64, cid: &str, now: i64) -> ClientInfo<Fake> {
        ClientInfo {
            channel: Fake(id),
            client_id: cid.into(),
            language: "CPP".into(),
            version: 63,
            last_update_ms: now,
        }
    }

    #[test]
    fn membership_changes_are_reported() {
        let m = ClientManager::new();
        assert!(m.register_consumer(&consumer("g", &[("T", "*", 1)]), client(1, "c1", 0)));
        // same channel, same client again: no change
        assert!(!m.register_consumer(&consumer("g", &[("T", "*", 1)]), client(1, "c1", 10)));
        assert!(m.register_consumer(&consumer("g", &[("T", "TagA", 2)]), client(2, "c2", 10)));
        assert_eq!(m.consumer_ids("g"), vec!["c1", "c2"]);
        assert_eq!(m.subscription("g", "T").unwrap().sub_string, "TagA");
        assert_eq!(m.consumer_channels("g").len(), 2);
        assert!(m.unregister_consumer("g", 1));
        assert!(!m.unregister_consumer("g", 1));
        assert_eq!(m.consumer_ids("g"), vec!["c2"]);
        assert_eq!(m.connection_closed(2), vec!["g".to_string()]);
        assert!(m.consumer_ids("g").is_empty());
        assert!(m.consumer_group("g").is_none());
    }

    #[test]
    fn expiry_by_heartbeat_age() {
        let m = ClientManager::new();
        m.register_consumer(&consumer("g", &[]), client(1, "c1", 0));
        m.register_consumer(&consumer("g", &[]), client(2, "c2", 0));
        m.register_producer("p", client(3, "c3", 0));
        m.touch(2, 100_000);
        assert!(m.scan_expired(120_000, 120_000).is_empty());
        assert_eq!(m.scan_expired(120_001, 120_000), vec!["g".to_string()]);
        assert_eq!(m.consumer_ids("g"), vec!["c2"]);
        assert!(m.producer_clients("p").is_empty());
    }

    #[test]
    fn older_subscription_version_does_not_win() {
        let m = ClientManager::new();
        m.register_consumer(&consumer("g", &[("T", "TagA", 5)]), client(1, "c1", 0));
        m.register_consumer(&consumer("g", &[("T", "TagB", 3)]), client(2, "c2", 0));
        // different expression always replaces (a client changed its subscription)
        assert_eq!(m.subscription("g", "T").unwrap().sub_string, "TagB");
        m.register_consumer(&consumer("g", &[("T", "TagB", 1)]), client(2, "c2", 0));
        assert_eq!(m.subscription("g", "T").unwrap().sub_version, 3);
    }
}
