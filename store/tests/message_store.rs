//! MessageStore behaviour over real files: put/get, statuses, rolls, batches, flush modes, the
//! lock file, reopen, the fsync-failure latch, disk-full refusal and retention.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrocket_store::mmap::DiskSpace;
use ferrocket_store::{
    decode_record, encode_properties, java_string_hash, FlushDiskType, GetStatus, MessageInput,
    MessageStore, PutStatus, StoreConfig, StoreError, StoreOptions, TagFilter,
};

const WAIT: Duration = Duration::from_secs(10);

fn config(dir: &Path, seg: u64) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.mapped_file_size_commit_log = seg;
    c.mapped_file_size_consume_queue = 20 * 1000;
    c.max_hash_slot_num = 64;
    c.max_index_num = 256;
    c.flush_interval_commit_log_ms = 10;
    c
}

fn msg(topic: &str, queue_id: u32, body: &[u8], tag: &str) -> MessageInput {
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: 0,
        body: body.to_vec().into(),
        properties: encode_properties(&[("TAGS", tag), ("KEYS", "k1 k2"), ("UNIQ_KEY", "U1")]),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "10.0.0.2:40000".parse().unwrap(),
        store_host: "10.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

fn body_of(n: u32, len: usize) -> Vec<u8> {
    let mut b = format!("msg-{n}-").into_bytes();
    b.resize(len, b'x');
    b
}

/// Every body of (topic, queue) from offset 0, in queue order.
fn queue_bodies(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut at = 0u64;
    loop {
        let g = store.get(topic, queue_id, at, 64, 1 << 20, &TagFilter::All);
        if g.messages.is_empty() {
            return bodies;
        }
        for m in &g.messages {
            bodies.push(decode_record(m.as_bytes()).unwrap().body.to_vec());
        }
        at = g.next_begin_offset;
    }
}

#[test]
fn put_get_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 64 * 1024)).unwrap();
    let mut last_end = 0;
    for i in 0..50u32 {
        let r = store
            .put(&msg(
                "TopicA",
                i % 2,
                &body_of(i, 100),
                if i % 4 < 2 { "TagA" } else { "TagB" },
            ))
            .unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        assert_eq!(r.appended.len(), 1);
        assert_eq!(r.appended[0].queue_offset, u64::from(i / 2));
        last_end = r.appended[0].phy_offset + u64::from(r.appended[0].size);
    }
    assert!(store.wait_dispatched(last_end, WAIT));
    assert_eq!(store.max_offset("TopicA", 0), 25);
    assert_eq!(store.min_offset("TopicA", 0), 0);
    assert_eq!(store.commit_log_max_offset(), last_end);

    let g = store.get("TopicA", 0, 0, 10, 1 << 20, &TagFilter::All);
    assert_eq!(g.status, GetStatus::Found);
    assert_eq!(g.messages.len(), 10);
    assert_eq!(g.next_begin_offset, 10);
    for (k, s) in g.messages.iter().enumerate() {
        let r = decode_record(s.as_bytes()).unwrap();
        assert_eq!(r.queue_offset, k as i64);
        assert_eq!(r.body, &body_of(2 * k as u32, 100)[..]);
        assert_eq!(r.phy_offset as u64, s.phy_offset());
        assert_eq!(s.file_offset(), s.phy_offset(), "first segment starts at 0");
        let again = store.read_at(s.phy_offset()).unwrap().unwrap();
        assert_eq!(again.as_bytes(), s.as_bytes());
    }
    // Byte cap: the first record always comes, then records while they fit.
    let g = store.get("TopicA", 0, 0, 10, 1, &TagFilter::All);
    assert_eq!(
        (g.status, g.messages.len(), g.next_begin_offset),
        (GetStatus::Found, 1, 1)
    );
    // Tag filter: queue 0 holds i = 0,2,4,...: TagA for i%4 in {0,1} -> even offsets.
    let tag_b = TagFilter::Codes(vec![i64::from(java_string_hash("TagB"))]);
    let g = store.get("TopicA", 0, 0, 4, 1 << 20, &tag_b);
    assert_eq!(g.status, GetStatus::Found);
    for s in &g.messages {
        let r = decode_record(s.as_bytes()).unwrap();
        assert_eq!(r.property("TAGS"), Some("TagB"));
    }
    let none = TagFilter::Codes(vec![1]);
    let g = store.get("TopicA", 0, 0, 4, 1 << 20, &none);
    assert_eq!(g.status, GetStatus::NoMatchedMessage);
    assert_eq!(g.next_begin_offset, 25, "every unit was scanned");

    assert_eq!(
        store
            .get("TopicA", 0, 25, 4, 1 << 20, &TagFilter::All)
            .status,
        GetStatus::OffsetOverflowOne
    );
    let g = store.get("TopicA", 0, 99, 4, 1 << 20, &TagFilter::All);
    assert_eq!(
        (g.status, g.next_begin_offset),
        (GetStatus::OffsetOverflowBadly, 0)
    );
    assert_eq!(
        store.get("Nope", 0, 0, 4, 1 << 20, &TagFilter::All).status,
        GetStatus::NoMatchedLogicQueue
    );
    assert!(store.read_at(1).unwrap().is_none(), "not a record boundary");
    assert!(store.read_at(last_end).unwrap().is_none());

    let q = store.query_by_key("TopicA", "k2", 100, 0, i64::MAX);
    assert_eq!(q.messages.len(), 50);
    assert!(store.store_time_at("TopicA", 1, 3).is_some());
    assert!(store.earliest_store_time("TopicA", 1).is_some());
    let mut tq = store.topics_and_queues();
    tq.sort();
    assert_eq!(
        tq,
        vec![("TopicA".to_string(), 0), ("TopicA".to_string(), 1)]
    );
    store.shutdown();
}

