//! `ferrocket bench null-broker`: a nameserver+broker that stores nothing and acknowledges every
//! send at once, on the net crate's server. Running `bench produce` against it measures the
//! ceiling of the load generator plus the remoting layer on this machine, so a broker figure can
//! be read against it (what is the broker's cost, what is the tool's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrocket_net::{
    Body, BoxFuture, ConnectionHandle, Processor, RemotingCommand, Server, ServerConfig,
};

use ferrocket_net::{RequestCode, ResponseCode};

#[derive(Debug, Clone, clap::Args)]
pub struct NullBrokerArgs {
    /// Port to listen on (nameserver and broker requests both go here); 0 = any free port.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Queues announced per topic.
    #[arg(long, default_value_t = 4)]
    pub queues: u32,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// Answers routes with itself, sends with SUCCESS, offsets with 0, pulls with PULL_NOT_FOUND.
pub struct NullBroker {
    addr: String,
    queues: u32,
    sends: AtomicU64,
}

impl NullBroker {
    pub fn new(addr: String, queues: u32) -> Self {
        Self {
            addr,
            queues,
            sends: AtomicU64::new(0),
        }
    }

    pub fn answer(&self, req: &RemotingCommand) -> RemotingCommand {
        match req.code {
            RequestCode::GET_ROUTEINFO_BY_TOPIC => {
                let body = format!(
                    r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{}"}},"brokerName":"null-broker","cluster":"DefaultCluster"}}],"queueDatas":[{{"brokerName":"null-broker","perm":6,"readQueueNums":{q},"writeQueueNums":{q},"topicSysFlag":0}}]}}"#,
                    self.addr,
                    q = self.queues
                );
                RemotingCommand::success(req).with_body(Body::Bytes(Bytes::from(body)))
            }
            RequestCode::SEND_MESSAGE_V2 | RequestCode::SEND_BATCH_MESSAGE => {
                let n = self.sends.fetch_add(1, Ordering::Relaxed);
                RemotingCommand::success(req)
                    .with_ext("msgId", format!("7F00000100002A9F{n:016X}"))
                    .with_ext(
                        "queueId",
                        req.ext_fields.get("e").unwrap_or_default().to_owned(),
                    )
                    .with_ext("queueOffset", n.to_string())
            }
            RequestCode::GET_MIN_OFFSET | RequestCode::GET_MAX_OFFSET => {
                RemotingCommand::success(req).with_ext("offset", "0")
            }
            RequestCode::PULL_MESSAGE => {
                RemotingCommand::response_to(req, ResponseCode::PULL_NOT_FOUND, "")
                    .with_ext("suggestWhichBrokerId", "0")
                    .with_ext("nextBeginOffset", "0")
                    .with_ext("minOffset", "0")
                    .with_ext("maxOffset", "0")
            }
            _ => RemotingCommand::not_supported(req),
        }
    }
}

struct NullProcessor(Arc<NullBroker>);

impl Processor for NullProcessor {
    fn process(
        &self,
        _conn: ConnectionHandle,
        req: RemotingCommand,
    ) -> BoxFuture<Option<RemotingCommand>> {
        let r = self.0.answer(&req);
        Box::pin(async move { Some(r) })
    }
}

/// The `bench null-broker` command: serves until killed.
pub fn run(a: NullBrokerArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
        // The route must name the bound port, which is only known after bind: bind first with a
        // placeholder broker, then swap in the real address.
        let cell: Arc<parking_lot::RwLock<Option<Arc<NullBroker>>>> = Arc::default();
        struct Late(Arc<parking_lot::RwLock<Option<Arc<NullBroker>>>>);
        impl Processor for Late {
            fn process(
                &self,
                conn: ConnectionHandle,
                req: RemotingCommand,
            ) -> BoxFuture<Option<RemotingCommand>> {
                match self.0.read().as_ref() {
                    Some(b) => NullProcessor(Arc::clone(b)).process(conn, req),
                    None => Box::pin(async { None }),
                }
            }
        }
        let server = Server::bind(
            ServerConfig {
                listen,
                ..Default::default()
            },
            Arc::new(Late(Arc::clone(&cell))),
        )
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = server.local_addr().to_string();
        *cell.write() = Some(Arc::new(NullBroker::new(addr.clone(), a.queues)));
        println!("null broker listening on {addr} (use it as --namesrv)");
        server.serve().await.map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::wire::{parse_route, RouteUse};

    #[test]
    fn answers_routes_and_sends() {
        let b = NullBroker::new("127.0.0.1:5".into(), 3);
        let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        req.opaque = 7;
        let r = b.answer(&req);
        assert_eq!(r.opaque, 7);
        let Body::Bytes(body) = &r.body else {
            panic!("route body")
        };
        assert_eq!(parse_route(body, RouteUse::Write).unwrap().len(), 3);
        let send = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2).with_ext("e", "2");
        let r = b.answer(&send);
        assert_eq!(r.code, ResponseCode::SUCCESS);
        assert_eq!(&r.ext_fields["queueId"], "2");
    }
}
