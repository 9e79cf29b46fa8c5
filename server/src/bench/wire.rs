//! What the load tool puts on and reads off the wire: request headers, the batch body (§3.5), the
//! stored-record decoder (§3.1), route parsing, and the send timestamp carried in each body.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;

/// Request codes the tool sends (reference §2.2).
pub mod code {
    pub const PULL_MESSAGE: i32 = 11;
    pub const GET_MAX_OFFSET: i32 = 30;
    pub const GET_MIN_OFFSET: i32 = 31;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const SEND_MESSAGE_V2: i32 = 310;
    pub const SEND_BATCH_MESSAGE: i32 = 320;
}

/// Response codes the tool interprets (reference §2.1).
pub mod resp {
    pub const SUCCESS: i32 = 0;
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;

    /// Send codes under which the message is stored (the Java client's SEND_OK and the timeouts).
    /// A FLUSH_DISK_TIMEOUT still counts as an error for the benchmark: the ack was not durable
    /// in time.
    pub fn send_ok(code: i32) -> bool {
        code == SUCCESS
    }

    /// Codes that mean "stored, but not as promised" (counted as errors, reported apart).
    pub fn send_stored_degraded(code: i32) -> bool {
        matches!(
            code,
            FLUSH_DISK_TIMEOUT | SLAVE_NOT_AVAILABLE | FLUSH_SLAVE_TIMEOUT
        )
    }
}

/// PullSysFlag bits (§4.6).
pub const PULL_FLAG_SUSPEND: i32 = 0x2;
pub const PULL_FLAG_SUBSCRIPTION: i32 = 0x4;

/// Permission bits of a QueueData (§4.6).
pub const PERM_WRITE: i64 = 2;
pub const PERM_READ: i64 = 4;

/// Every body the tool sends starts with this marker and the send time, so a consumer can tell
/// bench messages apart and compute end-to-end latency.
pub const BODY_MAGIC: [u8; 4] = *b"FRBN";
/// Bytes of the body prefix: magic + send time (ns since the Unix epoch, big-endian u64).
pub const BODY_PREFIX_BYTES: usize = 12;

/// Writes the bench prefix into `body` (which must hold at least [`BODY_PREFIX_BYTES`]; a smaller
/// body is left untouched and carries no timestamp).
pub fn stamp_body(body: &mut [u8], sent_unix_ns: u64) {
    if let Some(prefix) = body.get_mut(..BODY_PREFIX_BYTES) {
        let (magic, ts) = prefix.split_at_mut(4);
        magic.copy_from_slice(&BODY_MAGIC);
        ts.copy_from_slice(&sent_unix_ns.to_be_bytes());
    }
}

/// The send time stamped by [`stamp_body`], if `body` carries one.
pub fn body_sent_unix_ns(body: &[u8]) -> Option<u64> {
    let magic = body.get(..4)?;
    if magic != BODY_MAGIC {
        return None;
    }
    let ts: [u8; 8] = body.get(4..BODY_PREFIX_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(ts))
}

/// Encodes properties as RocketMQ does: `name U+0001 value U+0002` per pair (§4.3).
pub fn encode_properties(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

/// Generates UNIQ_KEY values: 32 upper-case hex chars, a per-process prefix and a counter.
/// The broker treats the key as opaque (§4.2); real clients send one with every message, so the
/// benchmark does too (the broker indexes it).
#[derive(Debug, Clone)]
pub struct UniqKeys {
    prefix: [u8; 10],
    next: u64,
}

impl UniqKeys {
    pub fn new(prefix: [u8; 10]) -> Self {
        Self { prefix, next: 0 }
    }

    pub fn next_key(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        let counter = n.to_be_bytes();
        let mut s = String::with_capacity(32);
        for b in self.prefix.iter().chain(counter.get(2..).unwrap_or(&[])) {
            s.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            s.push(char::from(
                HEX.get(usize::from(b & 0xF)).copied().unwrap_or(b'0'),
            ));
        }
        s
    }
}

/// One inner message of a SEND_BATCH_MESSAGE body.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    pub properties: &'a str,
}

/// Error for inputs that cannot be encoded in the batch layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("batch item {index}: body of {len} bytes does not fit an int32 record size")]
    BodyTooLarge { index: usize, len: usize },
    #[error("batch item {index}: properties of {len} bytes exceed 32767")]
    PropertiesTooLarge { index: usize, len: usize },
}

