//! Stateful fuzzing of the store against a model: a byte program of puts (queue, body size),
//! gets, clean reopens and crashes (crash images with random page fates past the durable
//! offset). Under SYNC_FLUSH every acknowledged put must survive every crash, each queue must stay
//! a gap-free sequence of what was put, and nothing else may appear.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ferrocket_store::crash::{crash_image, CrashSpec};
use ferrocket_store::{
    decode_record, FlushDiskType, GetStatus, MessageInput, MessageStore, StoreConfig,
    StoreOptions, TagFilter,
};
use libfuzzer_sys::fuzz_target;

const SEG: u64 = 8192;

fn open(root: &Path) -> Arc<MessageStore> {
    let mut c = StoreConfig::new(root);
    c.mapped_file_size_commit_log = SEG;
    c.mapped_file_size_consume_queue = 20 * 32;
    c.max_hash_slot_num = 8;
    c.max_index_num = 64;
    c.flush_disk_type = FlushDiskType::Sync;
    let opts = StoreOptions { background: false, ..StoreOptions::default() };
    MessageStore::open_with(c, opts).expect("a store we wrote must open")
}

fn msg(queue_id: u32, body: Vec<u8>) -> MessageInput {
    MessageInput {
        topic: "Model".into(),
        queue_id,
        flag: 0,
        body: body.into(),
        properties: String::new(),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "127.0.0.1:1".parse().expect("addr"),
        store_host: "127.0.0.1:2".parse().expect("addr"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut root = tmp.path().join("s0");
    let mut store = open(&root);
    // Model: per queue, the bodies at offsets 0.. in order.
    let mut model: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    let mut n = 0u32;
    for op in data.chunks(3).take(200) {
        let [kind, a, b] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        match kind % 8 {
            0..=4 => {
                let q = u32::from(a % 3);
                let mut body = format!("m{n}-").into_bytes();
                body.resize(body.len() + usize::from(b) * 13, b'z');
                n += 1;
                let r = store.put(&msg(q, body.clone())).expect("put");
                let v = model.entry(q).or_default();
                assert_eq!(r.appended[0].queue_offset, v.len() as u64);
                v.push(body);
            }
            5 => {
                let q = u32::from(a % 3);
                store.dispatch_now().expect("dispatch");
                let want = model.get(&q).cloned().unwrap_or_default();
                let off = u64::from(b) % (want.len() as u64 + 1);
                let g = store.get("Model", q, off, 4, u64::MAX, &TagFilter::All);
                if off < want.len() as u64 {
                    assert_eq!(g.status, GetStatus::Found);
                    for (k, s) in g.messages.iter().enumerate() {
                        let rec = decode_record(s.as_bytes()).expect("record");
                        assert_eq!(rec.body, &want[off as usize + k][..]);
                    }
                }
            }
            6 => {
                store.shutdown();
                drop(store);
                store = open(&root);
            }
            _ => {
                // Crash: only flushed bytes are certain; the rest fares at random.
                store.dispatch_now().expect("dispatch");
                let durable = store.flushed_offset();
                store.halt();
                drop(store);
                let next = tmp.path().join(format!("s{n}-{a}-{b}"));
                let spec = CrashSpec { seed: u64::from(a) << 8 | u64::from(b), keep_percent: 50, torn_percent: 25 };
                crash_image(&root, &next, durable, spec).expect("crash image");
                root = next;
                store = open(&root);
            }
        }
    }
    // Every acknowledged put (all were synced) is there, in order, and nothing else.
    store.dispatch_now().expect("dispatch");
    for (q, bodies) in &model {
        assert_eq!(store.max_offset("Model", *q), bodies.len() as u64);
        for (off, body) in bodies.iter().enumerate() {
            let g = store.get("Model", *q, off as u64, 1, u64::MAX, &TagFilter::All);
            let rec = decode_record(g.messages[0].as_bytes()).expect("record");
            assert_eq!(rec.body, &body[..]);
        }
    }
    store.shutdown();
});
