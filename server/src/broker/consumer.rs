//! Client and consumer management: HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP,
//! CHECK_CLIENT_CONFIG, and the offset requests (QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET,
//! SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME).

use std::sync::Arc;

use ferrocket_net::header::consumer::{
    GetConsumerListByGroupRequestHeader, GetEarliestMsgStoretimeRequestHeader,
    GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader, QueryConsumerOffsetRequestHeader,
    SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use ferrocket_net::header::producer::UnregisterClientRequestHeader;
use ferrocket_net::header::BoundaryType;
use ferrocket_net::{Body, CommandHeader, RemotingCommand};
use ferrocket_store::Boundary;

use super::clients::ClientInfo;
use super::send::{PERM_READ, PERM_WRITE};
use super::{heartbeat, validate, Broker, ConnectionHandle};
use crate::reply::{code, now_ms, ok, reply, req};

pub const CODES: &[i32] = &[
    req::HEART_BEAT,
    req::UNREGISTER_CLIENT,
    req::GET_CONSUMER_LIST_BY_GROUP,
    req::CHECK_CLIENT_CONFIG,
    req::QUERY_CONSUMER_OFFSET,
    req::UPDATE_CONSUMER_OFFSET,
    req::GET_MAX_OFFSET,
    req::GET_MIN_OFFSET,
    req::SEARCH_OFFSET_BY_TIMESTAMP,
    req::GET_EARLIEST_MSG_STORETIME,
];

pub async fn handle(
    b: &Arc<Broker>,
    conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let r = match req.code {
        req::HEART_BEAT => {
            // A heartbeat may create the group's retry topic: answer once it is registered.
            let mark = b.registration_mark();
            let r = heart_beat(b, conn, &req);
            b.registered_since(mark).await;
            r
        }
        req::UNREGISTER_CLIENT => with_header(&req, |h| unregister_client(b, conn, &req, h)),
        req::GET_CONSUMER_LIST_BY_GROUP => with_header(&req, |h| consumer_list(b, &req, h)),
        req::CHECK_CLIENT_CONFIG => ok(&req),
        req::QUERY_CONSUMER_OFFSET => with_header(&req, |h| query_offset(b, &req, h)),
        req::UPDATE_CONSUMER_OFFSET => with_header(&req, |h| update_offset(b, &req, h)),
        req::GET_MAX_OFFSET => {
            catch_up_dispatch(b).await;
            with_header(&req, |h: GetMaxOffsetRequestHeader| {
                offset_reply(
                    &req,
                    queue(h.queue_id).map_or(0, |q| b.store.max_offset(&h.topic, q)),
                )
            })
        }
        req::GET_MIN_OFFSET => with_header(&req, |h: GetMinOffsetRequestHeader| {
            offset_reply(
                &req,
                queue(h.queue_id).map_or(0, |q| b.store.min_offset(&h.topic, q)),
            )
        }),
        req::SEARCH_OFFSET_BY_TIMESTAMP => with_header(&req, |h: SearchOffsetRequestHeader| {
            let boundary = match h.boundary_type.unwrap_or_default() {
                BoundaryType::Lower => Boundary::Lower,
                BoundaryType::Upper => Boundary::Upper,
            };
            let o = queue(h.queue_id).map_or(0, |q| {
                b.store.offset_by_time(&h.topic, q, h.timestamp, boundary)
            });
            offset_reply(&req, o)
        }),
        req::GET_EARLIEST_MSG_STORETIME => {
            with_header(&req, |h: GetEarliestMsgStoretimeRequestHeader| {
                let ts = queue(h.queue_id)
                    .and_then(|q| b.store.earliest_store_time(&h.topic, q))
                    .unwrap_or(-1);
                ok(&req).with_ext("timestamp", ts.to_string())
            })
        }
        _ => RemotingCommand::not_supported(&req),
    };
    Some(r)
}

/// Longest a GET_MAX_OFFSET waits for the dispatcher.
const DISPATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Read-your-writes for GET_MAX_OFFSET: a send is acknowledged once in the CommitLog and reaches
/// its ConsumeQueue a moment later (seconds on a starved machine). A client that asks for the max
/// right after its sends (a consumer starting "from the end", a tool measuring a backlog) would
/// otherwise miss them for good, so wait briefly for the dispatcher to reach the CommitLog end.
async fn catch_up_dispatch(b: &Arc<Broker>) {
    let end = b.store.commit_log_max_offset();
    if b.store.dispatched_offset() >= end {
        return;
    }
    let store = Arc::clone(&b.store);
    let _ = tokio::task::spawn_blocking(move || store.wait_dispatched(end, DISPATCH_WAIT)).await;
}

/// Decodes the typed header or answers with the field named.
fn with_header<H: CommandHeader>(
    req: &RemotingCommand,
    f: impl FnOnce(H) -> RemotingCommand,
) -> RemotingCommand {
    match req.decode_header::<H>() {
        Ok(h) => f(h),
        Err(e) => RemotingCommand::bad_header(req, &e),
    }
}

fn queue(id: i32) -> Option<u32> {
    u32::try_from(id).ok()
}

fn offset_reply(req: &RemotingCommand, offset: u64) -> RemotingCommand {
    ok(req).with_ext("offset", offset.to_string())
}

fn body_bytes(req: &RemotingCommand) -> &[u8] {
    match &req.body {
        Body::Bytes(b) => b,
        _ => &[],
    }
}

/// Registers the client's producer and consumer groups on this channel; creates each consumer
/// group's `%RETRY%` topic; notifies a group whose membership changed.
fn heart_beat(b: &Broker, conn: &ConnectionHandle, req: &RemotingCommand) -> RemotingCommand {
    let hb = match heartbeat::parse(body_bytes(req)) {
        Ok(hb) => hb,
        Err(e) => return reply(req, code::SYSTEM_ERROR, e.to_string()),
    };
    let now = now_ms();
    let client = || ClientInfo {
        channel: conn.clone(),
        client_id: hb.client_id.clone(),
        language: req.language.clone(),
        version: req.version,
        last_update_ms: now,
    };
    for c in &hb.consumers {
        if validate::validate_group(&c.group_name).is_err() {
            tracing::warn!(group = %c.group_name, client = %hb.client_id, "heartbeat with an invalid group name ignored");
            continue;
        }
        let Some(group) = b.groups.get_or_create(&c.group_name) else {
            continue;
        };
        if group.retry_queue_nums > 0 {
            let retry = validate::retry_topic(&c.group_name);
            if b.topics.get(&retry).is_none() {
                match b.topics.create_if_absent(
                    &retry,
                    group.retry_queue_nums,
                    PERM_READ | PERM_WRITE,
                    0,
                ) {
                    Ok(Some(_)) => b.topics_changed(),
                    Ok(None) => tracing::warn!(topic = %retry, "retry topic not created"),
                    Err(e) => {
                        tracing::error!(topic = %retry, error = %e, "creating retry topic failed")
                    }
                }
            }
        }
        if b.clients.register_consumer(c, client()) {
            tracing::info!(group = %c.group_name, client = %hb.client_id, "consumer joined");
            b.notify_consumer_ids_changed(&c.group_name);
        }
    }
    for g in &hb.producer_groups {
        b.clients.register_producer(g, client());
    }
    b.clients.touch(conn.id(), now);
    ok(req)
}

fn unregister_client(
    b: &Broker,
    conn: &ConnectionHandle,
    req: &RemotingCommand,
    h: UnregisterClientRequestHeader,
) -> RemotingCommand {
    if let Some(g) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
        b.clients.unregister_producer(g, conn.id());
    }
    if let Some(g) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
        if b.clients.unregister_consumer(g, conn.id()) {
            tracing::info!(group = g, client = %h.client_id, "consumer left");
            b.notify_consumer_ids_changed(g);
        }
    }
    ok(req)
}

