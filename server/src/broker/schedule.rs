//! Delayed delivery (RocketMQ's `ScheduleMessageService`): a message with property `DELAY = n > 0`
//! is stored in `SCHEDULE_TOPIC_XXXX`, queue `n - 1`, with `REAL_TOPIC`/`REAL_QID` remembering
//! where it belongs; a delivery loop re-puts each one into its real topic once
//! `storeTimestamp + delay(n)` has passed, and records per level how far it got in
//! `config/delayOffset.json`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use ferrocket_store::record::decode_record;
use ferrocket_store::{GetStatus, MessageInput, MessageStore, StoreError, TagFilter};

use super::persist::{self, value_i64, DataVersion, JsonKey, JsonOut, JsonStyle, PersistError};
use super::topics::{SCHEDULE_TOPIC, SCHEDULE_TOPIC_QUEUE_NUMS, TRANS_HALF_TOPIC};
use super::validate::validate_topic;
use super::Broker;
use crate::config::BrokerConfig;

/// Java's default `messageDelayLevel`.
pub const DEFAULT_MESSAGE_DELAY_LEVEL: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

pub const PROPERTY_DELAY_TIME_LEVEL: &str = "DELAY";
pub const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
pub const PROPERTY_REAL_QUEUE_ID: &str = "REAL_QID";
pub const PROPERTY_WAIT_STORE_MSG_OK: &str = "WAIT";
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const PROPERTY_TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const PROPERTY_TAGS: &str = "TAGS";

/// Transaction-type bits of sysFlag; only NOT (0) and COMMIT (8) messages are delayed.
const SYSFLAG_TRANSACTION_MASK: i32 = 0xC;
const SYSFLAG_TRANSACTION_COMMIT: i32 = 0x8;

// ---------------------------------------------------------------------------------------------
// Properties (`name \x01 value \x02`), manipulated as Java's message property map would be.

/// Parses a properties string with Java's rules (a pair needs a non-empty name and value).
pub fn props_decode(s: &str) -> Vec<(String, String)> {
    s.split('\u{2}')
        .filter_map(|seg| {
            let (k, v) = seg.split_once('\u{1}')?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Encodes pairs as Java does (a trailing `\x02` after each pair).
pub fn props_encode(pairs: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

/// The value of `key` (the last pair wins, as in Java's map).
pub fn prop_get<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    if key.is_empty() {
        // An empty name matches segments without one; only the general parser does that.
        return s
            .split('\u{2}')
            .rev()
            .filter_map(|seg| seg.split_once('\u{1}'))
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| v);
    }
    super::message::find_property(s, key, true)
}

/// `props` with `key` set to `value` (replacing earlier values, keeping the order of the rest).
pub fn prop_set(props: &str, key: &str, value: &str) -> String {
    let mut pairs = props_decode(props);
    pairs.retain(|(k, _)| k != key);
    pairs.push((key.to_string(), value.to_string()));
    props_encode(&pairs)
}

/// `props` without any of `keys`.
pub fn prop_remove(props: &str, keys: &[&str]) -> String {
    let mut pairs = props_decode(props);
    pairs.retain(|(k, _)| !keys.contains(&k.as_str()));
    props_encode(&pairs)
}

// ---------------------------------------------------------------------------------------------
// Delay levels.

/// Why `messageDelayLevel` did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayLevelError {
    #[error("messageDelayLevel is empty")]
    Empty,
    #[error("messageDelayLevel item {item:?} is not <number><s|m|h|d|ms>")]
    BadItem { item: String },
    #[error("messageDelayLevel has {0} levels; at most {SCHEDULE_TOPIC_QUEUE_NUMS} are supported")]
    TooMany(usize),
}

/// Parsed `messageDelayLevel`: level n (1-based) waits `delays_ms[n-1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayLevels {
    delays_ms: Vec<u64>,
}

impl Default for DelayLevels {
    /// Java's 18 levels, 1 s to 2 h.
    fn default() -> Self {
        DelayLevels {
            delays_ms: vec![
                1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000,
                420_000, 480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
            ],
        }
    }
}

