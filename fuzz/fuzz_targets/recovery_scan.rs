//! Fuzz recovery of an arbitrary store directory: the input becomes CommitLog segments (4 KiB
//! each), a checkpoint, and maybe an abort file; opening the store must return `Ok` or `Err`, never
//! panic, and an opened store must serve every record and ConsumeQueue unit it claims to have.
#![no_main]

use ferrocket_store::{MessageStore, StoreConfig, StoreOptions, TagFilter};
use libfuzzer_sys::fuzz_target;

const SEG: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("commitlog")).expect("mkdir");
    let (ckpt, log) = rest.split_at(rest.len().min(40));
    let mut c = vec![0u8; 4096];
    c[..ckpt.len()].copy_from_slice(ckpt);
    std::fs::write(root.join("checkpoint"), &c).expect("checkpoint");
    if flags & 1 == 1 {
        std::fs::write(root.join("abort"), b"1").expect("abort");
    }
    let first = u64::from(flags >> 4) * SEG as u64;
    for (i, chunk) in log.chunks(SEG).enumerate().take(4) {
        let mut seg = vec![0u8; SEG];
        seg[..chunk.len()].copy_from_slice(chunk);
        let name = format!("{:020}", first + (i * SEG) as u64);
        std::fs::write(root.join("commitlog").join(name), &seg).expect("segment");
    }
    let mut cfg = StoreConfig::new(root);
    cfg.mapped_file_size_commit_log = SEG as u64;
    cfg.mapped_file_size_consume_queue = 20 * 16;
    cfg.max_hash_slot_num = 8;
    cfg.max_index_num = 32;
    cfg.check_crc_on_recover = flags & 2 == 0;
    let opts = StoreOptions { background: false, ..StoreOptions::default() };
    let Ok(store) = MessageStore::open_with(cfg, opts) else { return };
    let (mut phy, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    while phy < max {
        match store.read_at(phy) {
            Ok(Some(s)) => phy += s.len() as u64,
            _ => phy = (phy / SEG as u64 + 1) * SEG as u64,
        }
    }
    for (topic, q) in store.topics_and_queues() {
        let g = store.get(&topic, q, store.min_offset(&topic, q), 32, u64::MAX, &TagFilter::All);
        for s in &g.messages {
            assert!(s.phy_offset() + s.len() as u64 <= max);
        }
    }
    store.shutdown();
});
