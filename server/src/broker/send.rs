//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): validation with the
//! Java codes and remarks (§7.8), topic auto-creation from TBW102 (§7.7), retry/DLQ and delay
//! rewrites, the store append, and the SendMessageResponseHeader.
//!
//! Under SYNC_FLUSH the append returns at once and the reply waits, without holding a thread,
//! for the group commit that makes it durable (`MessageStore::put_notify`), bounded by
//! `syncFlushTimeout` (then FLUSH_DISK_TIMEOUT, as in Java).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ferrocket_net::header::producer::{
    SendHeaderView, SendMessageRequestHeader, SendMessageResponseHeader,
};
use ferrocket_net::{Body, Processed, RemotingCommand};
use ferrocket_store::{FlushDiskType, MessageInput, PutStatus, StoreError};

use super::message::{self, PROPERTY_CLUSTER, PROPERTY_UNIQ_KEY};
use super::topics::SendView;
use super::{retry, schedule, validate, Broker, ConnectionHandle};
use crate::config::BrokerConfig;
use crate::reply::{code, now_ms, reply, req};

pub const CODES: &[i32] = &[
    req::SEND_MESSAGE,
    req::SEND_MESSAGE_V2,
    req::SEND_BATCH_MESSAGE,
];

/// PermName bits.
pub const PERM_READ: u32 = 4;
pub const PERM_WRITE: u32 = 2;
pub const PERM_INHERIT: u32 = 1;
/// `TopicFilterType.MULTI_TAG` sets MessageSysFlag MULTI_TAGS_FLAG.
const MULTI_TAGS_FLAG: i32 = 0x2;

/// Rotates the queue picked for sends with `queueId < 0`.
static NEXT_QUEUE: AtomicU32 = AtomicU32::new(0);

pub async fn handle(
    b: &Arc<Broker>,
    conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    match handle_now(b, conn, req) {
        Processed::Now(resp) => resp,
        Processed::Later(fut) => fut.await,
    }
}

/// The send, answered at once unless the reply must wait for a SYNC_FLUSH group commit: no
/// future is built (nor boxed) for an ASYNC_FLUSH send or a refused one.
pub fn handle_now(b: &Arc<Broker>, conn: &ConnectionHandle, mut req: RemotingCommand) -> Processed {
    // The header borrows its strings from the request's extFields (moving the properties out
    // of them); nothing else reads the fields.
    let mut ext = std::mem::take(&mut req.ext_fields);
    let header = match SendMessageRequestHeader::view_for(req.code, &mut ext) {
        Ok(h) => h,
        Err(e) => return Processed::Now(Some(RemotingCommand::bad_header(&req, &e))),
    };
    let born_host = v4_mapped(conn.peer_addr());
    // The append is a copy into the page cache under the store lock (microseconds), so it runs
    // right here: a hop to the blocking pool cost ~25 µs of CPU per message in futex wakes and
    // context switches (perf, bench helper, 20:53). (Work stealing moves this worker's other
    // tasks if a rare page fault stalls it.) Under SYNC_FLUSH the reply then waits for the
    // group commit as a future, not a blocked thread.
    let mut durable = None;
    let mark = b.registration_mark();
    let resp = send(b, &req, header, born_host, &mut durable);
    // A send that auto-created its topic answers once the nameservers know the topic (as Java's
    // broker does), so a consumer started right after the reply finds the route.
    let created = (b.registration_mark() != mark).then(|| Arc::clone(b));
    if durable.is_none() && created.is_none() {
        return Processed::Now(Some(resp));
    }
    let timeout = std::time::Duration::from_millis(b.store.config().sync_flush_timeout_ms);
    // What a reply needs of the request (its version and opaque), without the request's body.
    let mut stub = RemotingCommand::request(req.code);
    stub.version = req.version;
    stub.opaque = req.opaque;
    Processed::Later(Box::pin(async move {
        if let Some(b) = created {
            b.registered_since(mark).await;
        }
        Some(match durable {
            Some(rx) => await_durable(timeout, &stub, resp, rx).await,
            None => resp,
        })
    }))
}

