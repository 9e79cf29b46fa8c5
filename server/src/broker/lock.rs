//! Orderly-consumption queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ, RocketMQ's
//! `RebalanceLockManager`): a lock on (group, queue) is held by one clientId and expires after
//! `rebalanceLockMaxLiveTime` (60 s) unless its holder renews it by locking again.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ferrocket_net::{Body, RemotingCommand};
use parking_lot::Mutex;
use serde_json::Value;

use super::persist::{get_i64, get_str, parse_lenient, JsonOut, JsonStyle};
use super::validate::{validate_group, validate_topic};
use super::{Broker, ConnectionHandle};
use crate::reply::{code, ok, reply, req};

/// Request codes answered here.
pub const CODES: &[i32] = &[req::LOCK_BATCH_MQ, req::UNLOCK_BATCH_MQ];

/// LOCK_BATCH_MQ: body `LockBatchRequestBody`, reply body `{"lockOKMQSet":[…]}` listing the
/// queues now held by the client. UNLOCK_BATCH_MQ: releases the client's locks, empty reply.
pub async fn handle(
    b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    Some(handle_sync(&b.locks, &req))
}

/// The synchronous core of [`handle`] (no I/O, no awaiting).
pub fn handle_sync(locks: &LockManager, req: &RemotingCommand) -> RemotingCommand {
    let body: &[u8] = match &req.body {
        Body::Bytes(b) => b,
        _ => &[],
    };
    let parsed = match LockBatchBody::decode(body) {
        Ok(p) => p,
        Err(e) => return reply(req, code::SYSTEM_ERROR, e.to_string()),
    };
    if req.code == req::LOCK_BATCH_MQ {
        let locked =
            locks.try_lock_batch(&parsed.consumer_group, &parsed.mq_set, &parsed.client_id);
        let mut r = ok(req);
        r.body = Body::Bytes(encode_lock_ok(&locked).into_bytes().into());
        r
    } else {
        locks.unlock_batch(&parsed.consumer_group, &parsed.mq_set, &parsed.client_id);
        ok(req)
    }
}

/// Default `rocketmq.broker.rebalance.lockMaxLiveTime`.
pub const LOCK_MAX_LIVE_MS: u64 = 60_000;
/// Most queues one request may name; the rest of a larger request is ignored.
pub const LOCK_BATCH_MQS_MAX: usize = 4096;
/// Most live lock entries over all groups: bounds memory against clients inventing queues.
pub const LOCK_ENTRIES_MAX: usize = 200_000;

/// Java `MessageQueue`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

impl MessageQueue {
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(MessageQueue {
            topic: get_str(v, "topic")?,
            broker_name: get_str(v, "brokerName").unwrap_or_default(),
            queue_id: i32::try_from(get_i64(v, "queueId")?).ok()?,
        })
    }

    /// fastjson shape: `{"brokerName":…,"queueId":…,"topic":…}`.
    pub fn to_json(&self) -> JsonOut {
        JsonOut::obj([
            ("brokerName", JsonOut::str(self.broker_name.clone())),
            ("queueId", JsonOut::Int(i64::from(self.queue_id))),
            ("topic", JsonOut::str(self.topic.clone())),
        ])
    }
}

/// `LockBatchRequestBody` / `UnlockBatchRequestBody`.
#[derive(Debug, Clone, PartialEq)]
pub struct LockBatchBody {
    pub consumer_group: String,
    pub client_id: String,
    pub mq_set: Vec<MessageQueue>,
    pub only_this_broker: bool,
}

/// Why a lock body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockBodyError {
    #[error("lock request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("lock request body has no {0}")]
    Missing(&'static str),
    #[error("{0}")]
    BadName(String),
}

impl LockBatchBody {
    /// Parses the request body; queues with invalid topic names are dropped, at most
    /// [`LOCK_BATCH_MQS_MAX`] are kept.
    pub fn decode(body: &[u8]) -> Result<Self, LockBodyError> {
        let text = String::from_utf8_lossy(body);
        let v = parse_lenient(&text).map_err(|e| LockBodyError::NotJson(e.to_string()))?;
        let consumer_group =
            get_str(&v, "consumerGroup").ok_or(LockBodyError::Missing("consumerGroup"))?;
        validate_group(&consumer_group).map_err(|e| LockBodyError::BadName(e.remark()))?;
        let client_id = get_str(&v, "clientId").ok_or(LockBodyError::Missing("clientId"))?;
        if client_id.is_empty() || client_id.len() > 1024 {
            return Err(LockBodyError::Missing("clientId"));
        }
        let mq_set = v
            .get("mqSet")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(LOCK_BATCH_MQS_MAX)
                    .filter_map(MessageQueue::from_value)
                    .filter(|mq| validate_topic(&mq.topic).is_ok() && mq.broker_name.len() <= 255)
                    .collect()
            })
            .unwrap_or_default();
        Ok(LockBatchBody {
            consumer_group,
            client_id,
            mq_set,
            only_this_broker: super::persist::get_bool(&v, "onlyThisBroker").unwrap_or(false),
        })
    }
}