/// Appends the SEND_BATCH_MESSAGE body (§3.5) for `items` to `out`: per message TOTALSIZE,
/// MAGICCODE 0, BODYCRC 0, FLAG, BODYLENGTH, BODY, PROPERTIESLENGTH (int16), PROPERTIES.
pub fn encode_batch(items: &[BatchItem<'_>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (index, item) in items.iter().enumerate() {
        let props = item.properties.as_bytes();
        let props_len =
            i16::try_from(props.len()).map_err(|_| EncodeError::PropertiesTooLarge {
                index,
                len: props.len(),
            })?;
        let total = 4usize + 4 + 4 + 4 + 4 + item.body.len() + 2 + props.len();
        let too_large = || EncodeError::BodyTooLarge {
            index,
            len: item.body.len(),
        };
        let total_i32 = i32::try_from(total).map_err(|_| too_large())?;
        let body_len = i32::try_from(item.body.len()).map_err(|_| too_large())?;
        out.reserve(total);
        out.extend_from_slice(&total_i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // MAGICCODE: clients write 0
        out.extend_from_slice(&0i32.to_be_bytes()); // BODYCRC: the broker computes it
        out.extend_from_slice(&item.flag.to_be_bytes());
        out.extend_from_slice(&body_len.to_be_bytes());
        out.extend_from_slice(item.body);
        out.extend_from_slice(&props_len.to_be_bytes());
        out.extend_from_slice(props);
    }
    Ok(())
}

/// Magic codes of a stored record (§3.1).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// SYSFLAG bits selecting 20-byte (IPv6) host fields.
const BORNHOST_V6_FLAG: i32 = 0x10;
const STOREHOST_V6_FLAG: i32 = 0x20;

/// One stored record as served in a pull response body, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord<'a> {
    pub total_size: u32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub phy_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp_ms: i64,
    pub store_timestamp_ms: i64,
    pub body: &'a [u8],
    pub topic: &'a [u8],
    pub properties: &'a [u8],
}

/// Why a pull body could not be decoded. `at` is the byte position of the record in the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record at {at}: truncated (needs {need} bytes, {have} left)")]
    Truncated { at: usize, need: usize, have: usize },
    #[error("record at {at}: bad magic {magic:#x}")]
    BadMagic { at: usize, magic: i32 },
    #[error("record at {at}: size {size} is inconsistent with its fields")]
    BadSize { at: usize, size: i64 },
}

/// Big-endian cursor over one record; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn i8(&mut self) -> Option<i8> {
        Some(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }
}

/// Decodes the record starting at `buf[at..]`; returns it and its size.
pub fn decode_record(buf: &[u8], at: usize) -> Result<StoredRecord<'_>, DecodeError> {
    let rest = buf.get(at..).unwrap_or(&[]);
    let truncated = |need: usize| DecodeError::Truncated {
        at,
        need,
        have: rest.len(),
    };
    let size_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| truncated(4))?;
    let size = i32::from_be_bytes(size_bytes);
    // Smallest possible record: 91 bytes of fixed fields minus the 1-byte topic length (v1, IPv4).
    if size < 88 {
        return Err(DecodeError::BadSize {
            at,
            size: i64::from(size),
        });
    }
    let size_usize = size as usize;
    let record = rest
        .get(..size_usize)
        .ok_or_else(|| truncated(size_usize))?;
    let bad_size = || DecodeError::BadSize {
        at,
        size: i64::from(size),
    };
    let mut c = Cursor {
        buf: record,
        pos: 4,
    };
    let magic = c.i32().ok_or_else(bad_size)?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(DecodeError::BadMagic { at, magic });
    }
    let mut r = parse_fields(&mut c, magic).ok_or_else(bad_size)?;
    if c.pos != size_usize {
        return Err(bad_size());
    }
    r.total_size = size as u32;
    Ok(r)
}

fn parse_fields<'a>(c: &mut Cursor<'a>, magic: i32) -> Option<StoredRecord<'a>> {
    let _body_crc = c.i32()?;
    let queue_id = c.i32()?;
    let flag = c.i32()?;
    let queue_offset = c.i64()?;
    let phy_offset = c.i64()?;
    let sys_flag = c.i32()?;
    let born_timestamp_ms = c.i64()?;
    let born_host_len = if sys_flag & BORNHOST_V6_FLAG != 0 {
        20
    } else {
        8
    };
    c.take(born_host_len)?;
    let store_timestamp_ms = c.i64()?;
    let store_host_len = if sys_flag & STOREHOST_V6_FLAG != 0 {
        20
    } else {
        8
    };
    c.take(store_host_len)?;
    let _reconsume_times = c.i32()?;
    let _prepared_tx_offset = c.i64()?;
    let body_len = usize::try_from(c.i32()?).ok()?;
    let body = c.take(body_len)?;
    let topic_len = if magic == MAGIC_V2 {
        usize::try_from(c.i16()?).ok()?
    } else {
        usize::try_from(c.i8()?).ok()?
    };
    let topic = c.take(topic_len)?;
    let props_len = usize::try_from(c.i16()?).ok()?;
    let properties = c.take(props_len)?;
    Some(StoredRecord {
        total_size: 0,
        queue_id,
        flag,
        queue_offset,
        phy_offset,
        sys_flag,
        born_timestamp_ms,
        store_timestamp_ms,
        body,
        topic,
        properties,
    })
}

