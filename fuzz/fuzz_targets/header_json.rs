//! Fuzz the JSON header decoder: arbitrary bytes as a header never panic; a decoded header
//! re-encodes (Java shape, string values) and decodes to the same command.
#![no_main]

use ferrocket_net::header::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = json::decode(data) {
        let mut out = Vec::new();
        json::encode(&cmd, &mut out);
        let back = json::decode(&out).expect("our own JSON decodes");
        assert_eq!(back, cmd);
    }
});
