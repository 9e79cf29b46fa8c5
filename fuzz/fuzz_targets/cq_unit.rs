//! Fuzz the ConsumeQueue unit codec and recovery: arbitrary bytes as a unit (decode/encode round
//! trip) and as the last file of a queue (open, read, search, append, truncate): `Ok`/`Err`, never
//! a panic or an out-of-bounds read.
#![no_main]

use ferrocket_store::consume_queue::{ConsumeQueue, CqUnit};
use ferrocket_store::Boundary;
use libfuzzer_sys::fuzz_target;

/// 8 units per file keeps files tiny; a second file exercises the multi-file paths.
const FILE_SIZE: u64 = 8 * 20;

fuzz_target!(|data: &[u8]| {
    if let Some(u) = CqUnit::decode(data) {
        assert!(u.is_storable());
        assert_eq!(&u.encode()[..], &data[..20]);
        assert_eq!(CqUnit::decode(&u.encode()), Some(u));
    }

    let Ok(dir) = tempfile::tempdir() else { return };
    let qdir = dir.path().join("T").join("0");
    if std::fs::create_dir_all(&qdir).is_err() {
        return;
    }
    // First file full of fuzz bytes (or shorter: a torn file), optional second file.
    let (first, second) = data.split_at(data.len().min(FILE_SIZE as usize));
    let _ = std::fs::write(qdir.join(format!("{:020}", 0)), first);
    if !second.is_empty() {
        let _ = std::fs::write(qdir.join(format!("{:020}", FILE_SIZE)), &second[..second.len().min(FILE_SIZE as usize)]);
    }
    let Ok(cq) = ConsumeQueue::open(dir.path(), "T", 0, FILE_SIZE) else { return };
    let (min, max) = (cq.min_offset(), cq.max_offset());
    assert!(min <= max);
    let units = cq.read_units(min, 64);
    assert!(units.len() as u64 <= max - min);
    for q in min..max {
        let _ = cq.get(q);
    }
    let time = |u: &CqUnit| Some((u.phy_offset % 1000) as i64);
    let _ = cq.search_offset_by_time(500, Boundary::Lower, &time);
    let _ = cq.search_offset_by_time(500, Boundary::Upper, &time);
    let next = CqUnit { phy_offset: cq.max_phy_end(), size: 10, tags_code: 0 };
    let _ = cq.append(max, next);
    let _ = cq.truncate_from_phy(data.first().map_or(0, |b| u64::from(*b) * 100));
    let _ = cq.delete_files_below_phy(data.last().map_or(0, |b| u64::from(*b) * 100));
    let _ = cq.flush();
    drop(cq);
    // Whatever recovery left must reopen.
    let _ = ConsumeQueue::open(dir.path(), "T", 0, FILE_SIZE).map(|cq| cq.read_units(0, 64));
});
