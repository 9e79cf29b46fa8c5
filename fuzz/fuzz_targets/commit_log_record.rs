//! Fuzz the stored-record decoder: `scan`, `decode_record` and `decode_records` return `Ok` or
//! `Err` for any bytes, never panic; a decoded record re-encodes to the same bytes whenever it is in
//! the form our encoder writes (v2 magic exactly for topics over 127 bytes).
#![no_main]

use ferrocket_store::record::{
    decode_properties, decode_record, decode_records, scan, RecordParts, MAGIC_V2, TOPIC_V1_LEN_MAX,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan(data, 0, true);
    let _ = scan(data, u64::MAX, false);
    let _ = decode_records(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_properties(text);
    }
    let Ok(r) = decode_record(data) else { return };
    if (r.magic == MAGIC_V2) != (r.topic.len() > TOPIC_V1_LEN_MAX) {
        return;
    }
    let parts = RecordParts {
        queue_id: r.queue_id,
        flag: r.flag,
        queue_offset: r.queue_offset,
        phy_offset: r.phy_offset,
        sys_flag: r.sys_flag,
        born_timestamp: r.born_timestamp,
        born_host: r.born_host,
        store_timestamp: r.store_timestamp,
        store_host: r.store_host,
        reconsume_times: r.reconsume_times,
        prepared_transaction_offset: r.prepared_transaction_offset,
        body_crc: r.body_crc,
        body: r.body,
        topic: r.topic,
        properties: r.properties,
    };
    let again = parts.to_vec().expect("a decoded record fits its own fields");
    assert_eq!(&again[..], &data[..r.total_size as usize]);
});