/// Iterates the records of a pull response body (a plain concatenation, §3.6). Stops after the
/// first error.
pub fn decode_records(buf: &[u8]) -> Records<'_> {
    Records {
        buf,
        pos: 0,
        failed: false,
    }
}

pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<StoredRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match decode_record(self.buf, self.pos) {
            Ok(r) => {
                self.pos = self.pos.saturating_add(r.total_size as usize);
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Ext fields of a SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE request (one-letter keys, §2.2).
#[derive(Debug, Clone)]
pub struct SendHeader<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub born_timestamp_ms: i64,
    pub properties: &'a str,
    pub batch: bool,
    pub broker_name: &'a str,
}

impl SendHeader<'_> {
    pub fn to_ext(&self) -> HashMap<String, String> {
        let mut m = HashMap::with_capacity(14);
        m.insert("a".into(), self.producer_group.into());
        m.insert("b".into(), self.topic.into());
        m.insert("c".into(), "TBW102".into());
        m.insert("d".into(), "4".into());
        m.insert("e".into(), self.queue_id.to_string());
        m.insert("f".into(), "0".into());
        m.insert("g".into(), self.born_timestamp_ms.to_string());
        m.insert("h".into(), "0".into());
        m.insert("i".into(), self.properties.into());
        m.insert("j".into(), "0".into());
        m.insert("k".into(), "false".into());
        m.insert("m".into(), self.batch.to_string());
        m.insert("n".into(), self.broker_name.into());
        m
    }
}

/// Ext fields of a PULL_MESSAGE request (§2.2). The subscription travels in the request (flag
/// SUBSCRIPTION), so no heartbeat registration is needed.
#[derive(Debug, Clone)]
pub struct PullHeader<'a> {
    pub consumer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub max_msg_nums: i32,
    pub suspend: bool,
    pub suspend_timeout_ms: i64,
    pub sub_version: i64,
}

impl PullHeader<'_> {
    pub fn to_ext(&self) -> HashMap<String, String> {
        let mut flags = PULL_FLAG_SUBSCRIPTION;
        if self.suspend {
            flags |= PULL_FLAG_SUSPEND;
        }
        let mut m = HashMap::with_capacity(12);
        m.insert("consumerGroup".into(), self.consumer_group.into());
        m.insert("topic".into(), self.topic.into());
        m.insert("queueId".into(), self.queue_id.to_string());
        m.insert("queueOffset".into(), self.queue_offset.to_string());
        m.insert("maxMsgNums".into(), self.max_msg_nums.to_string());
        m.insert("sysFlag".into(), flags.to_string());
        m.insert("commitOffset".into(), "0".into());
        m.insert(
            "suspendTimeoutMillis".into(),
            self.suspend_timeout_ms.to_string(),
        );
        m.insert("subscription".into(), "*".into());
        m.insert("subVersion".into(), self.sub_version.to_string());
        m.insert("expressionType".into(), "TAG".into());
        m
    }
}

/// The offsets of a PULL_MESSAGE response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullOffsets {
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

impl PullOffsets {
    pub fn from_ext(ext: &HashMap<String, String>) -> Result<Self, String> {
        Ok(Self {
            next_begin_offset: ext_i64(ext, "nextBeginOffset")?,
            min_offset: ext_i64(ext, "minOffset")?,
            max_offset: ext_i64(ext, "maxOffset")?,
        })
    }
}

/// Reads an integer extField, naming it on failure.
pub fn ext_i64(ext: &HashMap<String, String>, key: &str) -> Result<i64, String> {
    let v = ext
        .get(key)
        .ok_or_else(|| format!("response header lacks {key}"))?;
    v.trim()
        .parse()
        .map_err(|_| format!("response header {key}={v:?} is not an integer"))
}

