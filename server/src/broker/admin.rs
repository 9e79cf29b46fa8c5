//! Broker admin requests: broker config (UPDATE/GET_BROKER_CONFIG), topics
//! (UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, GET_ALL_TOPIC_CONFIG, GET_TOPIC_CONFIG),
//! subscription groups, offsets dumps and GET_BROKER_RUNTIME_INFO.
//!
//! Security (the classes of CVE-2023-33246 and CVE-2023-37582): a remote request can change only
//! the runtime settings in [`RUNTIME_ALLOWLIST`]. Every key that names a path, an address, an
//! identity or a process (`storePathRootDir`, `brokerConfigPath`, `rocketmqHome`,
//! `configBlackList`, `namesrvAddr`, `kvConfigPath`, `filterServerNums`, …) is refused with
//! NO_PERMISSION and a remark naming the key; unknown keys and bad values get INVALID_PARAMETER.
//! A request with any refused key changes nothing. Nothing here ever runs a command.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ferrocket_net::{Body, RemotingCommand};

use super::groups::SubscriptionGroupConfig;
use super::persist::{parse_lenient, JsonStyle};
use super::topics::{self, perm, TopicConfig, QUEUE_NUMS_MAX};
use super::validate::{self, validate_group, validate_topic};
use super::{Broker, ConnectionHandle};
use crate::config::BrokerConfig;
use crate::reply::{ok, reply, req, Fields};

/// Admin request codes not in `crate::reply::req`.
pub mod admin_req {
    pub const GET_ALL_CONSUMER_OFFSET: i32 = 43;
    pub const GET_ALL_DELAY_OFFSET: i32 = 45;
    pub const UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: i32 = 200;
    pub const GET_ALL_SUBSCRIPTIONGROUP_CONFIG: i32 = 201;
    pub const DELETE_SUBSCRIPTIONGROUP: i32 = 207;
    pub const DELETE_TOPIC_IN_BROKER: i32 = 215;
    pub const GET_TOPIC_CONFIG: i32 = 351;
    pub const GET_SUBSCRIPTIONGROUP_CONFIG: i32 = 352;
}

/// Request codes answered here.
pub const CODES: &[i32] = &[
    req::UPDATE_BROKER_CONFIG,
    req::GET_BROKER_CONFIG,
    req::UPDATE_AND_CREATE_TOPIC,
    req::GET_ALL_TOPIC_CONFIG,
    req::GET_BROKER_RUNTIME_INFO,
    admin_req::GET_ALL_CONSUMER_OFFSET,
    admin_req::GET_ALL_DELAY_OFFSET,
    admin_req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    admin_req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
    admin_req::DELETE_SUBSCRIPTIONGROUP,
    admin_req::DELETE_TOPIC_IN_BROKER,
    admin_req::GET_TOPIC_CONFIG,
    admin_req::GET_SUBSCRIPTIONGROUP_CONFIG,
];

/// Answers one admin request.
pub async fn handle(
    b: &Arc<Broker>,
    conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    // A created or updated topic is answered once the nameservers know it.
    let mark = b.registration_mark();
    let r = handle_sync(b, conn.peer_addr(), &req);
    b.registered_since(mark).await;
    Some(r)
}

/// The synchronous core of [`handle`]: config files are small and written with one fsync.
pub fn handle_sync(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    match req.code {
        req::UPDATE_BROKER_CONFIG => update_broker_config(b, peer, req),
        req::GET_BROKER_CONFIG => with_body(ok(req), encode_properties(&b.conf().to_properties())),
        req::UPDATE_AND_CREATE_TOPIC => update_and_create_topic(b, peer, req),
        req::GET_ALL_TOPIC_CONFIG => {
            with_body(ok(req), b.topics.wrapper_json().render(JsonStyle::Standard))
        }
        req::GET_BROKER_RUNTIME_INFO => runtime_info(b, req),
        admin_req::GET_ALL_CONSUMER_OFFSET => {
            with_body(ok(req), b.offsets.encode(JsonStyle::FastjsonCompact))
        }
        admin_req::GET_ALL_DELAY_OFFSET => {
            with_body(ok(req), b.schedule.encode(JsonStyle::FastjsonCompact))
        }
        admin_req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => update_group(b, peer, req),
        admin_req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            with_body(ok(req), b.groups.encode(JsonStyle::Standard))
        }
        admin_req::DELETE_SUBSCRIPTIONGROUP => delete_group(b, peer, req),
        admin_req::DELETE_TOPIC_IN_BROKER => delete_topic(b, peer, req),
        admin_req::GET_TOPIC_CONFIG => get_topic_config(b, req),
        admin_req::GET_SUBSCRIPTIONGROUP_CONFIG => get_group_config(b, req),
        _ => crate::reply::not_supported(req),
    }
}

fn with_body(mut r: RemotingCommand, body: String) -> RemotingCommand {
    r.body = Body::Bytes(body.into_bytes().into());
    r
}

fn body_of(req: &RemotingCommand) -> &[u8] {
    match &req.body {
        Body::Bytes(b) => b,
        _ => &[],
    }
}