#[test]
fn segments_roll_with_blank_markers_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let mut ends = Vec::new();
    for i in 0..100u32 {
        let r = store.put(&msg("Roll", 0, &body_of(i, 1000), "T")).unwrap();
        let a = &r.appended[0];
        assert_eq!(
            a.phy_offset / seg,
            (a.phy_offset + u64::from(a.size) - 1) / seg,
            "record spans segments"
        );
        ends.push(a.phy_offset + u64::from(a.size));
    }
    let end = *ends.last().unwrap();
    assert!(store.wait_dispatched(end, WAIT));
    let mut got = 0;
    let mut off = 0;
    loop {
        let g = store.get("Roll", 0, off, 32, u64::MAX, &TagFilter::All);
        if g.status != GetStatus::Found {
            break;
        }
        for s in &g.messages {
            let r = decode_record(s.as_bytes()).unwrap();
            assert_eq!(r.body, &body_of(got, 1000)[..]);
            got += 1;
        }
        off = g.next_begin_offset;
    }
    assert_eq!(got, 100);
    store.shutdown();
    let names: Vec<String> = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"00000000000000000000".to_string()));
    assert!(names.contains(&format!("{seg:020}")));
    // The first segment ends with a blank marker where the next record did not fit.
    let first = std::fs::read(dir.path().join("commitlog/00000000000000000000")).unwrap();
    let blank_at = ends
        .iter()
        .take_while(|&&e| e <= seg)
        .last()
        .copied()
        .unwrap() as usize;
    assert_eq!(
        &first[blank_at + 4..blank_at + 8],
        &[0xCB, 0xD4, 0x31, 0x94]
    );
    assert_eq!(
        i32::from_be_bytes(first[blank_at..blank_at + 4].try_into().unwrap()) as u64,
        seg - blank_at as u64
    );
    for d in ["config", "consumequeue", "checkpoint", "lock"] {
        assert!(dir.path().join(d).exists(), "{d} missing");
    }
    assert!(
        !dir.path().join("abort").exists(),
        "clean shutdown removes abort"
    );
}

#[test]
fn batch_gets_consecutive_offsets_and_rejects_mixed_queues() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 64 * 1024)).unwrap();
    store.put(&msg("B", 3, b"first", "")).unwrap();
    let batch: Vec<_> = (0..10).map(|i| msg("B", 3, &body_of(i, 50), "")).collect();
    let r = store.put_batch(&batch).unwrap();
    let offs: Vec<u64> = r.appended.iter().map(|a| a.queue_offset).collect();
    assert_eq!(offs, (1..11).collect::<Vec<_>>());
    for w in r.appended.windows(2) {
        assert_eq!(w[0].phy_offset + u64::from(w[0].size), w[1].phy_offset);
    }
    let mixed = vec![msg("B", 3, b"a", ""), msg("B", 4, b"b", "")];
    assert!(matches!(
        store.put_batch(&mixed),
        Err(StoreError::MessageIllegal(_))
    ));
    assert!(matches!(
        store.put_batch(&[]),
        Err(StoreError::MessageIllegal(_))
    ));
    let mut big = msg("B", 3, &[], "");
    big.body = vec![0; 5 * 1024 * 1024].into();
    assert!(matches!(
        store.put(&big),
        Err(StoreError::MessageIllegal(_))
    ));
    assert!(matches!(
        store.put(&msg("bad topic!", 0, b"x", "")),
        Err(StoreError::MessageIllegal(_))
    ));
    let mut nul = msg("B", 3, b"x", "");
    nul.properties.push('\0');
    assert!(matches!(
        store.put(&nul),
        Err(StoreError::MessageIllegal(_))
    ));
    store.shutdown();
}

#[test]
fn second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 64 * 1024)).unwrap();
    assert!(matches!(
        MessageStore::open(config(dir.path(), 64 * 1024)),
        Err(StoreError::Locked(_))
    ));
    store.shutdown();
    let again = MessageStore::open(config(dir.path(), 64 * 1024)).unwrap();
    again.shutdown();
}

#[test]
fn reopen_after_clean_shutdown_trusts_checkpoint_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    {
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        for i in 0..40 {
            store.put(&msg("R", 0, &body_of(i, 700), "")).unwrap();
        }
        store.shutdown();
    }
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let rep = store.recovery_report();
    assert!(!rep.scanned, "{rep:?}");
    assert_eq!(store.max_offset("R", 0), 40);
    let r = store.put(&msg("R", 0, b"after", "")).unwrap();
    assert_eq!(r.appended[0].queue_offset, 40);
    assert_eq!(r.appended[0].phy_offset, rep.valid_end);
    store.shutdown();
}

#[test]
fn reopen_after_halt_scans_and_keeps_page_cache_data() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let end;
    {
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        for i in 0..40 {
            store.put(&msg("H", 1, &body_of(i, 700), "")).unwrap();
        }
        end = store.commit_log_max_offset();
        store.halt();
    }
    assert!(dir.path().join("abort").exists());
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let rep = store.recovery_report();
    assert!(rep.scanned);
    assert_eq!(rep.valid_end, end);
    assert_eq!(store.max_offset("H", 1), 40);
    store.shutdown();
}

#[test]
fn sync_flush_group_commit_acknowledges_durable_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 256 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    let store = MessageStore::open(c).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let r = s.put(&msg("S", t, &body_of(i, 200), "")).unwrap();
                    assert_eq!(r.status, PutStatus::Ok);
                    let a = &r.appended[0];
                    assert!(s.flushed_offset() >= a.phy_offset + u64::from(a.size));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.flushed_offset(), store.commit_log_max_offset());
    // WAIT=false does not wait but is still flushed eventually.
    let mut m = msg("S", 0, b"nowait", "");
    m.properties = encode_properties(&[("WAIT", "false")]);
    assert_eq!(store.put(&m).unwrap().status, PutStatus::Ok);
    store.shutdown();
}

