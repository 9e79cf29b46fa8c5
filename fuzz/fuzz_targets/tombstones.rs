//! Fuzz the deleted-topics file (`deletedTopics`): any bytes decode to `Err` or to a map that
//! encodes back to exactly those bytes (the format has one spelling per map).
#![no_main]

use ferrocket_store::tombstone::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        assert_eq!(encode(&m), data);
    }
});