/// UPDATE_BROKER_CONFIG: policy check, then every value parsed on a copy of the config; applied
/// only if all succeed.
fn update_broker_config(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    let pairs = match parse_update_body(body_of(req)) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(peer = %peer, "refused UPDATE_BROKER_CONFIG: {e}");
            return reply(req, e.code(), e.remark());
        }
    };
    let mut next = BrokerConfig::clone(&b.conf());
    for (k, v) in &pairs {
        if let Err(e) = next
            .set(k, v)
            .map_err(|e| e.to_string())
            .and_then(|()| check_range(&next, k))
        {
            tracing::warn!(peer = %peer, "refused UPDATE_BROKER_CONFIG: {e}");
            let e = ConfigRefusal::BadValue {
                key: shown(k),
                reason: e,
            };
            return reply(req, e.code(), e.remark());
        }
    }
    let old_perm = b.conf().broker_permission;
    b.update_conf(|c| {
        for (k, v) in &pairs {
            // Parsed successfully on the copy above; a concurrent update cannot make it fail.
            let _ = c.set(k, v);
        }
    });
    let conf = b.conf();
    b.topics.set_auto_create(conf.auto_create_topic_enable);
    b.groups
        .set_auto_create(conf.auto_create_subscription_group);
    tracing::info!(peer = %peer, "broker config updated: {pairs:?}");
    if conf.broker_permission != old_perm || pairs.contains_key("autoCreateTopicEnable") {
        b.topics_changed();
    }
    ok(req)
}

/// Range checks beyond the type: values the broker cannot run with.
fn check_range(c: &BrokerConfig, key: &str) -> Result<(), String> {
    let bad = |why: &str| Err(why.to_string());
    match key {
        "brokerPermission" if c.broker_permission > (perm::PRIORITY | perm::RW) => {
            bad("permission bits must be within 0..=14")
        }
        "defaultTopicQueueNums" if !(1..=QUEUE_NUMS_MAX).contains(&c.default_topic_queue_nums) => {
            bad("must be within 1..=1024")
        }
        "maxMsgsNumBatch" if !(1..=1024).contains(&c.max_msgs_num_batch) => {
            bad("must be within 1..=1024")
        }
        "defaultQueryMaxNum" if !(1..=1024).contains(&c.default_query_max_num) => {
            bad("must be within 1..=1024")
        }
        _ => Ok(()),
    }
}

/// UPDATE_AND_CREATE_TOPIC (17).
fn update_and_create_topic(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    let f = Fields::of(req);
    let tc = match topic_from_header(&f) {
        Ok(tc) => tc,
        Err((code, remark)) => return reply(req, code, remark),
    };
    if topics::is_system_topic(&tc.topic_name) {
        return reply(
            req,
            code::INVALID_PARAMETER,
            format!(
                "The topic[{}] is conflict with system topic.",
                tc.topic_name
            ),
        );
    }
    let name = tc.topic_name.clone();
    if let Err(e) = b.topics.upsert(tc) {
        return reply(req, code::SYSTEM_ERROR, e.to_string());
    }
    tracing::info!(peer = %peer, "topic {name} created/updated");
    b.topics_changed();
    ok(req)
}

fn topic_from_header(f: &Fields<'_>) -> Result<TopicConfig, (i32, String)> {
    let field = |e: crate::reply::FieldError| (code::INVALID_PARAMETER, e.to_string());
    let topic = f.str("topic").map_err(field)?;
    validate_topic(topic).map_err(|e| (e.code(), e.remark()))?;
    let queues = |name: &'static str| -> Result<u32, (i32, String)> {
        let n = f.i32(name).map_err(field)?;
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=QUEUE_NUMS_MAX).contains(n))
            .ok_or((
                code::INVALID_PARAMETER,
                format!("{name} must be within 1..={QUEUE_NUMS_MAX}, got {n}"),
            ))
    };
    let read = queues("readQueueNums")?;
    let write = queues("writeQueueNums")?;
    let p = f.i32("perm").map_err(field)?;
    let p = u32::try_from(p)
        .ok()
        .filter(|p| *p <= (perm::PRIORITY | perm::RW | perm::INHERIT))
        .ok_or((
            code::INVALID_PARAMETER,
            format!("perm {p} is not a permission"),
        ))?;
    let filter = match f.opt_str("topicFilterType").unwrap_or("SINGLE_TAG") {
        "SINGLE_TAG" => "SINGLE_TAG",
        "MULTI_TAG" => "MULTI_TAG",
        other => {
            return Err((
                code::INVALID_PARAMETER,
                format!(
                    "topicFilterType {} is not SINGLE_TAG or MULTI_TAG",
                    validate::shown_name(other)
                ),
            ))
        }
    };
    let sys_flag = f.opt_i32("topicSysFlag").map_err(field)?.unwrap_or(0);
    let attributes = parse_attributes(f.opt_str("attributes").unwrap_or(""))?;
    let mut tc = TopicConfig::new(topic, read, perm::RW);
    tc.read_queue_nums = read;
    tc.write_queue_nums = write;
    tc.perm = p;
    tc.topic_filter_type = filter.to_string();
    tc.topic_sys_flag = u32::try_from(sys_flag).unwrap_or(0);
    tc.order = f.opt_bool("order").unwrap_or(false);
    tc.attributes = attributes;
    Ok(tc)
}