#[test]
fn failed_flush_latches_write_disabled_forever() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 64 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    let store = MessageStore::open(c).unwrap();
    store.put(&msg("F", 0, b"ok", "")).unwrap();
    store.fail_next_flush();
    assert!(matches!(
        store.put(&msg("F", 0, b"lost?", "")),
        Err(StoreError::WriteDisabled(_))
    ));
    assert!(store.write_disabled().is_some());
    assert!(matches!(
        store.put(&msg("F", 0, b"again", "")),
        Err(StoreError::WriteDisabled(_))
    ));
    // Reads still work.
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    assert_eq!(
        store.get("F", 0, 0, 1, 1 << 20, &TagFilter::All).status,
        GetStatus::Found
    );
    store.shutdown();
    assert!(
        dir.path().join("abort").exists(),
        "an unclean store must be scanned next time"
    );
}

#[test]
fn disk_full_refuses_writes_without_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let used = Arc::new(AtomicU32::new(50));
    let u = Arc::clone(&used);
    let opts = StoreOptions {
        disk_probe: Some(Arc::new(move |_p: &Path| {
            // In GiB: room for new segments whatever the percentage (see the roll test below).
            let free = (100 - u64::from(u.load(Ordering::Acquire))) << 30;
            Ok(DiskSpace {
                total_bytes: 100 << 30,
                free_bytes: free,
                available_bytes: free,
            })
        })),
        clean_resource_interval_ms: 3_600_000,
        ..StoreOptions::default()
    };
    let mut c = config(dir.path(), 64 * 1024);
    c.delete_when = String::new();
    let store = MessageStore::open_with(c, opts).unwrap();
    store.put(&msg("D", 0, b"before", "")).unwrap();
    used.store(95, Ordering::Release);
    let round = store.run_retention_round(25);
    assert!(round.disk_full);
    assert!(matches!(
        store.put(&msg("D", 0, b"refused", "")),
        Err(StoreError::DiskFull(_))
    ));
    used.store(60, Ordering::Release);
    assert!(!store.run_retention_round(25).disk_full);
    let r = store.put(&msg("D", 0, b"after", "")).unwrap();
    assert_eq!(
        r.appended[0].queue_offset, 1,
        "the refused message took no offset"
    );
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    let g = store.get("D", 0, 0, 10, 1 << 20, &TagFilter::All);
    let bodies: Vec<Vec<u8>> = g
        .messages
        .iter()
        .map(|s| decode_record(s.as_bytes()).unwrap().body.to_vec())
        .collect();
    assert_eq!(bodies, vec![b"before".to_vec(), b"after".to_vec()]);
    store.shutdown();
}

/// A disk with no room for the next CommitLog segment: the roll that needs it is refused at
/// once with `DiskFull` (no zero-fill up to ENOSPC under the append lock, no file left behind),
/// nothing stored before is lost or renumbered, and appends go on once there is room again.
#[test]
fn a_roll_without_room_for_the_next_segment_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let seg: u64 = 64 * 1024;
    // Space an unprivileged user may write; the used share stays low, so this is not the
    // warning-level refusal of the test above.
    let room = Arc::new(std::sync::atomic::AtomicU64::new(50 << 30));
    let r = Arc::clone(&room);
    let opts = StoreOptions {
        disk_probe: Some(Arc::new(move |_p: &Path| {
            Ok(DiskSpace {
                total_bytes: 100 << 30,
                free_bytes: 50 << 30,
                available_bytes: r.load(Ordering::Acquire),
            })
        })),
        clean_resource_interval_ms: 3_600_000,
        ..StoreOptions::default()
    };
    let mut c = config(dir.path(), seg);
    c.delete_when = String::new();
    let store = MessageStore::open_with(c.clone(), opts.clone()).unwrap();
    // A quarter of the first segment asks for the second; wait until it is made.
    let mut stored = 0u32;
    while u64::from(stored) * 1100 < seg / 2 {
        store.put(&msg("R", 0, &body_of(stored, 1000), "")).unwrap();
        stored += 1;
    }
    assert!(store.wait_preallocated(WAIT));
    // Room for the segment already made, none for the one after it.
    room.store(seg - 1, Ordering::Release);
    let refused = loop {
        match store.put(&msg("R", 0, &body_of(stored, 1000), "")) {
            Ok(p) => {
                assert_eq!(p.appended[0].queue_offset, u64::from(stored));
                stored += 1;
                assert!(u64::from(stored) * 1000 < 3 * seg, "no roll was refused");
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&refused, StoreError::DiskFull(why) if why.contains("CommitLog segment needs")),
        "{refused}"
    );
    assert!(
        u64::from(stored) * 1000 > seg,
        "the roll into the segment made before the disk filled went on"
    );
    // Refused again, as fast, while there is no room.
    let t = std::time::Instant::now();
    for _ in 0..20 {
        assert!(matches!(
            store.put(&msg("R", 0, &body_of(stored, 1000), "")),
            Err(StoreError::DiskFull(_))
        ));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let files: Vec<String> = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")) && files.len() == 2,
        "{files:?}"
    );
    // Room again: the next put rolls and takes the next queue offset.
    room.store(50 << 30, Ordering::Release);
    let p = store.put(&msg("R", 0, &body_of(stored, 1000), "")).unwrap();
    assert_eq!(p.appended[0].queue_offset, u64::from(stored));
    stored += 1;
    store.shutdown();
    drop(store);
    let store = MessageStore::open_with(c, opts).unwrap();
    let want: Vec<Vec<u8>> = (0..stored).map(|i| body_of(i, 1000)).collect();
    assert_eq!(queue_bodies(&store, "R", 0), want);
    store.shutdown();
}

/// A store whose retention deletes at hour 3 every segment but the active one (fileReservedTime 0),
/// at most `batch` per round, with a disk that is never full and no retention thread of its own.
fn open_for_retention(dir: &Path, seg: u64, batch: usize) -> Arc<MessageStore> {
    let opts = StoreOptions {
        delete_file_batch_max: batch,
        clean_resource_interval_ms: 3_600_000,
        disk_probe: Some(Arc::new(|_p: &Path| {
            Ok(DiskSpace {
                total_bytes: 100 << 30,
                free_bytes: 90 << 30,
                available_bytes: 90 << 30,
            })
        })),
        ..StoreOptions::default()
    };
    let mut c = config(dir, seg);
    c.file_reserved_time_hours = 0;
    c.delete_when = "03".into();
    MessageStore::open_with(c, opts).unwrap()
}