fn consumer_list(
    b: &Broker,
    req: &RemotingCommand,
    h: GetConsumerListByGroupRequestHeader,
) -> RemotingCommand {
    let ids = b.clients.consumer_ids(&h.consumer_group);
    if ids.is_empty() {
        return reply(
            req,
            code::SYSTEM_ERROR,
            format!("no consumer for this group, {}", h.consumer_group),
        );
    }
    let body = serde_json::json!({ "consumerIdList": ids }).to_string();
    ok(req).with_body(Body::Bytes(body.into_bytes().into()))
}

/// §7.2 (Java 4.9+/5.x `queryConsumerOffset`): the committed offset; else, unless the client
/// said `setZeroIfNotFound=false`, 0 when the queue starts at 0 and its first message is not
/// "on disk" (absent — an empty or unknown queue — or still within the hot page-cache window);
/// else QUERY_NOT_FOUND, which sends the client to GET_MAX_OFFSET.
///
/// Answering 0 for an empty queue matters: a message acknowledged before the consumer started
/// but not yet dispatched would otherwise be skipped by a consumer that starts at the max.
fn query_offset(
    b: &Broker,
    req: &RemotingCommand,
    h: QueryConsumerOffsetRequestHeader,
) -> RemotingCommand {
    let Some(q) = queue(h.queue_id) else {
        return reply(
            req,
            code::QUERY_NOT_FOUND,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        );
    };
    if let Some(o) = b.offsets.query(&h.consumer_group, &h.topic, q) {
        return offset_reply(req, o);
    }
    if h.set_zero_if_not_found == Some(false) {
        return reply(
            req,
            code::QUERY_NOT_FOUND,
            "Not found, do not set to zero, maybe this group boot first",
        );
    }
    if b.store.min_offset(&h.topic, q) == 0 && !first_message_on_disk(b, &h.topic, q) {
        return offset_reply(req, 0);
    }
    reply(
        req,
        code::QUERY_NOT_FOUND,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    )
}

