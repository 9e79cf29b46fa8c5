//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361): the checks of §7.1 in Java's order, the
//! store read with the tag filter from the subscription, the status → code mapping, long polling
//! through [`super::pull_hold`], the consumer-offset commit, and a body served zero-copy as the
//! store's record slices.

use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::header::consumer::PullMessageRequestHeader;
use ferrocket_net::{Body, FileRegion, RemotingCommand};
use ferrocket_store::{GetResult, GetStatus, Slice};

use super::heartbeat::MessageModel;
use super::pull_hold::WaitOutcome;
use super::send::PERM_READ;
use super::subscription::SubscriptionData;
use super::{Broker, ConnectionHandle};
use crate::reply::{code, reply, req};

pub const CODES: &[i32] = &[req::PULL_MESSAGE, req::LITE_PULL_MESSAGE];

/// PullSysFlag bits.
pub const FLAG_COMMIT_OFFSET: i32 = 0x1;
pub const FLAG_SUSPEND: i32 = 0x2;
pub const FLAG_SUBSCRIPTION: i32 = 0x4;
pub const FLAG_LITE_PULL: i32 = 0x10;
/// A held pull is answered before this even if the client asked for longer: clients time the
/// whole call out at 30 s.
pub const SUSPEND_MAX: Duration = Duration::from_millis(28_000);

/// A store record slice as a file region for net's zero-copy send.
pub struct SliceRegion(pub Slice);

impl FileRegion for SliceRegion {
    fn file(&self) -> &std::fs::File {
        self.0.file()
    }
    fn file_offset(&self) -> u64 {
        self.0.file_offset()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// What one processing of a pull produced.
enum Pulled {
    Reply(RemotingCommand),
    /// Nothing yet and the client allows suspension: park, then run again.
    Suspend {
        timeout: Duration,
    },
}

pub async fn handle(
    b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let h = match PullMessageRequestHeader::from_ext(&req.ext_fields) {
        Ok(h) => h,
        Err(e) => return Some(RemotingCommand::bad_header(&req, &e)),
    };
    match process(b, &req, &h, true) {
        Pulled::Reply(r) => Some(r),
        Pulled::Suspend { timeout } => {
            let queue_id = u32::try_from(h.queue_id).unwrap_or(0);
            let offset = u64::try_from(h.queue_offset).unwrap_or(0);
            let store = Arc::clone(&b.store);
            let topic = h.topic.clone();
            let outcome = b
                .pull_hold
                .wait(&h.topic, queue_id, offset, timeout, move || {
                    store.max_offset(&topic, queue_id)
                })
                .await;
            if outcome == WaitOutcome::Full {
                tracing::debug!(topic = %h.topic, queue_id, "pull hold full; answering at once");
            }
            match process(b, &req, &h, false) {
                Pulled::Reply(r) => Some(r),
                // unreachable: suspension is off on the second run; answer "nothing" anyway
                Pulled::Suspend { .. } => {
                    Some(reply(&req, code::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE"))
                }
            }
        }
    }
}

/// One run of the pull. `first`: the request's first processing (may suspend, commits the
/// offset); re-runs after a wake-up do neither.
fn process(b: &Broker, req: &RemotingCommand, h: &PullMessageRequestHeader, first: bool) -> Pulled {
    let sub = match check(b, req, h) {
        Ok(s) => s,
        Err(r) => return Pulled::Reply(r),
    };
    let conf = b.conf();
    let queue_id = u32::try_from(h.queue_id).unwrap_or(0);
    let offset = u64::try_from(h.queue_offset).unwrap_or(0);
    let max_count = u32::try_from(h.max_msg_nums)
        .unwrap_or(1)
        .clamp(1, conf.max_transfer_count_on_message_in_memory.max(1));
    let got = b.store.get(
        &h.topic,
        queue_id,
        offset,
        max_count,
        conf.max_transfer_bytes_on_message_in_memory,
        &sub.tag_filter(),
    );
    if first && h.sys_flag & FLAG_COMMIT_OFFSET != 0 && h.commit_offset >= 0 {
        if let Ok(o) = u64::try_from(h.commit_offset) {
            b.offsets.commit(&h.consumer_group, &h.topic, queue_id, o);
        }
    }
    let (resp_code, status_name) = status_code(&got, offset);
    if resp_code == code::PULL_NOT_FOUND
        && first
        && h.sys_flag & FLAG_SUSPEND != 0
        && !b.is_shutting_down()
    {
        let ms = if conf.long_polling_enable {
            u64::try_from(h.suspend_timeout_millis).unwrap_or(0)
        } else {
            conf.short_polling_time_mills
        };
        return Pulled::Suspend {
            timeout: Duration::from_millis(ms).min(SUSPEND_MAX),
        };
    }
    b.stats.msg_get_total.fetch_add(
        got.messages.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Pulled::Reply(response(req, resp_code, status_name, got))
}

/// §7.1 steps 1–8; Ok = the subscription to filter with.
// The Err is the reply itself, built only when a request is refused.
#[allow(clippy::result_large_err)]
fn check(
    b: &Broker,
    req: &RemotingCommand,
    h: &PullMessageRequestHeader,
) -> Result<SubscriptionData, RemotingCommand> {
    let conf = b.conf();
    if conf.broker_permission & PERM_READ == 0 {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!(
                "the broker[{}] pulling message is forbidden",
                conf.broker_ip1
            ),
        ));
    }
    if (req.code == req::LITE_PULL_MESSAGE || h.sys_flag & FLAG_LITE_PULL != 0)
        && !conf.lite_pull_message_enable
    {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!(
                "the broker[{}] for lite pull consumer is forbidden",
                conf.broker_ip1
            ),
        ));
    }
    let Some(group) = b.groups.get_or_create(&h.consumer_group) else {
        return Err(reply(
            req,
            code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{}] does not exist, https://rocketmq.apache.org/docs/bestPractice/06FAQ", h.consumer_group),
        ));
    };
    if !group.consume_enable {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!("subscription group no permission, {}", h.consumer_group),
        ));
    }
    let Some(tc) = b.topics.get(&h.topic) else {
        return Err(reply(
            req,
            code::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please! https://rocketmq.apache.org/docs/bestPractice/06FAQ", h.topic),
        ));
    };
    if tc.perm & PERM_READ == 0 {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        ));
    }
    if h.queue_id < 0 || u32::try_from(h.queue_id).unwrap_or(u32::MAX) >= tc.read_queue_nums {
        return Err(reply(
            req,
            code::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[{}]",
                h.queue_id, h.topic, tc.read_queue_nums, h.consumer_group
            ),
        ));
    }
    subscription_for(b, req, h, group.consume_broadcast_enable)
}