#[test]
fn retention_deletes_old_segments_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let store = open_for_retention(dir.path(), seg, 2);
    for i in 0..100 {
        store.put(&msg("Old", 0, &body_of(i, 1000), "")).unwrap();
    }
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    let segs_before = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    assert!(segs_before >= 6);
    assert!(
        store.run_retention_round(4).deleted_segments.is_empty(),
        "not the deletion hour"
    );
    let r = store.run_retention_round(3);
    assert_eq!(r.deleted_segments, vec![0, seg]);
    assert_eq!(store.commit_log_min_offset(), 2 * seg);
    let g = store.get("Old", 0, 0, 1, 1 << 20, &TagFilter::All);
    assert_ne!(g.status, GetStatus::Found, "{g:?}");
    let last = store.max_offset("Old", 0) - 1;
    assert_eq!(
        store
            .get("Old", 0, last, 1, 1 << 20, &TagFilter::All)
            .status,
        GetStatus::Found
    );
    store.shutdown();
}

#[test]
fn short_last_segment_is_a_torn_tail_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let mut ends = Vec::new();
    {
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        for i in 0..30 {
            let r = store.put(&msg("Short", 0, &body_of(i, 300), "")).unwrap();
            ends.push(r.appended[0].phy_offset + u64::from(r.appended[0].size));
        }
        store.shutdown();
    }
    // Cut the last segment (after a clean shutdown, so the checkpoint points past the cut).
    let last_base = (ends.last().unwrap() / seg) * seg;
    let cut = last_base + (ends.last().unwrap() - last_base) / 2;
    let path = dir.path().join(format!("commitlog/{last_base:020}"));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(cut - last_base).unwrap();
    drop(f);
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let survivors = ends.iter().filter(|&&e| e <= cut).count() as u64;
    assert!(store.recovery_report().scanned);
    assert_eq!(store.max_offset("Short", 0), survivors);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), seg);
    let r = store.put(&msg("Short", 0, b"after", "")).unwrap();
    assert_eq!(r.appended[0].queue_offset, survivors);
    store.shutdown();
}

#[test]
fn shutdown_does_not_wait_for_a_big_preallocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 1 << 30)).unwrap();
    // Nothing is appended: only the first segment is being made; shutdown interrupts it.
    let t = std::time::Instant::now();
    store.shutdown();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".tmp") }));
}

#[test]
fn adjacent_slices_join_into_one_run_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let mut end = 0;
    // Queue 0 alone for 20 records (rolls once), then queues 0 and 1 interleaved.
    for i in 0..26u32 {
        let q = if i < 20 { 0 } else { i % 2 };
        let r = store.put(&msg("Join", q, &body_of(i, 1000), "T")).unwrap();
        end = r.appended[0].phy_offset + u64::from(r.appended[0].size);
    }
    assert!(store.wait_dispatched(end, WAIT));
    let g = store.get("Join", 0, 0, 32, u64::MAX, &TagFilter::All);
    assert_eq!(g.messages.len(), 23);
    let mut runs: Vec<ferrocket_store::Slice> = Vec::new();
    for s in &g.messages {
        match runs.last().and_then(|last| last.join(s)) {
            Some(joined) => *runs.last_mut().unwrap() = joined,
            None => runs.push(s.clone()),
        }
    }
    // One run per segment for the contiguous part (record 20 still follows 19), then one per
    // record separated by queue 1's records (22 and 24).
    let first_seg = g.messages.iter().filter(|s| s.phy_offset() < seg).count();
    assert!(first_seg > 1 && first_seg < 20);
    assert_eq!(runs.len(), 2 + 2);
    let concat: Vec<u8> = g.messages.iter().flat_map(|s| s.to_vec()).collect();
    let joined: Vec<u8> = runs.iter().flat_map(|s| s.to_vec()).collect();
    assert_eq!(concat, joined);
    assert_eq!(
        runs[0].len(),
        g.messages[..first_seg]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
    );
    assert_eq!(
        runs[1].file_offset(),
        0,
        "second segment starts its own run"
    );
    store.shutdown();
}

/// SYNC_FLUSH appends go through `pwrite`, ASYNC_FLUSH ones through the mapping: the records (and
/// the blank markers at each roll) must come out byte-identical either way, readable at once and
/// after a reopen.
#[test]
fn write_through_and_mapped_appends_store_identical_records() {
    let seg = 8 * 1024;
    let mut logs = Vec::new();
    for flush in [FlushDiskType::Async, FlushDiskType::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), seg);
        c.flush_disk_type = flush;
        let store = MessageStore::open(c.clone()).unwrap();
        let mut offsets = Vec::new();
        for i in 0..60u32 {
            // Single puts and batches, sizes that force several rolls.
            if i % 3 == 0 {
                let batch: Vec<_> = (0..3)
                    .map(|j| msg("W", 1, &body_of(i * 10 + j, 300), "T"))
                    .collect();
                let r = store.put_batch(&batch).unwrap();
                assert_eq!(r.status, PutStatus::Ok);
                offsets.extend(r.appended.iter().map(|a| a.phy_offset));
            } else {
                let r = store
                    .put(&msg("W", 1, &body_of(i, 100 + 7 * i as usize), "T"))
                    .unwrap();
                assert_eq!(r.status, PutStatus::Ok);
                offsets.push(r.appended[0].phy_offset);
            }
        }
        let read_all = |s: &MessageStore| -> Vec<Vec<u8>> {
            offsets
                .iter()
                .map(|&o| {
                    let mut b = s.read_at(o).unwrap().expect("record readable").to_vec();
                    // STORETIMESTAMP (IPv4 born host) differs between the runs.
                    b[56..64].fill(0);
                    b
                })
                .collect()
        };
        let before = read_all(&store);
        assert!(store.commit_log_max_offset() > 3 * seg, "the log rolled");
        store.shutdown();
        let store = MessageStore::open(c).unwrap();
        assert_eq!(
            read_all(&store),
            before,
            "{flush:?}: same records after reopen"
        );
        assert_eq!(store.max_offset("W", 1), offsets.len() as u64);
        store.shutdown();
        logs.push((offsets, before));
    }
    assert_eq!(logs[0], logs[1]);
    let v = decode_record(&logs[1].1[5]).unwrap();
    assert_eq!(v.topic, "W");
}

