//! Fuzz frame splitting: arbitrary bytes as a receive buffer are split frame by frame exactly as
//! the server does (check, split_to, decode): `Ok`/`Err`, never a panic; every decoded command
//! re-encodes to a frame that decodes to the same command.
#![no_main]

use ferrocket_net::bytes::{Bytes, BytesMut};
use ferrocket_net::frame::{self, LEN_PREFIX_BYTES};
use ferrocket_net::{RemotingCommand, SerializeType};
use libfuzzer_sys::fuzz_target;

/// A small cap so the fuzzer reaches "frame complete" often.
const FRAME_LEN_MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        match frame::check(&buf, FRAME_LEN_MAX) {
            Ok(Some(total)) => {
                assert!(total >= 8 && total <= FRAME_LEN_MAX && total <= buf.len());
                let f = buf.split_to(total).freeze().slice(LEN_PREFIX_BYTES..);
                if let Ok(cmd) = RemotingCommand::decode(f) {
                    for st in [SerializeType::Json, SerializeType::RocketMq] {
                        let again = cmd.encode(st);
                        let back = RemotingCommand::decode(Bytes::copy_from_slice(&again[4..]));
                        if st == SerializeType::Json {
                            assert_eq!(back.ok().as_ref(), Some(&cmd));
                        } else if let Ok(b) = back {
                            // The binary header keeps code/version in 16 bits.
                            assert_eq!(b.ext_fields, cmd.ext_fields);
                        }
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