/// The group commit's verdict on a SYNC_FLUSH append.
type DurableRx = tokio::sync::oneshot::Receiver<ferrocket_store::Result<()>>;

/// Runs the store's group-commit rounds (the `put_notify` callbacks below, each completing one
/// send's [`DurableRx`]) on the async runtime this is called in: one task takes every round, so
/// the commit thread hands over a round with one wake-up, and the replies are then woken from a
/// worker, where they queue locally. Completed one by one from the commit thread, each oneshot
/// was a wake-up from outside the runtime that could unpark (and preempt) a worker: per SYNC
/// message ~0.5 context switches on the workers, against ~0.08 under ASYNC_FLUSH. `None` outside
/// a runtime (the store then completes them on its commit thread).
pub fn durable_delivery() -> Option<ferrocket_store::RoundDelivery> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ferrocket_store::DurableRound>();
    rt.spawn(async move {
        while let Some(round) = rx.recv().await {
            round.run();
        }
    });
    Some(std::sync::Arc::new(move |round| {
        // The runtime is gone (shutdown): the commit thread completes the round itself.
        if let Err(tokio::sync::mpsc::error::SendError(round)) = tx.send(round) {
            round.run();
        }
    }))
}

/// Holds a SYNC_FLUSH reply until its records are durable: `resp` as built, FLUSH_DISK_TIMEOUT
/// (with the same header: the message is stored) after `syncFlushTimeout`, or the store's
/// refusal if it failed first.
async fn await_durable(
    timeout: std::time::Duration,
    req: &RemotingCommand,
    mut resp: RemotingCommand,
    rx: DurableRx,
) -> RemotingCommand {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(()))) => resp,
        Ok(Ok(Err(e))) => store_error_reply(req, &e),
        Ok(Err(_)) => reply(req, code::SYSTEM_ERROR, "the store dropped a flush request"),
        Err(_) => {
            tracing::warn!(
                ?timeout,
                "SYNC_FLUSH send not durable within syncFlushTimeout"
            );
            resp.code = code::FLUSH_DISK_TIMEOUT;
            resp.remark = Some("flush disk timeout".into());
            resp
        }
    }
}

