//! Deleted topics. DELETE_TOPIC removes a topic's ConsumeQueues and restarts its queue offsets
//! at 0 (as RocketMQ's `deleteTopics` does), but its records stay in the CommitLog until
//! retention removes their segments. A tombstone `(topic, cut)` says: the topic's records below
//! CommitLog offset `cut` belong to the deleted incarnation. The dispatcher skips them, so a
//! re-dispatch after a reopen (clean: from the ConsumeQueues' max end, which may lie below the
//! cut when the deleted topic was the one furthest ahead; crash: from the checkpoint) cannot
//! bring them back with queue offsets that collide with a re-created topic's.
//!
//! File `<storePathRootDir>/deletedTopics`, replaced atomically (written to a temporary file,
//! synced, renamed, directory synced) before the deletion touches anything else:
//!
//! ```text
//! <topic>=<cut>\n          one line per tombstone, topics sorted
//! crc32c=<8 hex digits>\n  CRC-32C of every byte before this line
//! ```
//!
//! A tombstone is dropped once the CommitLog's first segment starts at or past its cut (nothing
//! of the deleted incarnation is left to re-dispatch).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::consume_queue::validate_topic_name;
use crate::error::{Result, StoreError};

/// The tombstone file's name in the store's root directory.
pub const TOMBSTONES_FILE: &str = "deletedTopics";
/// Largest tombstone file accepted (a damaged file must not make the store read gigabytes).
const FILE_LEN_MAX: u64 = 16 << 20;

/// Topic → cut: the deleted topic's records below `cut` are never dispatched.
pub type TombstoneMap = BTreeMap<String, u64>;

/// The tombstones of a store, on disk and in memory.
#[derive(Debug)]
pub struct Tombstones {
    path: PathBuf,
    map: RwLock<Arc<TombstoneMap>>,
    /// Largest cut: records at or past it need no look-up.
    max_cut: AtomicU64,
    /// Serialises writers (the file and the map change together).
    write: Mutex<()>,
}

impl Tombstones {
    /// Loads `<root>/deletedTopics` (none: no tombstones).
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join(TOMBSTONES_FILE);
        let map = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TombstoneMap::new(),
            Err(e) => return Err(StoreError::io(&path, e)),
            Ok(m) if m.len() > FILE_LEN_MAX => {
                return Err(corrupt(&path, 0, format!("{} bytes is too large", m.len())))
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                decode(&bytes).map_err(|(at, why)| corrupt(&path, at, why))?
            }
        };
        let max_cut = map.values().copied().max().unwrap_or(0);
        Ok(Self {
            path,
            map: RwLock::new(Arc::new(map)),
            max_cut: AtomicU64::new(max_cut),
            write: Mutex::new(()),
        })
    }

    /// The current tombstones.
    pub fn snapshot(&self) -> Arc<TombstoneMap> {
        Arc::clone(&self.map.read())
    }

    /// Largest cut (0 without tombstones): records at or past it are never tombstoned.
    pub fn max_cut(&self) -> u64 {
        self.max_cut.load(Ordering::Acquire)
    }

    /// Records that `topic`'s records below `cut` are deleted, dropping tombstones at or below
    /// `log_min` on the way. Durable when it returns; on error nothing changed.
    pub fn add(&self, topic: &str, cut: u64, log_min: u64) -> Result<()> {
        validate_topic_name(topic)?;
        self.update(log_min, |m| {
            let e = m.entry(topic.to_string()).or_insert(0);
            *e = (*e).max(cut);
        })
    }

    /// Drops the tombstones whose cut is at or below `log_min` (retention removed everything
    /// they covered). Writes the file only if one was dropped.
    pub fn prune(&self, log_min: u64) -> Result<()> {
        if self.map.read().values().all(|&cut| cut > log_min) {
            return Ok(());
        }
        self.update(log_min, |_| {})
    }

    fn update(&self, log_min: u64, change: impl FnOnce(&mut TombstoneMap)) -> Result<()> {
        let _w = self.write.lock();
        let mut next = TombstoneMap::clone(&self.map.read());
        change(&mut next);
        next.retain(|_, cut| *cut > log_min);
        if next == **self.map.read() {
            return Ok(());
        }
        write_durably(&self.path, &encode(&next))?;
        let max_cut = next.values().copied().max().unwrap_or(0);
        *self.map.write() = Arc::new(next);
        self.max_cut.store(max_cut, Ordering::Release);
        Ok(())
    }
}

/// True if the record of `topic` at `phy` belongs to a deleted incarnation.
pub fn is_deleted(map: &TombstoneMap, topic: &str, phy: u64) -> bool {
    map.get(topic).is_some_and(|&cut| phy < cut)
}

