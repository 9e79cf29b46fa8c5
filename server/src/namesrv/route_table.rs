//! The nameserver's in-memory route tables (RocketMQ `RouteInfoManager`): which brokers serve
//! which topics, cluster membership, broker liveness, and the JSON bodies clients read.
//!
//! Time is passed in (`now_ms`) so expiry is tested by stepping, not sleeping.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use parking_lot::RwLock;
use serde_json::{json, Value};

/// Default broker expiry when the registration does not say (`DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`).
pub const BROKER_EXPIRY_MS: i64 = 120_000;
/// Bound on topics one registration may carry (a hostile body cannot grow the table unbounded).
pub const TOPICS_PER_REGISTRATION_MAX: usize = 1_000_000;

/// `QueueData`: how one broker serves one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    pub topic_sys_flag: u32,
}

/// `BrokerData`: the addresses of one broker name (id 0 = master).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<u64, String>,
    pub enable_acting_master: bool,
}

/// One topic as a broker reports it in its registration body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry {
    pub topic: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    pub topic_sys_flag: u32,
}

/// The decoded REGISTER_BROKER request (header + body).
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: u64,
    pub ha_server_addr: String,
    pub heartbeat_timeout_ms: Option<i64>,
    pub enable_acting_master: bool,
    pub topics: Vec<TopicEntry>,
    pub data_version: Value,
    pub filter_servers: Vec<String>,
}

#[derive(Debug, Clone)]
struct BrokerLive {
    cluster: String,
    broker_name: String,
    broker_id: u64,
    last_update_ms: i64,
    timeout_ms: i64,
    data_version: Value,
    ha_server_addr: String,
    conn_id: Option<u64>,
}

#[derive(Default)]
struct Tables {
    topic_queue: BTreeMap<String, BTreeMap<String, QueueData>>,
    broker_addr: BTreeMap<String, BrokerData>,
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    /// keyed by broker address
    live: HashMap<String, BrokerLive>,
    filter_servers: HashMap<String, Vec<String>>,
}

/// A topic's route: queue data, the brokers named there, and their filter servers.
pub type Route = (
    Vec<QueueData>,
    Vec<BrokerData>,
    BTreeMap<String, Vec<String>>,
);

/// What a registration answers: the master's addresses for a slave (empty for a master).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    pub ha_server_addr: String,
    pub master_addr: String,
}

