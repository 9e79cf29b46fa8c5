//! What only the load tool puts on the wire: the send time carried in each body, UNIQ_KEYs, and
//! the choice of queues from a route. Codes, headers, records, properties and the batch body come
//! from the net crate, the store crate and `broker::message`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::broker::topics::perm;

/// PullSysFlag bits the tool sets (§4.6); the broker reads them in `broker::pull`.
pub const PULL_FLAG_SUSPEND: i32 = 0x2;
pub const PULL_FLAG_SUBSCRIPTION: i32 = 0x4;

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

/// Generates UNIQ_KEY values: 32 upper-case hex chars, a per-sender prefix and a counter.
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

/// The master queues of a TopicRouteData body (§2.4) usable for `usage`, sorted. Accepts the
/// fastjson dialect with unquoted integer keys (`{0:"addr"}`) through `json::parse_lenient`.
pub fn parse_route(body: &[u8], usage: RouteUse) -> Result<Vec<QueueTarget>, String> {
    let v = crate::json::parse_lenient(body).map_err(|e| format!("route body: {e}"))?;
    let mut masters = std::collections::HashMap::new();
    for bd in v
        .get("brokerDatas")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        let name = bd.get("brokerName").and_then(|x| x.as_str());
        let addr = bd
            .get("brokerAddrs")
            .and_then(|a| a.get("0"))
            .and_then(|a| a.as_str());
        if let (Some(name), Some(addr)) = (name, addr) {
            masters.insert(name.to_string(), addr.to_string());
        }
    }
    let (bit, nums_key) = match usage {
        RouteUse::Write => (perm::WRITE, "writeQueueNums"),
        RouteUse::Read => (perm::READ, "readQueueNums"),
    };
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
        let p = qd
            .get("perm")
            .and_then(|x| x.as_u64())
            .map_or(perm::RW, |p| p as u32);
        if p & bit == 0 {
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn body_stamp_round_trip_and_short_bodies() {
        let mut b = vec![0u8; BODY_PREFIX_BYTES];
        stamp_body(&mut b, u64::MAX - 3);
        assert_eq!(body_sent_unix_ns(&b), Some(u64::MAX - 3));
        let mut short = vec![0u8; 5];
        stamp_body(&mut short, 1);
        assert_eq!(short, vec![0u8; 5]);
        assert_eq!(body_sent_unix_ns(&short), None);
        assert_eq!(body_sent_unix_ns(b"XXXX12345678"), None);
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

    /// The route the nameserver encodes is the route the tool reads.
    #[test]
    fn reads_what_the_nameserver_writes() {
        use crate::namesrv::route_table::{encode_route, BrokerData, QueueData};
        let q = QueueData {
            broker_name: "b".into(),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: perm::RW,
            topic_sys_flag: 0,
        };
        let b = BrokerData {
            cluster: "c".into(),
            broker_name: "b".into(),
            broker_addrs: [(0u64, "127.0.0.1:1".to_string())].into_iter().collect(),
            enable_acting_master: false,
        };
        for quote in [false, true] {
            let body = encode_route(
                std::slice::from_ref(&q),
                std::slice::from_ref(&b),
                &Default::default(),
                quote,
            );
            let t = parse_route(body.as_bytes(), RouteUse::Write).unwrap();
            assert_eq!(t.len(), 4);
            assert_eq!(t[0].addr, "127.0.0.1:1");
        }
    }
}