/// What a test's `put_notify` callback reports: success, the send's index, and the store's flushed
/// offset when the callback ran.
type Notified = (bool, u32, u64);

/// Sends 200 messages to `topic` through `put_notify` (callbacks report on `tx`) and checks that
/// every callback succeeds and runs only once its record is durable.
fn put_notify_200_and_check_durable(
    store: &Arc<MessageStore>,
    topic: &str,
    tx: &std::sync::mpsc::Sender<Notified>,
    rx: &std::sync::mpsc::Receiver<Notified>,
) {
    let mut ends = Vec::new();
    for i in 0..200u32 {
        let tx = tx.clone();
        let s = Arc::clone(store);
        let appended = store
            .put_notify(
                &[msg(topic, i % 4, &body_of(i, 150), "")],
                Box::new(move |r| {
                    tx.send((r.is_ok(), i, s.flushed_offset())).unwrap();
                }),
            )
            .unwrap();
        let a = &appended[0];
        ends.push(a.phy_offset + u64::from(a.size));
    }
    for _ in 0..200 {
        let (ok, i, flushed) = rx.recv_timeout(WAIT).expect("every callback runs");
        assert!(ok);
        // Durable when called back: the flushed offset covers this record.
        assert!(flushed >= ends[i as usize], "callback {i} before its flush");
    }
}

/// SYNC_FLUSH records are staged and become visible when written: by the group commit, by an
/// append that brings the staging to its limit, or by a roll writing them before its blank
/// marker. Under SYNC_FLUSH appends do not wake the dispatcher: the sync that covers the records
/// does, whoever wrote them. Every record must reach its ConsumeQueue, in order, across rolls.
#[test]
fn staged_sync_records_are_all_dispatched_across_rolls() {
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 64 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    let store = MessageStore::open(c).unwrap();
    let (tx, rx) = mpsc::channel();
    let n = 400u32;
    for i in 0..n {
        let tx = tx.clone();
        // No wait between sends: many records are staged between two commits (1.1 KiB each,
        // the staging limit is 8 KiB), and several rolls happen with records staged.
        store
            .put_notify(
                &[msg("S", i % 2, &body_of(i, 1000), "")],
                Box::new(move |r| tx.send(r.is_ok()).unwrap()),
            )
            .unwrap();
    }
    for _ in 0..n {
        assert!(rx.recv_timeout(WAIT).expect("every callback runs"));
    }
    assert!(
        store.commit_log_max_offset() > 5 * 64 * 1024,
        "several rolls"
    );
    assert!(
        store.wait_dispatched(store.commit_log_max_offset(), WAIT),
        "dispatched {} of {}",
        store.dispatched_offset(),
        store.commit_log_max_offset()
    );
    for q in 0..2u32 {
        let want: Vec<Vec<u8>> = (0..n)
            .filter(|i| i % 2 == q)
            .map(|i| body_of(i, 1000))
            .collect();
        assert_eq!(queue_bodies(&store, "S", q), want, "queue {q}");
    }
    store.shutdown();
}

/// `put_notify` returns before the group commit and calls back once the records are durable;
/// after a failed sync every pending and later callback gets the error.
#[test]
fn put_notify_calls_back_after_the_group_commit() {
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 256 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    let store = MessageStore::open(c).unwrap();
    let (tx, rx) = mpsc::channel();
    put_notify_200_and_check_durable(&store, "N", &tx, &rx);
    // Batches too.
    let batch: Vec<_> = (0..5).map(|i| msg("N", 9, &body_of(i, 10), "")).collect();
    let tx2 = tx.clone();
    let appended = store
        .put_notify(
            &batch,
            Box::new(move |r| tx2.send((r.is_ok(), 0, 0)).unwrap()),
        )
        .unwrap();
    assert_eq!(appended.len(), 5);
    assert!(rx.recv_timeout(WAIT).unwrap().0);
    // A failed sync: the waiting callback gets an error, later appends are refused.
    store.fail_next_flush();
    let tx3 = tx.clone();
    let r = store.put_notify(
        &[msg("N", 0, b"lost?", "")],
        Box::new(move |r| tx3.send((r.is_ok(), 0, 0)).unwrap()),
    );
    if r.is_ok() {
        assert!(
            !rx.recv_timeout(WAIT).unwrap().0,
            "failed sync reported durable"
        );
    }
    assert!(matches!(
        store.put_notify(&[msg("N", 0, b"again", "")], Box::new(|_| ())),
        Err(StoreError::WriteDisabled(_))
    ));
    store.shutdown();
}

