//! The nameserver: answers brokers' registrations and clients' route queries from the in-memory
//! [`RouteTable`], and expires brokers that stop registering.

pub mod route_table;

use std::sync::Arc;

use ferrocket_net::{Body, RemotingCommand};

use crate::reply::{code, now_ms, ok, reply, req as rc, with_fields, FieldError, Fields};
pub use route_table::{Registration, RouteTable};

/// How often expired brokers are looked for (`scanNotActiveBrokerInterval`).
pub const SCAN_INTERVAL_MS: u64 = 5000;
/// Clients at or above this version get standard JSON route keys (Java's V4_9_4 rule).
const STANDARD_JSON_VERSION: i32 = 401;

/// Request codes of the KV config (`KVConfigManager`), kept in memory.
const PUT_KV_CONFIG: i32 = 100;
const GET_KV_CONFIG: i32 = 101;
const DELETE_KV_CONFIG: i32 = 102;
const GET_KVLIST_BY_NAMESPACE: i32 = 219;
/// Bound on KV entries (a client cannot grow the nameserver's memory without limit).
const KV_ENTRIES_MAX: usize = 100_000;

/// The nameserver's request handling (transport-independent, so tests call it directly).
#[derive(Default)]
pub struct Namesrv {
    pub routes: RouteTable,
    /// namespace → key → value (RocketMQ's kvConfig; in memory only here).
    kv: parking_lot::RwLock<
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    >,
}

/// The bytes of a request body.
pub fn body_bytes(cmd: &RemotingCommand) -> &[u8] {
    match &cmd.body {
        Body::Bytes(b) => b,
        _ => &[],
    }
}

impl Namesrv {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Answers one request. `conn_id` identifies the connection (a broker's registration is
    /// dropped when its connection closes).
    pub fn handle(&self, conn_id: u64, req: &RemotingCommand) -> RemotingCommand {
        let result = match req.code {
            rc::REGISTER_BROKER => self.register_broker(conn_id, req),
            rc::UNREGISTER_BROKER => self.unregister_broker(req),
            rc::GET_ROUTEINFO_BY_TOPIC => self.route_by_topic(req),
            rc::GET_BROKER_CLUSTER_INFO => Ok(with_body(ok(req), self.routes.cluster_info_json())),
            rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                Ok(with_body(ok(req), self.routes.topic_list_json()))
            }
            rc::GET_TOPICS_BY_CLUSTER => Fields::of(req)
                .str("cluster")
                .map(|c| with_body(ok(req), self.routes.topics_of_cluster_json(c))),
            rc::QUERY_DATA_VERSION => self.query_data_version(req),
            PUT_KV_CONFIG | GET_KV_CONFIG | DELETE_KV_CONFIG | GET_KVLIST_BY_NAMESPACE => {
                self.kv_config(req)
            }
            _ => Ok(crate::reply::not_supported(req)),
        };
        result.unwrap_or_else(|e| e.to_reply(req))
    }

