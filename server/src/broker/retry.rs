//! Redelivery (§7.3): CONSUMER_SEND_MSG_BACK re-stores a failed message for `%RETRY%<group>`
//! (delayed through SCHEDULE_TOPIC_XXXX at level `3 + reconsumeTimes` unless the client chose one)
//! or, once `reconsumeTimes ≥ maxReconsumeTimes` or the client asked with `delayLevel < 0`, for
//! `%DLQ%<group>`; and the send path's rule for messages a client sends straight to a retry topic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::SocketAddr;

use ferrocket_store::MessageInput;

use super::groups::SubscriptionGroupManager;
use super::schedule::{prop_get, prop_set, props_decode, props_encode, PROPERTY_DELAY_TIME_LEVEL};
use super::topics::{perm, TopicConfig, TopicConfigManager, DLQ_NUMS_PER_GROUP};
use super::validate::{dlq_topic, retry_topic, RETRY_GROUP_TOPIC_PREFIX};
use super::{Broker, ConnectionHandle};
use crate::reply::{reply, req, Fields};
use ferrocket_net::RemotingCommand;
use ferrocket_store::record::decode_record;
use ferrocket_store::MessageStore;
use std::sync::Arc;

/// Request codes answered here.
pub const CODES: &[i32] = &[req::CONSUMER_SEND_MSG_BACK];

/// Client version from which the header's `maxReconsumeTimes` is honoured (`V3_4_9`).
pub const VERSION_HONOURS_MAX_RECONSUME: i32 = 121;

/// CONSUMER_SEND_MSG_BACK (36).
pub async fn handle(
    b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let b2 = b.clone();
    // The send-back may create the retry or DLQ topic: answered once it is registered.
    let mark = b.registration_mark();
    // Reading the original and the put (which waits for a sync flush) block: not on a worker.
    let r = tokio::task::spawn_blocking(move || send_back(&b2, &b2.store, &req)).await;
    b.registered_since(mark).await;
    Some(r.unwrap_or_else(|e| {
        tracing::error!("send-back task failed: {e}");
        RemotingCommand {
            code: code::SYSTEM_ERROR,
            flag: ferrocket_net::FLAG_RESPONSE,
            language: "JAVA".to_string(),
            remark: Some("send back failed".to_string()),
            ..Default::default()
        }
    }))
}

/// The whole CONSUMER_SEND_MSG_BACK flow (§7.3) against `store`.
pub fn send_back(b: &Broker, store: &MessageStore, req: &RemotingCommand) -> RemotingCommand {
    let f = Fields::of(req);
    let parsed = (|| {
        Ok::<_, crate::reply::FieldError>((
            f.i64("offset")?,
            f.str("group")?,
            f.i32("delayLevel")?,
            f.opt_i32("maxReconsumeTimes")?,
        ))
    })();
    let (offset, group, delay_level, header_max) = match parsed {
        Ok(p) => p,
        Err(e) => return e.to_reply(req),
    };
    let header_max = header_max.filter(|_| req.version >= VERSION_HONOURS_MAX_RECONSUME);
    let retry_existed = b.topics.contains(&retry_topic(group));
    let prepared = match prepare_send_back(
        &b.groups,
        &b.topics,
        b.conf().broker_permission,
        group,
        header_max,
    ) {
        Ok(Some(p)) => p,
        Ok(None) => return reply(req, code::SUCCESS, ""),
        Err(r) => return reply(req, r.code, r.remark),
    };
    if !retry_existed {
        b.topics_changed();
    }
    let look_failed = || {
        reply(
            req,
            code::SYSTEM_ERROR,
            format!("look message by offset failed, {offset}"),
        )
    };
    let Ok(phy) = u64::try_from(offset) else {
        return look_failed();
    };
    let slice = match store.read_at(phy) {
        Ok(Some(s)) => s,
        Ok(None) => return look_failed(),
        Err(e) => {
            tracing::warn!("send back: reading offset {offset}: {e}");
            return look_failed();
        }
    };
    let Ok(rec) = decode_record(slice.as_bytes()) else {
        return look_failed();
    };
    let orig = OriginalRecord {
        topic: rec.topic,
        body: rec.body,
        flag: rec.flag,
        properties: rec.properties,
        sys_flag: rec.sys_flag,
        born_timestamp: rec.born_timestamp,
        born_host: rec.born_host,
        store_host: rec.store_host,
        reconsume_times: rec.reconsume_times,
        phy_offset: phy,
    };
    let request = SendBackRequest {
        group,
        delay_level,
        max_reconsume_times: prepared.max_reconsume_times,
    };
    let dest = destination(&request, orig.reconsume_times);
    let queue_id = match dest {
        Destination::DeadLetter => {
            let existed = b.topics.contains(&dlq_topic(group));
            if let Err(r) = ensure_dlq_topic(&b.topics, group) {
                return reply(req, r.code, r.remark);
            }
            if !existed {
                b.topics_changed();
            }
            0
        }
        Destination::Retry { .. } => {
            rand::random::<u32>() % prepared.retry_topic.write_queue_nums.max(1)
        }
    };
    let mut msg = build_send_back(&orig, &request, &dest, queue_id, b.store_host);
    if matches!(dest, Destination::Retry { .. }) {
        b.schedule.redirect_delayed(&mut msg);
    }
    match store.put(&msg) {
        Ok(_) => {
            b.stats
                .msg_put_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            reply(req, code::SUCCESS, "")
        }
        Err(e) => {
            tracing::warn!("send back of offset {offset} for {group}: {e}");
            reply(req, code::SYSTEM_ERROR, e.to_string())
        }
    }
}