impl DelayLevels {
    /// Parses e.g. `"1s 5s 10s 30s 1m … 2h"`. Units as Java (s, m, h, d) plus `ms` for tests.
    pub fn parse(spec: &str) -> Result<Self, DelayLevelError> {
        let mut delays_ms = Vec::new();
        for item in spec.split_whitespace() {
            let bad = || DelayLevelError::BadItem {
                item: item.chars().take(32).collect(),
            };
            let (num, unit_ms) = if let Some(n) = item.strip_suffix("ms") {
                (n, 1)
            } else if let Some(n) = item.strip_suffix('s') {
                (n, 1_000)
            } else if let Some(n) = item.strip_suffix('m') {
                (n, 60_000)
            } else if let Some(n) = item.strip_suffix('h') {
                (n, 3_600_000)
            } else if let Some(n) = item.strip_suffix('d') {
                (n, 86_400_000)
            } else {
                return Err(bad());
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            delays_ms.push(n.checked_mul(unit_ms).ok_or_else(bad)?);
        }
        if delays_ms.is_empty() {
            return Err(DelayLevelError::Empty);
        }
        if delays_ms.len() > SCHEDULE_TOPIC_QUEUE_NUMS as usize {
            return Err(DelayLevelError::TooMany(delays_ms.len()));
        }
        Ok(DelayLevels { delays_ms })
    }

    /// Delay of each level in ms (index 0 = level 1), e.g. for the store's
    /// SCHEDULE_TOPIC_XXXX tagsCode (`StoreOptions::message_delay_level_ms`).
    pub fn delays_ms(&self) -> &[u64] {
        &self.delays_ms
    }

    /// `maxDelayLevel`.
    pub fn max_level(&self) -> u32 {
        u32::try_from(self.delays_ms.len()).unwrap_or(u32::MAX)
    }

    /// The delay of `level` (1-based); `None` outside 1..=max.
    pub fn delay_ms(&self, level: u32) -> Option<u64> {
        let idx = usize::try_from(level.checked_sub(1)?).ok()?;
        self.delays_ms.get(idx).copied()
    }

    /// When a message of `level` stored at `store_ts_ms` is due, with Java's clock-skew guard: a
    /// time further than one delay in the future means the clock went back, so deliver now.
    /// An unknown level waits one second, as Java's `computeDeliverTimestamp` does.
    pub fn deliver_at_ms(&self, level: u32, store_ts_ms: i64, now_ms: i64) -> i64 {
        let delay = self
            .delay_ms(level)
            .map_or(1_000, |d| i64::try_from(d).unwrap_or(i64::MAX));
        let at = store_ts_ms.saturating_add(delay);
        if at > now_ms.saturating_add(delay) {
            now_ms
        } else {
            at
        }
    }

    /// SCHEDULE_TOPIC_XXXX queue of a level (`level - 1`).
    pub fn queue_id(level: u32) -> u32 {
        level.saturating_sub(1)
    }

    /// The level a SCHEDULE_TOPIC_XXXX queue serves.
    pub fn level_of_queue(queue_id: u32) -> u32 {
        queue_id.saturating_add(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Diverting and restoring.

/// Java `HookUtils.handleScheduleMessage`: if `msg` carries `DELAY > 0` (and is not a half or
/// rollback transaction message), rewrite it into SCHEDULE_TOPIC_XXXX queue `level - 1` with
/// `REAL_TOPIC`/`REAL_QID` set, clamping the level to the maximum. Returns the level used.
pub fn divert(levels: &DelayLevels, msg: &mut MessageInput) -> Option<u32> {
    let level = delay_level(prop_get(&msg.properties, PROPERTY_DELAY_TIME_LEVEL));
    divert_at(levels, msg, level)
}

/// The level a `DELAY` value asks for (`None`: absent or not an integer).
pub fn delay_level(delay: Option<&str>) -> Option<i64> {
    delay?.trim().parse().ok()
}

/// [`divert`] with the message's `DELAY` already looked up and parsed by [`delay_level`] (the
/// send path finds it in its one scan of the properties).
pub fn divert_at(levels: &DelayLevels, msg: &mut MessageInput, level: Option<i64>) -> Option<u32> {
    let tran = msg.sys_flag & SYSFLAG_TRANSACTION_MASK;
    if tran != 0 && tran != SYSFLAG_TRANSACTION_COMMIT {
        return None;
    }
    let level = level?;
    if level <= 0 {
        return None;
    }
    let level = u32::try_from(level.min(i64::from(levels.max_level()))).ok()?;
    let mut pairs = props_decode(&msg.properties);
    pairs.retain(|(k, _)| {
        k != PROPERTY_REAL_TOPIC && k != PROPERTY_REAL_QUEUE_ID && k != PROPERTY_DELAY_TIME_LEVEL
    });
    pairs.push((PROPERTY_DELAY_TIME_LEVEL.to_string(), level.to_string()));
    pairs.push((PROPERTY_REAL_TOPIC.to_string(), msg.topic.clone()));
    pairs.push((PROPERTY_REAL_QUEUE_ID.to_string(), msg.queue_id.to_string()));
    msg.properties = props_encode(&pairs);
    msg.topic = SCHEDULE_TOPIC.to_string();
    msg.queue_id = DelayLevels::queue_id(level);
    Some(level)
}

/// The parts of a stored SCHEDULE_TOPIC_XXXX record that delivery needs (taken from the store's
/// decoded record).
#[derive(Debug, Clone)]
pub struct ScheduledRecord<'a> {
    pub body: &'a [u8],
    pub flag: i32,
    pub properties: &'a str,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: std::net::SocketAddr,
    pub store_host: std::net::SocketAddr,
    pub store_timestamp: i64,
    pub reconsume_times: i32,
}

/// Why a due record is not re-put (it is skipped, as Java skips it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("scheduled message has no valid REAL_TOPIC")]
    NoRealTopic,
    #[error("scheduled message has no valid REAL_QID")]
    NoRealQueue,
    #[error("scheduled message belongs to the transaction half topic")]
    HalfTopic,
}

/// Java `messageTimeup`: the message to put back into its real topic (DELAY and the timer
/// properties removed, `WAIT=false`, REAL_TOPIC/REAL_QID kept, original hosts and times).
pub fn restore(rec: &ScheduledRecord<'_>) -> Result<MessageInput, RestoreError> {
    let topic = prop_get(rec.properties, PROPERTY_REAL_TOPIC)
        .filter(|t| validate_topic(t).is_ok())
        .ok_or(RestoreError::NoRealTopic)?
        .to_string();
    if topic == TRANS_HALF_TOPIC {
        return Err(RestoreError::HalfTopic);
    }
    let queue_id: u32 = prop_get(rec.properties, PROPERTY_REAL_QUEUE_ID)
        .and_then(|q| q.trim().parse().ok())
        .ok_or(RestoreError::NoRealQueue)?;
    let props = prop_remove(
        rec.properties,
        &[
            PROPERTY_DELAY_TIME_LEVEL,
            PROPERTY_TIMER_DELIVER_MS,
            PROPERTY_TIMER_DELAY_SEC,
        ],
    );
    let props = prop_set(&props, PROPERTY_WAIT_STORE_MSG_OK, "false");
    Ok(MessageInput {
        topic,
        queue_id,
        flag: rec.flag,
        body: bytes::Bytes::copy_from_slice(rec.body),
        properties: props,
        sys_flag: rec.sys_flag,
        born_timestamp: rec.born_timestamp,
        born_host: rec.born_host,
        store_host: rec.store_host,
        reconsume_times: rec.reconsume_times,
        prepared_transaction_offset: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Per-level progress (delayOffset.json).

/// Delay levels and the delivery progress of each.
pub struct ScheduleService {
    levels: DelayLevels,
    path: PathBuf,
    /// level → next SCHEDULE_TOPIC_XXXX queue offset to deliver.
    offsets: Mutex<BTreeMap<u32, u64>>,
    data_version: Mutex<DataVersion>,
    dirty: AtomicBool,
    persist_lock: Mutex<()>,
    /// Set by the first [`ScheduleService::start`].
    started: AtomicBool,
}

impl ScheduleService {
    /// Loads `<config_dir>/delayOffset.json` (leniently, `.bak` fallback) for `levels`.
    pub fn open(config_dir: &Path, levels: DelayLevels) -> Result<Self, PersistError> {
        std::fs::create_dir_all(config_dir).map_err(|source| PersistError::Io {
            op: "create dir",
            path: config_dir.to_path_buf(),
            source,
        })?;
        let path = config_dir.join("delayOffset.json");
        let loaded = persist::load_json(&path);
        let mut offsets = BTreeMap::new();
        let mut data_version = DataVersion::new();
        if let Some(v) = &loaded.value {
            if let Some(dv) = v.get("dataVersion").and_then(DataVersion::from_value) {
                data_version = dv;
            }
            for (k, off) in v
                .get("offsetTable")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let level = k
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=SCHEDULE_TOPIC_QUEUE_NUMS).contains(l));
                let off = value_i64(off).and_then(|o| u64::try_from(o).ok());
                match (level, off) {
                    (Some(l), Some(o)) => {
                        offsets.insert(l, o);
                    }
                    _ => tracing::warn!("delayOffset.json: dropped bad entry for level {k:?}"),
                }
            }
        }
        Ok(ScheduleService {
            levels,
            path,
            offsets: Mutex::new(offsets),
            data_version: Mutex::new(data_version),
            // After a fallback to the backup, rewrite the main file at the next persist.
            dirty: AtomicBool::new(loaded.source == persist::LoadSource::Backup),
            persist_lock: Mutex::new(()),
            started: AtomicBool::new(false),
        })
    }

    /// [`ScheduleService::open`] with `messageDelayLevel` from `conf`. A spec that does not parse
    /// was already refused by config validation; if one slips through, Java's default is used
    /// and the problem logged.
    pub fn load(config_dir: &Path, conf: &BrokerConfig) -> Result<Self, PersistError> {
        let levels = DelayLevels::parse(&conf.message_delay_level).unwrap_or_else(|e| {
            tracing::error!("messageDelayLevel: {e}; using the default levels");
            DelayLevels::default()
        });
        Self::open(config_dir, levels)
    }

    pub fn levels(&self) -> &DelayLevels {
        &self.levels
    }

    /// Rewrites a DELAY message into SCHEDULE_TOPIC_XXXX (see [`divert`]).
    pub fn redirect_delayed(&self, msg: &mut MessageInput) -> Option<u32> {
        divert(&self.levels, msg)
    }

    /// `redirect_delayed` with the message's `DELAY` level already found ([`divert_at`]).
    pub fn redirect_delayed_at(&self, msg: &mut MessageInput, level: Option<i64>) -> Option<u32> {
        divert_at(&self.levels, msg, level)
    }

    /// Next queue offset to deliver for `level`.
    pub fn offset(&self, level: u32) -> u64 {
        self.offsets.lock().get(&level).copied().unwrap_or(0)
    }

    /// Records delivery progress for `level`.
    pub fn set_offset(&self, level: u32, offset: u64) {
        let mut m = self.offsets.lock();
        if m.insert(level, offset) != Some(offset) {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// `{"dataVersion":…,"offsetTable":{1:0,…}}` (the file; also GET_ALL_DELAY_OFFSET's body).
    pub fn encode(&self, style: JsonStyle) -> String {
        let dv = *self.data_version.lock();
        let m = self.offsets.lock();
        JsonOut::obj([
            ("dataVersion", dv.to_json()),
            (
                "offsetTable",
                JsonOut::Obj(
                    m.iter()
                        .map(|(l, o)| {
                            (
                                JsonKey::Int(i64::from(*l)),
                                JsonOut::Int(i64::try_from(*o).unwrap_or(i64::MAX)),
                            )
                        })
                        .collect(),
                ),
            ),
        ])
        .render(style)
    }

    /// Writes delayOffset.json if progress changed.
    pub fn persist(&self) -> Result<(), PersistError> {
        let _g = self.persist_lock.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.data_version.lock().bump();
        let text = self.encode(JsonStyle::FastjsonPretty);
        let r = persist::write_atomic(&self.path, text.as_bytes());
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery.

/// Records read from one level's queue per store call.
const DELIVER_BATCH_MAX: u32 = 32;
/// Messages delivered per level per pass, so one busy level cannot starve the others.
const DELIVER_PASS_MAX: usize = 1024;
/// Re-check period while nothing is due (Java's `DELAY_FOR_A_WHILE`).
pub const IDLE_CHECK_MS: u64 = 100;
/// Wait before retrying after the store refused a re-put (disk full, write disabled).
pub const PUT_RETRY_MS: u64 = 1_000;

/// What one delivery pass over a level ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelStep {
    /// Nothing more is due; check again after this many ms.
    WaitMs(u64),
    /// The pass hit its bound with more due messages: run again at once.
    More,
}

impl LevelStep {
    fn wait_ms(self) -> u64 {
        match self {
            LevelStep::WaitMs(ms) => ms,
            LevelStep::More => 0,
        }
    }
}

impl ScheduleService {
    /// Delivers every due message of `level` (up to a bound) into its real topic and records the
    /// progress. Deterministic given `now_ms`; the delivery thread calls it in a loop, tests call
    /// it directly.
    pub fn deliver_level(&self, store: &MessageStore, level: u32, now_ms: i64) -> LevelStep {
        let queue_id = DelayLevels::queue_id(level);
        let mut offset = self.offset(level);
        let mut delivered = 0usize;
        loop {
            if delivered >= DELIVER_PASS_MAX {
                self.set_offset(level, offset);
                return LevelStep::More;
            }
            let r = store.get(
                SCHEDULE_TOPIC,
                queue_id,
                offset,
                DELIVER_BATCH_MAX,
                4 << 20,
                &TagFilter::All,
            );
            match r.status {
                GetStatus::Found => {}
                GetStatus::OffsetTooSmall => {
                    tracing::warn!("delay level {level}: offset {offset} below the queue minimum {}; skipping ahead", r.min_offset);
                    offset = r.next_begin_offset.max(offset);
                    self.set_offset(level, offset);
                    continue;
                }
                GetStatus::OffsetOverflowBadly => {
                    // The queue lost its tail (crash before flush): the missing entries are gone.
                    tracing::warn!(
                        "delay level {level}: offset {offset} past the queue end {}; resetting",
                        r.max_offset
                    );
                    self.set_offset(level, r.max_offset);
                    return LevelStep::WaitMs(IDLE_CHECK_MS);
                }
                _ if r.next_begin_offset > offset => {
                    // Blank or removed units: step over them.
                    offset = r.next_begin_offset;
                    self.set_offset(level, offset);
                    continue;
                }
                _ => {
                    self.set_offset(level, offset);
                    return LevelStep::WaitMs(IDLE_CHECK_MS);
                }
            }
            for slice in &r.messages {
                let rec = match decode_record(slice.as_bytes()) {
                    Ok(rec) => rec,
                    Err(e) => {
                        tracing::warn!(
                            "delay level {level}: undecodable record at {}: {e}",
                            slice.phy_offset()
                        );
                        continue;
                    }
                };
                let Ok(queue_offset) = u64::try_from(rec.queue_offset) else {
                    continue;
                };
                let due = self
                    .levels
                    .deliver_at_ms(level, rec.store_timestamp, now_ms);
                if due > now_ms {
                    self.set_offset(level, queue_offset);
                    let wait = u64::try_from(due.saturating_sub(now_ms)).unwrap_or(IDLE_CHECK_MS);
                    return LevelStep::WaitMs(wait.min(IDLE_CHECK_MS));
                }
                let scheduled = ScheduledRecord {
                    body: rec.body,
                    flag: rec.flag,
                    properties: rec.properties,
                    sys_flag: rec.sys_flag,
                    born_timestamp: rec.born_timestamp,
                    born_host: rec.born_host,
                    store_host: rec.store_host,
                    store_timestamp: rec.store_timestamp,
                    reconsume_times: rec.reconsume_times,
                };
                match restore(&scheduled) {
                    Ok(msg) => match store.put(&msg) {
                        Ok(_) => delivered += 1,
                        Err(StoreError::MessageIllegal(why)) => {
                            tracing::warn!(
                                "delay level {level}: dropping message at {}: {why}",
                                slice.phy_offset()
                            );
                        }
                        Err(e) => {
                            // Transient (disk full, write disabled): retry the same message later.
                            tracing::warn!("delay level {level}: re-put failed, will retry: {e}");
                            self.set_offset(level, queue_offset);
                            return LevelStep::WaitMs(PUT_RETRY_MS);
                        }
                    },
                    Err(e) => tracing::warn!(
                        "delay level {level}: skipping message at {}: {e}",
                        slice.phy_offset()
                    ),
                }
                offset = queue_offset.saturating_add(1);
            }
            offset = offset.max(r.next_begin_offset);
            self.set_offset(level, offset);
        }
    }

    /// One pass over every level; returns how long the caller may sleep.
    pub fn deliver_all(&self, store: &MessageStore, now_ms: i64) -> u64 {
        (1..=self.levels.max_level())
            .map(|level| self.deliver_level(store, level, now_ms).wait_ms())
            .min()
            .unwrap_or(IDLE_CHECK_MS)
    }

    /// Starts the delivery thread: it runs until the broker shuts down, persisting
    /// delayOffset.json every `flushDelayOffsetInterval`.
    pub fn start(b: &Arc<Broker>) {
        if b.schedule.started.swap(true, Ordering::AcqRel) {
            return; // one delivery thread per broker
        }
        let b = b.clone();
        let spawned = std::thread::Builder::new()
            .name("schedule".to_string())
            .spawn(move || {
                let mut last_persist = std::time::Instant::now();
                while !b.is_shutting_down() {
                    let wait = b.schedule.deliver_all(&b.store, persist::now_ms());
                    let interval =
                        std::time::Duration::from_millis(b.conf().flush_delay_offset_interval);
                    if last_persist.elapsed() >= interval {
                        if let Err(e) = b.schedule.persist() {
                            tracing::warn!("delayOffset.json: {e}");
                        }
                        last_persist = std::time::Instant::now();
                    }
                    if wait > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(
                            wait.min(IDLE_CHECK_MS),
                        ));
                    }
                }
                if let Err(e) = b.schedule.persist() {
                    tracing::warn!("delayOffset.json: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the delayed-delivery thread: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn input(topic: &str, props: &str) -> MessageInput {
        MessageInput {
            topic: topic.into(),
            queue_id: 2,
            flag: 5,
            body: b"hello".to_vec().into(),
            properties: props.into(),
            sys_flag: 0,
            born_timestamp: 1_000,
            born_host: "10.0.0.2:5000".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 1,
            prepared_transaction_offset: 0,
        }
    }

    #[test]
    fn default_levels_parse() {
        let l = DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        assert_eq!(l.max_level(), 18);
        assert_eq!(l.delay_ms(1), Some(1_000));
        assert_eq!(l.delay_ms(3), Some(10_000));
        assert_eq!(l.delay_ms(5), Some(60_000));
        assert_eq!(l.delay_ms(17), Some(3_600_000));
        assert_eq!(l.delay_ms(18), Some(7_200_000));
        assert_eq!(l.delay_ms(0), None);
        assert_eq!(l.delay_ms(19), None);
        let t = DelayLevels::parse("1s 1s 1s 500ms 2d").unwrap();
        assert_eq!(t.max_level(), 5);
        assert_eq!(t.delay_ms(4), Some(500));
        assert_eq!(t.delay_ms(5), Some(172_800_000));
    }

    #[test]
    fn default_impl_matches_the_default_spec() {
        assert_eq!(
            DelayLevels::default(),
            DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap()
        );
    }

    #[test]
    fn bad_levels_are_errors_naming_the_item() {
        assert_eq!(DelayLevels::parse("  "), Err(DelayLevelError::Empty));
        for bad in ["1x", "s", "-1s", "1.5s", "99999999999999999999h", "1 s"] {
            assert!(
                matches!(
                    DelayLevels::parse(bad),
                    Err(DelayLevelError::BadItem { .. })
                ),
                "{bad}"
            );
        }
        let many = vec!["1s"; 19].join(" ");
        assert_eq!(DelayLevels::parse(&many), Err(DelayLevelError::TooMany(19)));
    }

    #[test]
    fn due_time_with_clock_skew_guard() {
        let l = DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        // Level 3 = 10 s after storing.
        assert_eq!(l.deliver_at_ms(3, 100_000, 100_000), 110_000);
        assert_eq!(l.deliver_at_ms(3, 100_000, 200_000), 110_000);
        // The clock went back by more than one delay: deliver now.
        assert_eq!(l.deliver_at_ms(3, 100_000, 50_000), 50_000);
        // Unknown level: one second.
        assert_eq!(l.deliver_at_ms(40, 100_000, 100_000), 101_000);
    }

    #[test]
    fn divert_and_restore_round_trip() {
        let l = DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        let props = props_encode(&[
            ("TAGS".into(), "TagA".into()),
            ("DELAY".into(), "3".into()),
            ("UNIQ_KEY".into(), "ABC".into()),
        ]);
        let mut m = input("TopicTest", &props);
        assert_eq!(divert(&l, &mut m), Some(3));
        assert_eq!(m.topic, SCHEDULE_TOPIC);
        assert_eq!(m.queue_id, 2);
        assert_eq!(prop_get(&m.properties, "REAL_TOPIC"), Some("TopicTest"));
        assert_eq!(prop_get(&m.properties, "REAL_QID"), Some("2"));
        assert_eq!(prop_get(&m.properties, "DELAY"), Some("3"));

        let rec = ScheduledRecord {
            body: &m.body,
            flag: m.flag,
            properties: &m.properties,
            sys_flag: m.sys_flag,
            born_timestamp: m.born_timestamp,
            born_host: m.born_host,
            store_host: m.store_host,
            store_timestamp: 2_000,
            reconsume_times: m.reconsume_times,
        };
        let back = restore(&rec).unwrap();
        assert_eq!(back.topic, "TopicTest");
        assert_eq!(back.queue_id, 2);
        assert_eq!(&back.body[..], b"hello");
        assert_eq!(
            (back.flag, back.reconsume_times, back.born_timestamp),
            (5, 1, 1_000)
        );
        assert_eq!(prop_get(&back.properties, "DELAY"), None);
        assert_eq!(prop_get(&back.properties, "WAIT"), Some("false"));
        assert_eq!(prop_get(&back.properties, "TAGS"), Some("TagA"));
        assert_eq!(prop_get(&back.properties, "UNIQ_KEY"), Some("ABC"));
        assert_eq!(prop_get(&back.properties, "REAL_TOPIC"), Some("TopicTest"));
    }

    #[test]
    fn divert_clamps_and_ignores_non_delayed() {
        let l = DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        let mut m = input("T", "DELAY\u{1}99\u{2}");
        assert_eq!(divert(&l, &mut m), Some(18));
        assert_eq!(m.queue_id, 17);
        assert_eq!(prop_get(&m.properties, "DELAY"), Some("18"));
        for props in [
            "",
            "DELAY\u{1}0\u{2}",
            "DELAY\u{1}-1\u{2}",
            "DELAY\u{1}x\u{2}",
        ] {
            let mut m = input("T", props);
            assert_eq!(divert(&l, &mut m), None, "{props:?}");
            assert_eq!(m.topic, "T");
        }
        // A half (prepared) transaction message is not delayed.
        let mut m = input("T", "DELAY\u{1}2\u{2}");
        m.sys_flag = 0x4;
        assert_eq!(divert(&l, &mut m), None);
    }

    #[test]
    fn restore_refuses_bad_real_topic() {
        let mk = |props: &str| {
            restore(&ScheduledRecord {
                body: b"",
                flag: 0,
                properties: props,
                sys_flag: 0,
                born_timestamp: 0,
                born_host: "1.1.1.1:1".parse().unwrap(),
                store_host: "1.1.1.1:1".parse().unwrap(),
                store_timestamp: 0,
                reconsume_times: 0,
            })
        };
        assert_eq!(
            mk("REAL_QID\u{1}0\u{2}").unwrap_err(),
            RestoreError::NoRealTopic
        );
        assert_eq!(
            mk("REAL_TOPIC\u{1}../x\u{2}REAL_QID\u{1}0\u{2}").unwrap_err(),
            RestoreError::NoRealTopic
        );
        assert_eq!(
            mk("REAL_TOPIC\u{1}T\u{2}").unwrap_err(),
            RestoreError::NoRealQueue
        );
        assert_eq!(
            mk("REAL_TOPIC\u{1}RMQ_SYS_TRANS_HALF_TOPIC\u{2}REAL_QID\u{1}0\u{2}").unwrap_err(),
            RestoreError::HalfTopic
        );
    }

    #[test]
    fn delay_offsets_persist_in_java_shape() {
        let dir = tempfile::tempdir().unwrap();
        let l = DelayLevels::parse(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        let s = ScheduleService::open(dir.path(), l.clone()).unwrap();
        s.set_offset(1, 0);
        s.set_offset(3, 17);
        s.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join("delayOffset.json")).unwrap();
        assert!(text.contains("1:0,\n\t\t3:17"), "{text}");
        let s = ScheduleService::open(dir.path(), l).unwrap();
        assert_eq!(s.offset(3), 17);
        assert_eq!(s.offset(2), 0);
        // Java-written file with hostile entries.
        std::fs::write(
            dir.path().join("delayOffset.json"),
            "{\"offsetTable\":{1:5,2:\"6\",99:1,x:2,4:-1}}",
        )
        .unwrap();
        let s = ScheduleService::open(dir.path(), DelayLevels::parse("1s").unwrap()).unwrap();
        assert_eq!((s.offset(1), s.offset(2), s.offset(4)), (5, 6, 0));
    }

    #[test]
    fn delayed_sends_are_delivered_per_level_in_order() {
        use crate::broker::retry::testkit::*;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let mut stored_at = Vec::new();
        for (i, level) in [(0u8, 1u32), (1, 1), (2, 4), (3, 2)] {
            let props = format!("TAGS\u{1}T{i}\u{2}DELAY\u{1}{level}\u{2}");
            let mut m = input("DelayTopic", 1, &[b'm', b'0' + i], &props);
            assert_eq!(b.schedule.redirect_delayed(&mut m), Some(level));
            put(&b.store, m);
        }
        for q in [0, 1, 3] {
            for rec in records(&b.store, SCHEDULE_TOPIC, q) {
                stored_at.push(view(&rec).store_timestamp);
            }
        }
        let t0 = *stored_at.iter().max().unwrap();
        // Level 1 (1 s) is due after 1 s, level 2 (5 s) after 5 s, level 4 (30 s) after 30 s.
        b.schedule.deliver_all(&b.store, t0 + 1_000);
        let got: Vec<Vec<u8>> = records(&b.store, "DelayTopic", 1)
            .iter()
            .map(|r| view(r).body.to_vec())
            .collect();
        assert_eq!(got, vec![b"m0".to_vec(), b"m1".to_vec()]);
        b.schedule.deliver_all(&b.store, t0 + 5_000);
        assert_eq!(records(&b.store, "DelayTopic", 1).len(), 3);
        b.schedule.deliver_all(&b.store, t0 + 29_000);
        assert_eq!(records(&b.store, "DelayTopic", 1).len(), 3);
        b.schedule.deliver_all(&b.store, t0 + 30_000);
        let all = records(&b.store, "DelayTopic", 1);
        assert_eq!(all.len(), 4);
        let last = view(&all[3]);
        assert_eq!(last.body, b"m2");
        assert_eq!(last.property("TAGS"), Some("T2"));
        assert_eq!(last.property("REAL_TOPIC"), Some("DelayTopic"));
        assert_eq!(last.property("DELAY"), None);
        assert_eq!(
            (
                b.schedule.offset(1),
                b.schedule.offset(2),
                b.schedule.offset(4)
            ),
            (2, 1, 1)
        );
        // Progress survives a restart of the service.
        b.schedule.persist().unwrap();
        let again = ScheduleService::open(&b.config_dir(), DelayLevels::default()).unwrap();
        assert_eq!(again.offset(1), 2);
    }

    #[test]
    fn bad_scheduled_records_are_skipped_and_offsets_past_the_end_reset() {
        use crate::broker::retry::testkit::*;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        // Written straight into the schedule queue without REAL_TOPIC (e.g. by an old tool).
        put(
            &b.store,
            input(SCHEDULE_TOPIC, 0, b"orphan", "DELAY\u{1}1\u{2}"),
        );
        let mut ok = input("Real", 0, b"fine", "DELAY\u{1}1\u{2}");
        b.schedule.redirect_delayed(&mut ok);
        put(&b.store, ok);
        b.schedule.deliver_level(&b.store, 1, i64::MAX / 2);
        assert_eq!(records(&b.store, "Real", 0).len(), 1);
        assert_eq!(b.schedule.offset(1), 2);
        // An offset beyond the queue (the queue lost its tail) is pulled back to the end.
        b.schedule.set_offset(1, 1_000);
        b.schedule.deliver_level(&b.store, 1, i64::MAX / 2);
        assert_eq!(b.schedule.offset(1), 2);
        // An empty level is idle.
        assert_eq!(
            b.schedule.deliver_level(&b.store, 7, 0),
            LevelStep::WaitMs(IDLE_CHECK_MS)
        );
    }

    #[test]
    fn delivery_loop_with_fast_test_levels() {
        use crate::broker::retry::testkit::*;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        // Build a service with test-scaled levels (`messageDelayLevel=100ms 200ms` style).
        let fast = DelayLevels::parse("100ms 200ms").unwrap();
        let mut m = input("Fast", 0, b"quick", "DELAY\u{1}2\u{2}");
        assert_eq!(divert(&fast, &mut m), Some(2));
        put(&b.store, m);
        let svc = ScheduleService::open(&dir.path().join("fastcfg"), fast).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while records(&b.store, "Fast", 0).is_empty() {
            assert!(std::time::Instant::now() < deadline, "not delivered");
            let wait = svc.deliver_all(&b.store, persist::now_ms());
            std::thread::sleep(std::time::Duration::from_millis(
                wait.clamp(1, IDLE_CHECK_MS),
            ));
        }
        assert_eq!(view(&records(&b.store, "Fast", 0)[0]).body, b"quick");
    }

    #[test]
    fn property_helpers_follow_java_rules() {
        let s = "A\u{1}1\u{2}\u{1}x\u{2}B\u{1}\u{2}C\u{1}v\u{1}w\u{2}A\u{1}2\u{2}";
        assert_eq!(prop_get(s, "A"), Some("2"));
        assert_eq!(prop_get(s, "B"), None);
        assert_eq!(prop_get(s, "C"), Some("v\u{1}w"));
        let t = prop_set(s, "A", "3");
        assert_eq!(prop_get(&t, "A"), Some("3"));
        assert_eq!(props_decode(&t).iter().filter(|(k, _)| k == "A").count(), 1);
        let u = prop_remove(&t, &["A", "C"]);
        assert_eq!(u, "");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn delay_level_parsing_is_total(spec in ".{0,80}") {
                if let Ok(l) = DelayLevels::parse(&spec) {
                    prop_assert!(l.max_level() >= 1 && l.max_level() <= SCHEDULE_TOPIC_QUEUE_NUMS);
                }
            }

            /// Due times never overflow and never lie more than one delay ahead of now.
            #[test]
            fn due_time_is_bounded(level in 0u32..40, store in any::<i64>(), now in any::<i64>()) {
                let l = DelayLevels::default();
                let due = l.deliver_at_ms(level, store, now);
                let delay = l.delay_ms(level).map_or(1_000, |d| i64::try_from(d).unwrap());
                prop_assert!(due <= now.saturating_add(delay));
            }

            /// divert then restore gives back topic, queue, body and every other property.
            #[test]
            fn divert_restore_round_trip(topic in "[a-zA-Z0-9_-]{1,40}", q in 0u32..64, level in 1i64..40,
                                         user in "[a-z]{1,8}", val in "[ -~]{1,16}") {
                let l = DelayLevels::default();
                let props = props_encode(&[(user.clone(), val.clone()), ("DELAY".into(), level.to_string())]);
                let mut m = MessageInput {
                    topic: topic.clone(), queue_id: q, flag: 1, body: b"b".to_vec().into(), properties: props,
                    sys_flag: 0, born_timestamp: 5, born_host: "1.2.3.4:5".parse().unwrap(),
                    store_host: "1.2.3.4:6".parse().unwrap(), reconsume_times: 0, prepared_transaction_offset: 0,
                };
                let used = divert(&l, &mut m).unwrap();
                prop_assert_eq!(i64::from(used), level.min(18));
                let rec = ScheduledRecord {
                    body: &m.body, flag: m.flag, properties: &m.properties, sys_flag: m.sys_flag,
                    born_timestamp: m.born_timestamp, born_host: m.born_host, store_host: m.store_host,
                    store_timestamp: 0, reconsume_times: 0,
                };
                let back = restore(&rec).unwrap();
                prop_assert_eq!(back.topic, topic);
                prop_assert_eq!(back.queue_id, q);
                prop_assert_eq!(prop_get(&back.properties, &user), Some(val.as_str()));
                prop_assert_eq!(prop_get(&back.properties, "DELAY"), None);
            }
        }
    }
}
