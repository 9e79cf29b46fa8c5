//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ (owned by server-extra; agreed-signature stub).

use std::sync::Arc;

use ferrocket_net::RemotingCommand;

use super::{Broker, ConnectionHandle};
use crate::reply::req;

pub const CODES: &[i32] = &[req::LOCK_BATCH_MQ, req::UNLOCK_BATCH_MQ];

pub struct LockManager {
    _lock_max_live_ms: u64,
}

impl LockManager {
    pub fn new(lock_max_live_ms: u64) -> Self {
        Self {
            _lock_max_live_ms: lock_max_live_ms,
        }
    }
}

pub async fn handle(
    _b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    Some(crate::reply::not_supported(&req))
}
