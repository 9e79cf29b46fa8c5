//! `StoreError`: failures the store reports. Outcomes that are not failures (offset too small, no
//! new message, flush timeout after the append) are statuses, not errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The message breaks a limit (body, properties or topic too long, bad queue id...).
    /// The broker answers MESSAGE_ILLEGAL (13).
    #[error("message illegal: {0}")]
    MessageIllegal(String),
    /// The disk is full (or above the warning ratio); nothing was written.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// Writes are refused for good (a failed fsync/msync, or shutdown): the environment can no
    /// longer be trusted. The broker answers SERVICE_NOT_AVAILABLE (14).
    #[error("store does not accept writes: {0}")]
    WriteDisabled(String),
    /// Another process holds the store directory's lock file.
    #[error("store directory is locked by another process: {0}")]
    Locked(PathBuf),
    /// An I/O error, with the file it concerns.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk are not what they must be.
    #[error("corrupt {file} at {at}: {reason}")]
    Corrupt {
        file: PathBuf,
        at: u64,
        reason: String,
    },
    /// A configuration value the store cannot work with.
    #[error("bad store configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