pub const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
pub const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
pub const PROPERTY_WAIT_STORE_MSG_OK: &str = "WAIT";

/// ResponseCode values used here.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const NO_PERMISSION: i32 = 16;
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
}

/// A refusal: the response code and Java's remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

impl Refusal {
    fn new(code: i32, remark: impl Into<String>) -> Self {
        Refusal {
            code,
            remark: remark.into(),
        }
    }
}

/// Offset msgId (§4.1): uppercase hex of store IP, port (int32) and commitlog offset (int64).
pub fn offset_msg_id(store_host: SocketAddr, phy_offset: u64) -> String {
    let mut bytes = Vec::with_capacity(28);
    match store_host {
        SocketAddr::V4(a) => bytes.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => bytes.extend_from_slice(&a.ip().octets()),
    }
    bytes.extend_from_slice(&i32::from(store_host.port()).to_be_bytes());
    bytes.extend_from_slice(&phy_offset.to_be_bytes());
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The parts of the stored original that a send-back copies (from the store's decoded record).
#[derive(Debug, Clone)]
pub struct OriginalRecord<'a> {
    pub topic: &'a str,
    pub body: &'a [u8],
    pub flag: i32,
    pub properties: &'a str,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub phy_offset: u64,
}

/// Where a sent-back message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `%RETRY%<group>` after `level` (it is then diverted through SCHEDULE_TOPIC_XXXX).
    Retry { level: i32 },
    /// `%DLQ%<group>` queue 0, no delay.
    DeadLetter,
}

/// What the CONSUMER_SEND_MSG_BACK request asked for.
#[derive(Debug, Clone, Copy)]
pub struct SendBackRequest<'a> {
    pub group: &'a str,
    /// 0 = broker picks `3 + reconsumeTimes`; < 0 = straight to the DLQ.
    pub delay_level: i32,
    /// The group's `retryMaxTimes`, or the header's `maxReconsumeTimes` when the client sent one.
    pub max_reconsume_times: i32,
}

/// Where the message goes (Java `consumerSendMsgBack` step 7).
pub fn destination(req: &SendBackRequest<'_>, reconsume_times: i32) -> Destination {
    if reconsume_times >= req.max_reconsume_times || req.delay_level < 0 {
        Destination::DeadLetter
    } else if req.delay_level == 0 {
        Destination::Retry {
            level: reconsume_times.saturating_add(3),
        }
    } else {
        Destination::Retry {
            level: req.delay_level,
        }
    }
}

