//! An in-memory broker and nameserver behind the [`Connector`] seam, for testing the produce and
//! consume engines without a network (the smoke test in server/tests/ uses the real broker).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrocket_net::{Body, RemotingCommand};
use parking_lot::Mutex;

use super::rpc::{body_bytes, Connector, Rpc, RpcFuture};
use ferrocket_net::{RequestCode, ResponseCode};
use ferrocket_store::record::RecordParts;

use crate::broker::message::parse_batch;

/// GET_BROKER_RUNTIME_INFO.
const GET_BROKER_RUNTIME_INFO: i32 = 28;
pub const BROKER_ADDR: &str = "127.0.0.1:1";
pub const NAMESRV_ADDR: &str = "127.0.0.1:2";

#[derive(Default)]
pub struct MockBroker {
    pub queues: u32,
    /// Broker address announced in routes (default [`BROKER_ADDR`]).
    pub route_addr: Mutex<Option<String>>,
    /// Stored records per queue id.
    pub stored: Mutex<HashMap<i32, Vec<Vec<u8>>>>,
    pub requests: AtomicU64,
    pub batch_requests: AtomicU64,
    /// Every Nth send fails with SYSTEM_BUSY (0 = never).
    pub fail_every: u64,
}

impl MockBroker {
    pub fn new(queues: u32) -> Arc<Self> {
        Arc::new(Self {
            queues,
            ..Default::default()
        })
    }

    pub fn total_stored(&self) -> usize {
        self.stored.lock().values().map(Vec::len).sum()
    }

    fn respond(&self, req: RemotingCommand) -> RemotingCommand {
        let mut r = RemotingCommand {
            code: ResponseCode::SUCCESS,
            language: "JAVA".into(),
            opaque: req.opaque,
            flag: 1,
            ..Default::default()
        };
        let ext = &req.ext_fields;
        match req.code {
            RequestCode::GET_ROUTEINFO_BY_TOPIC => {
                let addr = self
                    .route_addr
                    .lock()
                    .clone()
                    .unwrap_or_else(|| BROKER_ADDR.to_string());
                let body = format!(
                    r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{addr}"}},"brokerName":"broker-a","cluster":"c"}}],"queueDatas":[{{"brokerName":"broker-a","perm":6,"readQueueNums":{q},"writeQueueNums":{q},"topicSysFlag":0}}]}}"#,
                    q = self.queues
                );
                r.body = Body::Bytes(Bytes::from(body));
            }
            RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_BATCH_MESSAGE => {
                let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
                if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
                    r.code = 2;
                    return r;
                }
                let q: i32 = ext["e"].parse().unwrap();
                assert_eq!(&ext["b"], "BenchTopic");
                let bodies: Vec<Vec<u8>> = if req.code == RequestCode::SEND_BATCH_MESSAGE {
                    self.batch_requests.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(&ext["m"], "true");
                    split_batch(body_bytes(&req))
                } else {
                    vec![body_bytes(&req).to_vec()]
                };
                let mut stored = self.stored.lock();
                let list = stored.entry(q).or_default();
                for b in bodies {
                    let off = list.len() as i64;
                    list.push(record(&b, off, q));
                }
                r.ext_fields.insert("queueOffset".into(), "0".into());
            }
            RequestCode::GET_MIN_OFFSET => {
                r.ext_fields.insert("offset".into(), "0".into());
            }
            RequestCode::GET_MAX_OFFSET => {
                let q: i32 = ext["queueId"].parse().unwrap();
                let n = self.stored.lock().get(&q).map_or(0, Vec::len);
                r.ext_fields.insert("offset".into(), n.to_string());
            }
            RequestCode::PULL_MESSAGE => {
                let q: i32 = ext["queueId"].parse().unwrap();
                let from: usize = ext["queueOffset"].parse().unwrap();
                let max: usize = ext["maxMsgNums"].parse().unwrap();
                let stored = self.stored.lock();
                let list = stored.get(&q).map(Vec::as_slice).unwrap_or(&[]);
                let end = list.len().min(from + max);
                r.ext_fields
                    .insert("suggestWhichBrokerId".into(), "0".into());
                r.ext_fields.insert("minOffset".into(), "0".into());
                r.ext_fields
                    .insert("maxOffset".into(), list.len().to_string());
                if from >= list.len() {
                    r.code = ResponseCode::PULL_NOT_FOUND;
                    r.ext_fields
                        .insert("nextBeginOffset".into(), from.to_string());
                } else {
                    r.body = Body::Bytes(Bytes::from(list[from..end].concat()));
                    r.ext_fields
                        .insert("nextBeginOffset".into(), end.to_string());
                }
            }
            GET_BROKER_RUNTIME_INFO => {
                // One "group commit" per send request, so tests can check the tool's arithmetic.
                let syncs = self.requests.load(Ordering::SeqCst);
                r.body = Body::Bytes(Bytes::from(format!(
                    r#"{{"table":{{"commitLogSyncCount":"{syncs}"}}}}"#
                )));
            }
            _ => r.code = 3,
        }
        r
    }
}