/// `{"lockOKMQSet":[…]}`, sorted for a deterministic reply.
pub fn encode_lock_ok(mqs: &[MessageQueue]) -> String {
    let mut sorted: Vec<&MessageQueue> = mqs.iter().collect();
    sorted.sort();
    JsonOut::obj([(
        "lockOKMQSet",
        JsonOut::Arr(sorted.into_iter().map(MessageQueue::to_json).collect()),
    )])
    .render(JsonStyle::Standard)
}

struct LockEntry {
    client_id: String,
    last_update_ms: u64,
}

/// Monotonic milliseconds; injectable for tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// All queue locks, in memory only (as in Java: a restart frees every lock).
pub struct LockManager {
    max_live_ms: u64,
    clock: Clock,
    table: Mutex<HashMap<String, HashMap<MessageQueue, LockEntry>>>,
}

impl LockManager {
    pub fn new(lock_max_live_ms: u64) -> Self {
        let start = Instant::now();
        let clock: Clock =
            Arc::new(move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        Self::with_clock(lock_max_live_ms, clock)
    }

    pub fn with_clock(lock_max_live_ms: u64, clock: Clock) -> Self {
        LockManager {
            max_live_ms: lock_max_live_ms,
            clock,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn expired(&self, e: &LockEntry, now: u64) -> bool {
        now.saturating_sub(e.last_update_ms) > self.max_live_ms
    }

    /// Locks each queue for `client_id` if it is free, already held by `client_id` (renewing
    /// it), or held by an expired lock. Returns the queues now held by `client_id`.
    pub fn try_lock_batch(
        &self,
        group: &str,
        mqs: &[MessageQueue],
        client_id: &str,
    ) -> Vec<MessageQueue> {
        let now = (self.clock)();
        let mut table = self.table.lock();
        let mut total: usize = table.values().map(HashMap::len).sum();
        if total.saturating_add(mqs.len()) > LOCK_ENTRIES_MAX {
            // Make room from expired locks before refusing anyone.
            for locks in table.values_mut() {
                locks.retain(|_, e| !self.expired(e, now));
            }
            table.retain(|_, l| !l.is_empty());
            total = table.values().map(HashMap::len).sum();
        }
        let mut room = LOCK_ENTRIES_MAX.saturating_sub(total);
        let locks = table.entry(group.to_string()).or_default();
        let mut ok = Vec::new();
        for mq in mqs {
            match locks.get_mut(mq) {
                Some(e) if e.client_id == client_id || self.expired(e, now) => {
                    if e.client_id != client_id {
                        tracing::info!(
                            "lock {group} {}:{}: expired lock of {} taken over by {client_id}",
                            mq.topic,
                            mq.queue_id,
                            e.client_id
                        );
                        e.client_id = client_id.to_string();
                    }
                    e.last_update_ms = now;
                    ok.push(mq.clone());
                }
                Some(e) => tracing::debug!(
                    "lock {group} {}:{}: held by {}, refused to {client_id}",
                    mq.topic,
                    mq.queue_id,
                    e.client_id
                ),
                None if room > 0 => {
                    room -= 1;
                    locks.insert(
                        mq.clone(),
                        LockEntry {
                            client_id: client_id.to_string(),
                            last_update_ms: now,
                        },
                    );
                    ok.push(mq.clone());
                }
                None => tracing::warn!("lock table full; refusing lock of {}", mq.topic),
            }
        }
        if locks.is_empty() {
            table.remove(group);
        }
        ok
    }

    /// Releases the queues `client_id` holds; locks held by others are left alone.
    pub fn unlock_batch(&self, group: &str, mqs: &[MessageQueue], client_id: &str) {
        let mut table = self.table.lock();
        let Some(locks) = table.get_mut(group) else {
            return;
        };
        for mq in mqs {
            if locks.get(mq).is_some_and(|e| e.client_id == client_id) {
                locks.remove(mq);
            }
        }
        if locks.is_empty() {
            table.remove(group);
        }
    }

    /// True if `client_id` holds a live lock on `mq`.
    pub fn is_locked(&self, group: &str, mq: &MessageQueue, client_id: &str) -> bool {
        let now = (self.clock)();
        self.table
            .lock()
            .get(group)
            .and_then(|l| l.get(mq))
            .is_some_and(|e| e.client_id == client_id && !self.expired(e, now))
    }

    /// True if any live lock of `group` exists (5.x routes retry sends of such groups to the DLQ).
    pub fn group_has_live_lock(&self, group: &str) -> bool {
        let now = (self.clock)();
        self.table
            .lock()
            .get(group)
            .is_some_and(|l| l.values().any(|e| !self.expired(e, now)))
    }

    /// Drops expired entries (called periodically; expired entries are harmless but use memory).
    pub fn purge_expired(&self) -> usize {
        let now = (self.clock)();
        let mut table = self.table.lock();
        let mut purged = 0;
        for locks in table.values_mut() {
            let before = locks.len();
            locks.retain(|_, e| !self.expired(e, now));
            purged += before - locks.len();
        }
        table.retain(|_, l| !l.is_empty());
        purged
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn mq(t: &str, q: i32) -> MessageQueue {
        MessageQueue {
            topic: t.into(),
            broker_name: "broker-a".into(),
            queue_id: q,
        }
    }

    fn manual_clock() -> (Arc<AtomicU64>, Clock) {
        let now = Arc::new(AtomicU64::new(1_000));
        let n = now.clone();
        (now, Arc::new(move || n.load(Ordering::SeqCst)))
    }

    #[test]
    fn lock_is_exclusive_until_it_expires() {
        let (now, clock) = manual_clock();
        let m = LockManager::with_clock(60_000, clock);
        let qs = [mq("T", 0), mq("T", 1)];
        assert_eq!(m.try_lock_batch("g", &qs, "c1"), qs.to_vec());
        assert!(m.try_lock_batch("g", &qs, "c2").is_empty());
        // Another group is independent.
        assert_eq!(m.try_lock_batch("g2", &qs, "c2").len(), 2);
        now.fetch_add(60_000, Ordering::SeqCst);
        assert!(
            m.try_lock_batch("g", &qs[..1], "c2").is_empty(),
            "exactly 60 s: still live"
        );
        now.fetch_add(1, Ordering::SeqCst);
        assert_eq!(m.try_lock_batch("g", &qs[..1], "c2"), vec![mq("T", 0)]);
        assert!(m.is_locked("g", &mq("T", 0), "c2"));
        assert!(!m.is_locked("g", &mq("T", 0), "c1"));
    }

    #[test]
    fn renewal_by_holder_extends_the_lock() {
        let (now, clock) = manual_clock();
        let m = LockManager::with_clock(60_000, clock);
        let qs = [mq("T", 0)];
        m.try_lock_batch("g", &qs, "c1");
        now.fetch_add(40_000, Ordering::SeqCst);
        assert_eq!(m.try_lock_batch("g", &qs, "c1").len(), 1);
        now.fetch_add(40_000, Ordering::SeqCst);
        // 80 s after the first lock but 40 s after the renewal: still c1's.
        assert!(m.try_lock_batch("g", &qs, "c2").is_empty());
        assert!(m.group_has_live_lock("g"));
        now.fetch_add(60_001, Ordering::SeqCst);
        assert!(!m.group_has_live_lock("g"));
        assert_eq!(m.purge_expired(), 1);
    }

    #[test]
    fn unlock_only_by_holder() {
        let (_now, clock) = manual_clock();
        let m = LockManager::with_clock(60_000, clock);
        let qs = [mq("T", 0)];
        m.try_lock_batch("g", &qs, "c1");
        m.unlock_batch("g", &qs, "c2");
        assert!(m.is_locked("g", &qs[0], "c1"));
        m.unlock_batch("g", &qs, "c1");
        assert!(!m.is_locked("g", &qs[0], "c1"));
        assert_eq!(m.try_lock_batch("g", &qs, "c2").len(), 1);
    }

    #[test]
    fn full_table_recycles_expired_locks() {
        let (now, clock) = manual_clock();
        let m = LockManager::with_clock(10, clock);
        let batch: Vec<MessageQueue> = (0..LOCK_BATCH_MQS_MAX as i32).map(|q| mq("T", q)).collect();
        let mut groups = 0;
        while m.try_lock_batch(&format!("g{groups}"), &batch, "c").len() == batch.len() {
            groups += 1;
        }
        assert_eq!(groups, LOCK_ENTRIES_MAX / LOCK_BATCH_MQS_MAX);
        // Full: a new group gets at most the remainder.
        assert!(m.try_lock_batch("late", &batch, "c").len() < batch.len());
        now.fetch_add(11, Ordering::SeqCst);
        assert_eq!(m.try_lock_batch("late2", &batch, "c").len(), batch.len());
    }

    #[test]
    fn body_decode_and_encode() {
        // What the C++ client sends (jsoncpp, numbers as numbers).
        let body = br#"{"consumerGroup":"og","clientId":"1234-127.0.0.1@DEFAULT",
            "mqSet":[{"topic":"T","brokerName":"broker-a","queueId":3},
                     {"topic":"../x","brokerName":"b","queueId":0},
                     {"topic":"T","brokerName":"broker-a","queueId":"1"}]}"#;
        let b = LockBatchBody::decode(body).unwrap();
        assert_eq!(b.consumer_group, "og");
        assert_eq!(b.mq_set, vec![mq("T", 3), mq("T", 1)]);
        assert!(!b.only_this_broker);
        let out = encode_lock_ok(&b.mq_set);
        assert_eq!(
            out,
            r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":1,"topic":"T"},{"brokerName":"broker-a","queueId":3,"topic":"T"}]}"#
        );
        assert_eq!(encode_lock_ok(&[]), r#"{"lockOKMQSet":[]}"#);
        assert!(matches!(
            LockBatchBody::decode(b"\xff{"),
            Err(LockBodyError::NotJson(_))
        ));
        assert!(matches!(
            LockBatchBody::decode(br#"{"clientId":"c"}"#),
            Err(LockBodyError::Missing("consumerGroup"))
        ));
        assert!(matches!(
            LockBatchBody::decode(br#"{"consumerGroup":"a/b","clientId":"c"}"#),
            Err(LockBodyError::BadName(_))
        ));
    }

    fn request(code: i32, body: &str) -> RemotingCommand {
        RemotingCommand {
            code,
            opaque: 7,
            body: Body::Bytes(body.as_bytes().to_vec().into()),
            ..Default::default()
        }
    }

    fn body_json(r: &RemotingCommand) -> serde_json::Value {
        match &r.body {
            Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
            _ => panic!("no body"),
        }
    }

    #[test]
    fn lock_and_unlock_requests() {
        let (now, clock) = manual_clock();
        let m = LockManager::with_clock(60_000, clock);
        let body = |client: &str| {
            format!(
                r#"{{"consumerGroup":"og","clientId":"{client}","mqSet":[{{"topic":"T","brokerName":"broker-a","queueId":0}},{{"topic":"T","brokerName":"broker-a","queueId":1}}]}}"#
            )
        };
        let r = handle_sync(&m, &request(req::LOCK_BATCH_MQ, &body("c1")));
        assert_eq!((r.code, r.opaque), (code::SUCCESS, 7));
        assert_eq!(body_json(&r)["lockOKMQSet"].as_array().unwrap().len(), 2);
        let r = handle_sync(&m, &request(req::LOCK_BATCH_MQ, &body("c2")));
        assert_eq!(body_json(&r)["lockOKMQSet"], serde_json::json!([]));
        let r = handle_sync(&m, &request(req::UNLOCK_BATCH_MQ, &body("c1")));
        assert_eq!(r.code, code::SUCCESS);
        let r = handle_sync(&m, &request(req::LOCK_BATCH_MQ, &body("c2")));
        assert_eq!(body_json(&r)["lockOKMQSet"].as_array().unwrap().len(), 2);
        now.fetch_add(60_001, Ordering::SeqCst);
        let r = handle_sync(&m, &request(req::LOCK_BATCH_MQ, &body("c1")));
        assert_eq!(body_json(&r)["lockOKMQSet"].as_array().unwrap().len(), 2);
        // Garbage bodies get SYSTEM_ERROR, never a panic.
        for bad in ["", "{", "[]", "{\"consumerGroup\":1}", "\u{0}"] {
            let r = handle_sync(&m, &request(req::LOCK_BATCH_MQ, bad));
            assert_eq!(r.code, code::SYSTEM_ERROR, "{bad:?}");
        }
    }

    #[test]
    fn huge_requests_are_bounded() {
        let mut mqs = String::from(r#"{"consumerGroup":"g","clientId":"c","mqSet":["#);
        for i in 0..10_000 {
            if i > 0 {
                mqs.push(',');
            }
            mqs.push_str(&format!(
                r#"{{"topic":"T","brokerName":"b","queueId":{i}}}"#
            ));
        }
        mqs.push_str("]}");
        let b = LockBatchBody::decode(mqs.as_bytes()).unwrap();
        assert_eq!(b.mq_set.len(), LOCK_BATCH_MQS_MAX);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn lock_body_decoding_is_total(body in prop::collection::vec(any::<u8>(), 0..300)) {
                if let Ok(b) = LockBatchBody::decode(&body) {
                    prop_assert!(b.mq_set.len() <= LOCK_BATCH_MQS_MAX);
                }
            }
        }
    }
}
