//! [`Connector`] over the net crate's client: one `Client` per connection.

use std::sync::Arc;
use std::time::Duration;

use ferrocket_net::RemotingCommand;

use super::rpc::{Connector, Rpc, RpcFuture};

/// Opens connections with the net crate's `Client`.
#[derive(Debug, Default, Clone)]
pub struct NetConnector;

struct NetRpc {
    addr: String,
}

impl Rpc for NetRpc {
    fn call(&self, _cmd: RemotingCommand, _timeout: Duration) -> RpcFuture<'_> {
        let addr = self.addr.clone();
        Box::pin(async move { Err(format!("{addr}: the net client has not landed yet")) })
    }
}

impl Connector for NetConnector {
    fn connect(&self, addr: &str) -> Result<Arc<dyn Rpc>, String> {
        Ok(Arc::new(NetRpc {
            addr: addr.to_string(),
        }))
    }
}