/// With a `RoundDelivery`, a group-commit round's `put_notify` callbacks reach it together, each
/// only after the flush that covers it; a failed sync's round carries the error to every one; and
/// a thread blocked in `put` is released by the commit thread itself even when the delivery never
/// runs the rounds it is given (it could be the very thread a delivery needs).
#[test]
fn put_notify_rounds_go_through_the_delivery() {
    use ferrocket_store::{DurableRound, RoundDelivery, StoreOptions};
    use std::sync::{mpsc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 256 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    // Rounds are run on a thread of their own, as the broker's runtime does; `hold` parks them.
    let (round_tx, round_rx) = mpsc::channel::<DurableRound>();
    let rounds = Arc::new(AtomicU32::new(0));
    let delivered = Arc::new(AtomicU32::new(0));
    let (r2, d2) = (Arc::clone(&rounds), Arc::clone(&delivered));
    let round_tx = Mutex::new(round_tx);
    let delivery: RoundDelivery = Arc::new(move |round: DurableRound| {
        r2.fetch_add(1, Ordering::Relaxed);
        d2.fetch_add(u32::try_from(round.len()).unwrap(), Ordering::Relaxed);
        round_tx.lock().unwrap().send(round).unwrap();
    });
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = Arc::new(Mutex::new(Vec::new()));
    let (h2, held2) = (Arc::clone(&hold), Arc::clone(&held));
    let runner = std::thread::spawn(move || {
        for round in round_rx {
            if h2.load(Ordering::Acquire) {
                held2.lock().unwrap().push(round);
            } else {
                round.run();
            }
        }
    });
    let options = StoreOptions {
        durable_delivery: Some(delivery),
        ..StoreOptions::default()
    };
    let store = MessageStore::open_with(c, options).unwrap();
    let (tx, rx) = mpsc::channel();
    put_notify_200_and_check_durable(&store, "D", &tx, &rx);
    let n = rounds.load(Ordering::Relaxed);
    // Callbacks that found their bytes already durable ran inline; every other one came in a
    // round, and rounds were shared (far fewer than one per callback is not guaranteed on a
    // fast disk, but at least one round happened).
    assert!(n >= 1, "no round went through the delivery");
    assert!(delivered.load(Ordering::Relaxed) <= 200);
    // A blocking put while the delivery sits on its rounds: released by the commit thread.
    hold.store(true, Ordering::Release);
    let tx_held = tx.clone();
    store
        .put_notify(
            &[msg("D", 0, b"held", "")],
            Box::new(move |r| tx_held.send((r.is_ok(), 1000, 0)).unwrap()),
        )
        .unwrap();
    let r = store.put(&msg("D", 1, b"blocking", "")).unwrap();
    assert_eq!(r.status, PutStatus::Ok);
    let a = &r.appended[0];
    assert!(store.flushed_offset() >= a.phy_offset + u64::from(a.size));
    // The held callback has not run (its round is parked), though its bytes are durable.
    assert!(rx.try_recv().is_err());
    hold.store(false, Ordering::Release);
    for round in std::mem::take(&mut *held.lock().unwrap()) {
        round.run();
    }
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), (true, 1000, 0));
    // A failed sync: the round's callbacks all get the error.
    store.fail_next_flush();
    let tx3 = tx.clone();
    if store
        .put_notify(
            &[msg("D", 0, b"lost?", "")],
            Box::new(move |r| tx3.send((r.is_ok(), 2000, 0)).unwrap()),
        )
        .is_ok()
    {
        let (ok, i, _) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(i, 2000);
        assert!(!ok, "failed sync reported durable");
    }
    store.shutdown();
    drop(store);
    runner.join().unwrap();
}

/// The dispatcher writes the units of consecutive records of one queue together and tells the
/// arrival listener once per run: the listener's offsets per queue only grow, its last call per
/// queue has the queue's max offset, and every unit is there (queues interleaved in runs).
#[test]
fn arrival_listener_sees_runs_of_units_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 1 << 20)).unwrap();
    let calls: Arc<parking_lot::Mutex<Vec<(String, u32, u64)>>> = Arc::default();
    let c = Arc::clone(&calls);
    store.set_arrival_listener(Arc::new(move |t: &str, q: u32, max: u64| {
        c.lock().push((t.to_string(), q, max));
    }));
    // Runs of 1..=70 records (past the 32-unit batch) on three queues of two topics.
    let queues = [("TopicA", 0u32), ("TopicB", 1), ("TopicA", 2)];
    let mut want = std::collections::HashMap::new();
    for (n, run) in [1usize, 70, 3, 33, 32, 5, 64, 1].into_iter().enumerate() {
        let (t, q) = queues[n % queues.len()];
        for _ in 0..run {
            store
                .put(&msg(t, q, &body_of(n as u32, 40), "tag"))
                .unwrap();
            *want.entry((t.to_string(), q)).or_insert(0u64) += 1;
        }
    }
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    let calls = calls.lock().clone();
    for ((t, q), count) in &want {
        assert_eq!(store.max_offset(t, *q), *count, "{t}/{q}");
        let seen: Vec<u64> = calls
            .iter()
            .filter(|(ct, cq, _)| ct == t && cq == q)
            .map(|c| c.2)
            .collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{t}/{q}: {seen:?}");
        assert_eq!(seen.last(), Some(count), "{t}/{q}");
        let r = store.get(t, *q, 0, 1000, u64::MAX, &TagFilter::All);
        assert_eq!(r.messages.len() as u64, *count, "{t}/{q}");
    }
    store.shutdown();
}

/// Records of many queues interleaved one by one (more queues than a dispatcher step keeps open
/// at once): every queue gets its units in order, each pointing at its own record, and the
/// listener's announcements per queue only grow and end at its count.
#[test]
fn interleaved_queues_dispatch_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 1 << 20)).unwrap();
    let calls: Arc<parking_lot::Mutex<Vec<(u32, u64)>>> = Arc::default();
    let c = Arc::clone(&calls);
    store.set_arrival_listener(Arc::new(move |_: &str, q: u32, max: u64| {
        c.lock().push((q, max));
    }));
    const QUEUES: u32 = 11;
    const PER_QUEUE: u32 = 40;
    for i in 0..QUEUES * PER_QUEUE {
        let q = i % QUEUES;
        store.put(&msg("Inter", q, &body_of(i, 60), "t")).unwrap();
    }
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    let calls = calls.lock().clone();
    for q in 0..QUEUES {
        assert_eq!(store.max_offset("Inter", q), u64::from(PER_QUEUE));
        let r = store.get("Inter", q, 0, 1000, u64::MAX, &TagFilter::All);
        assert_eq!(r.messages.len() as u32, PER_QUEUE);
        for (k, m) in r.messages.iter().enumerate() {
            let rec = decode_record(m.as_bytes()).unwrap();
            assert_eq!(rec.queue_offset, k as i64);
            assert_eq!(
                rec.body,
                &body_of(k as u32 * QUEUES + q, 60)[..],
                "queue {q}"
            );
        }
        let seen: Vec<u64> = calls.iter().filter(|c| c.0 == q).map(|c| c.1).collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{q}: {seen:?}");
        assert_eq!(seen.last(), Some(&u64::from(PER_QUEUE)));
    }
    store.shutdown();
}