/// Clients on an IPv4 socket accepted by a dual-stack listener show up as `::ffff:a.b.c.d`;
/// store them as IPv4 (the C++ client decodes only 4-byte hosts).
pub fn v4_mapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The whole send, synchronously.
/// The whole send up to the append. Under SYNC_FLUSH a successful append leaves the receiver of
/// its durability verdict in `durable`, and the reply returned is the one to send once durable.
fn send(
    b: &Broker,
    req: &RemotingCommand,
    mut h: SendHeaderView<'_>,
    born_host: SocketAddr,
    durable: &mut Option<DurableRx>,
) -> RemotingCommand {
    // One snapshot of the configuration for the whole send (each `conf()` is a lock and two
    // reference-count updates).
    let conf = b.conf();
    let (tc, queue_id) = match check_and_route(b, &conf, req, &h) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let batch = h.batch == Some(true);
    if conf.reject_transaction_message
        && h.properties
            .as_deref()
            .and_then(|p| message::property(p, message::PROPERTY_TRANSACTION_PREPARED))
            == Some("true")
    {
        return reply(
            req,
            code::NO_PERMISSION,
            format!(
                "the broker[{}] sending transaction message is forbidden",
                conf.broker_ip1
            ),
        );
    }
    let mut sys_flag = h.sys_flag;
    if tc.multi_tag {
        sys_flag |= MULTI_TAGS_FLAG;
    }
    let cluster = conf.broker_cluster_name.as_str();
    // The header's properties move into the message: nothing below reads them from `h`.
    let properties = h.properties.take();
    let base = MessageInput {
        topic: h.topic.to_owned(),
        queue_id,
        flag: h.flag,
        body: bytes::Bytes::new(),
        properties: String::new(),
        sys_flag,
        born_timestamp: h.born_timestamp,
        born_host,
        store_host: b.store_host,
        reconsume_times: h.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
    };
    // A single message's UNIQ_KEY, for the reply.
    let mut uniq = None;
    let msgs = if batch {
        if base.topic.starts_with(validate::RETRY_GROUP_TOPIC_PREFIX) {
            return reply(
                req,
                code::MESSAGE_ILLEGAL,
                "Retry group topic is not allowed for batch message",
            );
        }
        let empty = bytes::Bytes::new();
        let frame_body = match &req.body {
            Body::Bytes(b) => b,
            _ => &empty,
        };
        // Each inner body is a slice of the request frame: the store's copy is the only one.
        let items = match message::parse_batch_shared(frame_body) {
            Ok(items) => items,
            Err(e) => return reply(req, code::MESSAGE_ILLEGAL, format!("bad batch body: {e}")),
        };
        Msgs::Batch(
            items
                .into_iter()
                .map(|it| {
                    let mut m = base.clone();
                    m.flag = it.flag;
                    m.body = it.body;
                    m.properties = it.properties;
                    complete_properties(&mut m.properties, cluster, born_host.ip(), false);
                    m
                })
                .collect(),
        )
    } else {
        let mut m = base;
        // The request's body is a slice of the frame read from the socket: no copy here.
        m.body = match &req.body {
            Body::Bytes(b) => b.clone(),
            _ => bytes::Bytes::new(),
        };
        m.properties = properties.unwrap_or_default();
        let completed = complete_properties(&mut m.properties, cluster, born_host.ip(), true);
        uniq = completed.uniq;
        if m.topic.starts_with(validate::RETRY_GROUP_TOPIC_PREFIX) {
            if let Err((c, remark)) =
                retry::adjust_retry_send(b, m.reconsume_times, h.max_reconsume_times, &mut m)
            {
                return reply(req, c, remark);
            }
            // The retry rewrite may have changed the properties (DELAY): look again.
            b.schedule.redirect_delayed(&mut m);
        } else {
            b.schedule
                .redirect_delayed_at(&mut m, completed.delay_level);
        }
        Msgs::One(m)
    };
    put(b, &conf, req, msgs, uniq, durable)
}

/// The messages of one send: a single one (no `Vec` to allocate) or a batch's.
enum Msgs {
    One(MessageInput),
    Batch(Vec<MessageInput>),
}

impl Msgs {
    fn as_slice(&self) -> &[MessageInput] {
        match self {
            Msgs::One(m) => std::slice::from_ref(m),
            Msgs::Batch(v) => v,
        }
    }
}

/// Validation in Java's order (§7.8) and the target queue. Err is the reply to send.
// The Err is the reply itself, built only when a request is refused.
#[allow(clippy::result_large_err)]
fn check_and_route(
    b: &Broker,
    conf: &BrokerConfig,
    req: &RemotingCommand,
    h: &SendHeaderView<'_>,
) -> Result<(SendView, u32), RemotingCommand> {
    if b.is_shutting_down() {
        return Err(reply(
            req,
            code::SERVICE_NOT_AVAILABLE,
            "service not available now. It may be caused by the broker shutting down",
        ));
    }
    if conf.broker_permission & PERM_WRITE == 0 {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!(
                "the broker[{}] sending message is forbidden",
                conf.broker_ip1
            ),
        ));
    }
    if let Err(e) = validate::validate_topic(h.topic) {
        return Err(reply(req, e.code(), e.remark()));
    }
    if super::topics::is_not_allowed_send_topic(h.topic) {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!("Sending message to topic[{}] is forbidden.", h.topic),
        ));
    }
    let tc = topic_for_send(b, req, h)?;
    if tc.perm & PERM_WRITE == 0 {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        ));
    }
    let queue_nums = tc.write_queue_nums.max(tc.read_queue_nums);
    if tc.write_queue_nums == 0 {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!("the topic[{}] has no writable queue", h.topic),
        ));
    }
    let queue_id = if h.queue_id < 0 {
        let n = tc.write_queue_nums.max(1);
        NEXT_QUEUE.fetch_add(1, Ordering::Relaxed) % n
    } else {
        let q = u32::try_from(h.queue_id).unwrap_or(u32::MAX);
        if q >= queue_nums {
            return Err(reply(
                req,
                code::INVALID_PARAMETER,
                format!(
                    "request queueId[{}] is illegal, {:?} Producer: {}",
                    h.queue_id, h.topic, h.producer_group
                ),
            ));
        }
        q
    };
    Ok((tc, queue_id))
}

