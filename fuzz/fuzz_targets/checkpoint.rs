//! Fuzz the checkpoint codec: any bytes decode to `None` or to values that encode back to the
//! same first 40 bytes.
#![no_main]

use ferrocket_store::checkpoint::{CheckpointData, CHECKPOINT_LEN_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match CheckpointData::decode(data) {
        Some(c) => {
            assert_eq!(&c.encode()[..], &data[..CHECKPOINT_LEN_BYTES]);
            let _ = c.min_timestamp();
        }
        None => assert!(data.len() < CHECKPOINT_LEN_BYTES),
    }
});
