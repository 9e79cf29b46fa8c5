//! Fuzz IndexFile reading: arbitrary bytes as index files (damaged headers, slots and chains),
//! opened after a clean or an abnormal shutdown, then queried, written, truncated and pruned:
//! never a panic, never an endless chain walk.
#![no_main]

use ferrocket_store::index_file::{index_file_size, IndexService};
use libfuzzer_sys::fuzz_target;

const SLOTS: u32 = 4;
const INDEX_NUM: u32 = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let size = index_file_size(SLOTS, INDEX_NUM) as usize;
    // Up to three files, each exactly the expected size (zero-padded); the flags pick the rest.
    for (i, chunk) in rest.chunks(size).take(3).enumerate() {
        let mut bytes = chunk.to_vec();
        bytes.resize(size, 0);
        let _ = std::fs::write(dir.path().join(format!("2026010100000000{i}")), &bytes);
    }
    let clean = flags & 1 == 0;
    let checkpoint_ts = i64::from(flags) * 1_000;
    let Ok(svc) = IndexService::open(dir.path(), SLOTS, INDEX_NUM, checkpoint_ts, clean) else {
        return;
    };
    for key in ["k", "a", "b", "", "uniq"] {
        let _ = svc.query("T", key, 1000, i64::MIN, i64::MAX);
        let _ = svc.query("T", key, 2, 0, checkpoint_ts);
    }
    let _ = svc.last_update();
    let (_, end_phy) = svc.last_update();
    let _ = svc.build_index("T", Some("uniq"), Some("a  b"), end_phy.saturating_add(1), 1);
    let _ = svc.query("T", "a", 1000, i64::MIN, i64::MAX);
    let _ = svc.truncate_from_phy(u64::from(flags >> 1) * 64);
    let _ = svc.delete_files_below_phy(u64::from(flags >> 4) * 64);
    let _ = svc.query("T", "b", 1000, i64::MIN, i64::MAX);
    let _ = svc.flush();
});