/// One (broker, queue) the tool sends to or pulls from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueTarget {
    pub broker_name: String,
    pub addr: String,
    pub queue_id: i32,
}

/// Which queues of a route to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteUse {
    Write,
    Read,
}

/// Parses a TopicRouteData body (§2.4) into the master queues usable for `usage`, sorted.
/// Accepts the fastjson dialect with unquoted integer keys (`{0:"addr"}`).
pub fn parse_route(body: &[u8], usage: RouteUse) -> Result<Vec<QueueTarget>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("route body is not UTF-8: {e}"))?;
    let fixed = quote_numeric_keys(text);
    let v: serde_json::Value =
        serde_json::from_str(&fixed).map_err(|e| format!("route body is not JSON: {e}"))?;
    let mut masters: HashMap<String, String> = HashMap::new();
    for bd in v
        .get("brokerDatas")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let Some(name) = bd.get("brokerName").and_then(|x| x.as_str()) else {
            continue;
        };
        if let Some(addr) = bd
            .get("brokerAddrs")
            .and_then(|a| a.get("0"))
            .and_then(|a| a.as_str())
        {
            masters.insert(name.to_string(), addr.to_string());
        }
    }
    let mut out = Vec::new();
    for qd in v
        .get("queueDatas")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let Some(name) = qd.get("brokerName").and_then(|x| x.as_str()) else {
            continue;
        };
        let Some(addr) = masters.get(name) else {
            continue;
        };
        let perm = qd.get("perm").and_then(|x| x.as_i64()).unwrap_or(6);
        let (bit, nums_key) = match usage {
            RouteUse::Write => (PERM_WRITE, "writeQueueNums"),
            RouteUse::Read => (PERM_READ, "readQueueNums"),
        };
        if perm & bit == 0 {
            continue;
        }
        let nums = qd.get(nums_key).and_then(|x| x.as_i64()).unwrap_or(0);
        for q in 0..nums.clamp(0, 1024) {
            out.push(QueueTarget {
                broker_name: name.to_string(),
                addr: addr.clone(),
                queue_id: q as i32,
            });
        }
    }
    out.sort();
    if out.is_empty() {
        return Err("route has no usable master queue".into());
    }
    Ok(out)
}