/// The route tables. All methods take `&self`; one RwLock guards everything (registrations are
/// rare, route queries frequent).
#[derive(Default)]
pub struct RouteTable {
    t: RwLock<Tables>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// REGISTER_BROKER (§8.2). Every registration refreshes liveness; a master's topics
    /// replace its previous QueueData.
    pub fn register(&self, r: &Registration, now_ms: i64, conn_id: Option<u64>) -> RegisterOutcome {
        let mut t = self.t.write();
        t.cluster_addr
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.broker_name.clone());
        let bd = t
            .broker_addr
            .entry(r.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
            });
        bd.cluster = r.cluster.clone();
        bd.enable_acting_master = r.enable_acting_master;
        // A slave turned master re-registers the same address with id 0: drop the old id.
        bd.broker_addrs
            .retain(|id, addr| *addr != r.broker_addr || *id == r.broker_id);
        bd.broker_addrs.insert(r.broker_id, r.broker_addr.clone());

        if r.broker_id == 0 {
            // Replace this broker's queue data with what it reports now.
            for per_topic in t.topic_queue.values_mut() {
                per_topic.remove(&r.broker_name);
            }
            for e in &r.topics {
                t.topic_queue.entry(e.topic.clone()).or_default().insert(
                    r.broker_name.clone(),
                    QueueData {
                        broker_name: r.broker_name.clone(),
                        read_queue_nums: e.read_queue_nums,
                        write_queue_nums: e.write_queue_nums,
                        perm: e.perm,
                        topic_sys_flag: e.topic_sys_flag,
                    },
                );
            }
            t.topic_queue.retain(|_, m| !m.is_empty());
        }
        t.live.insert(
            r.broker_addr.clone(),
            BrokerLive {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                broker_id: r.broker_id,
                last_update_ms: now_ms,
                timeout_ms: r
                    .heartbeat_timeout_ms
                    .filter(|v| *v > 0)
                    .unwrap_or(BROKER_EXPIRY_MS),
                data_version: r.data_version.clone(),
                ha_server_addr: r.ha_server_addr.clone(),
                conn_id,
            },
        );
        if r.filter_servers.is_empty() {
            t.filter_servers.remove(&r.broker_addr);
        } else {
            t.filter_servers
                .insert(r.broker_addr.clone(), r.filter_servers.clone());
        }
        let mut out = RegisterOutcome::default();
        if r.broker_id != 0 {
            let master = t
                .broker_addr
                .get(&r.broker_name)
                .and_then(|bd| bd.broker_addrs.get(&0))
                .cloned();
            if let Some(m) = master {
                if let Some(live) = t.live.get(&m) {
                    out.ha_server_addr = live.ha_server_addr.clone();
                    out.master_addr = m;
                }
            }
        }
        out
    }

    /// UNREGISTER_BROKER (§8.3).
    pub fn unregister(&self, cluster: &str, broker_name: &str, broker_addr: &str, broker_id: u64) {
        let mut t = self.t.write();
        remove_broker(&mut t, cluster, broker_name, broker_addr, broker_id);
    }

    /// QUERY_DATA_VERSION: refreshes liveness; answers whether the version differs.
    pub fn touch(&self, broker_addr: &str, data_version: &Value, now_ms: i64) -> bool {
        let mut t = self.t.write();
        match t.live.get_mut(broker_addr) {
            Some(l) => {
                l.last_update_ms = now_ms;
                l.data_version != *data_version
            }
            None => true,
        }
    }

    /// Removes brokers not heard from within their timeout; returns their addresses.
    pub fn scan_expired(&self, now_ms: i64) -> Vec<String> {
        let mut t = self.t.write();
        let dead: Vec<(String, BrokerLive)> = t
            .live
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.timeout_ms) < now_ms)
            .map(|(a, l)| (a.clone(), l.clone()))
            .collect();
        for (addr, l) in &dead {
            tracing::warn!(broker = %addr, name = %l.broker_name, "broker expired (no registration within its timeout)");
            remove_broker(&mut t, &l.cluster, &l.broker_name, addr, l.broker_id);
        }
        dead.into_iter().map(|(a, _)| a).collect()
    }

    /// A broker's connection closed: forget brokers that registered over it (`onChannelDestroy`).
    pub fn connection_closed(&self, conn_id: u64) {
        let mut t = self.t.write();
        let gone: Vec<(String, BrokerLive)> = t
            .live
            .iter()
            .filter(|(_, l)| l.conn_id == Some(conn_id))
            .map(|(a, l)| (a.clone(), l.clone()))
            .collect();
        for (addr, l) in gone {
            tracing::info!(broker = %addr, "broker connection closed; route removed");
            remove_broker(&mut t, &l.cluster, &l.broker_name, &addr, l.broker_id);
        }
    }

    /// GET_ROUTEINFO_BY_TOPIC (§8.4): None when no broker serves the topic.
    pub fn route(&self, topic: &str) -> Option<Route> {
        let t = self.t.read();
        let queues: Vec<QueueData> = t.topic_queue.get(topic)?.values().cloned().collect();
        let brokers: Vec<BrokerData> = queues
            .iter()
            .filter_map(|q| t.broker_addr.get(&q.broker_name).cloned())
            .collect();
        if queues.is_empty() || brokers.is_empty() {
            return None;
        }
        let mut filters = BTreeMap::new();
        for b in &brokers {
            for addr in b.broker_addrs.values() {
                if let Some(f) = t.filter_servers.get(addr) {
                    filters.insert(addr.clone(), f.clone());
                }
            }
        }
        Some((queues, brokers, filters))
    }

    /// The route body, or None for TOPIC_NOT_EXIST. `quote_keys`: standard JSON for
    /// `brokerAddrs` (Java does so for clients at version ≥ 401 or `acceptStandardJsonOnly`);
    /// otherwise fastjson's unquoted numeric keys, which older clients (C++ 2.x, Go) expect.
    pub fn route_json(&self, topic: &str, quote_keys: bool) -> Option<String> {
        let (queues, brokers, filters) = self.route(topic)?;
        Some(encode_route(&queues, &brokers, &filters, quote_keys))
    }

    /// GET_BROKER_CLUSTER_INFO body: `{"brokerAddrTable":{..},"clusterAddrTable":{..}}`.
    pub fn cluster_info_json(&self) -> String {
        let t = self.t.read();
        let brokers: serde_json::Map<String, Value> = t
            .broker_addr
            .iter()
            .map(|(n, b)| (n.clone(), broker_value(b)))
            .collect();
        let clusters: serde_json::Map<String, Value> = t
            .cluster_addr
            .iter()
            .map(|(c, s)| (c.clone(), json!(s.iter().collect::<Vec<_>>())))
            .collect();
        json!({"brokerAddrTable": brokers, "clusterAddrTable": clusters}).to_string()
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER body: `{"topicList":[..]}`.
    pub fn topic_list_json(&self) -> String {
        let t = self.t.read();
        json!({"topicList": t.topic_queue.keys().collect::<Vec<_>>()}).to_string()
    }

    /// GET_TOPICS_BY_CLUSTER body.
    pub fn topics_of_cluster_json(&self, cluster: &str) -> String {
        let t = self.t.read();
        let names: BTreeSet<&String> = t
            .cluster_addr
            .get(cluster)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let topics: Vec<&String> = t
            .topic_queue
            .iter()
            .filter(|(_, m)| m.keys().any(|b| names.contains(b)))
            .map(|(k, _)| k)
            .collect();
        json!({"topicList": topics}).to_string()
    }

    /// Number of live brokers (for logs/tests).
    pub fn live_brokers(&self) -> usize {
        self.t.read().live.len()
    }
}