    fn register_broker(
        &self,
        conn_id: u64,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, FieldError> {
        let f = Fields::of(req);
        let body = body_bytes(req);
        let crc = f.opt_i32("bodyCrc32")?.unwrap_or(0);
        if crc != 0 {
            let actual = (crc32fast::hash(body) & 0x7FFF_FFFF) as i32;
            if actual != crc {
                return Ok(reply(req, code::SYSTEM_ERROR, "crc32 not match"));
            }
        }
        let (topics, data_version, filter_servers) = match route_table::decode_register_body(body) {
            Ok(x) => x,
            Err(e) => {
                return Ok(reply(
                    req,
                    code::SYSTEM_ERROR,
                    format!("register broker failed: {e}"),
                ))
            }
        };
        let broker_id = f.i64("brokerId")?;
        let r = Registration {
            cluster: f.str("clusterName")?.to_string(),
            broker_name: f.str("brokerName")?.to_string(),
            broker_addr: f.str("brokerAddr")?.to_string(),
            broker_id: u64::try_from(broker_id).map_err(|_| FieldError::Bad {
                field: "brokerId",
                value: broker_id.to_string(),
            })?,
            ha_server_addr: f.opt_str("haServerAddr").unwrap_or_default().to_string(),
            heartbeat_timeout_ms: f.opt_i64("heartbeatTimeoutMillis")?,
            enable_acting_master: f.opt_bool("enableActingMaster").unwrap_or(false),
            topics,
            data_version,
            filter_servers,
        };
        let out = self.routes.register(&r, now_ms(), Some(conn_id));
        tracing::debug!(broker = %r.broker_name, addr = %r.broker_addr, topics = r.topics.len(), "broker registered");
        Ok(with_fields(
            ok(req),
            &[
                ("haServerAddr", out.ha_server_addr),
                ("masterAddr", out.master_addr),
            ],
        ))
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Result<RemotingCommand, FieldError> {
        let f = Fields::of(req);
        let id = f.i64("brokerId")?;
        self.routes.unregister(
            f.str("clusterName")?,
            f.str("brokerName")?,
            f.str("brokerAddr")?,
            u64::try_from(id).unwrap_or(u64::MAX),
        );
        Ok(ok(req))
    }

    fn route_by_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, FieldError> {
        let f = Fields::of(req);
        let topic = f.str("topic")?;
        let quote = req.version >= STANDARD_JSON_VERSION
            || f.opt_bool("acceptStandardJsonOnly").unwrap_or(false);
        Ok(match self.routes.route_json(topic, quote) {
            Some(body) => with_body(ok(req), body),
            None => reply(
                req,
                code::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {topic}"),
            ),
        })
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Result<RemotingCommand, FieldError> {
        let f = Fields::of(req);
        let addr = f.str("brokerAddr")?;
        let dv = crate::json::parse_lenient(body_bytes(req)).unwrap_or(serde_json::Value::Null);
        let changed = self.routes.touch(addr, &dv, now_ms());
        Ok(with_fields(ok(req), &[("changed", changed.to_string())]))
    }
}

impl Namesrv {
    fn kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, FieldError> {
        let f = Fields::of(req);
        let ns = f.str("namespace")?;
        match req.code {
            PUT_KV_CONFIG => {
                let (key, value) = (f.str("key")?, f.str("value")?);
                let mut kv = self.kv.write();
                let total: usize = kv.values().map(|m| m.len()).sum();
                if total >= KV_ENTRIES_MAX {
                    return Ok(reply(req, code::SYSTEM_ERROR, "too many kv config entries"));
                }
                kv.entry(ns.to_string())
                    .or_default()
                    .insert(key.to_string(), value.to_string());
                Ok(ok(req))
            }
            GET_KV_CONFIG => {
                let key = f.str("key")?;
                Ok(match self.kv.read().get(ns).and_then(|m| m.get(key)) {
                    Some(v) => with_fields(ok(req), &[("value", v.clone())]),
                    None => reply(
                        req,
                        code::QUERY_NOT_FOUND,
                        format!("No config item, Namespace: {ns} Key: {key}"),
                    ),
                })
            }
            DELETE_KV_CONFIG => {
                let key = f.str("key")?;
                let mut kv = self.kv.write();
                if let Some(m) = kv.get_mut(ns) {
                    m.remove(key);
                    if m.is_empty() {
                        kv.remove(ns);
                    }
                }
                Ok(ok(req))
            }
            _ => Ok(match self.kv.read().get(ns) {
                Some(m) => with_body(ok(req), serde_json::json!({ "table": m }).to_string()),
                None => reply(
                    req,
                    code::QUERY_NOT_FOUND,
                    format!("No config item, Namespace: {ns}"),
                ),
            }),
        }
    }
}

/// Attaches a JSON string body.
pub fn with_body(mut cmd: RemotingCommand, body: String) -> RemotingCommand {
    cmd.body = Body::Bytes(bytes::Bytes::from(body.into_bytes()));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(code: i32, fields: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
        RemotingCommand {
            code,
            language: "CPP".into(),
            version: 63,
            opaque: 5,
            ext_fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Body::Bytes(bytes::Bytes::copy_from_slice(body)),
            ..Default::default()
        }
    }

    #[test]
    fn register_then_route_then_unknown_topic() {
        let ns = Namesrv::default();
        let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1},"topicConfigTable":{"TBW102":{"perm":7,"readQueueNums":4,"writeQueueNums":4,"topicName":"TBW102"}}}}"#;
        let crc = (crc32fast::hash(body) & 0x7FFF_FFFF).to_string();
        let reg = request(
            rc::REGISTER_BROKER,
            &[
                ("brokerName", "broker-a"),
                ("brokerAddr", "127.0.0.1:10911"),
                ("clusterName", "DefaultCluster"),
                ("haServerAddr", "127.0.0.1:10912"),
                ("brokerId", "0"),
                ("bodyCrc32", &crc),
            ],
            body,
        );
        let r = ns.handle(1, &reg);
        assert_eq!(r.code, code::SUCCESS, "{:?}", r.remark);
        assert_eq!(r.opaque, 5);

        let q = ns.handle(
            2,
            &request(rc::GET_ROUTEINFO_BY_TOPIC, &[("topic", "TBW102")], b""),
        );
        assert_eq!(q.code, code::SUCCESS);
        let text = String::from_utf8(body_bytes(&q).to_vec()).unwrap();
        assert!(
            text.contains(r#"{0:"127.0.0.1:10911"}"#),
            "C++ (v63) gets fastjson keys: {text}"
        );
        assert!(text.contains(r#""perm":7"#));

        let q = ns.handle(
            2,
            &request(rc::GET_ROUTEINFO_BY_TOPIC, &[("topic", "Nope")], b""),
        );
        assert_eq!(q.code, code::TOPIC_NOT_EXIST);
        assert!(q.remark.unwrap().contains("Nope"));

        let bad_crc = request(rc::REGISTER_BROKER, &[("bodyCrc32", "12345")], body);
        assert_eq!(ns.handle(1, &bad_crc).code, code::SYSTEM_ERROR);
        let missing = request(rc::REGISTER_BROKER, &[("brokerName", "x")], b"");
        let r = ns.handle(1, &missing);
        assert_eq!(r.code, code::SYSTEM_ERROR);
        assert!(r.remark.unwrap().contains("brokerId"));
        assert_eq!(
            ns.handle(1, &request(9999, &[], b"")).code,
            code::REQUEST_CODE_NOT_SUPPORTED
        );
    }
}