/// Splits a batch body (§3.5) with the broker's own parser.
fn split_batch(b: &[u8]) -> Vec<Vec<u8>> {
    parse_batch(b)
        .unwrap()
        .into_iter()
        .map(|i| i.body)
        .collect()
}

/// A stored record (§3.1) with the store's encoder.
fn record(body: &[u8], queue_offset: i64, queue_id: i32) -> Vec<u8> {
    RecordParts {
        queue_id,
        flag: 0,
        queue_offset,
        phy_offset: 0,
        sys_flag: 0,
        born_timestamp: 0,
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_timestamp: 0,
        store_host: "127.0.0.1:2".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: 0,
        body,
        topic: "BenchTopic",
        properties: "",
    }
    .to_vec()
    .unwrap()
}

struct MockRpc {
    broker: Arc<MockBroker>,
}

/// Answers `cmd`; a suspended pull that finds nothing is held (polled every ms) until a message
/// arrives or its suspend timeout passes, like the broker's long polling.
pub async fn handle(
    broker: &MockBroker,
    cmd: RemotingCommand,
    timeout: Duration,
) -> RemotingCommand {
    let suspend = cmd.code == RequestCode::PULL_MESSAGE
        && cmd.ext_fields["sysFlag"].parse::<i32>().unwrap() & 2 != 0;
    let hold: u64 = if suspend {
        cmd.ext_fields["suspendTimeoutMillis"].parse().unwrap()
    } else {
        0
    };
    let t0 = std::time::Instant::now();
    loop {
        let r = broker.respond(cmd.clone());
        if r.code != ResponseCode::PULL_NOT_FOUND
            || t0.elapsed() >= Duration::from_millis(hold)
            || t0.elapsed() >= timeout
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Rpc for MockRpc {
    fn call(&self, cmd: RemotingCommand, timeout: Duration) -> RpcFuture<'_> {
        Box::pin(async move { Ok(handle(&self.broker, cmd, timeout).await) })
    }
}

/// The mock broker behind a real net `Server`, to test the load tool over TCP.
pub struct MockProcessor(pub Arc<MockBroker>);

impl ferrocket_net::Processor for MockProcessor {
    fn process(
        &self,
        _conn: ferrocket_net::ConnectionHandle,
        req: RemotingCommand,
    ) -> ferrocket_net::BoxFuture<Option<RemotingCommand>> {
        let b = Arc::clone(&self.0);
        Box::pin(async move { Some(handle(&b, req, Duration::from_secs(60)).await) })
    }
}

/// `bench produce` arguments as a parseable command line, for tests that build a produce plan.
#[derive(clap::Parser)]
pub struct ProduceCli {
    #[command(flatten)]
    pub a: super::produce::ProduceArgs,
}

pub struct MockConnector {
    pub broker: Arc<MockBroker>,
}

impl Connector for MockConnector {
    fn connect(&self, addr: &str) -> Result<Arc<dyn Rpc>, String> {
        if addr != BROKER_ADDR && addr != NAMESRV_ADDR {
            return Err(format!("mock: unknown address {addr}"));
        }
        Ok(Arc::new(MockRpc {
            broker: Arc::clone(&self.broker),
        }))
    }
}