fn remove_broker(
    t: &mut Tables,
    cluster: &str,
    broker_name: &str,
    broker_addr: &str,
    broker_id: u64,
) {
    t.live.remove(broker_addr);
    t.filter_servers.remove(broker_addr);
    let mut name_gone = false;
    if let Some(bd) = t.broker_addr.get_mut(broker_name) {
        bd.broker_addrs
            .retain(|id, addr| !(*id == broker_id && addr == broker_addr));
        if bd.broker_addrs.is_empty() {
            name_gone = true;
        }
    }
    if name_gone {
        t.broker_addr.remove(broker_name);
        if let Some(set) = t.cluster_addr.get_mut(cluster) {
            set.remove(broker_name);
            if set.is_empty() {
                t.cluster_addr.remove(cluster);
            }
        }
        for per_topic in t.topic_queue.values_mut() {
            per_topic.remove(broker_name);
        }
        t.topic_queue.retain(|_, m| !m.is_empty());
    }
}

fn broker_value(b: &BrokerData) -> Value {
    let addrs: serde_json::Map<String, Value> = b
        .broker_addrs
        .iter()
        .map(|(id, a)| (id.to_string(), json!(a)))
        .collect();
    json!({
        "brokerAddrs": addrs,
        "brokerName": b.broker_name,
        "cluster": b.cluster,
        "enableActingMaster": b.enable_acting_master,
    })
}