/// The topic's config, auto-creating it from the default topic (TBW102) or, for a retry topic,
/// with the group's retry queue count.
// The Err is the reply itself, built only when a request is refused.
#[allow(clippy::result_large_err)]
fn topic_for_send(
    b: &Broker,
    req: &RemotingCommand,
    h: &SendHeaderView<'_>,
) -> Result<SendView, RemotingCommand> {
    if let Some(tc) = b.topics.send_view(h.topic) {
        return Ok(tc);
    }
    let not_exist = || {
        reply(
            req,
            code::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please! https://rocketmq.apache.org/docs/bestPractice/06FAQ", h.topic),
        )
    };
    let persist_failed = |e: super::persist::PersistError| {
        tracing::error!(topic = %h.topic, error = %e, "creating topic failed");
        reply(
            req,
            code::SYSTEM_ERROR,
            format!("create topic {} failed: {e}", h.topic),
        )
    };
    let default_queue_nums = u32::try_from(h.default_topic_queue_nums)
        .unwrap_or(0)
        .max(1);
    let created = b
        .topics
        .create_in_send(h.topic, h.default_topic, default_queue_nums, 0)
        .map_err(persist_failed)?;
    let created = match created {
        Some(tc) => Some(tc),
        None if h.topic.starts_with(validate::RETRY_GROUP_TOPIC_PREFIX) => {
            let group = h
                .topic
                .trim_start_matches(validate::RETRY_GROUP_TOPIC_PREFIX);
            match b.groups.get_or_create(group) {
                Some(g) => b
                    .topics
                    .create_if_absent(
                        h.topic,
                        g.retry_queue_nums.max(1),
                        PERM_READ | PERM_WRITE,
                        0,
                    )
                    .map_err(persist_failed)?,
                None => None,
            }
        }
        None => None,
    };
    match created {
        Some(tc) => {
            tracing::info!(topic = %tc.topic_name, queues = tc.write_queue_nums, "topic auto-created on send");
            b.topics_changed();
            Ok(SendView::from(&tc))
        }
        None => Err(not_exist()),
    }
}

/// What [`complete_properties`] found besides completing the properties.
struct Completed {
    /// The message's UNIQ_KEY when asked for (`want_uniq`).
    uniq: Option<String>,
    /// Its `DELAY` level, as `schedule::delay_level` reads it.
    delay_level: Option<i64>,
}

