//! `WireError`: everything that can go wrong decoding or moving RocketMQ remoting frames.

use std::io;

/// Errors of the remoting layer. It has no dependency on the store: the server maps these to
/// response codes at its edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The 4-byte length prefix announces more than the configured cap (or is negative/too small).
    #[error("frame length {len} outside 4..={max}")]
    FrameLength { len: i64, max: usize },
    /// The header length word points past the end of the frame.
    #[error("header length {header_len} exceeds frame length {frame_len}")]
    HeaderLength { header_len: usize, frame_len: usize },
    /// Serialize-type byte other than 0 (JSON) or 1 (ROCKETMQ).
    #[error("unknown serialize type {0}")]
    SerializeType(u8),
    /// The JSON header did not parse.
    #[error("bad JSON header: {0}")]
    Json(String),
    /// The ROCKETMQ binary header is malformed.
    #[error("bad binary header at byte {at}: {reason}")]
    Binary { at: usize, reason: &'static str },
    /// A typed header misses a required extFields entry.
    #[error("missing header field {field}")]
    MissingField { field: &'static str },
    /// A typed header field does not parse as its declared type.
    #[error("bad header field {field}: {value:?} ({expected})")]
    BadField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A connection or socket error (the peer, the kernel).
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The connection closed before a response arrived.
    #[error("connection to {0} closed")]
    ConnectionClosed(String),
    /// No response within the deadline.
    #[error("request {opaque} to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        addr: String,
        opaque: i32,
        timeout_ms: u64,
    },
    /// The per-connection queue of outgoing commands is full.
    #[error("outgoing queue full")]
    Backpressure,
}

impl WireError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> WireError {
        move |source| WireError::Io { context, source }
    }

    /// The name of the offending field, for `MissingField`/`BadField`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WireError::MissingField { field } | WireError::BadField { field, .. } => Some(field),
            _ => None,
        }
    }
}

pub type Result<T, E = WireError> = std::result::Result<T, E>;