/// Builds the new message (Java step 8): same body, flag, sysFlag, born time and host; properties
/// plus `RETRY_TOPIC` (original topic, if not already set), `ORIGIN_MESSAGE_ID` (existing value or
/// the original's offset msgId), `WAIT=false` and, for a retry, `DELAY`; storeHost = this broker;
/// `reconsumeTimes + 1`.
pub fn build_send_back(
    orig: &OriginalRecord<'_>,
    req: &SendBackRequest<'_>,
    dest: &Destination,
    queue_id: u32,
    broker_store_host: SocketAddr,
) -> MessageInput {
    let mut props = orig.properties.to_string();
    if prop_get(&props, PROPERTY_RETRY_TOPIC).is_none() {
        props = prop_set(&props, PROPERTY_RETRY_TOPIC, orig.topic);
    }
    props = prop_set(&props, PROPERTY_WAIT_STORE_MSG_OK, "false");
    if prop_get(&props, PROPERTY_ORIGIN_MESSAGE_ID).is_none() {
        let id = offset_msg_id(orig.store_host, orig.phy_offset);
        props = prop_set(&props, PROPERTY_ORIGIN_MESSAGE_ID, &id);
    }
    let topic = match dest {
        Destination::Retry { level } => {
            props = prop_set(&props, PROPERTY_DELAY_TIME_LEVEL, &level.to_string());
            retry_topic(req.group)
        }
        Destination::DeadLetter => {
            // A DELAY left over from the original must not divert the DLQ copy.
            let mut pairs = props_decode(&props);
            pairs.retain(|(k, _)| k != PROPERTY_DELAY_TIME_LEVEL);
            props = props_encode(&pairs);
            dlq_topic(req.group)
        }
    };
    MessageInput {
        topic,
        queue_id,
        flag: orig.flag,
        body: bytes::Bytes::copy_from_slice(orig.body),
        properties: props,
        sys_flag: orig.sys_flag,
        born_timestamp: orig.born_timestamp,
        born_host: orig.born_host,
        store_host: broker_store_host,
        reconsume_times: orig.reconsume_times.saturating_add(1),
        prepared_transaction_offset: 0,
    }
}

/// Java's remark for an unknown group.
pub fn group_not_exist_remark(group: &str) -> String {
    format!(
        "subscription group not exist, {} http://rocketmq.apache.org/docs/faq/",
        super::validate::shown_name(group)
    )
}

/// Steps 1–7 of CONSUMER_SEND_MSG_BACK that need only the config managers: finds the group,
/// checks permissions and creates the retry (and, if needed, DLQ) topic. Returns `Ok(None)` when
/// the group has `retryQueueNums ≤ 0` (SUCCESS, message dropped as Java does).
pub fn prepare_send_back(
    groups: &SubscriptionGroupManager,
    topics: &TopicConfigManager,
    broker_permission: u32,
    group: &str,
    header_max_reconsume_times: Option<i32>,
) -> Result<Option<PreparedSendBack>, Refusal> {
    let cfg = groups.get_or_create(group).ok_or_else(|| {
        Refusal::new(
            code::SUBSCRIPTION_GROUP_NOT_EXIST,
            group_not_exist_remark(group),
        )
    })?;
    if !perm::is_writeable(broker_permission) {
        return Err(Refusal::new(
            code::NO_PERMISSION,
            "the broker sending message is forbidden",
        ));
    }
    if cfg.retry_queue_nums == 0 {
        return Ok(None);
    }
    let retry = retry_topic(group);
    let tc = topics
        .create_if_absent(&retry, cfg.retry_queue_nums, perm::RW, 0)
        .map_err(|e| Refusal::new(code::SYSTEM_ERROR, e.to_string()))?
        .ok_or_else(|| Refusal::new(code::SYSTEM_ERROR, format!("topic[{retry}] not exist")))?;
    if !perm::is_writeable(tc.perm) {
        return Err(Refusal::new(
            code::NO_PERMISSION,
            format!("the topic[{retry}] sending message is forbidden"),
        ));
    }
    Ok(Some(PreparedSendBack {
        retry_topic: tc,
        max_reconsume_times: header_max_reconsume_times.unwrap_or(cfg.retry_max_times),
    }))
}