/// Adds CLUSTER and, when the producer did not set one, a UNIQ_KEY (as the 5.x broker does).
/// With `want_uniq`, returns the message's UNIQ_KEY (the reply's transactionId for a single
/// message), so the send need not scan the properties for it again; and its DELAY level, for
/// the delayed-delivery check. One scan of the properties finds all three.
fn complete_properties(
    props: &mut String,
    cluster: &str,
    ip: IpAddr,
    want_uniq: bool,
) -> Completed {
    let found = message::scan_send_properties(props);
    let mut delay_level = schedule::delay_level(found.delay);
    let add_uniq = found.uniq_key.is_none();
    let uniq = found.uniq_key.filter(|_| want_uniq).map(str::to_string);
    let add_cluster = !cluster.is_empty() && found.cluster.is_none();
    // One reservation for both (each pair: name, U+0001, value, U+0002, and maybe a U+0002
    // before it): growing for each in turn reallocated twice per send.
    let mut extra = 0;
    if add_uniq {
        extra += PROPERTY_UNIQ_KEY.len() + 3 + message::UNIQ_KEY_HEX_LEN;
    }
    if add_cluster {
        extra += PROPERTY_CLUSTER.len() + 3 + cluster.len();
    }
    props.reserve(extra);
    let uniq = if add_uniq {
        let u = message::new_uniq_key(ip, now_ms());
        message::push_property(props, PROPERTY_UNIQ_KEY, &u);
        want_uniq.then_some(u)
    } else {
        uniq
    };
    if add_cluster {
        message::push_property(props, PROPERTY_CLUSTER, cluster);
        // Appending pairs leaves the earlier segments as they were, so the DELAY found above
        // stands, unless a (misconfigured) cluster name carries separators of its own.
        if cluster.bytes().any(|c| c == 1 || c == 2) {
            delay_level = schedule::delay_level(schedule::prop_get(
                props,
                schedule::PROPERTY_DELAY_TIME_LEVEL,
            ));
        }
    }
    Completed { uniq, delay_level }
}