/// Encodes TopicRouteData with sorted keys (as fastjson does). Numbers are JSON numbers (the
/// C++ client's jsoncpp `asInt()` throws on strings); `topicSysFlag`, `cluster`,
/// `enableActingMaster` and `filterServerTable` are present for Java/Rust clients.
pub fn encode_route(
    queues: &[QueueData],
    brokers: &[BrokerData],
    filters: &BTreeMap<String, Vec<String>>,
    quote_keys: bool,
) -> String {
    let qd: Vec<Value> = queues
        .iter()
        .map(|q| {
            json!({
                "brokerName": q.broker_name,
                "perm": q.perm,
                "readQueueNums": q.read_queue_nums,
                "topicSysFlag": q.topic_sys_flag,
                "writeQueueNums": q.write_queue_nums,
            })
        })
        .collect();
    let mut out = String::from("{\"brokerDatas\":[");
    for (i, b) in brokers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"brokerAddrs\":{");
        for (j, (id, addr)) in b.broker_addrs.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            if quote_keys {
                out.push_str(&format!("\"{id}\""));
            } else {
                out.push_str(&id.to_string());
            }
            out.push(':');
            out.push_str(&json!(addr).to_string());
        }
        out.push_str("},\"brokerName\":");
        out.push_str(&json!(b.broker_name).to_string());
        out.push_str(",\"cluster\":");
        out.push_str(&json!(b.cluster).to_string());
        out.push_str(",\"enableActingMaster\":");
        out.push_str(if b.enable_acting_master {
            "true"
        } else {
            "false"
        });
        out.push('}');
    }
    out.push_str("],\"filterServerTable\":");
    out.push_str(&json!(filters).to_string());
    out.push_str(",\"queueDatas\":");
    out.push_str(&Value::Array(qd).to_string());
    out.push('}');
    out
}

/// Why a registration body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RegisterBodyError {
    #[error("register body is not JSON: {0}")]
    Json(String),
    #[error("compressed register body is malformed: {0}")]
    Compressed(&'static str),
    #[error("register body has too many topics")]
    TooManyTopics,
}

/// Decodes a RegisterBrokerBody: JSON (`{"filterServerList":[..],"topicConfigSerializeWrapper":
/// {"dataVersion":..,"topicConfigTable":{..}}}`), or the deflated binary form Java brokers send
/// with `compressedRegister=true` (the header's `compressed` flag is unreliable, §2.4, so the
/// first byte decides).
pub fn decode_register_body(
    body: &[u8],
) -> Result<(Vec<TopicEntry>, Value, Vec<String>), RegisterBodyError> {
    if body.is_empty() {
        return Ok((Vec::new(), Value::Null, Vec::new()));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        decode_register_json(body)
    } else {
        decode_register_compressed(body)
    }
}

fn decode_register_json(
    body: &[u8],
) -> Result<(Vec<TopicEntry>, Value, Vec<String>), RegisterBodyError> {
    let v: Value = crate::json::parse_lenient(body).map_err(RegisterBodyError::Json)?;
    let wrapper = v
        .get("topicConfigSerializeWrapper")
        .cloned()
        .unwrap_or(Value::Null);
    let data_version = wrapper.get("dataVersion").cloned().unwrap_or(Value::Null);
    let mut topics = Vec::new();
    if let Some(table) = wrapper.get("topicConfigTable").and_then(Value::as_object) {
        if table.len() > TOPICS_PER_REGISTRATION_MAX {
            return Err(RegisterBodyError::TooManyTopics);
        }
        for (name, tc) in table {
            topics.push(topic_entry(name, tc));
        }
    }
    let filters = v
        .get("filterServerList")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((topics, data_version, filters))
}

fn json_u32(v: &Value, key: &str, default: u32) -> u32 {
    match v.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .unwrap_or(default),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(default),
        _ => default,
    }
}

fn topic_entry(name: &str, tc: &Value) -> TopicEntry {
    let name = tc
        .get("topicName")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    TopicEntry {
        topic: name,
        read_queue_nums: json_u32(tc, "readQueueNums", 16),
        write_queue_nums: json_u32(tc, "writeQueueNums", 16),
        perm: json_u32(tc, "perm", 6),
        topic_sys_flag: json_u32(tc, "topicSysFlag", 0),
    }
}