/// `+key=value,+key2=value2` (5.x topic attributes). Keys and values are short plain words.
fn parse_attributes(s: &str) -> Result<BTreeMap<String, String>, (i32, String)> {
    let mut out = BTreeMap::new();
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 64
            && w.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    };
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let body = item.strip_prefix('+').unwrap_or(item);
        match body.split_once('=') {
            Some((k, v)) if word(k) && word(v) => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err((
                    code::INVALID_PARAMETER,
                    format!("bad topic attribute {}", validate::shown_name(item)),
                ))
            }
        }
        if out.len() > 32 {
            return Err((
                code::INVALID_PARAMETER,
                "too many topic attributes".to_string(),
            ));
        }
    }
    Ok(out)
}

/// DELETE_TOPIC_IN_BROKER (215): removes the config, the topic's consumer offsets and its
/// ConsumeQueues.
fn delete_topic(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    let topic = match Fields::of(req).str("topic") {
        Ok(t) => t,
        Err(e) => return reply(req, code::INVALID_PARAMETER, e.to_string()),
    };
    if let Err(e) = validate_topic(topic) {
        return reply(req, e.code(), e.remark());
    }
    if topics::is_system_topic(topic) {
        return reply(
            req,
            code::INVALID_PARAMETER,
            format!("The topic[{topic}] is conflict with system topic."),
        );
    }
    match b.topics.delete(topic) {
        Ok(_) => {}
        Err(e) => return reply(req, code::SYSTEM_ERROR, e.to_string()),
    }
    b.offsets.remove_topic(topic);
    // Its ConsumeQueues go and its queue offsets restart at 0 (RocketMQ's deleteTopics); the
    // records stay in the CommitLog until retention.
    if let Err(e) = b.store.delete_topic(topic) {
        tracing::error!(peer = %peer, topic, error = %e, "deleting the topic's queues failed");
        return reply(
            req,
            code::SYSTEM_ERROR,
            format!("topic {topic} deleted, but not its queues: {e}"),
        );
    }
    tracing::info!(peer = %peer, "topic {topic} deleted");
    b.topics_changed();
    ok(req)
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): body = SubscriptionGroupConfig JSON.
fn update_group(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    let v = match parse_lenient(&String::from_utf8_lossy(body_of(req))) {
        Ok(v) => v,
        Err(e) => {
            return reply(
                req,
                code::INVALID_PARAMETER,
                format!("bad subscription group body: {e}"),
            )
        }
    };
    let name = super::persist::get_str(&v, "groupName").unwrap_or_default();
    if let Err(e) = validate_group(&name) {
        return reply(req, e.code(), e.remark());
    }
    let Some(cfg) = SubscriptionGroupConfig::from_value(&v) else {
        return reply(
            req,
            code::INVALID_PARAMETER,
            "bad subscription group config",
        );
    };
    if let Err(e) = b.groups.upsert(cfg) {
        return reply(req, code::SYSTEM_ERROR, e.to_string());
    }
    tracing::info!(peer = %peer, "subscription group {name} created/updated");
    ok(req)
}

/// DELETE_SUBSCRIPTIONGROUP (207): `groupName`, optional `cleanOffset`.
fn delete_group(b: &Broker, peer: SocketAddr, req: &RemotingCommand) -> RemotingCommand {
    let f = Fields::of(req);
    let group = match f.str("groupName") {
        Ok(g) => g,
        Err(e) => return reply(req, code::INVALID_PARAMETER, e.to_string()),
    };
    if let Err(e) = validate_group(group) {
        return reply(req, e.code(), e.remark());
    }
    if let Err(e) = b.groups.delete(group) {
        return reply(req, code::SYSTEM_ERROR, e.to_string());
    }
    if f.opt_bool("cleanOffset").unwrap_or(false) {
        b.offsets.remove_group(group);
    }
    tracing::info!(peer = %peer, "subscription group {group} deleted");
    ok(req)
}

fn get_topic_config(b: &Broker, req: &RemotingCommand) -> RemotingCommand {
    let topic = Fields::of(req).opt_str("topic").unwrap_or("");
    match b.topics.get(topic) {
        Some(tc) => with_body(ok(req), tc.to_json().render(JsonStyle::Standard)),
        None => reply(
            req,
            code::TOPIC_NOT_EXIST,
            format!(
                "No topic in this broker. topic: {}",
                validate::shown_name(topic)
            ),
        ),
    }
}

fn get_group_config(b: &Broker, req: &RemotingCommand) -> RemotingCommand {
    let group = Fields::of(req).opt_str("group").unwrap_or("");
    match b.groups.get(group) {
        Some(c) => with_body(ok(req), c.to_json().render(JsonStyle::Standard)),
        None => reply(
            req,
            code::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!(
                "No group in this broker. group: {}",
                validate::shown_name(group)
            ),
        ),
    }
}