/// Appends and builds the response (under SYNC_FLUSH, see [`send`] for `durable`).
/// Stores `msgs`; `single_uniq` is the UNIQ_KEY of a single message (None for a batch).
fn put(
    b: &Broker,
    conf: &BrokerConfig,
    req: &RemotingCommand,
    msgs: Msgs,
    single_uniq: Option<String>,
    durable: &mut Option<DurableRx>,
) -> RemotingCommand {
    let queue_id = msgs.as_slice().first().map(|m| m.queue_id).unwrap_or(0);
    let result = if conf.flush_disk_type == FlushDiskType::Sync {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let appended = b.store.put_notify(
            msgs.as_slice(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        appended.map(|appended| {
            *durable = Some(rx);
            ferrocket_store::PutResult {
                status: PutStatus::Ok,
                appended,
            }
        })
    } else {
        match msgs {
            Msgs::One(m) => b.store.put(&m),
            Msgs::Batch(v) if v.len() == 1 => match v.first() {
                Some(m) => b.store.put(m),
                None => return reply(req, code::MESSAGE_ILLEGAL, "no message"),
            },
            Msgs::Batch(v) => b.store.put_batch(&v),
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => return store_error_reply(req, &e),
    };
    b.stats.msg_put_total.fetch_add(
        result.appended.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let Some(first) = result.appended.first() else {
        return reply(req, code::SYSTEM_ERROR, "store appended nothing");
    };
    let msg_id = match result.appended.as_slice() {
        [one] => message::offset_msg_id(b.store_host, one.phy_offset),
        all => all
            .iter()
            .map(|a| message::offset_msg_id(b.store_host, a.phy_offset))
            .collect::<Vec<_>>()
            .join(","),
    };
    let header = SendMessageResponseHeader {
        msg_id,
        queue_id: i32::try_from(queue_id).unwrap_or(i32::MAX),
        queue_offset: i64::try_from(first.queue_offset).unwrap_or(i64::MAX),
        transaction_id: single_uniq,
        batch_uniq_id: None,
        recall_handle: None,
        msg_region: Some(region_text(&conf.region_id)),
        trace_on: Some(Cow::Borrowed(if conf.trace_on { "true" } else { "false" })),
    };
    let (status_code, remark) = match result.status {
        PutStatus::Ok => (code::SUCCESS, ""),
        PutStatus::FlushDiskTimeout => (code::FLUSH_DISK_TIMEOUT, "flush disk timeout"),
    };
    reply(req, status_code, remark).with_ext_fields(header.into_ext())
}

/// The reply's MSG_REGION: Java's default region as static text (no copy per reply), any
/// other region copied.
fn region_text(region: &str) -> Cow<'static, str> {
    const DEFAULT_REGION: &str = "DefaultRegion";
    if region == DEFAULT_REGION {
        Cow::Borrowed(DEFAULT_REGION)
    } else {
        Cow::Owned(region.to_owned())
    }
}

/// Maps a store refusal to Java's codes: illegal message 13, not writable 14, else 1.
pub fn store_error_reply(req: &RemotingCommand, e: &StoreError) -> RemotingCommand {
    let c = match e {
        StoreError::MessageIllegal(_) => code::MESSAGE_ILLEGAL,
        StoreError::DiskFull(_) | StoreError::WriteDisabled(_) => code::SERVICE_NOT_AVAILABLE,
        _ => code::SYSTEM_ERROR,
    };
    if c == code::SYSTEM_ERROR {
        tracing::error!(error = %e, "store put failed");
    } else if c == code::SERVICE_NOT_AVAILABLE {
        // The operator's clue that sends are being turned away (a full disk, a failed sync);
        // once every 10 s at most, with how many it did not log.
        if let Some(n) = REFUSED_LOG.allow() {
            tracing::warn!(error = %e, suppressed = n, "store refused a put");
        }
    }
    reply(req, c, e.to_string())
}

static REFUSED_LOG: ferrocket_net::LogLimiter = ferrocket_net::LogLimiter::new(10_000);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The UNIQ_KEY handed back for the reply is the one the message carries: the producer's,
    /// or the one added here; CLUSTER is added once.
    #[test]
    fn complete_properties_returns_the_uniq_key_the_message_carries() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let mut props = String::new();
        let uniq = complete_properties(&mut props, "C1", ip, true)
            .uniq
            .unwrap();
        assert_eq!(
            message::property(&props, PROPERTY_UNIQ_KEY),
            Some(uniq.as_str())
        );
        assert_eq!(uniq.len(), message::UNIQ_KEY_HEX_LEN);
        assert_eq!(message::property(&props, PROPERTY_CLUSTER), Some("C1"));
        let before = props.clone();
        assert_eq!(
            complete_properties(&mut props, "C1", ip, true).uniq,
            Some(uniq.clone())
        );
        assert_eq!(props, before, "nothing added twice");
        let mut mine = format!("TAGS\u{1}A\u{2}{PROPERTY_UNIQ_KEY}\u{1}U1\u{2}");
        assert_eq!(
            complete_properties(&mut mine, "", ip, true).uniq.as_deref(),
            Some("U1")
        );
        assert_eq!(complete_properties(&mut mine, "", ip, false).uniq, None);
        let mut batch_item = String::new();
        assert_eq!(
            complete_properties(&mut batch_item, "", ip, false).uniq,
            None
        );
        assert!(message::property(&batch_item, PROPERTY_UNIQ_KEY).is_some());
    }

    proptest::proptest! {
        /// The DELAY level found in the one scan is the one `schedule::divert` would read from
        /// the completed properties (the send path diverts with it), whatever the properties
        /// and the cluster name; and the UNIQ_KEY returned is the one the message carries.
        #[test]
        fn complete_properties_delay_matches_a_lookup_after_completion(
            parts in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just("DELAY"),
                    proptest::strategy::Just("UNIQ_KEY"), proptest::strategy::Just("CLUSTER"),
                    proptest::strategy::Just("3"), proptest::strategy::Just(" 7"),
                    proptest::strategy::Just("-1"), proptest::strategy::Just("x"),
                    proptest::strategy::Just("\u{1}"), proptest::strategy::Just("\u{2}")],
                0..16),
            cluster in proptest::prop_oneof![proptest::strategy::Just(""),
                proptest::strategy::Just("DefaultCluster"),
                proptest::strategy::Just("C\u{2}DELAY\u{1}5"),
                proptest::strategy::Just("C\u{1}")],
        ) {
            let ip: IpAddr = "10.0.0.2".parse().unwrap();
            let mut props: String = parts.concat();
            let got = complete_properties(&mut props, cluster, ip, true);
            let want = schedule::delay_level(schedule::prop_get(
                &props, schedule::PROPERTY_DELAY_TIME_LEVEL));
            proptest::prop_assert_eq!(got.delay_level, want);
            proptest::prop_assert_eq!(got.uniq.as_deref(),
                message::property(&props, PROPERTY_UNIQ_KEY));
        }
    }

    fn sent() -> (RemotingCommand, RemotingCommand) {
        let req = RemotingCommand::request(req::SEND_MESSAGE_V2);
        let mut ok = reply(&req, code::SUCCESS, "");
        ok.ext_fields.insert("msgId".into(), "ABC".into());
        (req, ok)
    }

    #[tokio::test(start_paused = true)]
    async fn sync_reply_waits_for_the_group_commit_verdict() {
        let t = Duration::from_millis(5000);
        // Durable: the reply as built.
        let (req, ok) = sent();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tx.send(Ok(())).unwrap();
        let r = await_durable(t, &req, ok.clone(), rx).await;
        assert_eq!(r.code, code::SUCCESS);
        assert_eq!(r.ext_fields.get("msgId"), Some("ABC"));
        // The store failed first: its refusal.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tx.send(Err(StoreError::WriteDisabled("sync failed".into())))
            .unwrap();
        let r = await_durable(t, &req, ok.clone(), rx).await;
        assert_eq!(r.code, code::SERVICE_NOT_AVAILABLE);
        // Nobody answers within syncFlushTimeout: FLUSH_DISK_TIMEOUT, header kept (stored).
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let started = tokio::time::Instant::now();
        let r = await_durable(t, &req, ok.clone(), rx).await;
        assert_eq!(r.code, code::FLUSH_DISK_TIMEOUT);
        assert_eq!(r.ext_fields.get("msgId"), Some("ABC"));
        assert_eq!(started.elapsed(), t);
        // The store dropped the request without a verdict.
        let (tx, rx) = tokio::sync::oneshot::channel::<ferrocket_store::Result<()>>();
        drop(tx);
        let r = await_durable(t, &req, ok, rx).await;
        assert_eq!(r.code, code::SYSTEM_ERROR);
    }

    /// Under SYNC_FLUSH with the runtime's delivery, the store's callbacks (the oneshots the
    /// replies wait on) run on the runtime, not on the commit thread, and only once durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_rounds_complete_on_the_runtime() {
        use ferrocket_store::{MessageStore, StoreConfig, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.mapped_file_size_commit_log = 1 << 20;
        config.flush_disk_type = FlushDiskType::Sync;
        let options = StoreOptions {
            durable_delivery: durable_delivery(),
            ..StoreOptions::default()
        };
        assert!(options.durable_delivery.is_some());
        let store = MessageStore::open_with(config, options).unwrap();
        let mut waits = Vec::new();
        for i in 0..64u32 {
            let m = super::super::retry::testkit::input("W", i % 4, &[7u8; 100], "");
            let (tx, rx) = tokio::sync::oneshot::channel();
            let s = Arc::clone(&store);
            let appended = store
                .put_notify(
                    &[m],
                    Box::new(move |r| {
                        // On a runtime worker (or inline in put_notify, also one), and durable.
                        let on_runtime = tokio::runtime::Handle::try_current().is_ok();
                        let _ = tx.send((r.is_ok(), on_runtime, s.flushed_offset()));
                    }),
                )
                .unwrap();
            let a = &appended[0];
            waits.push((a.phy_offset + u64::from(a.size), rx));
        }
        for (end, rx) in waits {
            let (ok, on_runtime, flushed) = tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .unwrap()
                .unwrap();
            assert!(ok);
            assert!(on_runtime, "a round's callback ran off the runtime");
            assert!(flushed >= end, "acknowledged before its flush");
        }
        tokio::task::spawn_blocking(move || store.shutdown())
            .await
            .unwrap();
    }
}