/// The checked retry topic and the effective max reconsume times.
#[derive(Debug, Clone)]
pub struct PreparedSendBack {
    pub retry_topic: TopicConfig,
    pub max_reconsume_times: i32,
}

/// [`adjust_retry_send_with`] on the broker's managers; `Err((code, remark))` refuses the send.
pub fn adjust_retry_send(
    b: &Broker,
    reconsume_times: i32,
    max_reconsume_times: Option<i32>,
    msg: &mut MessageInput,
) -> Result<(), (i32, String)> {
    adjust_retry_send_with(
        &b.groups,
        &b.topics,
        reconsume_times,
        max_reconsume_times,
        msg,
    )
    .map_err(|r| (r.code, r.remark))
}

/// Creates `%DLQ%<group>` (one queue, write-only as Java 4.x) if missing.
pub fn ensure_dlq_topic(topics: &TopicConfigManager, group: &str) -> Result<TopicConfig, Refusal> {
    let dlq = dlq_topic(group);
    topics
        .create_if_absent(&dlq, DLQ_NUMS_PER_GROUP, perm::WRITE, 0)
        .map_err(|e| Refusal::new(code::SYSTEM_ERROR, e.to_string()))?
        .ok_or_else(|| Refusal::new(code::SYSTEM_ERROR, format!("topic[{dlq}] not exist")))
}

/// The send path's rule for a message sent straight to `%RETRY%<group>` (§7.3, used by orderly
/// consumers and as the client's fallback): if `reconsume_times > max` (strictly), the message is
/// rerouted to `%DLQ%<group>` queue 0 with `DELAY=-1`. `max` is the header's value when given,
/// else the group's `retryMaxTimes`.
pub fn adjust_retry_send_with(
    groups: &SubscriptionGroupManager,
    topics: &TopicConfigManager,
    reconsume_times: i32,
    max_reconsume_times: Option<i32>,
    msg: &mut MessageInput,
) -> Result<(), Refusal> {
    let Some(group) = msg.topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) else {
        return Ok(());
    };
    let group = group.to_string();
    let cfg = groups.get_or_create(&group).ok_or_else(|| {
        Refusal::new(
            code::SUBSCRIPTION_GROUP_NOT_EXIST,
            group_not_exist_remark(&group),
        )
    })?;
    let max = max_reconsume_times.unwrap_or(cfg.retry_max_times);
    if reconsume_times > max {
        let dlq = ensure_dlq_topic(topics, &group)?;
        msg.properties = prop_set(&msg.properties, PROPERTY_DELAY_TIME_LEVEL, "-1");
        msg.topic = dlq.topic_name;
        msg.queue_id = 0;
    }
    Ok(())
}

