//! `RemotingCommand`: one request or response. CONTRACT between `net` and `server`.

use std::collections::HashMap;
use std::sync::Arc;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: oneway request (no response expected).
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// A byte range of an open file that a response body can point at. The server implements it for
/// store slices; `net` sends it with sendfile/splice/io_uring, or copies `as_bytes()` for tiny
/// bodies.
pub trait FileRegion: Send + Sync {
    /// The open file holding the bytes.
    fn file(&self) -> &std::fs::File;
    /// Offset of the first byte within `file()`.
    fn file_offset(&self) -> u64;
    /// Number of bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The same bytes, mapped in memory (for the copying path and tests).
    fn as_bytes(&self) -> &[u8];
}

/// A response or request body.
#[derive(Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    Bytes(bytes::Bytes),
    /// Concatenation of file regions, sent without copying.
    Regions(Vec<Arc<dyn FileRegion>>),
}

#[derive(Clone, Default)]
pub struct RemotingCommand {
    pub code: i32,
    /// Language name as on the wire in JSON ("JAVA", "CPP", "GO", "RUST", ...).
    pub language: String,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// Custom header fields, as strings (numbers/booleans from clients are converted).
    pub ext_fields: HashMap<String, String>,
    pub body: Body,
}

// CONTRACT (implemented by the net helper):
//   RemotingCommand::request(code) / ::response(code, remark) / .is_response() / .is_oneway()
//   .response_to(&req, code) -> RemotingCommand   (copies opaque, sets FLAG_RESPONSE)
//   Typed headers: `FromExtFields` / `ToExtFields` traits with errors naming the field
//   (WireError::BadField { field, value }) for every header of reference §2.
//
//   Server: `Server::bind(config: ServerConfig, processor: Arc<dyn Processor>) -> Result<Server>`
//     `server.local_addr()`, `server.run()/serve().await`, `server.shutdown_handle()`.
//   trait Processor: Send + Sync + 'static {
//       fn process(&self, conn: ConnectionHandle, req: RemotingCommand)
//           -> futures-style BoxFuture<'static, Option<RemotingCommand>>;   // None = no reply
//       fn on_close(&self, conn: &ConnectionHandle) {}
//   }
//   ConnectionHandle: Clone + Send + Sync: id(), peer_addr(), local_addr(), and
//     `send_oneway(cmd)` to push a server->client request (NOTIFY_CONSUMER_IDS_CHANGED).
//   Unknown codes are answered by the processor (REQUEST_CODE_NOT_SUPPORTED helper provided).
//
//   Client: `Client::new(ClientConfig)`; `invoke(addr, cmd, timeout).await -> Result<RemotingCommand>`,
//     `invoke_oneway(addr, cmd).await`, connection reuse and reconnect.