#[test]
fn assigned_max_offset_counts_messages_not_yet_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        background: false,
        ..StoreOptions::default()
    };
    let store = MessageStore::open_with(config(dir.path(), 1 << 20), opts).unwrap();
    for n in 0..3 {
        store.put(&msg("T", 1, &body_of(n, 64), "a")).unwrap();
    }
    // No dispatcher thread: the ConsumeQueue has not seen them, the CommitLog has.
    assert_eq!(store.max_offset("T", 1), 0);
    assert_eq!(store.max_offset_assigned("T", 1), 3);
    assert_eq!(store.max_offset_assigned("T", 0), 0);
    assert_eq!(store.max_offset_assigned("Other", 1), 0);
    store.dispatch_now().unwrap();
    assert_eq!(store.max_offset("T", 1), 3);
    assert_eq!(store.max_offset_assigned("T", 1), 3);
    store.shutdown();
}

static COMMIT_THREAD_STARTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn mark_commit_thread() {
    if std::thread::current().name() == Some("ferrocket-group-commit") {
        COMMIT_THREAD_STARTED.store(true, Ordering::SeqCst);
    }
}

/// `group_commit_thread_start` runs on the SYNC_FLUSH commit thread (where the broker sets its
/// scheduling policy), before it serves any round.
#[test]
fn the_commit_thread_start_hook_runs_on_that_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 256 * 1024);
    c.flush_disk_type = FlushDiskType::Sync;
    let options = StoreOptions {
        group_commit_thread_start: Some(mark_commit_thread),
        ..StoreOptions::default()
    };
    let store = MessageStore::open_with(c, options).unwrap();
    assert_eq!(
        store.put(&msg("H", 0, b"x", "")).unwrap().status,
        PutStatus::Ok
    );
    assert!(COMMIT_THREAD_STARTED.load(Ordering::SeqCst));
    store.shutdown();
}

/// The bodies of a queue from offset 0, as strings.
fn bodies(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<String> {
    let g = store.get(topic, queue_id, 0, 1000, 1 << 30, &TagFilter::All);
    g.messages
        .iter()
        .map(|s| String::from_utf8(decode_record(s.as_bytes()).unwrap().body.to_vec()).unwrap())
        .collect()
}

fn put_all(store: &MessageStore, topic: &str, queue_id: u32, bodies: &[&str]) -> Vec<u64> {
    let offsets = bodies
        .iter()
        .map(|b| {
            store
                .put(&msg(topic, queue_id, b.as_bytes(), "T"))
                .unwrap()
                .appended[0]
                .queue_offset
        })
        .collect();
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    offsets
}

#[test]
fn deleted_topic_stays_deleted_across_clean_and_crash_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 * 1024;
    let cut;
    {
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        put_all(&store, "Keep", 0, &["k0", "k1", "k2"]);
        // The deleted topic is written last: its queues are the ones furthest ahead, so a clean
        // reopen re-dispatches its records unless something stops it.
        put_all(&store, "Gone", 0, &["old0", "old1", "old2", "old3"]);
        put_all(&store, "Gone", 1, &["old-q1"]);
        cut = store.commit_log_max_offset();
        assert_eq!(store.delete_topic("Gone").unwrap(), 2);
        assert_eq!(store.delete_topic("NeverSeen").unwrap(), 0);
        assert!(!dir.path().join("consumequeue/Gone").exists());
        assert!(dir.path().join("deletedTopics").exists());
        for q in [0, 1] {
            assert_eq!(store.max_offset("Gone", q), 0);
            assert_eq!(store.max_offset_assigned("Gone", q), 0);
            assert_eq!(
                store.get("Gone", q, 0, 10, 1 << 20, &TagFilter::All).status,
                GetStatus::NoMatchedLogicQueue
            );
        }
        let mut tq = store.topics_and_queues();
        tq.sort();
        assert_eq!(tq, vec![("Keep".to_string(), 0)]);
        store.shutdown();
    }
    {
        // Clean reopen: the ConsumeQueues end at Keep's last record, below Gone's.
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        assert!(!store.recovery_report().scanned);
        assert_eq!(store.max_offset("Gone", 0), 0, "deleted records came back");
        assert_eq!(store.max_offset("Gone", 1), 0);
        assert_eq!(bodies(&store, "Keep", 0), ["k0", "k1", "k2"]);
        // Created again: it starts empty at offset 0.
        assert_eq!(put_all(&store, "Gone", 0, &["new0", "new1"]), [0, 1]);
        assert_eq!(bodies(&store, "Gone", 0), ["new0", "new1"]);
        store.halt();
    }
    // A crash with a checkpoint from before the deletion (here: none at all), so the crash
    // recovery hands the deleted records to the dispatcher again.
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    {
        // Crash reopen: everything from the checkpoint (here: below the cut) is dispatched again.
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        let rep = store.recovery_report();
        assert!(rep.scanned);
        assert!(rep.redispatch_from < cut, "{rep:?} cut {cut}");
        assert_eq!(bodies(&store, "Gone", 0), ["new0", "new1"]);
        assert_eq!(store.max_offset("Gone", 1), 0);
        assert_eq!(bodies(&store, "Keep", 0), ["k0", "k1", "k2"]);
        assert_eq!(put_all(&store, "Gone", 0, &["new2"]), [2]);
        store.shutdown();
    }
}

