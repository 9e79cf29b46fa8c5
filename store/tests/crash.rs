//! Crash consistency on crash images (see `ferrocket_store::crash`), checked against a model:
//! nothing acknowledged under SYNC_FLUSH is lost, nothing torn survives, no ConsumeQueue unit
//! points past the log; and recovery of a tail truncated at every byte of its last records.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferrocket_store::crash::{crash_image, CrashSpec, Rng};
use ferrocket_store::{
    body_crc, decode_record, FlushDiskType, GetStatus, MessageInput, MessageStore, PutStatus,
    StoreConfig, StoreError, StoreOptions, TagFilter,
};

const TOPIC: &str = "CrashTopic";

fn config(dir: &Path, seg: u64, flush: FlushDiskType) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.mapped_file_size_commit_log = seg;
    c.mapped_file_size_consume_queue = 20 * 64;
    c.max_hash_slot_num = 64;
    c.max_index_num = 512;
    c.flush_disk_type = flush;
    c.flush_interval_commit_log_ms = 1;
    c
}

fn manual() -> StoreOptions {
    StoreOptions {
        background: false,
        ..StoreOptions::default()
    }
}

fn msg(queue_id: u32, body: Vec<u8>) -> MessageInput {
    MessageInput {
        topic: TOPIC.into(),
        queue_id,
        flag: 0,
        body: body.into(),
        properties: "TAGS\u{1}t\u{2}".into(),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// Every record reachable in the log, in order: (phy, body, queue id, queue offset). Fails the
/// test if a record's BODYCRC is wrong (a torn record survived).
fn walk_log(store: &MessageStore) -> Vec<(u64, Vec<u8>, u32, u64)> {
    let seg = store.config().mapped_file_size_commit_log;
    let (mut phy, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    let mut out = Vec::new();
    while phy < max {
        match store.read_at(phy).unwrap() {
            Some(s) => {
                let r = decode_record(s.as_bytes()).unwrap();
                assert_eq!(
                    r.body_crc,
                    body_crc(r.body),
                    "torn record at {phy} survived"
                );
                out.push((
                    phy,
                    r.body.to_vec(),
                    r.queue_id as u32,
                    r.queue_offset as u64,
                ));
                phy += s.len() as u64;
            }
            None => phy = (phy / seg + 1) * seg, // blank marker: next segment
        }
    }
    assert_eq!(phy, max, "log walk overshot the end");
    out
}

/// No ConsumeQueue unit points past the log, and each points at the record it names.
fn check_queues(store: &MessageStore) {
    let end = store.commit_log_max_offset();
    for (topic, q) in store.topics_and_queues() {
        let (min, max) = (store.min_offset(&topic, q), store.max_offset(&topic, q));
        for off in min..max {
            let g = store.get(&topic, q, off, 1, u64::MAX, &TagFilter::All);
            assert_eq!(g.status, GetStatus::Found, "{topic}/{q} offset {off}");
            let s = &g.messages[0];
            assert!(
                s.phy_offset() + s.len() as u64 <= end,
                "unit past the log end"
            );
            let r = decode_record(s.as_bytes()).unwrap();
            assert_eq!((r.queue_id as u32, r.queue_offset as u64), (q, off));
        }
    }
}

#[test]
fn tail_cut_at_every_byte_of_the_last_records() {
    let src = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let mut ends = Vec::new();
    {
        let store =
            MessageStore::open_with(config(src.path(), seg, FlushDiskType::Async), manual())
                .unwrap();
        let mut rng = Rng::new(7);
        for i in 0..30u32 {
            let len = 50 + rng.below(400) as usize;
            let r = store
                .put(&msg(i % 2, vec![b'a' + (i % 26) as u8; len]))
                .unwrap();
            let a = &r.appended[0];
            ends.push((a.phy_offset, a.phy_offset + u64::from(a.size)));
            if i == 10 {
                store.dispatch_now().unwrap();
                store.flush_now().unwrap();
                store.checkpoint_now().unwrap();
            }
        }
        store.dispatch_now().unwrap();
        store.flush_now().unwrap();
        store.halt();
    }
    let last_two_from = ends[ends.len() - 2].0;
    let end = ends.last().unwrap().1;
    // Each reopen is fsync-bound, so the cuts run on a few threads.
    let cuts: Vec<u64> = (last_two_from..=end).collect();
    std::thread::scope(|scope| {
        for chunk in cuts.chunks(cuts.len().div_ceil(8)) {
            let (src, ends) = (src.path(), &ends);
            scope.spawn(move || {
                for &cut in chunk {
                    check_cut(src, seg, ends, cut);
                }
            });
        }
    });
}

fn check_cut(src: &Path, seg: u64, ends: &[(u64, u64)], cut: u64) {
    let dst = tempfile::tempdir().unwrap();
    let img = dst.path().join("store");
    let spec = CrashSpec {
        seed: cut,
        keep_percent: 0,
        torn_percent: 0,
    };
    crash_image(src, &img, cut, spec).unwrap();
    let store = MessageStore::open_with(config(&img, seg, FlushDiskType::Async), manual()).unwrap();
    let survivors = ends.iter().filter(|(_, e)| *e <= cut).count();
    let want_end = ends[survivors - 1].1;
    assert_eq!(store.commit_log_max_offset(), want_end, "cut at {cut}");
    let walked = walk_log(&store);
    assert_eq!(walked.len(), survivors, "cut at {cut}");
    check_queues(&store);
    let total: u64 = (0..2).map(|q| store.max_offset(TOPIC, q)).sum();
    assert_eq!(total as usize, survivors, "cut at {cut}");
    // The store accepts appends right after the valid end.
    let r = store.put(&msg(0, b"next".to_vec())).unwrap();
    assert_eq!(r.appended[0].phy_offset, want_end);
    store.shutdown();
}

/// One seeded crash run: producers under `flush`, a halt at a random moment, a crash image with
/// random page fates past the durable offset, then recovery checked against the model.
fn crash_run(seed: u64, flush: FlushDiskType) {
    let src = tempfile::tempdir().unwrap();
    let seg = 8 * 1024;
    // Frequent checkpoints so recovery starts its scan at a checkpointed segment, not at 0.
    let opts = StoreOptions {
        flush_interval_consume_queue_ms: 2,
        ..StoreOptions::default()
    };
    let store = MessageStore::open_with(config(src.path(), seg, flush), opts).unwrap();
    let acked = Arc::new(parking_lot::Mutex::new(
        Vec::<(u32, u64, u64, Vec<u8>)>::new(),
    ));
    let count = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4u32)
        .map(|t| {
            let (s, acked, count) = (Arc::clone(&store), Arc::clone(&acked), Arc::clone(&count));
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed * 31 + u64::from(t));
                for i in 0..60u32 {
                    let mut body = format!("s{seed}-p{t}-m{i}-").into_bytes();
                    body.resize(body.len() + rng.below(700) as usize, b'0' + (i % 10) as u8);
                    match s.put(&msg(t, body.clone())) {
                        Ok(r) => {
                            if r.status == PutStatus::Ok {
                                let a = &r.appended[0];
                                acked.lock().push((t, a.queue_offset, a.phy_offset, body));
                            }
                            count.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(StoreError::WriteDisabled(_)) => return,
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut rng = Rng::new(seed);
    let stop_after = 20 + rng.below(200) as usize;
    while count.load(Ordering::Acquire) < stop_after && !producers.iter().all(|p| p.is_finished()) {
        std::thread::yield_now();
    }
    store.halt();
    let durable = store.flushed_offset();
    for p in producers {
        p.join().unwrap();
    }
    let img_dir = tempfile::tempdir().unwrap();
    let img = img_dir.path().join("store");
    let spec = CrashSpec {
        seed,
        keep_percent: 40,
        torn_percent: 30,
    };
    crash_image(src.path(), &img, durable, spec).unwrap();
    drop(store);

    let store = MessageStore::open(config(&img, seg, flush)).unwrap();
    assert!(store.recovery_report().scanned, "seed {seed}");
    assert!(
        store.commit_log_max_offset() >= durable,
        "seed {seed}: synced bytes lost"
    );
    let walked = walk_log(&store);
    eprintln!(
        "seed {seed} {flush:?}: acked {} durable {durable} recovered {} records to {} ({:?})",
        acked.lock().len(),
        walked.len(),
        store.commit_log_max_offset(),
        store.recovery_report()
    );
    let by_pos: HashMap<(u32, u64), &Vec<u8>> =
        walked.iter().map(|(_, b, q, o)| ((*q, *o), b)).collect();
    // Nothing acknowledged is lost (under SYNC every Ok put was durable).
    if flush == FlushDiskType::Sync {
        for (q, off, phy, body) in acked.lock().iter() {
            assert!(phy < &durable, "seed {seed}: ack past the durable offset");
            assert_eq!(
                by_pos.get(&(*q, *off)),
                Some(&body),
                "seed {seed}: acked q{q}/{off} lost"
            );
        }
    }
    // Every surviving record was written by a producer, and each queue is a gap-free prefix.
    let mut seen = HashSet::new();
    for (_, body, q, off) in &walked {
        assert!(
            body.starts_with(format!("s{seed}-p{q}-").as_bytes()),
            "seed {seed}: stranger record"
        );
        assert!(seen.insert((*q, *off)), "seed {seed}: duplicate q{q}/{off}");
    }
    for q in 0..4 {
        let n = store.max_offset(TOPIC, q);
        assert!(
            (0..n).all(|o| seen.contains(&(q, o))),
            "seed {seed}: queue {q} has a gap"
        );
        assert_eq!(n as usize, seen.iter().filter(|(qq, _)| *qq == q).count());
    }
    check_queues(&store);
    // Appending continues at the recovered end with the next queue offsets.
    let next = store.max_offset(TOPIC, 0);
    let r = store.put(&msg(0, b"after-crash".to_vec())).unwrap();
    assert_eq!(r.appended[0].queue_offset, next);
    store.shutdown();
}

#[test]
fn crash_images_under_sync_flush_keep_every_ack() {
    for seed in 1..=12 {
        crash_run(seed, FlushDiskType::Sync);
    }
}

#[test]
fn crash_images_under_async_flush_stay_consistent() {
    for seed in 100..=107 {
        crash_run(seed, FlushDiskType::Async);
    }
}