/// The file's bytes for `map`.
pub fn encode(map: &TombstoneMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (topic, cut) in map {
        out.extend_from_slice(format!("{topic}={cut}\n").as_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(format!("crc32c={crc:08x}\n").as_bytes());
    out
}

/// Parses the file's bytes; the error gives the byte position and what is wrong.
pub fn decode(bytes: &[u8]) -> std::result::Result<TombstoneMap, (u64, String)> {
    let mut map = TombstoneMap::new();
    let mut pos = 0usize;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let at = pos as u64;
        let Some(text) = line.strip_suffix(b"\n") else {
            return Err((at, "last line is not terminated (torn write?)".into()));
        };
        let text = std::str::from_utf8(text).map_err(|_| (at, "not UTF-8".to_string()))?;
        let Some((key, value)) = text.split_once('=') else {
            return Err((at, format!("line {text:?} is not key=value")));
        };
        if key == "crc32c" {
            let canonical = value.len() == 8
                && value
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            let want = u32::from_str_radix(value, 16)
                .ok()
                .filter(|_| canonical)
                .ok_or_else(|| (at, format!("bad checksum {value:?}")))?;
            let got = bytes.get(..pos).map_or(0, crc32c::crc32c);
            if got != want {
                return Err((at, format!("checksum {got:08x} != recorded {want:08x}")));
            }
            if pos + line.len() != bytes.len() {
                return Err((at, "bytes after the checksum line".into()));
            }
            return Ok(map);
        }
        validate_topic_name(key).map_err(|e| (at, e.to_string()))?;
        // Decimal digits only, no leading zero: one spelling per value.
        let canonical =
            value.bytes().all(|c| c.is_ascii_digit()) && (value == "0" || !value.starts_with('0'));
        let cut: u64 = value
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| (at, format!("bad offset {value:?} for topic {key}")))?;
        if map
            .last_key_value()
            .is_some_and(|(last, _)| last.as_str() >= key)
        {
            return Err((at, format!("topic {key} out of order or listed twice")));
        }
        map.insert(key.to_string(), cut);
        pos += line.len();
    }
    Err((pos as u64, "no checksum line".into()))
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| crate::commit_log::io_or_full(&p, e)
    };
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    match path.parent() {
        Some(dir) => crate::commit_log::sync_dir(dir),
        None => Ok(()),
    }
}

fn corrupt(path: &Path, at: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        at,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn add_prune_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tombstones::open(dir.path()).unwrap();
        assert_eq!(t.max_cut(), 0);
        assert!(!dir.path().join(TOMBSTONES_FILE).exists());
        t.add("A", 100, 0).unwrap();
        t.add("B", 300, 0).unwrap();
        t.add("A", 50, 0).unwrap(); // a cut never moves back
        assert_eq!(t.max_cut(), 300);
        let t2 = Tombstones::open(dir.path()).unwrap();
        assert_eq!(*t2.snapshot(), *t.snapshot());
        assert!(is_deleted(&t2.snapshot(), "A", 99));
        assert!(!is_deleted(&t2.snapshot(), "A", 100));
        assert!(!is_deleted(&t2.snapshot(), "C", 0));
        t2.prune(100).unwrap();
        assert_eq!(t2.snapshot().keys().collect::<Vec<_>>(), ["B"]);
        assert_eq!(
            Tombstones::open(dir.path()).unwrap().snapshot().len(),
            1,
            "the prune is on disk"
        );
        t2.prune(300).unwrap();
        assert_eq!(t2.max_cut(), 0);
        assert!(Tombstones::open(dir.path()).unwrap().snapshot().is_empty());
        assert!(t2.add("bad topic", 1, 0).is_err());
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut m = TombstoneMap::new();
        m.insert("T".into(), 7);
        let good = encode(&m);
        assert_eq!(
            good,
            b"T=7\ncrc32c="
                .iter()
                .copied()
                .chain(format!("{:08x}\n", crc32c::crc32c(b"T=7\n")).bytes())
                .collect::<Vec<u8>>()
        );
        assert_eq!(decode(&good).unwrap(), m);
        for bad in [
            &b""[..],
            b"T=7\n",
            b"T=8\ncrc32c=00000000\n",
            &good[..good.len() - 1],
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut flipped = good.clone();
        flipped[2] = b'8';
        assert!(decode(&flipped).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOMBSTONES_FILE), &flipped).unwrap();
        assert!(matches!(
            Tombstones::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            m in proptest::collection::btree_map("[A-Za-z0-9_%|-]{1,20}", any::<u64>(), 0..20)
        ) {
            prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