#[test]
fn a_crash_between_tombstone_and_queue_removal_finishes_the_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 * 1024;
    {
        let store = MessageStore::open(config(dir.path(), seg)).unwrap();
        put_all(&store, "Gone", 3, &["a", "b"]);
        put_all(&store, "Keep", 0, &["k"]);
        store.shutdown();
    }
    // What DELETE_TOPIC writes first, and the process dies right after.
    let end = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count(); // one segment
    assert_eq!(end, 1);
    let mut m = ferrocket_store::tombstone::TombstoneMap::new();
    m.insert("Gone".into(), 10_000);
    std::fs::write(
        dir.path().join("deletedTopics"),
        ferrocket_store::tombstone::encode(&m),
    )
    .unwrap();
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    assert!(!dir.path().join("consumequeue/Gone").exists());
    assert_eq!(store.max_offset("Gone", 3), 0);
    assert_eq!(bodies(&store, "Keep", 0), ["k"]);
    assert_eq!(put_all(&store, "Gone", 3, &["c"]), [0]);
    store.shutdown();
    // A damaged tombstone file stops the open with a clear error instead of guessing.
    std::fs::write(
        dir.path().join("deletedTopics"),
        b"Gone=1\ncrc32c=00000000\n",
    )
    .unwrap();
    assert!(matches!(
        MessageStore::open(config(dir.path(), seg)),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn retention_drops_tombstones_it_made_useless() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * 1024;
    let store = open_for_retention(dir.path(), seg, 100);
    for i in 0..5 {
        store.put(&msg("Gone", 0, &body_of(i, 1000), "")).unwrap();
    }
    let cut = store.commit_log_max_offset();
    store.delete_topic("Gone").unwrap();
    let tomb = |d: &Path| {
        ferrocket_store::tombstone::Tombstones::open(d)
            .unwrap()
            .snapshot()
    };
    assert_eq!(tomb(dir.path()).get("Gone"), Some(&cut));
    for i in 0..60 {
        store.put(&msg("Keep", 0, &body_of(i, 1000), "")).unwrap();
    }
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    store.run_retention_round(3);
    assert!(store.commit_log_min_offset() >= cut);
    assert!(tomb(dir.path()).is_empty());
    store.shutdown();
}

/// The segment files of the CommitLog, with their inode numbers.
fn segment_inodes(dir: &Path) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Puts `n` 700-byte bodies numbered from `from` into ("N", 0).
fn put_numbered(store: &MessageStore, from: u32, n: u32) {
    for i in from..from + n {
        assert_eq!(
            store
                .put(&msg("N", 0, &body_of(i, 700), ""))
                .unwrap()
                .status,
            PutStatus::Ok
        );
    }
}

/// Every body of ("N", 0) is `body_of(i, 700)` for i = 0, 1, ... in order, `n` of them.
fn assert_numbered(store: &MessageStore, n: u32) {
    assert!(store.wait_dispatched(store.commit_log_max_offset(), WAIT));
    assert_eq!(store.max_offset("N", 0), u64::from(n));
    let mut at = 0;
    while at < u64::from(n) {
        let g = store.get("N", 0, at, 32, 1 << 20, &TagFilter::All);
        assert_eq!(g.status, GetStatus::Found, "at {at}");
        for s in &g.messages {
            let r = decode_record(s.as_bytes()).unwrap();
            assert_eq!(r.queue_offset, at as i64);
            assert_eq!(r.body, &body_of(at as u32, 700)[..]);
            at += 1;
        }
    }
}

/// A store of 64 KiB segments with 30 numbered messages (past a quarter of the first segment, so
/// the next one is pre-allocated), shut down cleanly or halted (a crash).
fn with_preallocated_next(clean: bool) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 * 1024;
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    put_numbered(&store, 0, 30);
    assert!(store.wait_preallocated(WAIT));
    if clean {
        store.shutdown();
    } else {
        store.halt();
    }
    (dir, seg)
}

#[test]
fn clean_reopen_keeps_the_preallocated_next_segment() {
    let (dir, seg) = with_preallocated_next(true);
    let before = segment_inodes(dir.path());
    assert_eq!(before.len(), 2, "{before:?}");
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let rep = store.recovery_report();
    // Not deleted (the inode check alone could pass for a re-made file with a reused number).
    assert!(!rep.scanned && rep.deleted_segments == 0, "{rep:?}");
    assert_eq!(segment_inodes(dir.path()), before, "next segment re-made");
    // Roll into it: the log takes the kept file (same inode), and everything reads back, also
    // after another clean reopen.
    put_numbered(&store, 30, 100);
    assert!(store.commit_log_max_offset() > seg);
    assert_numbered(&store, 130);
    let after = segment_inodes(dir.path());
    assert_eq!(after.get(1), before.get(1), "{after:?}");
    store.shutdown();
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    assert_numbered(&store, 130);
    store.shutdown();
}

#[test]
fn a_next_segment_that_is_not_empty_is_not_kept() {
    let (dir, seg) = with_preallocated_next(true);
    // Something wrote into the next segment (not the store: it never does before a roll).
    let before = segment_inodes(dir.path());
    let next = dir.path().join("commitlog").join(&before[1].0);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&next).unwrap();
        f.write_all_at(&[0xAB; 64], 100).unwrap();
    }
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let rep = store.recovery_report();
    assert_eq!(rep.deleted_segments, 1, "{rep:?}");
    // Gone at open (a new file may get the same inode number, so names are what to compare).
    let names: Vec<String> = segment_inodes(dir.path())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, [before[0].0.clone()]);
    // The roll makes a new, zero-filled segment: none of those bytes shows up.
    put_numbered(&store, 30, 100);
    assert_numbered(&store, 130);
    store.shutdown();
}

#[test]
fn a_crash_reopen_still_deletes_the_next_segment() {
    let (dir, seg) = with_preallocated_next(false);
    let store = MessageStore::open(config(dir.path(), seg)).unwrap();
    let rep = store.recovery_report();
    assert!(rep.scanned && rep.deleted_segments == 1, "{rep:?}");
    put_numbered(&store, 30, 100);
    assert_numbered(&store, 130);
    store.shutdown();
}
