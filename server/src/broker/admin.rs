//! Admin requests: UPDATE/GET_BROKER_CONFIG (allowlist), topic admin, runtime info (owned by
//! server-extra; agreed-signature stub).

use std::sync::Arc;

use ferrocket_net::RemotingCommand;

use super::{Broker, ConnectionHandle};
use crate::reply::req;

pub const CODES: &[i32] = &[req::UPDATE_BROKER_CONFIG, req::GET_BROKER_CONFIG];

pub async fn handle(
    _b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    Some(crate::reply::not_supported(&req))
}