/// Test helpers shared by the store-backed tests of retry, schedule and query.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod testkit {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use ferrocket_net::{Body, RemotingCommand};
    use ferrocket_store::mmap::DiskSpace;
    use ferrocket_store::record::{decode_record, RecordView};
    use ferrocket_store::{MessageInput, MessageStore, StoreOptions, TagFilter};

    use crate::broker::Broker;
    use crate::config::BrokerConfig;

    /// A broker with a small store under `dir` (1 MiB segments, a small index).
    pub fn broker(dir: &Path) -> Arc<Broker> {
        broker_with_conf(BrokerConfig {
            store_path_root_dir: dir.to_string_lossy().into_owned(),
            ..BrokerConfig::default()
        })
    }

    /// A broker for `conf` with the store sizes made small.
    pub fn broker_with_conf(conf: BrokerConfig) -> Arc<Broker> {
        let conf = BrokerConfig {
            mapped_file_size_commit_log: 1 << 20,
            mapped_file_size_consume_queue: 1000 * 20,
            max_hash_slot_num: 1000,
            max_index_num: 4000,
            ..conf
        };
        // A fixed disk probe: these tests are about the broker, not the machine's free space.
        let options = StoreOptions {
            disk_probe: Some(Arc::new(|_: &Path| {
                Ok(DiskSpace {
                    total_bytes: 100 << 30,
                    free_bytes: 90 << 30,
                    available_bytes: 90 << 30,
                })
            })),
            ..StoreOptions::default()
        };
        let store = MessageStore::open_with(conf.store_config(), options).unwrap();
        let b = Broker::new(conf, store.clone()).unwrap();
        // As Broker::open does: offsets never point past a queue's end.
        b.offsets
            .set_max_offset_source(Arc::new(move |t: &str, q: u32| store.max_offset(t, q)));
        b
    }

    pub fn input(topic: &str, queue_id: u32, body: &[u8], props: &str) -> MessageInput {
        MessageInput {
            topic: topic.into(),
            queue_id,
            flag: 7,
            body: body.to_vec().into(),
            properties: props.into(),
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.9:40000".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// Puts and waits until the message is dispatched; returns its CommitLog offset.
    pub fn put(store: &MessageStore, msg: MessageInput) -> u64 {
        let r = store.put(&msg).unwrap();
        let a = r.appended.first().unwrap().clone();
        assert!(store.wait_dispatched(a.phy_offset + u64::from(a.size), Duration::from_secs(10)));
        a.phy_offset
    }

    /// Waits until everything written so far is dispatched.
    pub fn settle(store: &MessageStore) {
        assert!(store.wait_dispatched(store.commit_log_max_offset(), Duration::from_secs(10)));
    }

    /// Every record of (topic, queue) as owned bytes.
    pub fn records(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<Vec<u8>> {
        settle(store);
        let r = store.get(topic, queue_id, 0, 1000, 64 << 20, &TagFilter::All);
        r.messages.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    pub fn view(bytes: &[u8]) -> RecordView<'_> {
        decode_record(bytes).unwrap()
    }

    pub fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        RemotingCommand {
            code,
            opaque: 11,
            version: 400,
            ext_fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    /// The body bytes of a reply (copied out of file regions).
    pub fn body_bytes(r: &RemotingCommand) -> Vec<u8> {
        match &r.body {
            Body::Empty => Vec::new(),
            Body::Bytes(b) => b.to_vec(),
            Body::Regions(rs) => rs.iter().flat_map(|r| r.as_bytes().to_vec()).collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::broker::topics::TopicDefaults;

    fn orig<'a>(props: &'a str, reconsume: i32) -> OriginalRecord<'a> {
        OriginalRecord {
            topic: "TopicTest",
            body: b"payload",
            flag: 3,
            properties: props,
            sys_flag: 1,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.1.2.3:4567".parse().unwrap(),
            store_host: "192.168.0.1:10911".parse().unwrap(),
            reconsume_times: reconsume,
            phy_offset: 0x1234,
        }
    }

    const HOST: &str = "127.0.0.1:10911";

    #[test]
    fn offset_msg_id_matches_the_reference_example() {
        assert_eq!(
            offset_msg_id("192.168.0.1:10911".parse().unwrap(), 0x1234),
            "C0A8000100002A9F0000000000001234"
        );
    }

    #[test]
    fn first_send_back_goes_to_retry_at_level_3() {
        let req = SendBackRequest {
            group: "cg",
            delay_level: 0,
            max_reconsume_times: 16,
        };
        let o = orig("TAGS\u{1}A\u{2}UNIQ_KEY\u{1}U1\u{2}", 0);
        let dest = destination(&req, o.reconsume_times);
        assert_eq!(dest, Destination::Retry { level: 3 });
        let m = build_send_back(&o, &req, &dest, 0, HOST.parse().unwrap());
        assert_eq!(m.topic, "%RETRY%cg");
        assert_eq!(m.reconsume_times, 1);
        assert_eq!(&m.body[..], b"payload");
        assert_eq!(
            (m.flag, m.sys_flag, m.born_timestamp),
            (3, 1, 1_700_000_000_000)
        );
        assert_eq!(m.born_host, o.born_host);
        assert_eq!(m.store_host, HOST.parse().unwrap());
        assert_eq!(prop_get(&m.properties, "RETRY_TOPIC"), Some("TopicTest"));
        assert_eq!(prop_get(&m.properties, "DELAY"), Some("3"));
        assert_eq!(prop_get(&m.properties, "WAIT"), Some("false"));
        assert_eq!(prop_get(&m.properties, "UNIQ_KEY"), Some("U1"));
        assert_eq!(
            prop_get(&m.properties, "ORIGIN_MESSAGE_ID"),
            Some("C0A8000100002A9F0000000000001234")
        );
    }

    #[test]
    fn later_retries_keep_retry_topic_and_origin_id_and_climb_levels() {
        let req = SendBackRequest {
            group: "cg",
            delay_level: 0,
            max_reconsume_times: 16,
        };
        let props = "RETRY_TOPIC\u{1}TopicTest\u{2}ORIGIN_MESSAGE_ID\u{1}FIRST\u{2}REAL_TOPIC\u{1}%RETRY%cg\u{2}";
        let mut o = orig(props, 5);
        o.topic = "%RETRY%cg";
        let dest = destination(&req, 5);
        assert_eq!(dest, Destination::Retry { level: 8 });
        let m = build_send_back(&o, &req, &dest, 0, HOST.parse().unwrap());
        assert_eq!(prop_get(&m.properties, "RETRY_TOPIC"), Some("TopicTest"));
        assert_eq!(prop_get(&m.properties, "ORIGIN_MESSAGE_ID"), Some("FIRST"));
        assert_eq!(m.reconsume_times, 6);
        // A client-chosen level is kept.
        let req2 = SendBackRequest {
            delay_level: 2,
            ..req
        };
        assert_eq!(destination(&req2, 5), Destination::Retry { level: 2 });
    }

    #[test]
    fn dead_letter_after_max_or_on_negative_level() {
        let req = SendBackRequest {
            group: "cg",
            delay_level: 0,
            max_reconsume_times: 16,
        };
        assert_eq!(destination(&req, 15), Destination::Retry { level: 18 });
        assert_eq!(destination(&req, 16), Destination::DeadLetter);
        let neg = SendBackRequest {
            delay_level: -1,
            ..req
        };
        assert_eq!(destination(&neg, 0), Destination::DeadLetter);
        let o = orig("DELAY\u{1}4\u{2}", 16);
        let m = build_send_back(&o, &req, &Destination::DeadLetter, 0, HOST.parse().unwrap());
        assert_eq!(m.topic, "%DLQ%cg");
        assert_eq!(m.queue_id, 0);
        assert_eq!(m.reconsume_times, 17);
        assert_eq!(prop_get(&m.properties, "DELAY"), None);
    }

    #[test]
    fn prepare_creates_retry_and_dlq_topics() {
        let dir = tempfile::tempdir().unwrap();
        let topics = TopicConfigManager::open(dir.path(), TopicDefaults::default()).unwrap();
        let groups = SubscriptionGroupManager::open(dir.path(), true).unwrap();
        let p = prepare_send_back(&groups, &topics, 6, "cg", None)
            .unwrap()
            .unwrap();
        assert_eq!(p.retry_topic.topic_name, "%RETRY%cg");
        assert_eq!(p.retry_topic.perm, 6);
        assert_eq!(p.max_reconsume_times, 16);
        let p = prepare_send_back(&groups, &topics, 6, "cg", Some(3))
            .unwrap()
            .unwrap();
        assert_eq!(p.max_reconsume_times, 3);
        let dlq = ensure_dlq_topic(&topics, "cg").unwrap();
        assert_eq!((dlq.perm, dlq.write_queue_nums), (perm::WRITE, 1));
        // A read-only broker refuses.
        let r = prepare_send_back(&groups, &topics, 4, "cg", None).unwrap_err();
        assert_eq!(r.code, code::NO_PERMISSION);
        // Unknown group with auto-create off.
        let groups_off = SubscriptionGroupManager::open(&dir.path().join("x"), false).unwrap();
        let r = prepare_send_back(&groups_off, &topics, 6, "nope", None).unwrap_err();
        assert_eq!(r.code, code::SUBSCRIPTION_GROUP_NOT_EXIST);
        assert!(r.remark.starts_with("subscription group not exist, nope"));
    }

    #[test]
    fn send_back_stores_a_delayed_retry_that_is_delivered_when_due() {
        use super::testkit::*;
        use crate::broker::schedule::LevelStep;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let props = "TAGS\u{1}TagA\u{2}KEYS\u{1}k1\u{2}UNIQ_KEY\u{1}UK1\u{2}";
        let phy = put(&b.store, input("TopicTest", 1, b"body-1", props));
        let off = phy.to_string();
        let req = request(
            36,
            &[
                ("offset", off.as_str()),
                ("group", "cg"),
                ("delayLevel", "0"),
            ],
        );
        let r = send_back(&b, &b.store, &req);
        assert_eq!((r.code, r.opaque), (code::SUCCESS, 11), "{:?}", r.remark);
        assert!(b.topics.get("%RETRY%cg").is_some());
        // Stored in SCHEDULE_TOPIC_XXXX, queue 2 (level 3 = 3 + reconsumeTimes 0).
        let sched = records(&b.store, "SCHEDULE_TOPIC_XXXX", 2);
        assert_eq!(sched.len(), 1);
        let v = view(&sched[0]);
        assert_eq!(v.body, b"body-1");
        assert_eq!(v.reconsume_times, 1);
        assert_eq!(v.flag, 7);
        assert_eq!(v.store_host, b.store_host);
        assert_eq!(v.born_host, "10.0.0.9:40000".parse().unwrap());
        assert_eq!(v.property("REAL_TOPIC"), Some("%RETRY%cg"));
        assert_eq!(v.property("REAL_QID"), Some("0"));
        assert_eq!(v.property("DELAY"), Some("3"));
        assert_eq!(v.property("RETRY_TOPIC"), Some("TopicTest"));
        assert_eq!(v.property("UNIQ_KEY"), Some("UK1"));
        let origin = offset_msg_id("127.0.0.1:10911".parse().unwrap(), phy);
        assert_eq!(v.property("ORIGIN_MESSAGE_ID"), Some(origin.as_str()));
        let stored_at = v.store_timestamp;
        // Not due 9.9 s later (level 3 = 10 s) ...
        let levels = b.schedule.levels().clone();
        assert_eq!(levels.delay_ms(3), Some(10_000));
        let step = b.schedule.deliver_level(&b.store, 3, stored_at + 9_900);
        assert!(matches!(step, LevelStep::WaitMs(100)), "{step:?}");
        assert!(records(&b.store, "%RETRY%cg", 0).is_empty());
        assert_eq!(b.schedule.offset(3), 0);
        // ... and delivered once due.
        b.schedule.deliver_level(&b.store, 3, stored_at + 10_000);
        let retry = records(&b.store, "%RETRY%cg", 0);
        assert_eq!(retry.len(), 1);
        let d = view(&retry[0]);
        assert_eq!(d.body, b"body-1");
        assert_eq!(d.reconsume_times, 1);
        assert_eq!(d.property("DELAY"), None);
        assert_eq!(d.property("RETRY_TOPIC"), Some("TopicTest"));
        assert_eq!(d.property("TAGS"), Some("TagA"));
        assert_eq!(d.property("WAIT"), Some("false"));
        assert_eq!(b.schedule.offset(3), 1);
        // Delivery is not repeated.
        b.schedule.deliver_level(&b.store, 3, stored_at + 20_000);
        assert_eq!(records(&b.store, "%RETRY%cg", 0).len(), 1);
    }

    #[test]
    fn send_back_after_max_reconsume_goes_to_the_dlq() {
        use super::testkit::*;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let mut m = input("%RETRY%cg", 0, b"tired", "RETRY_TOPIC\u{1}TopicTest\u{2}");
        m.reconsume_times = 16;
        let phy = put(&b.store, m);
        let off = phy.to_string();
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[("offset", &off), ("group", "cg"), ("delayLevel", "0")],
            ),
        );
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        let dlq = records(&b.store, "%DLQ%cg", 0);
        assert_eq!(dlq.len(), 1);
        let v = view(&dlq[0]);
        assert_eq!(v.body, b"tired");
        assert_eq!(v.reconsume_times, 17);
        assert_eq!(v.property("RETRY_TOPIC"), Some("TopicTest"));
        assert_eq!(v.property("DELAY"), None);
        assert_eq!(b.topics.get("%DLQ%cg").unwrap().perm, perm::WRITE);
        assert!(records(&b.store, "SCHEDULE_TOPIC_XXXX", 2).is_empty());
        // delayLevel -1 goes straight to the DLQ too.
        let phy = put(&b.store, input("TopicTest", 0, b"poison", ""));
        let off = phy.to_string();
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[("offset", &off), ("group", "cg"), ("delayLevel", "-1")],
            ),
        );
        assert_eq!(r.code, code::SUCCESS);
        assert_eq!(records(&b.store, "%DLQ%cg", 0).len(), 2);
        // A header maxReconsumeTimes from a new client lowers the bar.
        let mut m = input("%RETRY%cg", 0, b"twice", "");
        m.reconsume_times = 2;
        let off = put(&b.store, m).to_string();
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[
                    ("offset", &off),
                    ("group", "cg"),
                    ("delayLevel", "0"),
                    ("maxReconsumeTimes", "2"),
                ],
            ),
        );
        assert_eq!(r.code, code::SUCCESS);
        assert_eq!(records(&b.store, "%DLQ%cg", 0).len(), 3);
    }

    #[test]
    fn send_back_refusals() {
        use super::testkit::*;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        // Offset where no record starts.
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[("offset", "12345"), ("group", "cg"), ("delayLevel", "0")],
            ),
        );
        assert_eq!(r.code, code::SYSTEM_ERROR);
        assert_eq!(
            r.remark.as_deref(),
            Some("look message by offset failed, 12345")
        );
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[("offset", "-5"), ("group", "cg"), ("delayLevel", "0")],
            ),
        );
        assert_eq!(r.code, code::SYSTEM_ERROR);
        // Bad and missing fields name the field.
        let r = send_back(
            &b,
            &b.store,
            &request(36, &[("offset", "x"), ("group", "cg"), ("delayLevel", "0")]),
        );
        assert!(r.remark.unwrap().contains("offset"));
        let r = send_back(
            &b,
            &b.store,
            &request(36, &[("offset", "0"), ("delayLevel", "0")]),
        );
        assert!(r.remark.unwrap().contains("group"));
        // Hostile group names never create topics.
        let r = send_back(
            &b,
            &b.store,
            &request(
                36,
                &[("offset", "0"), ("group", "../../x"), ("delayLevel", "0")],
            ),
        );
        assert_eq!(r.code, code::SUBSCRIPTION_GROUP_NOT_EXIST);
        assert!(b.topics.get("%RETRY%../../x").is_none());
    }

    #[test]
    fn send_path_retry_rule_is_strictly_greater() {
        let dir = tempfile::tempdir().unwrap();
        let topics = TopicConfigManager::open(dir.path(), TopicDefaults::default()).unwrap();
        let groups = SubscriptionGroupManager::open(dir.path(), true).unwrap();
        let mk = || MessageInput {
            topic: "%RETRY%og".into(),
            queue_id: 0,
            flag: 0,
            body: vec![1].into(),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: 0,
            born_host: HOST.parse().unwrap(),
            store_host: HOST.parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let mut m = mk();
        adjust_retry_send_with(&groups, &topics, 16, None, &mut m).unwrap();
        assert_eq!(m.topic, "%RETRY%og");
        let mut m = mk();
        adjust_retry_send_with(&groups, &topics, 17, None, &mut m).unwrap();
        assert_eq!(m.topic, "%DLQ%og");
        assert_eq!(prop_get(&m.properties, "DELAY"), Some("-1"));
        let mut m = mk();
        adjust_retry_send_with(&groups, &topics, 3, Some(2), &mut m).unwrap();
        assert_eq!(m.topic, "%DLQ%og");
        // Not a retry topic: untouched.
        let mut m = mk();
        m.topic = "T".into();
        adjust_retry_send_with(&groups, &topics, 99, None, &mut m).unwrap();
        assert_eq!(m.topic, "T");
    }
}
