//! The checkpoint file (`StoreCheckpoint`): five big-endian i64 at the start of a 4096-byte file.
//!
//! ```text
//! Format: { physicMsgTimestamp i64 | logicsMsgTimestamp i64 | indexMsgTimestamp i64
//!           | masterFlushedOffset i64 | confirmPhyOffset i64 | zeros to 4096 }
//! ```
//! Ferrocket writes `confirmPhyOffset` as the offset below which both the CommitLog bytes and
//! their ConsumeQueue units are durable; recovery after a crash scans from the segment holding it.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Result, StoreError};
use crate::mmap::{MappedMut, OS_PAGE_SIZE};

pub const CHECKPOINT_FILE_LEN_BYTES: u64 = OS_PAGE_SIZE;
pub const CHECKPOINT_LEN_BYTES: usize = 40;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointData {
    pub physic_msg_timestamp: i64,
    pub logics_msg_timestamp: i64,
    pub index_msg_timestamp: i64,
    pub master_flushed_offset: i64,
    pub confirm_phy_offset: i64,
}

impl CheckpointData {
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN_BYTES] {
        let mut out = [0u8; CHECKPOINT_LEN_BYTES];
        let fields = [
            self.physic_msg_timestamp,
            self.logics_msg_timestamp,
            self.index_msg_timestamp,
            self.master_flushed_offset,
            self.confirm_phy_offset,
        ];
        for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Decodes the first 40 bytes; `None` if fewer are given. Missing 5.x fields (a 4.x file wrote
    /// only three) read as zero, which the format already implies.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b = b.get(..CHECKPOINT_LEN_BYTES)?;
        let mut f = b.chunks_exact(8).map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            i64::from_be_bytes(a)
        });
        Some(Self {
            physic_msg_timestamp: f.next()?,
            logics_msg_timestamp: f.next()?,
            index_msg_timestamp: f.next()?,
            master_flushed_offset: f.next()?,
            confirm_phy_offset: f.next()?,
        })
    }

    /// `getMinTimestamp()`: `max(0, min(physic, logics) - 3000)`.
    pub fn min_timestamp(&self) -> i64 {
        self.physic_msg_timestamp
            .min(self.logics_msg_timestamp)
            .saturating_sub(3000)
            .max(0)
    }
}

/// The mapped checkpoint file and its current values.
pub struct Checkpoint {
    path: PathBuf,
    inner: Mutex<(MappedMut, CheckpointData)>,
}

impl Checkpoint {
    /// Opens (or creates) `path`. A file of the wrong size is replaced by a zeroed one: the values
    /// only speed recovery up, and zeros make it scan everything.
    pub fn open(path: &Path) -> Result<Self> {
        let ok_len = std::fs::metadata(path)
            .map(|m| m.len() == CHECKPOINT_FILE_LEN_BYTES)
            .unwrap_or(false);
        let map = if ok_len {
            MappedMut::open(path).map_err(|e| StoreError::io(path, e))?
        } else {
            if path.exists() {
                tracing::warn!(path = %path.display(), "checkpoint file has the wrong size; starting from zeros");
                std::fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
            }
            MappedMut::create(path, CHECKPOINT_FILE_LEN_BYTES)
                .map_err(|e| StoreError::io(path, e))?
        };
        let data = CheckpointData::decode(map.as_slice()).unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            inner: Mutex::new((map, data)),
        })
    }

    pub fn get(&self) -> CheckpointData {
        self.inner.lock().1
    }

    /// Writes `data` and forces it to disk.
    pub fn write(&self, data: CheckpointData) -> Result<()> {
        let mut g = self.inner.lock();
        let bytes = data.encode();
        if let Some(dst) = g.0.as_mut_slice().get_mut(..CHECKPOINT_LEN_BYTES) {
            dst.copy_from_slice(&bytes);
        }
        g.1 = data;
        g.0.flush().map_err(|e| StoreError::io(&self.path, e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes_and_reopen() {
        let d = CheckpointData {
            physic_msg_timestamp: 1,
            logics_msg_timestamp: 2,
            index_msg_timestamp: 0x0102_0304_0506_0708,
            master_flushed_offset: -1,
            confirm_phy_offset: 4096,
        };
        let b = d.encode();
        assert_eq!(&b[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&b[16..24], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[24..32], &[0xFF; 8]);
        assert_eq!(&b[32..40], &[0, 0, 0, 0, 0, 0, 0x10, 0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint");
        let c = Checkpoint::open(&p).unwrap();
        assert_eq!(c.get(), CheckpointData::default());
        c.write(d).unwrap();
        drop(c);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 4096);
        assert_eq!(Checkpoint::open(&p).unwrap().get(), d);
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(
            Checkpoint::open(&p).unwrap().get(),
            CheckpointData::default()
        );
        assert_eq!(d.min_timestamp(), 0);
    }

    proptest! {
        #[test]
        fn round_trips(a in any::<i64>(), b in any::<i64>(), c in any::<i64>(), d in any::<i64>(), e in any::<i64>()) {
            let v = CheckpointData { physic_msg_timestamp: a, logics_msg_timestamp: b, index_msg_timestamp: c, master_flushed_offset: d, confirm_phy_offset: e };
            prop_assert_eq!(CheckpointData::decode(&v.encode()), Some(v));
        }
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = CheckpointData::decode(&bytes);
        }
    }
}
