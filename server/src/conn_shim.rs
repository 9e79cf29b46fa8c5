//! Placeholder for net's `ConnectionHandle` until the net crate lands it (removed then).

use std::net::SocketAddr;

use ferrocket_net::RemotingCommand;

#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
}

impl ConnectionHandle {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Self {
        Self { id, peer, local }
    }
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    pub fn send_oneway(&self, _cmd: RemotingCommand) {}
    pub fn language(&self) -> String {
        String::new()
    }
    pub fn version(&self) -> i32 {
        0
    }
}