/// Reads one big-endian length-prefixed chunk.
fn take_chunk<'a>(buf: &mut &'a [u8], max: usize) -> Result<&'a [u8], RegisterBodyError> {
    let len = take_i32(buf)?;
    let len = usize::try_from(len).map_err(|_| RegisterBodyError::Compressed("negative length"))?;
    if len > max || len > buf.len() {
        return Err(RegisterBodyError::Compressed("length past the end"));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn take_i32(buf: &mut &[u8]) -> Result<i32, RegisterBodyError> {
    let Some((head, rest)) = buf.split_first_chunk::<4>() else {
        return Err(RegisterBodyError::Compressed("truncated"));
    };
    *buf = rest;
    Ok(i32::from_be_bytes(*head))
}

fn decode_register_compressed(
    body: &[u8],
) -> Result<(Vec<TopicEntry>, Value, Vec<String>), RegisterBodyError> {
    const INFLATED_MAX: u64 = 64 << 20;
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(INFLATED_MAX)
        .read_to_end(&mut raw)
        .map_err(|_| RegisterBodyError::Compressed("not a zlib stream"))?;
    let mut buf: &[u8] = &raw;
    let dv = take_chunk(&mut buf, raw.len())?;
    let data_version = crate::json::parse_lenient(dv).unwrap_or(Value::Null);
    let count = take_i32(&mut buf)?;
    let count =
        usize::try_from(count).map_err(|_| RegisterBodyError::Compressed("negative count"))?;
    if count > TOPICS_PER_REGISTRATION_MAX {
        return Err(RegisterBodyError::TooManyTopics);
    }
    let mut topics = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let line = take_chunk(&mut buf, raw.len())?;
        let text = String::from_utf8_lossy(line);
        // `TopicConfig.encode()`: "name read write perm filterType attributesJson"
        let mut it = text.split(' ');
        let name = it.next().unwrap_or_default().to_string();
        let num = |s: Option<&str>, d: u32| s.and_then(|x| x.parse().ok()).unwrap_or(d);
        let read = num(it.next(), 16);
        let write = num(it.next(), 16);
        let perm = num(it.next(), 6);
        if !name.is_empty() {
            topics.push(TopicEntry {
                topic: name,
                read_queue_nums: read,
                write_queue_nums: write,
                perm,
                topic_sys_flag: 0,
            });
        }
    }
    let filters = take_chunk(&mut buf, raw.len())
        .ok()
        .and_then(|f| serde_json::from_slice::<Vec<String>>(f).ok())
        .unwrap_or_default();
    Ok((topics, data_version, filters))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reg(name: &str, addr: &str, topics: &[(&str, u32)]) -> Registration {
        Registration {
            cluster: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: 0,
            topics: topics
                .iter()
                .map(|(t, n)| TopicEntry {
                    topic: (*t).into(),
                    read_queue_nums: *n,
                    write_queue_nums: *n,
                    perm: 6,
                    topic_sys_flag: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn route_json_snapshot_for_cpp_and_java_clients() {
        let rt = RouteTable::new();
        rt.register(&reg("broker-a", "127.0.0.1:10911", &[("T", 4)]), 0, None);
        let quoted = rt.route_json("T", true).unwrap();
        assert_eq!(
            quoted,
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        // Standard JSON parses and numbers are numbers (jsoncpp asInt()).
        let v: Value = serde_json::from_str(&quoted).unwrap();
        assert!(v["queueDatas"][0]["readQueueNums"].is_u64());
        assert!(v["queueDatas"][0]["perm"].is_u64());
        let unquoted = rt.route_json("T", false).unwrap();
        assert!(
            unquoted.contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#),
            "{unquoted}"
        );
        assert!(crate::json::parse_lenient(unquoted.as_bytes()).is_ok());
        assert!(rt.route_json("nope", true).is_none());
    }

    #[test]
    fn reregistration_replaces_topics_and_expiry_removes() {
        let rt = RouteTable::new();
        rt.register(
            &reg("a", "1.1.1.1:1", &[("T1", 4), ("T2", 2)]),
            1000,
            Some(7),
        );
        rt.register(&reg("b", "2.2.2.2:1", &[("T1", 8)]), 1000, Some(8));
        let (q, b, _) = rt.route("T1").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(b.len(), 2);
        // a drops T2
        rt.register(&reg("a", "1.1.1.1:1", &[("T1", 4)]), 2000, Some(7));
        assert!(rt.route("T2").is_none());
        // b is not refreshed; just before expiry nothing happens
        assert!(rt.scan_expired(1000 + BROKER_EXPIRY_MS).is_empty());
        assert_eq!(
            rt.scan_expired(1001 + BROKER_EXPIRY_MS),
            vec!["2.2.2.2:1".to_string()]
        );
        let (q, _, _) = rt.route("T1").unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].broker_name, "a");
        // unregister removes the last broker: topic gone, cluster gone
        rt.unregister("DefaultCluster", "a", "1.1.1.1:1", 0);
        assert!(rt.route("T1").is_none());
        assert_eq!(
            rt.cluster_info_json(),
            r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#
        );
    }

    #[test]
    fn closed_connection_drops_its_brokers() {
        let rt = RouteTable::new();
        rt.register(&reg("a", "1.1.1.1:1", &[("T", 1)]), 0, Some(3));
        rt.connection_closed(4);
        assert!(rt.route("T").is_some());
        rt.connection_closed(3);
        assert!(rt.route("T").is_none());
        assert_eq!(rt.live_brokers(), 0);
    }

    #[test]
    fn cluster_info_and_topic_list() {
        let rt = RouteTable::new();
        rt.register(&reg("a", "1.1.1.1:1", &[("T", 1), ("TBW102", 4)]), 0, None);
        let v: Value = serde_json::from_str(&rt.cluster_info_json()).unwrap();
        assert_eq!(v["clusterAddrTable"]["DefaultCluster"][0], "a");
        assert_eq!(v["brokerAddrTable"]["a"]["brokerAddrs"]["0"], "1.1.1.1:1");
        let v: Value = serde_json::from_str(&rt.topic_list_json()).unwrap();
        assert_eq!(v["topicList"], json!(["T", "TBW102"]));
        let v: Value = serde_json::from_str(&rt.topics_of_cluster_json("DefaultCluster")).unwrap();
        assert_eq!(v["topicList"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn register_body_json_and_compressed() {
        let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1},"topicConfigTable":{"TBW102":{"order":false,"perm":7,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,"writeQueueNums":8}}}}"#;
        let (t, dv, f) = decode_register_body(body).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].perm, 7);
        assert_eq!(t[0].read_queue_nums, 8);
        assert_eq!(dv["counter"], 3);
        assert!(f.is_empty());

        let mut raw = Vec::new();
        let dvj = br#"{"counter":1}"#;
        raw.extend_from_slice(&(dvj.len() as i32).to_be_bytes());
        raw.extend_from_slice(dvj);
        raw.extend_from_slice(&1i32.to_be_bytes());
        let line = b"TopicX 3 2 6 SINGLE_TAG {}";
        raw.extend_from_slice(&(line.len() as i32).to_be_bytes());
        raw.extend_from_slice(line);
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(b"[]");
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).unwrap();
        let (t, dv, _) = decode_register_body(&enc.finish().unwrap()).unwrap();
        assert_eq!(
            t,
            vec![TopicEntry {
                topic: "TopicX".into(),
                read_queue_nums: 3,
                write_queue_nums: 2,
                perm: 6,
                topic_sys_flag: 0
            }]
        );
        assert_eq!(dv["counter"], 1);
        // garbage never panics
        assert!(decode_register_body(b"\x78\x9c garbage").is_err());
        assert!(decode_register_body(b"{not json").is_err());
    }

    #[test]
    fn slave_registration_learns_master() {
        let rt = RouteTable::new();
        let mut m = reg("a", "1.1.1.1:1", &[("T", 1)]);
        m.ha_server_addr = "1.1.1.1:2".into();
        rt.register(&m, 0, None);
        let mut s = reg("a", "3.3.3.3:1", &[]);
        s.broker_id = 1;
        let out = rt.register(&s, 0, None);
        assert_eq!(out.master_addr, "1.1.1.1:1");
        assert_eq!(out.ha_server_addr, "1.1.1.1:2");
        // the slave's (empty) topic list does not wipe the master's queue data
        assert!(rt.route("T").is_some());
    }
}