/// GET_BROKER_RUNTIME_INFO (28): KVTable `{"table":{…}}`.
fn runtime_info(b: &Broker, req: &RemotingCommand) -> RemotingCommand {
    let conf = b.conf();
    let mut table: BTreeMap<String, String> = b
        .runtime_stats()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    table.insert("brokerVersionDesc".into(), "V4_9_4".into());
    table.insert("brokerVersion".into(), "401".into());
    table.insert("brokerActive".into(), "true".into());
    table.insert(
        "brokerPermission".into(),
        conf.broker_permission.to_string(),
    );
    table.insert("topicCount".into(), b.topics.all().len().to_string());
    let (min, max) = (
        b.store.commit_log_min_offset(),
        b.store.commit_log_max_offset(),
    );
    table.insert("commitLogMinOffset".into(), min.to_string());
    table.insert("commitLogMaxOffset".into(), max.to_string());
    table.insert(
        "dispatchBehindBytes".into(),
        max.saturating_sub(b.store.dispatched_offset()).to_string(),
    );
    let out = super::persist::JsonOut::obj([(
        "table",
        super::persist::JsonOut::obj(
            table
                .into_iter()
                .map(|(k, v)| (k, super::persist::JsonOut::Str(v))),
        ),
    )]);
    with_body(ok(req), out.render(JsonStyle::Standard))
}

/// Largest UPDATE_BROKER_CONFIG body accepted.
pub const CONFIG_BODY_LEN_MAX: usize = 64 * 1024;
/// Most keys one UPDATE_BROKER_CONFIG may set.
pub const CONFIG_KEYS_MAX: usize = 64;
/// Longest value accepted for any key.
pub const CONFIG_VALUE_LEN_MAX: usize = 256;

pub use crate::reply::code;

/// Settings a remote UPDATE_BROKER_CONFIG may change: plain numbers, booleans and short words
/// that the broker reads while running. Nothing here names a file, a directory, an address, an
/// identity or a program.
pub const RUNTIME_ALLOWLIST: &[&str] = &[
    "brokerPermission",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "defaultTopicQueueNums",
    "longPollingEnable",
    "shortPollingTimeMills",
    "notifyConsumerIdsChangedEnable",
    "traceOn",
    "defaultQueryMaxNum",
    "maxMsgsNumBatch",
    "litePullMessageEnable",
    "flushConsumerOffsetInterval",
    "flushDelayOffsetInterval",
    "registerNameServerPeriod",
    "channelExpiredTimeout",
    "maxTransferBytesOnMessageInMemory",
    "maxTransferCountOnMessageInMemory",
    "rejectTransactionMessage",
];

/// Keys refused by name because they name a path, an address, an identity, the config file, the
/// denylist itself, or start processes. (Anything not in the allowlist is refused anyway; this list
/// exists so the remark says why.)
pub const DENIED_KEYS: &[&str] = &[
    "storePathRootDir",
    "storePathCommitLog",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "storePathEpochFile",
    "storePathBrokerIdentity",
    "storePathDLedgerCommitLog",
    "timerStoreDir",
    "brokerConfigPath",
    "rocketmqHome",
    "configBlackList",
    "namesrvAddr",
    "kvConfigPath",
    "configStorePath",
    "filterServerNums",
    "brokerIP1",
    "brokerIP2",
    "listenPort",
    "haListenPort",
    "haMasterAddress",
    "brokerName",
    "brokerClusterName",
    "brokerId",
    "brokerRole",
    "aclEnable",
    "authConfigPath",
    "messageDelayLevel",
    "flushDiskType",
    "mappedFileSizeCommitLog",
    "mappedFileSizeConsumeQueue",
];

/// Why an UPDATE_BROKER_CONFIG (or part of it) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRefusal {
    #[error("Can not update config in black list: {key}")]
    Denied { key: String },
    #[error("config key {key} cannot be changed at runtime")]
    NotRuntime { key: String },
    #[error("bad value for config key {key}: {reason}")]
    BadValue { key: String, reason: String },
    #[error("config body is larger than {CONFIG_BODY_LEN_MAX} bytes")]
    BodyTooLarge,
    #[error("config body has more than {CONFIG_KEYS_MAX} keys")]
    TooManyKeys,
    #[error("config body is not a properties text: {0}")]
    BadBody(String),
    #[error("config body is empty")]
    Empty,
}

impl ConfigRefusal {
    pub fn code(&self) -> i32 {
        match self {
            ConfigRefusal::Denied { .. } | ConfigRefusal::NotRuntime { .. } => code::NO_PERMISSION,
            _ => code::INVALID_PARAMETER,
        }
    }

    pub fn remark(&self) -> String {
        self.to_string()
    }
}

/// A key made safe to echo in a remark.
fn shown(key: &str) -> String {
    super::validate::shown_name(key)
}