// The Err is the reply itself, built only when a request is refused.
#[allow(clippy::result_large_err)]
fn subscription_for(
    b: &Broker,
    req: &RemotingCommand,
    h: &PullMessageRequestHeader,
    broadcast_allowed: bool,
) -> Result<SubscriptionData, RemotingCommand> {
    let expression_type = h.expression_type.as_deref().unwrap_or("TAG");
    if !expression_type.eq_ignore_ascii_case("TAG") {
        return Err(reply(
            req,
            code::SYSTEM_ERROR,
            "The broker does not support consumer to filter message by SQL92",
        ));
    }
    if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
        return SubscriptionData::parse(&h.topic, h.subscription.as_deref(), h.sub_version)
            .map_err(|e| {
                reply(
                    req,
                    code::SUBSCRIPTION_PARSE_FAILED,
                    format!("parse the consumer's subscription failed: {e}"),
                )
            });
    }
    let Some(info) = b.clients.consumer_group(&h.consumer_group) else {
        return Err(reply(
            req,
            code::SUBSCRIPTION_NOT_EXIST,
            format!("the consumer's group info not exist {}", h.consumer_group),
        ));
    };
    if !broadcast_allowed && info.message_model == MessageModel::Broadcasting {
        return Err(reply(
            req,
            code::NO_PERMISSION,
            format!(
                "the consumer group[{}] can not consume by broadcast way",
                h.consumer_group
            ),
        ));
    }
    let Some(sub) = info.subscriptions.get(&h.topic).cloned() else {
        return Err(reply(
            req,
            code::SUBSCRIPTION_NOT_EXIST,
            format!("the consumer's subscription not exist {}", h.topic),
        ));
    };
    if sub.sub_version < h.sub_version {
        return Err(reply(
            req,
            code::SUBSCRIPTION_NOT_LATEST,
            format!("the consumer's subscription not latest {}", h.topic),
        ));
    }
    Ok(sub)
}

/// RocketMQ's `GetMessageStatus` → response code and remark (§7.1 table).
fn status_code(got: &GetResult, requested: u64) -> (i32, &'static str) {
    match got.status {
        GetStatus::Found => (code::SUCCESS, "FOUND"),
        GetStatus::NoMatchedMessage => (code::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE"),
        GetStatus::MessageWasRemoving => (code::PULL_RETRY_IMMEDIATELY, "MESSAGE_WAS_REMOVING"),
        GetStatus::OffsetOverflowOne => (code::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE"),
        GetStatus::OffsetFoundNull => (code::PULL_NOT_FOUND, "OFFSET_FOUND_NULL"),
        GetStatus::OffsetOverflowBadly => (code::PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY"),
        GetStatus::OffsetTooSmall => (code::PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL"),
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue => {
            let name = if got.status == GetStatus::NoMessageInQueue {
                "NO_MESSAGE_IN_QUEUE"
            } else {
                "NO_MATCHED_LOGIC_QUEUE"
            };
            if requested != 0 {
                (code::PULL_OFFSET_MOVED, name)
            } else {
                (code::PULL_NOT_FOUND, name)
            }
        }
    }
}

/// The response: header fields as strings, body = the records (only for FOUND).
fn response(
    req: &RemotingCommand,
    resp_code: i32,
    remark: &str,
    got: GetResult,
) -> RemotingCommand {
    let mut r = reply(req, resp_code, remark)
        .with_ext("suggestWhichBrokerId", "0")
        .with_ext("nextBeginOffset", got.next_begin_offset.to_string())
        .with_ext("minOffset", got.min_offset.to_string())
        .with_ext("maxOffset", got.max_offset.to_string());
    if resp_code == code::SUCCESS {
        r.body = Body::Regions(regions(got.messages));
    }
    r
}

/// The records as file regions, adjacent records merged into one region per contiguous run
/// (a queue's consecutive messages usually sit back to back in the CommitLog): the body bytes
/// are the same, but a 32-message pull costs one allocation and one sendfile, not 32.
fn regions(messages: Vec<Slice>) -> Vec<Arc<dyn FileRegion>> {
    let mut runs: Vec<Slice> = Vec::with_capacity(messages.len().min(4));
    for s in messages {
        match runs.last_mut() {
            Some(last) => match last.join(&s) {
                Some(joined) => *last = joined,
                None => runs.push(s),
            },
            None => runs.push(s),
        }
    }
    runs.into_iter()
        .map(|s| Arc::new(SliceRegion(s)) as Arc<dyn FileRegion>)
        .collect()
}
