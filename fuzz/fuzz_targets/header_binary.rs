//! Fuzz the ROCKETMQ binary header decoder: arbitrary bytes never panic or allocate past the
//! input; a decoded header re-encodes to bytes that decode to the same command.
#![no_main]

use ferrocket_net::header::binary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = binary::decode(data) {
        let mut out = Vec::new();
        binary::encode(&cmd, &mut out);
        let back = binary::decode(&out).expect("our own binary header decodes");
        assert_eq!(back, cmd);
    }
});