/// Words that mark a key as naming something outside the broker's memory (a path, a host, a
/// program): refused even if a future allowlist entry matched by mistake.
fn looks_dangerous(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "path",
        "dir",
        "file",
        "home",
        "addr",
        "ip",
        "host",
        "port",
        "blacklist",
        "exec",
        "cmd",
        "command",
        "script",
        "class",
        "url",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Checks one key and value against the policy (type checks are the config parser's job).
pub fn check_key(key: &str, value: &str) -> Result<(), ConfigRefusal> {
    if DENIED_KEYS.contains(&key) || looks_dangerous(key) {
        return Err(ConfigRefusal::Denied { key: shown(key) });
    }
    if !RUNTIME_ALLOWLIST.contains(&key) {
        return Err(ConfigRefusal::NotRuntime { key: shown(key) });
    }
    if value.len() > CONFIG_VALUE_LEN_MAX {
        return Err(ConfigRefusal::BadValue {
            key: shown(key),
            reason: format!("longer than {CONFIG_VALUE_LEN_MAX} bytes"),
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '$' | '`' | ';' | '|' | '&'))
    {
        return Err(ConfigRefusal::BadValue {
            key: shown(key),
            reason: "contains a control character or one of / \\ $ ` ; | &".to_string(),
        });
    }
    Ok(())
}

/// Parses an UPDATE_BROKER_CONFIG body (Java properties text) and checks every key. All or nothing:
/// the first refused key refuses the whole request.
pub fn parse_update_body(body: &[u8]) -> Result<BTreeMap<String, String>, ConfigRefusal> {
    if body.len() > CONFIG_BODY_LEN_MAX {
        return Err(ConfigRefusal::BodyTooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ConfigRefusal::BadBody(format!("not UTF-8 ({e})")))?;
    let parsed = parse_properties_text(text);
    if parsed.len() > CONFIG_KEYS_MAX {
        return Err(ConfigRefusal::TooManyKeys);
    }
    let pairs: BTreeMap<String, String> = parsed.into_iter().collect();
    if pairs.is_empty() {
        return Err(ConfigRefusal::Empty);
    }
    // Check denied keys first so the remark names the dangerous one, whatever else is there.
    for (k, v) in &pairs {
        if let Err(e @ ConfigRefusal::Denied { .. }) = check_key(k, v) {
            return Err(e);
        }
    }
    for (k, v) in &pairs {
        check_key(k, v)?;
    }
    Ok(pairs)
}

/// Parses Java `Properties.load` text: `key=value`, `key: value` or `key value` lines, `#`/`!`
/// comments, backslash line continuations and escapes (`\t \n \r \f \uXXXX`, `\=` etc.).
/// Total (never fails, never panics): malformed escapes are kept literally. (The java-properties
/// crate panics on some byte sequences, so network input never goes through it.)
pub fn parse_properties_text(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.split(['\n', '\r']).peekable();
    while let Some(first) = lines.next() {
        let mut logical = first.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        while logical.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        out.push((unescape(key), unescape(value)));
    }
    out
}

/// Splits at the first unescaped `=`, `:` or whitespace (then skips the separator run).
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                let key = line.get(..i).unwrap_or_default();
                let rest = line.get(i..).unwrap_or_default();
                let rest = rest.trim_start_matches([' ', '\t', '\x0c']);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map(|r| r.trim_start_matches([' ', '\t', '\x0c']))
                    .unwrap_or(rest);
                return (key, rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    None => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// GET_BROKER_CONFIG body: `key=value\n` lines sorted by key (Java `properties2String`).
pub fn encode_properties(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    let mut s = String::new();
    for (k, v) in sorted {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_keys_are_refused_with_no_permission_naming_the_key() {
        for key in [
            "storePathRootDir",
            "storePathCommitLog",
            "brokerConfigPath",
            "rocketmqHome",
            "configBlackList",
            "namesrvAddr",
            "kvConfigPath",
            "filterServerNums",
            "brokerIP1",
            "listenPort",
            "someNewDirSetting",
            "rocketmqHOME",
        ] {
            let body = format!("{key}=/tmp/evil\n");
            let e = parse_update_body(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), code::NO_PERMISSION, "{key}");
            assert!(e.remark().contains(key), "{key}: {}", e.remark());
        }
    }

    #[test]
    fn cve_2023_33246_payload_is_refused_whole() {
        // The published exploit sets filterServerNums and rocketmqHome to run a shell command.
        let body = b"filterServerNums=1\nrocketmqHome=-c $@|sh . echo touch /tmp/pwned;\nbrokerPermission=6\n";
        let e = parse_update_body(body).unwrap_err();
        assert_eq!(e.code(), code::NO_PERMISSION);
        assert!(e.remark().contains("filterServerNums") || e.remark().contains("rocketmqHome"));
    }

    #[test]
    fn cve_2023_37582_style_namesrv_keys_are_refused() {
        let e =
            parse_update_body(b"configStorePath=/home/user/.ssh/authorized_keys\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "configStorePath".into()
            }
        );
    }

    #[test]
    fn non_runtime_and_unknown_keys_are_refused() {
        let e = parse_update_body(b"messageDelayLevel=1s\n").unwrap_err();
        assert_eq!(e.code(), code::NO_PERMISSION);
        assert!(e.remark().contains("messageDelayLevel"));
        let e = parse_update_body(b"noSuchKey=1\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::NotRuntime {
                key: "noSuchKey".into()
            }
        );
        // A denied key is named even when listed after an allowed one or an unknown one.
        let e = parse_update_body(b"aaa=1\nbrokerPermission=6\nstorePathRootDir=/\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "storePathRootDir".into()
            }
        );
    }

    #[test]
    fn allowed_keys_pass_and_bad_values_are_invalid_parameter() {
        let p =
            parse_update_body(b"brokerPermission=4\n# comment\nautoCreateTopicEnable = false\n")
                .unwrap();
        assert_eq!(p.get("brokerPermission").map(String::as_str), Some("4"));
        assert_eq!(
            p.get("autoCreateTopicEnable").map(String::as_str),
            Some("false")
        );
        let e = parse_update_body(b"brokerPermission=6;touch /x\n").unwrap_err();
        assert_eq!(e.code(), code::INVALID_PARAMETER);
        assert!(e.remark().contains("brokerPermission"));
        let long = format!("traceOn={}\n", "1".repeat(1000));
        assert_eq!(
            parse_update_body(long.as_bytes()).unwrap_err().code(),
            code::INVALID_PARAMETER
        );
    }

    #[test]
    fn hostile_bodies_are_bounded() {
        assert_eq!(parse_update_body(b"").unwrap_err(), ConfigRefusal::Empty);
        assert_eq!(
            parse_update_body(&vec![b'a'; CONFIG_BODY_LEN_MAX + 1]).unwrap_err(),
            ConfigRefusal::BodyTooLarge
        );
        let many: String = (0..100).map(|i| format!("k{i}=1\n")).collect();
        assert_eq!(
            parse_update_body(many.as_bytes()).unwrap_err(),
            ConfigRefusal::TooManyKeys
        );
        // Invalid UTF-8 and NULs never panic.
        let e = parse_update_body(b"\xff\xfe=\x00\n").unwrap_err();
        assert!(matches!(e, ConfigRefusal::BadBody(_)));
        let e = parse_update_body(b"traceOn=\x00\n").unwrap_err();
        assert_eq!(e.code(), code::INVALID_PARAMETER);
        let e = parse_update_body(b"stor\\u0065PathRootDir=/x\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "storePathRootDir".into()
            }
        );
    }

    #[test]
    fn properties_parser_follows_java_load() {
        let text = "# c\n! c\n a = 1\nb:2\nc 3\nd=x\\\n   y\ne\\=f=g\nh=\\u0041\\t\ni\n\r\nj=\\uZZ\nk=v\\\\\n";
        let p = parse_properties_text(text);
        let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("a"), Some("1"));
        assert_eq!(get("b"), Some("2"));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("d"), Some("xy"));
        assert_eq!(get("e=f"), Some("g"));
        assert_eq!(get("h"), Some("A\t"));
        assert_eq!(get("i"), Some(""));
        assert_eq!(get("j"), Some("uZZ"));
        assert_eq!(get("k"), Some("v\\"));
        assert_eq!(p.len(), 9);
        // Total on odd input.
        for odd in ["\\", "=", "\\u", "a\\", "\u{0}=\u{0}"] {
            let _ = parse_properties_text(odd);
        }
    }

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let conf = BrokerConfig {
            store_path_root_dir: dir.to_string_lossy().into_owned(),
            mapped_file_size_commit_log: 4 << 20,
            max_message_size: 1 << 20,
            ..BrokerConfig::default()
        };
        crate::broker::retry::testkit::broker_with_conf(conf)
    }

    fn conn() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    fn request(code: i32, fields: &[(&str, &str)], body: &str) -> RemotingCommand {
        RemotingCommand {
            code,
            opaque: 9,
            ext_fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: if body.is_empty() {
                Body::Empty
            } else {
                Body::Bytes(body.as_bytes().to_vec().into())
            },
            ..Default::default()
        }
    }

    fn body_text(r: &RemotingCommand) -> String {
        String::from_utf8_lossy(body_of(r)).into_owned()
    }

    #[test]
    fn refused_config_updates_change_nothing_and_touch_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let before = b.conf();
        let evil = dir.path().join("evil");
        for body in [
            format!("storePathRootDir={}\n", evil.display()),
            format!("storePathCommitLog={}\n", evil.display()),
            format!("brokerConfigPath={}\n", evil.display()),
            "rocketmqHome=-c $@|sh . echo touch /tmp/pwned;\nfilterServerNums=1\n".to_string(),
            "namesrvAddr=10.0.0.1:9876\n".to_string(),
            "configBlackList=\n".to_string(),
            "kvConfigPath=/tmp/kv.json\n".to_string(),
            "brokerPermission=6\nlistenPort=1\n".to_string(),
        ] {
            let r = handle_sync(&b, conn(), &request(req::UPDATE_BROKER_CONFIG, &[], &body));
            assert_eq!(r.code, code::NO_PERMISSION, "{body}");
            let key = body.split('=').next().unwrap();
            let remark = r.remark.clone().unwrap_or_default();
            assert!(
                remark.contains(key)
                    || remark.contains("filterServerNums")
                    || remark.contains("listenPort"),
                "{body}: {remark}"
            );
            assert_eq!(b.conf(), before, "{body}");
        }
        assert!(!evil.exists());
        // Unknown keys and bad values are INVALID_PARAMETER / NO_PERMISSION, never applied.
        let r = handle_sync(
            &b,
            conn(),
            &request(req::UPDATE_BROKER_CONFIG, &[], "brokerPermission=99\n"),
        );
        assert_eq!(r.code, code::INVALID_PARAMETER);
        assert!(r.remark.unwrap().contains("brokerPermission"));
        let r = handle_sync(
            &b,
            conn(),
            &request(
                req::UPDATE_BROKER_CONFIG,
                &[],
                "autoCreateTopicEnable=maybe\n",
            ),
        );
        assert_eq!(r.code, code::INVALID_PARAMETER);
        assert_eq!(b.conf(), before);
    }

    #[test]
    fn allowed_config_update_applies_and_get_config_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let r = handle_sync(
            &b,
            conn(),
            &request(
                req::UPDATE_BROKER_CONFIG,
                &[],
                "brokerPermission=4\nautoCreateTopicEnable=false\n",
            ),
        );
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        assert_eq!(b.conf().broker_permission, 4);
        assert!(!b.conf().auto_create_topic_enable);
        // The topic manager follows at once: TBW102 no longer acts as a template.
        assert_eq!(
            b.topics.create_in_send("NewTopic", "TBW102", 4, 0).unwrap(),
            None
        );
        let r = handle_sync(&b, conn(), &request(req::GET_BROKER_CONFIG, &[], ""));
        let text = body_text(&r);
        assert!(text.contains("brokerPermission=4\n"), "{text}");
        assert!(text.contains("autoCreateTopicEnable=false\n"));
    }

    #[test]
    fn create_get_and_delete_topic() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let fields = [
            ("topic", "AdminTopic"),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "3"),
            ("writeQueueNums", "5"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("order", "false"),
            ("attributes", "+message.type=NORMAL"),
        ];
        let r = handle_sync(
            &b,
            conn(),
            &request(req::UPDATE_AND_CREATE_TOPIC, &fields, ""),
        );
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        let tc = b.topics.get("AdminTopic").unwrap();
        assert_eq!(
            (tc.read_queue_nums, tc.write_queue_nums, tc.perm),
            (3, 5, 6)
        );
        assert_eq!(
            tc.attributes.get("message.type").map(String::as_str),
            Some("NORMAL")
        );
        let r = handle_sync(
            &b,
            conn(),
            &request(admin_req::GET_TOPIC_CONFIG, &[("topic", "AdminTopic")], ""),
        );
        assert!(body_text(&r).contains("\"writeQueueNums\":5"));
        let r = handle_sync(&b, conn(), &request(req::GET_ALL_TOPIC_CONFIG, &[], ""));
        let v: serde_json::Value = serde_json::from_str(&body_text(&r)).unwrap();
        assert_eq!(v["topicConfigTable"]["AdminTopic"]["readQueueNums"], 3);
        b.offsets.commit("g", "AdminTopic", 0, 1);
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::DELETE_TOPIC_IN_BROKER,
                &[("topic", "AdminTopic")],
                "",
            ),
        );
        assert_eq!(r.code, code::SUCCESS);
        assert!(b.topics.get("AdminTopic").is_none());
        assert_eq!(b.offsets.query("g", "AdminTopic", 0), None);
        let r = handle_sync(
            &b,
            conn(),
            &request(admin_req::GET_TOPIC_CONFIG, &[("topic", "AdminTopic")], ""),
        );
        assert_eq!(r.code, code::TOPIC_NOT_EXIST);
    }

    #[test]
    fn hostile_topic_admin_requests_are_refused_and_create_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let base = |topic: &'static str, q: &'static str| {
            vec![
                ("topic", topic),
                ("defaultTopic", "TBW102"),
                ("readQueueNums", q),
                ("writeQueueNums", q),
                ("perm", "6"),
            ]
        };
        let long = Box::leak("x".repeat(10_000).into_boxed_str());
        for (fields, want) in [
            (base("../../x", "4"), code::INVALID_PARAMETER),
            (base("a\0b", "4"), code::INVALID_PARAMETER),
            (base(long, "4"), code::INVALID_PARAMETER),
            (base("T", "0"), code::INVALID_PARAMETER),
            (base("T", "100000"), code::INVALID_PARAMETER),
            (base("T", "x"), code::INVALID_PARAMETER),
            (base("SCHEDULE_TOPIC_XXXX", "4"), code::INVALID_PARAMETER),
            (base("TBW102", "4"), code::INVALID_PARAMETER),
            (vec![("topic", "T")], code::INVALID_PARAMETER),
        ] {
            let r = handle_sync(
                &b,
                conn(),
                &request(req::UPDATE_AND_CREATE_TOPIC, &fields, ""),
            );
            assert_eq!(r.code, want, "{:?}", validate::shown_name(fields[0].1));
        }
        let mut bad_attr = base("T", "4");
        bad_attr.push(("attributes", "+a=../../x"));
        let r = handle_sync(
            &b,
            conn(),
            &request(req::UPDATE_AND_CREATE_TOPIC, &bad_attr, ""),
        );
        assert_eq!(r.code, code::INVALID_PARAMETER);
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::DELETE_TOPIC_IN_BROKER,
                &[("topic", "../../x")],
                "",
            ),
        );
        assert_eq!(r.code, code::INVALID_PARAMETER);
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::DELETE_TOPIC_IN_BROKER,
                &[("topic", "TBW102")],
                "",
            ),
        );
        assert_eq!(r.code, code::INVALID_PARAMETER);
        assert!(b.topics.get("TBW102").is_some());
        // Nothing outside the store directory.
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }

    #[test]
    fn subscription_group_admin() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
                &[],
                r#"{"groupName":"ag","retryMaxTimes":3,"consumeEnable":true}"#,
            ),
        );
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        assert_eq!(b.groups.get("ag").unwrap().retry_max_times, 3);
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::GET_SUBSCRIPTIONGROUP_CONFIG,
                &[("group", "ag")],
                "",
            ),
        );
        assert!(body_text(&r).contains("\"retryMaxTimes\":3"));
        let r = handle_sync(
            &b,
            conn(),
            &request(admin_req::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[], ""),
        );
        assert!(body_text(&r).contains("\"ag\""));
        for bad in [r#"{"groupName":"../x"}"#, "{", "", r#"{"retryMaxTimes":1}"#] {
            let r = handle_sync(
                &b,
                conn(),
                &request(admin_req::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[], bad),
            );
            assert_eq!(r.code, code::INVALID_PARAMETER, "{bad}");
        }
        b.offsets.commit("ag", "T", 0, 5);
        let r = handle_sync(
            &b,
            conn(),
            &request(
                admin_req::DELETE_SUBSCRIPTIONGROUP,
                &[("groupName", "ag"), ("cleanOffset", "true")],
                "",
            ),
        );
        assert_eq!(r.code, code::SUCCESS);
        assert!(b.groups.get("ag").is_none());
        assert_eq!(b.offsets.query("ag", "T", 0), None);
    }

    #[test]
    fn offset_dumps_and_runtime_info() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        // The store is empty, so commits clamp to the queue's max offset (0).
        b.offsets.commit("g", "T", 2, 40);
        let r = handle_sync(
            &b,
            conn(),
            &request(admin_req::GET_ALL_CONSUMER_OFFSET, &[], ""),
        );
        assert!(body_text(&r).contains("\"T@g\":{2:0}"), "{}", body_text(&r));
        let r = handle_sync(
            &b,
            conn(),
            &request(admin_req::GET_ALL_DELAY_OFFSET, &[], ""),
        );
        assert!(body_text(&r).contains("\"offsetTable\":{"));
        let r = handle_sync(&b, conn(), &request(req::GET_BROKER_RUNTIME_INFO, &[], ""));
        let v: serde_json::Value = serde_json::from_str(&body_text(&r)).unwrap();
        assert_eq!(v["table"]["brokerPermission"], "6");
        assert_eq!(v["table"]["commitLogMinOffset"], "0");
        assert!(v["table"]["commitLogMaxOffset"].is_string());
        assert!(v["table"]["bootTimestamp"].is_string());
        assert!(v["table"]["msgPutTotalTodayNow"].is_string());
        assert_eq!(v["table"]["brokerVersionDesc"], "V4_9_4");
        assert_eq!(
            v["table"]["commitLogSyncCount"], "0",
            "nothing stored, nothing synced"
        );
    }

    #[test]
    fn properties_text_is_sorted() {
        let s = encode_properties(&[("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(s, "a=1\nb=2\n");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// No body can panic the config-update path, and whatever it accepts is allowlisted.
            #[test]
            fn update_body_parsing_is_total_and_allowlisted(body in prop::collection::vec(any::<u8>(), 0..400)) {
                let _ = parse_properties_text(&String::from_utf8_lossy(&body));
                if let Ok(pairs) = parse_update_body(&body) {
                    for k in pairs.keys() {
                        prop_assert!(RUNTIME_ALLOWLIST.contains(&k.as_str()));
                    }
                }
            }

            /// Java-escaped keys are unescaped before the policy sees them.
            #[test]
            fn escaped_denied_keys_are_still_denied(i in 0..DENIED_KEYS.len()) {
                let key = DENIED_KEYS[i];
                let escaped: String = key.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
                let body = format!("{escaped}=x\n");
                prop_assert_eq!(
                    parse_update_body(body.as_bytes()).unwrap_err(),
                    ConfigRefusal::Denied { key: key.to_string() }
                );
            }
        }
    }
}