/// Java `checkInDiskByConsumeOffset(topic, q, 0)`: the message at queue offset 0 exists and lies
/// further behind the CommitLog head than `accessMessageInMemoryMaxRatio` (40 %) of RAM.
fn first_message_on_disk(b: &Broker, topic: &str, q: u32) -> bool {
    let got = b
        .store
        .get(topic, q, 0, 1, 1, &ferrocket_store::TagFilter::All);
    match got.messages.first() {
        None => false,
        Some(slice) => {
            let behind = b
                .store
                .commit_log_max_offset()
                .saturating_sub(slice.phy_offset());
            behind > hot_window_bytes()
        }
    }
}

/// 40 % of physical memory (`accessMessageInMemoryMaxRatio`), read once from /proc/meminfo;
/// 4 GiB if it cannot be read.
fn hot_window_bytes() -> u64 {
    static HOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HOT.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb.saturating_mul(1024))
            .unwrap_or(10 << 30);
        total / 100 * 40
    })
}

fn update_offset(
    b: &Broker,
    req: &RemotingCommand,
    h: UpdateConsumerOffsetRequestHeader,
) -> RemotingCommand {
    if b.topics.get(&h.topic).is_none() {
        return reply(
            req,
            code::TOPIC_NOT_EXIST,
            format!("Topic {} not exist!", h.topic),
        );
    }
    if b.groups.get_or_create(&h.consumer_group).is_none() {
        return reply(
            req,
            code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("Subscription group {} not exist!", h.consumer_group),
        );
    }
    let (Some(q), Ok(o)) = (queue(h.queue_id), u64::try_from(h.commit_offset)) else {
        return reply(req, code::INVALID_PARAMETER, "bad queueId or commitOffset");
    };
    b.offsets.commit(&h.consumer_group, &h.topic, q, o);
    ok(req)
}
