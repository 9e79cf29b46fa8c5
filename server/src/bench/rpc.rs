//! The one seam between the load tool and the network: a connection that answers requests. The
//! real one is the net crate's `Client`; tests use an in-memory broker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::{Body, RemotingCommand};

pub type RpcFuture<'a> = Pin<Box<dyn Future<Output = Result<RemotingCommand, String>> + Send + 'a>>;

/// One connection to one server; concurrent calls are multiplexed on it.
pub trait Rpc: Send + Sync {
    fn call(&self, cmd: RemotingCommand, timeout: Duration) -> RpcFuture<'_>;
}

/// Opens connections. Each `connect` returns a distinct connection, so `--connections C` gives C
/// sockets per broker.
pub trait Connector: Send + Sync {
    fn connect(&self, addr: &str) -> Result<Arc<dyn Rpc>, String>;
}

/// Language and version the tool announces (version ≥ V4_9_4 asks the nameserver for standard
/// JSON route bodies).
pub const LANGUAGE: &str = "RUST";
pub const VERSION: i32 = 479;

/// A request with the given code, extFields and body.
pub fn request(
    code: i32,
    ext: ferrocket_net::ExtFields,
    body: Option<bytes::Bytes>,
) -> RemotingCommand {
    RemotingCommand {
        code,
        language: LANGUAGE.to_string(),
        version: VERSION,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: ext,
        body: body.map(Body::Bytes).unwrap_or(Body::Empty),
    }
}

/// The bytes of a response body (responses received by a client are always in memory).
pub fn body_bytes(cmd: &RemotingCommand) -> &[u8] {
    match &cmd.body {
        Body::Bytes(b) => b,
        _ => &[],
    }
}

/// The broker's GET_BROKER_RUNTIME_INFO `commitLogSyncCount` (CommitLog syncs since boot), or
/// `None` when the broker does not answer it (another broker, an error, a timeout).
pub async fn broker_sync_count(
    connector: &dyn Connector,
    broker: &str,
    timeout: Duration,
) -> Option<u64> {
    const GET_BROKER_RUNTIME_INFO: i32 = 28;
    let rpc = connector.connect(broker).ok()?;
    let resp = rpc
        .call(
            request(
                GET_BROKER_RUNTIME_INFO,
                ferrocket_net::ExtFields::new(),
                None,
            ),
            timeout,
        )
        .await
        .ok()?;
    if resp.code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body_bytes(&resp)).ok()?;
    v.get("table")?
        .get("commitLogSyncCount")?
        .as_str()?
        .parse()
        .ok()
}

/// How long a route lookup keeps retrying while the nameserver does not know the topic yet (a
/// broker registers shortly after it boots).
const ROUTE_RETRY_FOR: Duration = Duration::from_secs(5);

/// Asks the nameserver at `namesrv` for the route of `topic` and returns its usable master
/// queues. For a producer, a topic the nameserver does not know yet falls back to the brokers of
/// the auto-create template topic `TBW102` with 4 queues, as real clients do (the first send
/// creates the topic when the broker has autoCreateTopicEnable). Retries for a few seconds while
/// neither is known.
pub async fn fetch_route(
    connector: &dyn Connector,
    namesrv: &str,
    topic: &str,
    usage: crate::bench::wire::RouteUse,
    timeout: Duration,
) -> Result<Vec<crate::bench::wire::QueueTarget>, String> {
    let t0 = std::time::Instant::now();
    let ns = connector.connect(namesrv)?;
    loop {
        match route_once(ns.as_ref(), namesrv, topic, usage, timeout).await {
            Ok(Some(r)) => return Ok(r),
            Ok(None) if t0.elapsed() < ROUTE_RETRY_FOR => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => {
                return Err(format!(
                "nameserver {namesrv} has no route for topic {topic} (nor for TBW102) after {:?}",
                ROUTE_RETRY_FOR
            ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// One route query; `Ok(None)` when the nameserver does not know the topic (yet).
async fn route_once(
    ns: &dyn Rpc,
    namesrv: &str,
    topic: &str,
    usage: crate::bench::wire::RouteUse,
    timeout: Duration,
) -> Result<Option<Vec<crate::bench::wire::QueueTarget>>, String> {
    use crate::bench::wire::{parse_route, QueueTarget, RouteUse};
    use ferrocket_net::header::namesrv::GetRouteInfoRequestHeader;
    use ferrocket_net::{RequestCode, ResponseCode};
    let ask = |t: &str| {
        let h = GetRouteInfoRequestHeader {
            topic: t.to_string(),
            accept_standard_json_only: Some(true),
        };
        request(RequestCode::GET_ROUTEINFO_BY_TOPIC, h.to_ext(), None)
    };
    let r = ns
        .call(ask(topic), timeout)
        .await
        .map_err(|e| format!("route query to nameserver {namesrv}: {e}"))?;
    if r.code == ResponseCode::SUCCESS {
        return parse_route(body_bytes(&r), usage).map(Some);
    }
    if r.code != ResponseCode::TOPIC_NOT_EXIST {
        return Err(format!(
            "route query for {topic} to {namesrv}: code {} {}",
            r.code,
            r.remark.unwrap_or_default()
        ));
    }
    if usage != RouteUse::Write {
        return Ok(None);
    }
    let t = ns
        .call(ask("TBW102"), timeout)
        .await
        .map_err(|e| format!("route query to nameserver {namesrv}: {e}"))?;
    if t.code != ResponseCode::SUCCESS {
        return Ok(None);
    }
    let mut brokers: Vec<QueueTarget> = parse_route(body_bytes(&t), usage)?;
    brokers.dedup_by(|a, b| a.broker_name == b.broker_name);
    let mut out = Vec::new();
    for b in brokers {
        for q in 0..4 {
            out.push(QueueTarget {
                queue_id: q,
                ..b.clone()
            });
        }
    }
    Ok(Some(out))
}
