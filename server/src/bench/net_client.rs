//! [`Connector`] over the net crate's [`Client`]: one `Client` (so one TCP connection) per
//! `connect`, requests multiplexed on it by opaque.

use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::{Client, ClientConfig, RemotingCommand};

use super::rpc::{Connector, Rpc, RpcFuture};

/// Opens connections with the net crate's client.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetConnector;

struct NetRpc {
    client: Client,
    addr: String,
}

impl Rpc for NetRpc {
    fn call(&self, cmd: RemotingCommand, timeout: Duration) -> RpcFuture<'_> {
        Box::pin(async move {
            self.client
                .invoke(&self.addr, cmd, timeout)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl Connector for NetConnector {
    fn connect(&self, addr: &str) -> Result<Arc<dyn Rpc>, String> {
        Ok(Arc::new(NetRpc {
            client: Client::new(ClientConfig::default()),
            addr: addr.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    //! The load tool over real TCP: the net crate's client against the net crate's server
    //! answering with the in-memory mock broker.
    use super::*;
    use crate::bench::consume::{self, ConsumeArgs, ConsumePlan};
    use crate::bench::mock::{MockBroker, MockProcessor};
    use crate::bench::produce::{self, ProduceArgs, ProducePlan};
    use crate::bench::report::Live;
    use crate::bench::rpc::fetch_route;
    use crate::bench::wire::RouteUse;
    use clap::Parser;
    use ferrocket_net::{Server, ServerConfig};

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: ProduceArgs,
    }
    #[derive(Parser)]
    struct C {
        #[command(flatten)]
        a: ConsumeArgs,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn produce_then_consume_over_tcp() {
        let broker = MockBroker::new(2);
        let server = Server::bind(
            ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..Default::default()
            },
            Arc::new(MockProcessor(Arc::clone(&broker))),
        )
        .await
        .unwrap();
        let addr = server.local_addr().to_string();
        *broker.route_addr.lock() = Some(addr.clone());
        let shutdown = server.shutdown_handle();
        let serving = tokio::spawn(server.serve());

        let conn = NetConnector;
        let pa = P::try_parse_from([
            "x",
            "--count",
            "300",
            "--batch",
            "4",
            "--connections",
            "2",
            "--inflight",
            "4",
        ])
        .unwrap()
        .a;
        let plan = ProducePlan::from_args(&pa).unwrap();
        let targets = fetch_route(&conn, &addr, "BenchTopic", RouteUse::Write, plan.timeout)
            .await
            .unwrap();
        let (rec, _) = produce::run_plan(plan, targets, &conn, Arc::new(Live::default()))
            .await
            .unwrap();
        assert_eq!((rec.msgs, rec.errors), (300, 0));
        assert_eq!(broker.total_stored(), 300);

        let ca = C::try_parse_from(["x", "--from-start", "--until-caught-up"])
            .unwrap()
            .a;
        let cplan = ConsumePlan::from_args(&ca).unwrap();
        let queues = fetch_route(&conn, &addr, "BenchTopic", RouteUse::Read, cplan.timeout)
            .await
            .unwrap();
        let crec = consume::run_plan(cplan, queues, &conn, Arc::new(Live::default()))
            .await
            .unwrap()
            .rec;
        assert_eq!((crec.msgs, crec.errors), (300, 0));
        assert_eq!(crec.hist.len(), 300);

        shutdown.shutdown();
        let _ = serving.await;
    }
}
