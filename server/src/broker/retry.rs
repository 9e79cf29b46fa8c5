//! CONSUMER_SEND_MSG_BACK and %RETRY%/%DLQ% routing (owned by server-extra; agreed-signature stub).

use std::sync::Arc;

use ferrocket_net::RemotingCommand;

use super::{Broker, ConnectionHandle};
use crate::reply::req;

pub const CODES: &[i32] = &[req::CONSUMER_SEND_MSG_BACK];

pub async fn handle(
    _b: &Arc<Broker>,
    _conn: &ConnectionHandle,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    Some(crate::reply::not_supported(&req))
}

/// Send-path handling of a message sent to a `%RETRY%` topic (§7.3): may reroute it to
/// `%DLQ%<group>`; `Err((code, remark))` refuses the send.
pub fn adjust_retry_send(
    _b: &Broker,
    _reconsume_times: i32,
    _max_reconsume_times: Option<i32>,
    _msg: &mut ferrocket_store::MessageInput,
) -> Result<(), (i32, String)> {
    Ok(())
}
