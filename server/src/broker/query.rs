//! QUERY_MESSAGE and VIEW_MESSAGE_BY_ID (owned by server-extra; agreed-signature stub).

use std::sync::Arc;

use ferrocket_net::RemotingCommand;

use super::{Broker, ConnectionHandle};
use crate::reply::req;

pub const CODES: &[i32] = &[req::QUERY_MESSAGE, req::VIEW_MESSAGE_BY_ID];

pub async fn handle(
    _b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    Some(crate::reply::not_supported(&req))
}