/// Quotes bare integer object keys (`{0:"a",1:"b"}` → `{"0":"a","1":"b"}`), leaving strings alone.
pub fn quote_numeric_keys(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut in_str = false;
    let mut escaped = false;
    // Position just after the last structural '{' or ',' outside strings (keys start there).
    let mut key_may_start = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
            key_may_start = false;
        } else if b == b'{' || b == b',' {
            key_may_start = true;
        } else if key_may_start && (b.is_ascii_digit() || b == b'-') {
            let start = i;
            let mut j = i + 1;
            while bytes.get(j).is_some_and(|c| c.is_ascii_digit()) {
                j += 1;
            }
            let mut k = j;
            while bytes.get(k).is_some_and(|c| c.is_ascii_whitespace()) {
                k += 1;
            }
            if bytes.get(k) == Some(&b':') {
                out.push('"');
                out.push_str(s.get(start..j).unwrap_or_default());
                out.push('"');
                i = j;
                key_may_start = false;
                continue;
            }
            key_may_start = false;
        } else if !b.is_ascii_whitespace() {
            key_may_start = false;
        }
        // Push the whole UTF-8 char starting at i (bytes >= 0x80 only occur inside strings).
        let ch_len = utf8_len(b);
        out.push_str(s.get(i..i + ch_len).unwrap_or_default());
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Builds a v1/IPv4 stored record by the §3.1 layout, independently of the decoder.
    pub(crate) fn build_record(
        body: &[u8],
        topic: &str,
        props: &str,
        queue_offset: i64,
    ) -> Vec<u8> {
        let total = 91 + body.len() + topic.len() + props.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(total as i32).to_be_bytes());
        r.extend_from_slice(&MAGIC_V1.to_be_bytes());
        r.extend_from_slice(&7i32.to_be_bytes()); // crc
        r.extend_from_slice(&3i32.to_be_bytes()); // queue id
        r.extend_from_slice(&0i32.to_be_bytes()); // flag
        r.extend_from_slice(&queue_offset.to_be_bytes());
        r.extend_from_slice(&4096i64.to_be_bytes()); // phy
        r.extend_from_slice(&0i32.to_be_bytes()); // sysflag
        r.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        r.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0x30, 0x39]);
        r.extend_from_slice(&1_700_000_000_001i64.to_be_bytes());
        r.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0x2A, 0x9F]);
        r.extend_from_slice(&0i32.to_be_bytes()); // reconsume
        r.extend_from_slice(&0i64.to_be_bytes()); // prepared
        r.extend_from_slice(&(body.len() as i32).to_be_bytes());
        r.extend_from_slice(body);
        r.push(topic.len() as u8);
        r.extend_from_slice(topic.as_bytes());
        r.extend_from_slice(&(props.len() as i16).to_be_bytes());
        r.extend_from_slice(props.as_bytes());
        assert_eq!(r.len(), total);
        r
    }

    #[test]
    fn decodes_concatenated_records() {
        let mut body = vec![0u8; 64];
        stamp_body(&mut body, 123_456_789);
        let mut buf = build_record(&body, "BenchTopic", "UNIQ_KEY\u{1}AB\u{2}", 5);
        buf.extend(build_record(b"second", "T", "", 6));
        let recs: Vec<_> = decode_records(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].queue_offset, 5);
        assert_eq!(recs[0].queue_id, 3);
        assert_eq!(recs[0].topic, b"BenchTopic");
        assert_eq!(recs[0].properties, "UNIQ_KEY\u{1}AB\u{2}".as_bytes());
        assert_eq!(recs[0].store_timestamp_ms, 1_700_000_000_001);
        assert_eq!(body_sent_unix_ns(recs[0].body), Some(123_456_789));
        assert_eq!(recs[1].body, b"second");
        assert_eq!(recs[1].queue_offset, 6);
        assert_eq!(body_sent_unix_ns(recs[1].body), None);
    }

    #[test]
    fn decodes_v2_ipv6_record() {
        let topic = "t".repeat(130);
        let total = 91 + 12 + 12 + 1 + 3 + topic.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(total as i32).to_be_bytes());
        r.extend_from_slice(&MAGIC_V2.to_be_bytes());
        r.extend_from_slice(&[0; 8]); // crc, queue id
        r.extend_from_slice(&0i32.to_be_bytes());
        r.extend_from_slice(&9i64.to_be_bytes());
        r.extend_from_slice(&0i64.to_be_bytes());
        r.extend_from_slice(&0x30i32.to_be_bytes());
        r.extend_from_slice(&1i64.to_be_bytes());
        r.extend_from_slice(&[0; 20]);
        r.extend_from_slice(&2i64.to_be_bytes());
        r.extend_from_slice(&[0; 20]);
        r.extend_from_slice(&[0; 12]);
        r.extend_from_slice(&3i32.to_be_bytes());
        r.extend_from_slice(b"abc");
        r.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        r.extend_from_slice(topic.as_bytes());
        r.extend_from_slice(&0i16.to_be_bytes());
        assert_eq!(r.len(), total);
        let rec = decode_record(&r, 0).unwrap();
        assert_eq!(rec.body, b"abc");
        assert_eq!(rec.store_timestamp_ms, 2);
        assert_eq!(rec.topic.len(), 130);
    }

    #[test]
    fn rejects_truncated_and_corrupt_input_without_panicking() {
        let rec = build_record(b"hello", "T", "", 0);
        for cut in 0..rec.len() {
            let r: Vec<_> = decode_records(&rec[..cut]).collect();
            if cut == 0 {
                assert!(r.is_empty());
            } else {
                assert!(r.last().unwrap().is_err(), "cut at {cut}");
            }
        }
        let mut bad = rec.clone();
        bad[4] ^= 1;
        assert!(matches!(
            decode_record(&bad, 0),
            Err(DecodeError::BadMagic { .. })
        ));
        let mut lying = rec.clone();
        lying[87] = 200; // body length beyond the record
        assert!(matches!(
            decode_record(&lying, 0),
            Err(DecodeError::BadSize { .. })
        ));
        // Arbitrary bytes never panic.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut buf = rec.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % buf.len();
            buf[i] = (x >> 32) as u8;
            let _ = decode_records(&buf).count();
        }
    }

    #[test]
    fn batch_body_layout() {
        let items = [
            BatchItem {
                flag: 1,
                body: b"ab",
                properties: "K\u{1}V\u{2}",
            },
            BatchItem {
                flag: 0,
                body: b"",
                properties: "",
            },
        ];
        let mut out = Vec::new();
        encode_batch(&items, &mut out).unwrap();
        let first_len = 20 + 2 + 2 + 4;
        assert_eq!(out.len(), first_len + 22);
        assert_eq!(&out[0..4], &(first_len as i32).to_be_bytes());
        assert_eq!(&out[4..12], &[0; 8]);
        assert_eq!(&out[12..16], &1i32.to_be_bytes());
        assert_eq!(&out[16..20], &2i32.to_be_bytes());
        assert_eq!(&out[20..22], b"ab");
        assert_eq!(&out[22..24], &4i16.to_be_bytes());
        assert_eq!(&out[24..28], b"K\x01V\x02");
        assert_eq!(&out[28..32], &22i32.to_be_bytes());
        assert_eq!(&out[44..48], &0i32.to_be_bytes());
        assert_eq!(&out[48..50], &0i16.to_be_bytes());
        let big = "x".repeat(40_000);
        let err = encode_batch(
            &[BatchItem {
                flag: 0,
                body: b"",
                properties: &big,
            }],
            &mut Vec::new(),
        );
        assert_eq!(
            err,
            Err(EncodeError::PropertiesTooLarge {
                index: 0,
                len: 40_000
            })
        );
    }

    #[test]
    fn body_stamp_round_trip_and_short_bodies() {
        let mut b = vec![0u8; BODY_PREFIX_BYTES];
        stamp_body(&mut b, u64::MAX - 3);
        assert_eq!(body_sent_unix_ns(&b), Some(u64::MAX - 3));
        let mut short = vec![0u8; 5];
        stamp_body(&mut short, 1);
        assert_eq!(short, vec![0u8; 5]);
        assert_eq!(body_sent_unix_ns(&short), None);
    }

    #[test]
    fn uniq_keys_are_32_hex_and_distinct() {
        let mut k = UniqKeys::new([0xAB; 10]);
        let a = k.next_key();
        let b = k.next_key();
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("ABABABABABABABABABAB"));
        assert!(a.ends_with("000000000000"));
        assert!(b.ends_with("000000000001"));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }

    #[test]
    fn properties_encoding() {
        assert_eq!(
            encode_properties(&[("UNIQ_KEY", "X"), ("WAIT", "true")]),
            "UNIQ_KEY\u{1}X\u{2}WAIT\u{1}true\u{2}"
        );
    }

    #[test]
    fn route_parsing_both_dialects() {
        let unquoted = r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":3}]}"#;
        let w = parse_route(unquoted.as_bytes(), RouteUse::Write).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[2].addr, "127.0.0.1:10911");
        assert_eq!(w[2].queue_id, 2);
        let quoted = unquoted.replace("{0:", "{\"0\":").replace(",1:", ",\"1\":");
        let r = parse_route(quoted.as_bytes(), RouteUse::Read).unwrap();
        assert_eq!(r.len(), 2);
        let ro = unquoted.replace("\"perm\":6", "\"perm\":4");
        assert!(parse_route(ro.as_bytes(), RouteUse::Write).is_err());
        assert!(parse_route(b"{not json", RouteUse::Read).is_err());
    }

    #[test]
    fn quoting_leaves_strings_and_values_alone() {
        assert_eq!(
            quote_numeric_keys(r#"{"a":"{0:1}", "n": 5, 7 :"x", "é":[1,2]}"#),
            r#"{"a":"{0:1}", "n": 5, "7" :"x", "é":[1,2]}"#
        );
    }

    #[test]
    fn headers_carry_required_fields() {
        let s = SendHeader {
            producer_group: "g",
            topic: "t",
            queue_id: 2,
            born_timestamp_ms: 9,
            properties: "",
            batch: true,
            broker_name: "b",
        }
        .to_ext();
        for k in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            assert!(s.contains_key(k), "{k}");
        }
        assert_eq!(s["m"], "true");
        let p = PullHeader {
            consumer_group: "g",
            topic: "t",
            queue_id: 1,
            queue_offset: 10,
            max_msg_nums: 32,
            suspend: true,
            suspend_timeout_ms: 1000,
            sub_version: 0,
        }
        .to_ext();
        assert_eq!(p["sysFlag"], "6");
        let mut ext = HashMap::new();
        ext.insert("nextBeginOffset".to_string(), "5".to_string());
        ext.insert("minOffset".to_string(), "0".to_string());
        assert!(PullOffsets::from_ext(&ext)
            .unwrap_err()
            .contains("maxOffset"));
        ext.insert("maxOffset".to_string(), "9".to_string());
        assert_eq!(
            PullOffsets::from_ext(&ext).unwrap(),
            PullOffsets {
                next_begin_offset: 5,
                min_offset: 0,
                max_offset: 9
            }
        );
    }
}
